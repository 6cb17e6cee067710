// Package storetest is the contract every memory.Store must keep, as one
// test suite. Each store package runs it against a fresh database:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) memory.Store { return openTestStore(t) })
//	}
//
// The suite works only through memory.Store and memory.Service, with an
// injected clock and id source. Times it writes are whole microseconds, so a
// store that keeps microseconds (PostgreSQL) passes as well as one that keeps
// nanoseconds.
//
// Beyond the doc comments of memory.Store, the suite pins these choices:
//
//   - what Create and Update return reads back equal from Get, times in UTC;
//   - created_after and created_before are exclusive bounds;
//   - a tag filter "key=value" matches string values only;
//   - access-entity prefixes match bytes exactly: case-sensitive, and _ or %
//     in a grant are not wildcards;
//   - an idempotency key reused for other content, or for the same content
//     in another access entity, is ErrConflict (a key never returns a memory
//     the caller could not see);
//   - Apps counts live memories with an app, most first, then by name;
//     Stats.ByCategory leaves out memories without a category; ByState
//     counts deleted memories, Total does not;
//   - search scores are positive and descending, and an exact phrase in the
//     content outranks scattered words;
//   - a store that implements memory.ChangeFeed reports every committed
//     create, update, state change and delete, of every org (the feed is not
//     filtered by access: it is for in-process derived data only), in Seq
//     order, limit at a time; writes that change nothing (a duplicate add, a
//     rejected update) are not changes; an empty page keeps the cursor;
//   - Lookup (memory.Lookup) returns, of the ids asked for, only memories
//     the caller may see and the filter keeps; MemoriesOf reads memories of
//     every org, in any state, by (org, id), in key order;
//   - a store that implements memory.Tiers moves archived, deleted and
//     untouched memories (no write, no access-log row since the cut) to the
//     cold tier, reports each move on the change feed as Cold, searches the
//     cold tier only with IncludeCold and then with the same access rules
//     and filters, and brings a memory back on Warm and on any Update but a
//     delete; backups keep each memory's tier.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// AccessLogCounter is implemented by stores that can count their access-log
// rows. The Store interface has no reader for the access log, so the suite
// checks logging through this optional hook and skips the check when a
// store lacks it.
type AccessLogCounter interface {
	CountAccessLog(ctx context.Context, orgID string) (int, error)
}

// Run runs the contract suite. open must return a fresh, empty, migrated
// store for each call; the suite closes it. Subtests run in parallel, each
// on its own store.
func Run(t *testing.T, open func(t *testing.T) memory.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"CRUDRoundTrip", testCRUD},
		{"Validation", testValidation},
		{"Filters", testFilters},
		{"Pagination", testPagination},
		{"PaginationConcurrentInserts", testPaginationConcurrentInserts},
		{"StateTransitions", testStateTransitions},
		{"SoftDelete", testSoftDelete},
		{"History", testHistory},
		{"Dedup", testDedup},
		{"Idempotency", testIdempotency},
		{"SearchRanking", testSearchRanking},
		{"SearchFiltersBeforeLimit", testSearchFiltersBeforeLimit},
		{"SearchSyntaxSafety", testSearchSyntax},
		{"SearchFollowsUpdates", testSearchFollowsUpdates},
		{"TenantIsolation", testTenantIsolation},
		{"Grants", testGrants},
		{"AccessLog", testAccessLog},
		{"AppsAndStats", testAppsAndStats},
		{"ConcurrentWrites", testConcurrentWrites},
		{"Ping", testPing},
		{"ChangeFeed", testChangeFeed},
		{"APIKeys", testAPIKeys},
		{"Audit", testAudit},
		{"Graph", testGraph},
		{"Embeddings", testEmbeddings},
		{"Lookup", testLookup},
		{"GDPR", testGDPR},
		{"Retention", testRetention},
		{"Tiers", testTiers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newEnv(t, open))
		})
	}
}

// start is the fake clock's first reading.
var start = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// clock is a fake clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// env is one subtest's store, service and clock.
type env struct {
	t     *testing.T
	store memory.Store
	svc   *memory.Service
	clock *clock
}

func newEnv(t *testing.T, open func(t *testing.T) memory.Store) *env {
	st := open(t)
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	c := &clock{t: start}
	return &env{
		t: t, store: st, clock: c,
		svc: memory.NewService(st, memory.Options{Now: c.Now, NewID: memory.NewULIDSource(c.Now)}),
	}
}

// Principals of the suite. acme is the main org, globex the other tenant.
var (
	alice = principal("alice", "acme", "team:acme/backend") // backend engineer
	bob   = principal("bob", "acme")                        // no grants
	carol = principal("carol", "acme", "org:acme")          // org admin
	dave  = principal("dave", "acme", "team:acme/backend")
	frank = principal("frank", "acme", "team:acme/frontend")
	grace = principal("grace", "acme", "project:acme/api")
	eve   = principal("eve", "globex", "org:globex")
)

func principal(sub, org string, grants ...string) auth.Principal {
	return auth.Principal{Subject: sub, OrgID: org, Scopes: auth.AllScopes, Grants: grants}
}

// as returns a context acting as p.
func (e *env) as(p auth.Principal) context.Context {
	return auth.WithPrincipal(e.t.Context(), p)
}

// add advances the clock by a millisecond and adds in as p, failing the
// test unless a new memory was created.
func (e *env) add(p auth.Principal, in memory.Input) memory.Memory {
	e.t.Helper()
	e.clock.Advance(time.Millisecond)
	return e.addNow(p, in)
}

// addNow adds in as p without moving the clock.
func (e *env) addNow(p auth.Principal, in memory.Input) memory.Memory {
	e.t.Helper()
	m, created, err := e.svc.Add(e.as(p), in)
	if err != nil {
		e.t.Fatalf("add %q as %s: %v", in.Content, p.Subject, err)
	}
	if !created {
		e.t.Fatalf("add %q as %s: not created; got existing %s", in.Content, p.Subject, m.ID)
	}
	return m
}

// listAll walks every page of q as p and returns the memories in order.
func (e *env) listAll(p auth.Principal, q memory.ListQuery) []memory.Memory {
	e.t.Helper()
	var all []memory.Memory
	for page := 0; ; page++ {
		if page > 1000 {
			e.t.Fatalf("list %+v: more than 1000 pages", q)
		}
		pg, err := e.svc.List(e.as(p), q, memory.ViaREST)
		if err != nil {
			e.t.Fatalf("list %+v: %v", q, err)
		}
		all = append(all, pg.Memories...)
		if pg.NextCursor == "" {
			return all
		}
		q.Cursor = pg.NextCursor
	}
}

// get reads a memory as p and fails the test on error.
func (e *env) get(p auth.Principal, id string) memory.Memory {
	e.t.Helper()
	m, err := e.svc.Get(e.as(p), id, memory.ViaREST)
	if err != nil {
		e.t.Fatalf("get %s as %s: %v", id, p.Subject, err)
	}
	return m
}

// history reads a memory's history as p and fails the test on error.
func (e *env) history(p auth.Principal, id string) []memory.HistoryEntry {
	e.t.Helper()
	hs, err := e.svc.History(e.as(p), id)
	if err != nil {
		e.t.Fatalf("history of %s as %s: %v", id, p.Subject, err)
	}
	return hs
}

func ids(ms []memory.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func hitIDs(hs []memory.Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Memory.ID
	}
	return out
}

// names maps memory ids to readable names for failure messages.
type names map[string]string

func (n names) of(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if name, ok := n[id]; ok {
			out[i] = name
		} else {
			out[i] = id
		}
	}
	return out
}

// sameSet reports whether got and want hold the same ids, in any order.
func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	return slices.Equal(g, w)
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// wantField fails the test unless err is a *memory.ValidationError on field.
func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var ve *memory.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("%s: got error %v, want a validation error on %q", what, err, field)
		return
	}
	if ve.Field != field {
		t.Errorf("%s: validation error names field %q (%s), want %q", what, ve.Field, ve.Reason, field)
	}
}

// diffMemory lists the fields in which got differs from want. Times must be
// equal instants and in UTC.
func diffMemory(want, got memory.Memory) []string {
	var d []string
	check := func(field string, eq bool, w, g any) {
		if !eq {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("id", got.ID == want.ID, want.ID, got.ID)
	check("org_id", got.OrgID == want.OrgID, want.OrgID, got.OrgID)
	check("content", got.Content == want.Content, want.Content, got.Content)
	check("category", got.Category == want.Category, want.Category, got.Category)
	check("scope", got.Scope == want.Scope, want.Scope, got.Scope)
	check("artifact_type", got.ArtifactType == want.ArtifactType, want.ArtifactType, got.ArtifactType)
	check("artifact_ref", got.ArtifactRef == want.ArtifactRef, want.ArtifactRef, got.ArtifactRef)
	check("entity", got.Entity == want.Entity, want.Entity, got.Entity)
	check("source", got.Source == want.Source, want.Source, got.Source)
	check("evidence", slices.Equal(got.Evidence, want.Evidence), want.Evidence, got.Evidence)
	check("tags", fmt.Sprint(got.Tags) == fmt.Sprint(want.Tags), want.Tags, got.Tags)
	check("metadata", fmt.Sprint(got.Metadata) == fmt.Sprint(want.Metadata), want.Metadata, got.Metadata)
	check("access_entity", got.AccessEntity == want.AccessEntity, want.AccessEntity, got.AccessEntity)
	check("app", got.App == want.App, want.App, got.App)
	check("state", got.State == want.State, want.State, got.State)
	check("created_by", got.CreatedBy == want.CreatedBy, want.CreatedBy, got.CreatedBy)
	check("created_at", sameTime(&want.CreatedAt, &got.CreatedAt), want.CreatedAt, got.CreatedAt)
	check("updated_at", sameTime(&want.UpdatedAt, &got.UpdatedAt), want.UpdatedAt, got.UpdatedAt)
	check("valid_from", sameTime(want.ValidFrom, got.ValidFrom), want.ValidFrom, got.ValidFrom)
	check("valid_to", sameTime(want.ValidTo, got.ValidTo), want.ValidTo, got.ValidTo)
	return d
}

// sameTime reports whether two optional times are both nil, or the same
// instant with got in UTC.
func sameTime(want, got *time.Time) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	return got.Equal(*want) && got.Location() == time.UTC
}

func wantSameMemory(t *testing.T, what string, want, got memory.Memory) {
	t.Helper()
	if d := diffMemory(want, got); len(d) > 0 {
		t.Errorf("%s differs:\n  %s", what, strings.Join(d, "\n  "))
	}
}

func ptr[T any](v T) *T { return &v }
