package client

import "github.com/codingbrain/codingbrain/internal/memory"

// The API's types are the domain's. These aliases let programs outside this
// module, which cannot import internal/memory, name them.
type (
	Memory       = memory.Memory
	Input        = memory.Input
	Patch        = memory.Patch
	Page         = memory.Page
	Filter       = memory.Filter
	Hit          = memory.Hit
	HistoryEntry = memory.HistoryEntry
	AppCount     = memory.AppCount
	Stats        = memory.Stats
	Action       = memory.Action
	Category     = memory.Category
	Scope        = memory.Scope
	State        = memory.State
	ArtifactType = memory.ArtifactType
	Source       = memory.Source

	// The entity graph.
	Entity         = memory.Entity
	EntityQuery    = memory.EntityQuery
	Edge           = memory.Edge
	RelatedMemory  = memory.RelatedMemory
	NetworkQuery   = memory.NetworkQuery
	Network        = memory.Network
	PathQuery      = memory.PathQuery
	Path           = memory.Path
	AggregateQuery = memory.AggregateQuery
	Bucket         = memory.Bucket
	TagPair        = memory.TagPair
	RelateInput    = memory.RelateInput
	Relation       = memory.Relation
)

// Sentinels an *Error matches with errors.Is; the same values as the memory
// package's.
var (
	ErrNotFound     = memory.ErrNotFound
	ErrConflict     = memory.ErrConflict
	ErrForbidden    = memory.ErrForbidden
	ErrUnauthorized = memory.ErrUnauthorized
	ErrUnavailable  = memory.ErrUnavailable
)
