package memory

import (
	"context"
	"time"
)

// Store keeps memories. Every method takes an Access that the implementation
// must enforce inside its queries: a row outside Access is never read,
// counted, changed or returned. Not-found is reported as ErrNotFound, also for
// rows that exist but are not visible.
type Store interface {
	// Create inserts m with a "create" history row in one transaction. If a
	// live memory with the same OrgID, AccessEntity and ContentHash exists, or
	// m.IdempotencyKey was already used in the org, it returns that memory
	// and created=false instead. Reusing an idempotency key for different
	// content is ErrConflict.
	Create(ctx context.Context, m Memory, actor string) (stored Memory, created bool, err error)

	// Get returns one visible memory, in either tier (Memory.Cold says
	// which).
	Get(ctx context.Context, a Access, id string) (Memory, error)

	// Update loads a visible memory, applies change to it and, if change
	// returns nil, writes it and a history row (action, actor, before, after)
	// in one transaction. Changing content must keep ContentHash consistent;
	// a resulting duplicate is ErrConflict. A write that does not delete
	// the memory brings it back to the hot tier.
	Update(ctx context.Context, a Access, id, actor, action string, change func(*Memory) error) (Memory, error)

	// List returns visible memories matching q, in q.Sort order, and the
	// cursor of the next page ("" on the last page).
	List(ctx context.Context, a Access, q ListQuery) ([]Memory, string, error)

	// Search ranks visible memories matching q.Filter by lexical relevance
	// to q.Text. Filters apply before the limit. It covers the hot tier,
	// and the cold tier too when q.IncludeCold is set.
	Search(ctx context.Context, a Access, q SearchQuery) ([]Hit, error)

	// History returns the history of a visible memory, oldest first.
	History(ctx context.Context, a Access, id string) ([]HistoryEntry, error)

	// LogAccess appends access-log rows.
	LogAccess(ctx context.Context, entries []AccessEntry) error

	// Apps lists the apps that wrote visible memories.
	Apps(ctx context.Context, a Access) ([]AppCount, error)

	// Stats counts visible memories.
	Stats(ctx context.Context, a Access) (Stats, error)

	// Ping reports whether the store is reachable and its schema current.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// Access is what a caller may see: memories of one org whose access entity is
// one of Entities or starts with one of Prefixes. Stores turn it into a
// WHERE clause; it is never applied to results afterwards.
type Access struct {
	OrgID    string
	Entities []string
	Prefixes []string
}

// Allows reports whether an access entity is inside a.
func (a Access) Allows(entity string) bool {
	for _, e := range a.Entities {
		if e == entity {
			return true
		}
	}
	for _, p := range a.Prefixes {
		if len(entity) > len(p) && entity[:len(p)] == p {
			return true
		}
	}
	return false
}

// Filter narrows a list or search. Zero fields do not filter. States empty
// means every state but deleted.
type Filter struct {
	Categories    []Category `json:"category,omitempty"`
	Scopes        []Scope    `json:"scope,omitempty"`
	States        []State    `json:"state,omitempty"`
	Entity        string     `json:"entity,omitempty"`
	ArtifactRef   string     `json:"artifact_ref,omitempty"`
	Tags          []string   `json:"tags,omitempty"`
	App           string     `json:"app,omitempty"`
	AccessEntity  string     `json:"access_entity,omitempty"`
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
	// ValidAt keeps memories that were valid at that time: valid_from
	// unset or not after it, and valid_to unset or after it.
	ValidAt *time.Time `json:"valid_at,omitempty"`
}

// Sort orders of List.
const (
	SortCreatedDesc = "-created_at"
	SortCreatedAsc  = "created_at"
	SortUpdatedDesc = "-updated_at"
	SortUpdatedAsc  = "updated_at"
)

// Sorts lists the allowed sort orders.
var Sorts = []string{SortCreatedDesc, SortCreatedAsc, SortUpdatedDesc, SortUpdatedAsc}

// ListQuery selects a page of memories. Pages are keyset-paginated on
// (sort column, id), so they stay stable while memories are inserted.
type ListQuery struct {
	Filter Filter
	Sort   string
	Limit  int
	Cursor string
}

// SearchQuery asks for the memories most relevant to Text.
type SearchQuery struct {
	Text   string
	Filter Filter
	Limit  int
	// Mode is the retrieval to run (SearchModes); empty is the service's
	// default. Stores ignore it: Store.Search is always lexical.
	Mode SearchMode
	// Explain asks for each hit's Explain.
	Explain bool
	// IncludeCold also searches the cold tier (tier.go). Store.Search
	// covers hot memories only unless it is set; with it, Store.Search
	// covers both tiers.
	IncludeCold bool
}

// Change is one committed write to a memory — its creation, an update, a
// state change or a delete (which is the change to StateDeleted) — as a
// ChangeFeed reports it. It names the memory and says what it is now; it
// does not carry the content: a consumer that needs more reads the memory.
//
// Seq orders changes: every write gives the memory a new, higher Seq than
// any write committed before it began (a store may skip numbers). When a
// memory is written several times between two reads of the feed, only its
// latest write may be reported, with that write's Seq, State and UpdatedAt.
type Change struct {
	Seq       int64
	ID        string
	OrgID     string
	State     State
	UpdatedAt time.Time
	// Cold says the memory is in the cold tier, which in-process derived
	// data leaves out.
	Cold bool
}

// ChangeCursor is a position in a ChangeFeed: what a consumer has been
// given so far. It is opaque: pass back the cursor Changes returned. The zero
// value is the beginning (every memory's latest change). Horizon is used by
// stores whose concurrent writers can commit out of Seq order (PostgreSQL);
// it is zero elsewhere.
type ChangeCursor struct {
	Seq     int64
	Horizon uint64
}

// ChangeFeed reports committed writes to memories, so that derived,
// in-process data (a vector index, caches) on every replica can follow the
// database, including writes made by other replicas or processes. Both
// stores implement it; it is not part of Store.
//
// The feed is internal: it is not filtered by Access and reports the
// memories of every org. It is for in-process derived data only and must
// never be exposed to callers (REST, MCP) as it is.
type ChangeFeed interface {
	// Changes returns committed changes not yet returned for the cursor
	// after, ordered by Seq, at most limit (a limit below 1 means 1), and
	// the cursor to pass next time. When nothing new has been committed it
	// returns no changes and after itself.
	//
	// Delivery is at least once: a memory may be reported again, also with
	// a Seq already seen, so consumers apply changes idempotently and keep
	// the highest Seq per memory. No committed change is ever skipped: a
	// memory's latest write is reported after it commits, even when a
	// write with a higher Seq committed (and was reported) first.
	//
	// A full page whose cursor did not move forward (its Seq is not above
	// after.Seq) means more changes must be checked again than fit in
	// limit — on PostgreSQL this happens while some write transaction stays
	// open for long — and the caller should ask again with a larger limit.
	Changes(ctx context.Context, after ChangeCursor, limit int) ([]Change, ChangeCursor, error)
}
