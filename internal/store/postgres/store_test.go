package postgres_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// mem makes a memory as memory.Service.Add would store it.
func mem(id, org, entity, content string) memory.Memory {
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	return memory.Memory{
		ID: id, OrgID: org, Content: content, Scope: "team", Source: "user", AccessEntity: entity,
		State: memory.StateActive, CreatedBy: "importer", CreatedAt: at, UpdatedAt: at,
		ContentHash: memory.ContentHash(content),
	}
}

func TestCreateBatch(t *testing.T) {
	s := openStore(t, pgtest.Database(t))
	ctx := t.Context()
	existing, _, err := s.Create(ctx, mem("01EXISTING", "acme", "team:acme/a", "already stored"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	batch := []memory.Memory{
		mem("01B1", "acme", "team:acme/a", "first new memory"),
		mem("01B2", "acme", "team:acme/a", "Already  STORED"),    // duplicate of a stored one
		mem("01B3", "acme", "team:acme/a", "first new memory"),   // duplicate earlier in the batch
		mem("01B4", "acme", "team:acme/b", "first new memory"),   // same content, other entity
		mem("01EXISTING", "acme", "team:acme/c", "id is taken"),  // id taken
		mem("01B6", "globex", "team:globex/a", "already stored"), // other org
	}
	batch[0].Tags = map[string]any{"lang": "go"}
	created, err := s.CreateBatch(ctx, batch, "importer")
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, false, true, false, true}; !slices.Equal(created, want) {
		t.Errorf("created %v, want %v", created, want)
	}
	a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/a"}}
	got, err := s.Get(ctx, a, "01B1")
	if err != nil || got.Tags["lang"] != "go" || !got.CreatedAt.Equal(batch[0].CreatedAt) {
		t.Errorf("get of a batch memory: %+v, %v", got, err)
	}
	hs, err := s.History(ctx, a, "01B1")
	if err != nil || len(hs) != 1 || hs[0].Action != "create" || hs[0].Actor != "importer" || hs[0].After == nil {
		t.Errorf("history of a batch memory: %+v, %v", hs, err)
	}
	if got, err := s.Get(ctx, a, existing.ID); err != nil || got.Content != "already stored" {
		t.Errorf("the stored memory changed: %+v, %v", got, err)
	}
	hits, err := s.Search(ctx, a, memory.SearchQuery{Text: "first new memory"})
	if err != nil || len(hits) != 1 || hits[0].Memory.ID != "01B1" {
		t.Errorf("search after a batch: %+v, %v", hits, err)
	}
}

// TestAccessPrefixes checks prefix visibility beyond what the contract
// suite's grants produce: a prefix ending in a non-ASCII character (matched
// with LIKE) and prefixes holding LIKE wildcards.
func TestAccessPrefixes(t *testing.T) {
	s := openStore(t, pgtest.Database(t))
	ctx := t.Context()
	for _, m := range []memory.Memory{
		mem("01CAFE", "acme", "team:café/x", "cafe team memory"),
		mem("01CAFEEXACT", "acme", "team:café", "cafe exact memory"),
		mem("01CAFX", "acme", "team:cafx/x", "cafx team memory"),
		mem("01PCT", "acme", "team:a%b/x", "percent team memory"),
		mem("01AXB", "acme", "team:axb/x", "axb team memory"),
	} {
		if _, _, err := s.Create(ctx, m, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"team:café"}, []string{"01CAFE"}}, // LIKE path: strictly longer, é not a wildcard
		{[]string{"team:caf_"}, nil},                // _ is not a wildcard
		{[]string{"team:a%b/"}, []string{"01PCT"}},  // % is literal
		{[]string{"team:a%"}, []string{"01PCT"}},    // % is literal on the range path too
		{[]string{"team:%é"}, nil},                  // nor on the LIKE path
		{[]string{"team:"}, []string{"01CAFE", "01CAFEEXACT", "01CAFX", "01PCT", "01AXB"}},
		{nil, nil},
	}
	for _, c := range cases {
		a := memory.Access{OrgID: "acme", Prefixes: c.prefixes}
		ms, _, err := s.List(ctx, a, memory.ListQuery{Limit: 100})
		if err != nil {
			t.Fatalf("list with prefixes %q: %v", c.prefixes, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) {
			t.Errorf("prefixes %q: see %v, want %v", c.prefixes, got, want)
		}
		for _, id := range c.want {
			if _, err := s.Get(ctx, a, id); err != nil {
				t.Errorf("prefixes %q: get %s: %v", c.prefixes, id, err)
			}
		}
	}
	if _, err := s.Get(ctx, memory.Access{OrgID: "acme", Prefixes: []string{"team:caf_"}}, "01CAFE"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("get through a wildcard prefix: %v, want ErrNotFound", err)
	}
}

// TestNULIsInvalid: PostgreSQL text cannot hold NUL; the store reports it as
// a validation error on the field, not as a failure of the database.
func TestNULIsInvalid(t *testing.T) {
	s := openStore(t, pgtest.Database(t))
	cases := map[string]func(*memory.Memory){
		"content":     func(m *memory.Memory) { m.Content = "nul\x00byte" },
		"entity":      func(m *memory.Memory) { m.Entity = "e\x00" },
		"evidence[1]": func(m *memory.Memory) { m.Evidence = []string{"ADR-1", "PR\x00"} },
		"tags":        func(m *memory.Memory) { m.Tags = map[string]any{"k": "v\x00"} },
		"metadata":    func(m *memory.Memory) { m.Metadata = map[string]any{"n": map[string]any{"x\x00": 1.0}} },
	}
	for field, change := range cases {
		m := mem("01NUL", "acme", "team:acme/a", "nul probe "+field)
		change(&m)
		_, _, err := s.Create(t.Context(), m, "alice")
		var ve *memory.ValidationError
		if !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("create with NUL in %s: got %v, want a validation error on %s", field, err, field)
		}
	}
	m, _, err := s.Create(t.Context(), mem("01OK", "acme", "team:acme/a", "fine"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/a"}}
	_, err = s.Update(t.Context(), a, m.ID, "alice", "update", func(m *memory.Memory) error {
		m.Content = "now with \x00"
		return nil
	})
	var ve *memory.ValidationError
	if !errors.As(err, &ve) || ve.Field != "content" {
		t.Errorf("update with NUL in content: got %v, want a validation error on content", err)
	}
	if hits, err := s.Search(t.Context(), a, memory.SearchQuery{Text: "fine\x00 \x00"}); err != nil || len(hits) != 1 {
		t.Errorf("search with NUL in the query: %d hits, %v", len(hits), err)
	}
	err = s.LogAccess(t.Context(), []memory.AccessEntry{{MemoryID: m.ID, OrgID: "acme", Actor: "alice", Via: "rest", Query: "fine\x00", At: m.CreatedAt}})
	if n, cerr := s.CountAccessLog(t.Context(), "acme"); err != nil || cerr != nil || n != 1 {
		t.Errorf("log access of a query with NUL: %v; %d rows (%v)", err, n, cerr)
	}
}

// TestSearchStopWordsOnly: a query of only stop words has no lexemes to
// match (the english configuration drops them); it finds nothing, without
// an error, also when the plan uses the GIN index.
func TestSearchStopWordsOnly(t *testing.T) {
	s := openStore(t, pgtest.Database(t)+"&enable_seqscan=off")
	a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/a"}}
	if _, _, err := s.Create(t.Context(), mem("01STOP", "acme", "team:acme/a", "the cache is warm"), "alice"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"the", "the is", "is the cache", "cache"} {
		hits, err := s.Search(t.Context(), a, memory.SearchQuery{Text: q})
		want := 0
		if strings.Contains(q, "cache") {
			want = 1
		}
		if err != nil || len(hits) != want {
			t.Errorf("search %q: %d hits, %v; want %d", q, len(hits), err, want)
		}
	}
}
