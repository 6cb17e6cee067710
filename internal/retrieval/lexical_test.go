package retrieval_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval"
)

// lexicalIDs asks v's lexical index directly (not the service, whose
// Lookup would read the store's current row whatever the index holds).
func lexicalIDs(t *testing.T, v *retrieval.Vectors, a memory.Access, f memory.Filter, text string) []string {
	t.Helper()
	hits, ok := v.Lexical(context.Background(), a, f, text, 10)
	if !ok {
		t.Fatal("the lexical index is not ready after Load")
	}
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

// TestLexicalFollowsAnotherReplica: two stores on one database as two
// replicas; what replica A writes — a new memory, a changed content, an
// move to another access entity, an archive, a delete — reaches replica B's
// lexical index through the change feed, and B's lexical search answers
// from it.
func TestLexicalFollowsAnotherReplica(t *testing.T) {
	forEachStore(t, func(t *testing.T, sa, sb store) {
		emb := embed.NewBuiltin()
		svcA := memory.NewService(sa, memory.Options{Vectors: vectors(t, emb, sa)})
		vb := vectors(t, emb, sb)
		svcB := memory.NewService(sb, memory.Options{Vectors: vb})
		alice := as("acme", "alice", "org:acme", "team:acme/api")
		org := memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}
		has := func(f memory.Filter, text, id string) func() bool {
			return func() bool { return slices.Equal(lexicalIDs(t, vb, org, f, text), []string{id}) }
		}
		gone := func(f memory.Filter, text string) func() bool {
			return func() bool { return len(lexicalIDs(t, vb, org, f, text)) == 0 }
		}

		m := add(t, svcA, alice, memory.Input{Content: "Zanzibar consumers commit offsets only after the ledger write."})
		eventually(t, "B's index holds A's new memory", has(memory.Filter{}, "zanzibar offsets", m.ID))
		res := search(t, svcB, alice, memory.SearchQuery{Text: "zanzibar", Mode: memory.ModeLexical})
		if len(res.Hits) != 1 || res.Hits[0].Memory.ID != m.ID || res.Hits[0].Memory.Content != m.Content {
			t.Fatalf("B's lexical search: %v", hitIDs(res.Hits))
		}

		changed := "Quokka consumers commit offsets before the ledger write."
		if _, err := svcA.Update(alice, m.ID, memory.Patch{Content: &changed}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B's index has the new words", has(memory.Filter{}, "quokka", m.ID))
		eventually(t, "B's index lost the old words", gone(memory.Filter{}, "zanzibar"))

		team, scope := "team:acme/api", memory.Scope("team")
		if _, err := svcA.Update(alice, m.ID, memory.Patch{Scope: &scope, AccessEntity: &team}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B sees the move to a team", gone(memory.Filter{}, "quokka"))
		teamAccess := memory.Access{OrgID: "acme", Entities: []string{team}}
		if got := lexicalIDs(t, vb, teamAccess, memory.Filter{}, "quokka"); !slices.Equal(got, []string{m.ID}) {
			t.Fatalf("the team sees %v", got)
		}
		org = teamAccess

		if _, err := svcA.Transition(alice, m.ID, memory.ActionArchive); err != nil {
			t.Fatal(err)
		}
		active := memory.Filter{States: []memory.State{memory.StateActive}}
		eventually(t, "B sees the archive", gone(active, "quokka"))
		if !has(memory.Filter{States: []memory.State{memory.StateArchived}}, "quokka", m.ID)() {
			t.Fatal("the archived memory left B's index")
		}

		if _, err := svcA.Delete(alice, m.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B drops the deleted memory", func() bool { return vb.LexicalLen() == 0 })
	})
}

// TestLexicalLoadsEveryMemory: at start the lexical index holds every live
// memory, also those without an embedding (the vector index holds only
// those with one), and no deleted one.
func TestLexicalLoadsEveryMemory(t *testing.T) {
	st := newSQLite(t)
	plain := memory.NewService(st, memory.Options{}) // stores no embeddings
	alice := as("acme", "alice", "org:acme")
	var ids []string
	for i := range 5 {
		ids = append(ids, add(t, plain, alice, memory.Input{Content: fmt.Sprintf("Runbook %d: drain the wombat node first.", i)}).ID)
	}
	if _, err := plain.Delete(alice, ids[0]); err != nil {
		t.Fatal(err)
	}
	v := retrieval.New(embed.NewBuiltin(), st, retrieval.Options{})
	defer v.Close()
	if _, ok := v.Lexical(t.Context(), memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}, memory.Filter{}, "wombat", 10); ok {
		t.Fatal("the lexical index says it is ready before Load")
	}
	if err := v.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v.Len() != 0 || v.LexicalLen() != 4 {
		t.Fatalf("loaded %d vectors and %d lexical entries, want 0 and 4", v.Len(), v.LexicalLen())
	}
	got := lexicalIDs(t, v, memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}, memory.Filter{}, "wombat")
	slices.Sort(got)
	if !slices.Equal(got, ids[1:]) {
		t.Fatalf("found %v, want %v", got, ids[1:])
	}
}

// TestLexicalFallback: until the index is loaded, lexical search is the
// store's own, and finds the same memory.
func TestLexicalFallback(t *testing.T) {
	st := newSQLite(t)
	alice := as("acme", "alice", "org:acme")
	m := add(t, memory.NewService(st, memory.Options{}), alice, memory.Input{Content: "The platypus cache is warmed at deploy."})
	v := retrieval.New(embed.NewBuiltin(), st, retrieval.Options{})
	defer v.Close()
	svc := memory.NewService(st, memory.Options{Vectors: v})
	for _, loaded := range []bool{false, true} {
		if loaded {
			if err := v.Load(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		res := search(t, svc, alice, memory.SearchQuery{Text: "platypus", Mode: memory.ModeLexical, Explain: true})
		if len(res.Hits) != 1 || res.Hits[0].Memory.ID != m.ID || res.Degraded {
			t.Fatalf("loaded %v: got %v (degraded %v)", loaded, hitIDs(res.Hits), res.Degraded)
		}
		if e := res.Hits[0].Explain; e == nil || e.Sources[0].Source != memory.SourceLexical || e.Score <= 0 || e.Score >= 1 {
			t.Errorf("loaded %v: explain %+v", loaded, res.Hits[0].Explain)
		}
	}
}

// TestLexicalSeesOtherReplicasAtOnce: replica B's follower polls only
// every hour here, yet B's search right after a write on A finds it, with
// its current content, and not what A changed or deleted: a lexical search
// first applies what the feed has committed since.
func TestLexicalSeesOtherReplicasAtOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, sa, sb store) {
		emb := embed.NewBuiltin()
		svcA := memory.NewService(sa, memory.Options{Vectors: vectors(t, emb, sa)})
		vb := retrieval.New(emb, sb, retrieval.Options{Every: time.Hour, Recheck: time.Hour, StatusEvery: time.Hour})
		if err := vb.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = vb.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; vb.Close() })
		svcB := memory.NewService(sb, memory.Options{Vectors: vb})
		alice := as("acme", "alice", "org:acme")
		find := func(text string) []memory.Hit {
			return search(t, svcB, alice, memory.SearchQuery{Text: text, Mode: memory.ModeLexical}).Hits
		}

		m := add(t, svcA, alice, memory.Input{Content: "The narwhal exporter batches metrics every ten seconds."})
		if hs := find("narwhal exporter"); len(hs) != 1 || hs[0].Memory.ID != m.ID {
			t.Fatalf("B right after A's write: %v", hitIDs(hs))
		}
		changed := "The okapi exporter batches metrics every minute."
		if _, err := svcA.Update(alice, m.ID, memory.Patch{Content: &changed}); err != nil {
			t.Fatal(err)
		}
		if hs := find("okapi"); len(hs) != 1 || hs[0].Memory.Content != changed {
			t.Fatalf("B right after A's change: %v", hs)
		}
		if got := lexicalIDs(t, vb, memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}, memory.Filter{}, "narwhal"); len(got) != 0 {
			t.Fatalf("B's index still holds the old words: %v", got)
		}
		if _, err := svcA.Delete(alice, m.ID); err != nil {
			t.Fatal(err)
		}
		if hs := find("okapi"); len(hs) != 0 || vb.LexicalLen() != 0 {
			t.Fatalf("B right after A's delete: %v, %d in the index", hitIDs(hs), vb.LexicalLen())
		}
	})
}

// TestLexicalAgreesWithStore: for marker words, lexical search through the
// in-process index returns exactly the memories the store's own search
// returns — the same access (users, teams, orgs, no grants, another org)
// and the same filters (category, scope, state, tags, entity, access
// entity) — after creates, content changes, archives and deletes.
func TestLexicalAgreesWithStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, st, _ store) {
		agreesWithStore(t, st)
	})
}

func agreesWithStore(t *testing.T, st store) {
	emb := embed.NewBuiltin()
	svcIx := memory.NewService(st, memory.Options{Vectors: vectors(t, emb, st)})
	svcStore := memory.NewService(st, memory.Options{})
	markers := strings.Fields("kestrin vopra quorv zimbo plonk drisk")
	principals := []context.Context{
		as("acme", "alice", "team:acme/api"),
		as("acme", "bob", "org:acme"),
		as("acme", "dan"),
		as("globex", "carol", "org:globex"),
		as("acme", "erin", "org:acme", "team:acme/api", "org:globex"),
	}
	writers := principals[:2]
	r := rand.New(rand.NewPCG(7, 8))
	var ids []string
	var owners []context.Context
	for i := range 120 {
		w := writers[i%2]
		if i%5 == 4 {
			w = principals[3]
		}
		in := memory.Input{Content: fmt.Sprintf("Note %d: %s and %s in the filler text.", i, markers[r.IntN(len(markers))], markers[r.IntN(len(markers))]),
			Category: memory.Categories[i%4], Entity: []string{"billing", "search", ""}[i%3],
			Tags: map[string]any{"kind": []string{"x", "y"}[i%2]}}
		switch {
		case i%3 == 0:
			in.Scope = "user"
		case w == principals[0]:
			in.Scope, in.AccessEntity = "team", "team:acme/api"
		default:
			in.Scope = "org"
		}
		if i%7 == 0 {
			in.Tags["pii"] = true
		}
		got, _, err := svcIx.Add(w, in)
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		ids = append(ids, got.ID)
		owners = append(owners, w)
	}
	for i, id := range ids {
		w := owners[i]
		switch i % 9 {
		case 1:
			c := fmt.Sprintf("Changed %d: %s only.", i, markers[r.IntN(len(markers))])
			if _, err := svcIx.Update(w, id, memory.Patch{Content: &c}); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := svcIx.Transition(w, id, memory.ActionArchive); err != nil {
				t.Fatal(err)
			}
		case 3:
			if _, err := svcIx.Delete(w, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	filters := []memory.Filter{
		{},
		{Categories: []memory.Category{memory.Categories[1]}},
		{Scopes: []memory.Scope{"org"}},
		{States: []memory.State{memory.StateArchived}},
		{States: []memory.State{memory.StateActive, memory.StateDeleted}},
		{Tags: []string{"kind=x"}},
		{Tags: []string{"pii"}},
		{Entity: "billing"},
		{AccessEntity: "team:acme/api"},
	}
	set := func(hs []memory.Hit) []string {
		out := hitIDs(hs)
		slices.Sort(out)
		return out
	}
	compared := 0
	for _, p := range principals {
		for _, f := range filters {
			for _, text := range []string{markers[r.IntN(len(markers))], markers[0] + " " + markers[1]} {
				q := memory.SearchQuery{Text: text, Filter: f, Limit: 100, Mode: memory.ModeLexical}
				ix, errIx := svcIx.Search(p, q, memory.ViaREST)
				sq := q
				sq.Mode = ""
				stRes, errSt := svcStore.Search(p, sq, memory.ViaREST)
				if (errIx == nil) != (errSt == nil) {
					t.Fatalf("%q %+v: index error %v, store error %v", text, f, errIx, errSt)
				}
				if errIx != nil {
					continue
				}
				if got, want := set(ix.Hits), set(stRes.Hits); !slices.Equal(got, want) {
					t.Errorf("%q %+v: the index found %v, the store %v", text, f, got, want)
				}
				compared += len(ix.Hits)
			}
		}
	}
	if compared < 100 {
		t.Fatalf("only %d hits compared: the test needs more matches", compared)
	}
}
