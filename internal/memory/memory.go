// Package memory is the domain of Coding Brain: what a memory is, the rules for
// creating, changing and finding memories, and the Store interface the rules
// are kept on. Transports (REST, MCP, CLI) call Service; stores implement Store.
package memory

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
	"unicode"
)

// Category says what kind of knowledge a memory holds.
type Category string

// Categories, in the order they are listed in error messages.
var Categories = []Category{
	"decision", "convention", "architecture", "dependency", "workflow",
	"testing", "security", "performance", "runbook", "glossary",
}

// Scope says how widely a memory is meant to be shared.
type Scope string

// Scopes, narrowest first.
var Scopes = []Scope{"session", "user", "team", "project", "org", "enterprise"}

// ArtifactType names the kind of thing a memory is about.
type ArtifactType string

// ArtifactTypes lists the allowed artifact types.
var ArtifactTypes = []ArtifactType{"repo", "service", "module", "component", "api", "db", "infra", "file"}

// Source says whether a person stated the memory or an agent inferred it.
type Source string

// Sources lists the allowed sources.
var Sources = []Source{"user", "inference"}

// State is the lifecycle state of a memory.
type State string

// States of a memory. Deleted memories are kept (soft delete) for history and
// audit until a purge removes them.
const (
	StateActive   State = "active"
	StatePaused   State = "paused"
	StateArchived State = "archived"
	StateDeleted  State = "deleted"
)

// States lists every state.
var States = []State{StateActive, StatePaused, StateArchived, StateDeleted}

// Action is a state change a client may ask for.
type Action string

// Actions accepted by Service.Transition.
const (
	ActionPause   Action = "pause"
	ActionArchive Action = "archive"
	ActionRestore Action = "restore"
)

// Actions lists the allowed state actions.
var Actions = []Action{ActionPause, ActionArchive, ActionRestore}

// transitions maps an action to the states it may start from and the state it
// leads to. Anything else is a conflict.
var transitions = map[Action]struct {
	from []State
	to   State
}{
	ActionPause:   {from: []State{StateActive}, to: StatePaused},
	ActionArchive: {from: []State{StateActive, StatePaused}, to: StateArchived},
	ActionRestore: {from: []State{StatePaused, StateArchived}, to: StateActive},
}

// Memory is one piece of team knowledge.
type Memory struct {
	ID             string         `json:"id"`
	OrgID          string         `json:"org_id"`
	Content        string         `json:"content"`
	Category       Category       `json:"category,omitempty"`
	Scope          Scope          `json:"scope"`
	ArtifactType   ArtifactType   `json:"artifact_type,omitempty"`
	ArtifactRef    string         `json:"artifact_ref,omitempty"`
	Entity         string         `json:"entity,omitempty"`
	Source         Source         `json:"source"`
	Evidence       []string       `json:"evidence,omitempty"`
	Tags           map[string]any `json:"tags,omitempty"`
	Metadata       map[string]any `json:"metadata,omitempty"`
	AccessEntity   string         `json:"access_entity"`
	App            string         `json:"app,omitempty"`
	State          State          `json:"state"`
	CreatedBy      string         `json:"created_by"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	ValidFrom      *time.Time     `json:"valid_from,omitempty"`
	ValidTo        *time.Time     `json:"valid_to,omitempty"`
	ContentHash    string         `json:"-"`
	IdempotencyKey string         `json:"-"`
	// Cold is set for a memory in the cold tier (tier.go) where stores read
	// it for a caller (Get, Search): searches find it only with
	// include_cold, and reading or changing it brings it back.
	Cold bool `json:"cold,omitempty"`
}

// NormalizeContent folds case and white space so that trivially different
// copies of the same text compare equal.
func NormalizeContent(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// ContentHash is the hash used to detect exact duplicates: SHA-256 of the
// normalized content, hex encoded.
func ContentHash(content string) string {
	sum := sha256.Sum256([]byte(NormalizeContent(content)))
	return hex.EncodeToString(sum[:])
}

// HistoryEntry records one change to a memory: who, when, and the memory
// before and after. Before is nil for a create.
type HistoryEntry struct {
	ID       int64     `json:"id"`
	MemoryID string    `json:"memory_id"`
	OrgID    string    `json:"org_id"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	At       time.Time `json:"at"`
	Before   *Memory   `json:"before,omitempty"`
	After    *Memory   `json:"after,omitempty"`
}

// AccessEntry records that a memory was returned to a reader.
type AccessEntry struct {
	MemoryID string    `json:"memory_id"`
	OrgID    string    `json:"org_id"`
	Actor    string    `json:"actor"`
	App      string    `json:"app,omitempty"`
	Via      string    `json:"via"`
	Query    string    `json:"query,omitempty"`
	At       time.Time `json:"at"`
}

// Hit is one search result.
type Hit struct {
	Memory  Memory   `json:"memory"`
	Score   float64  `json:"score"`
	Explain *Explain `json:"explain,omitempty"`
}

// AppCount is an app and how many visible memories it wrote.
type AppCount struct {
	App      string `json:"app"`
	Memories int    `json:"memories"`
}

// Stats summarizes the memories visible to a caller.
type Stats struct {
	Total      int            `json:"total"`
	ByState    map[string]int `json:"by_state"`
	ByCategory map[string]int `json:"by_category"`
	ByScope    map[string]int `json:"by_scope"`
}
