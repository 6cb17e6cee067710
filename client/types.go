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
