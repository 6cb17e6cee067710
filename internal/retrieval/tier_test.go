package retrieval_test

import (
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval"
)

// TestIndexesHoldTheHotTier: memories the tiering job moves to the cold
// tier leave both in-process indexes of another replica (the move is on the
// change feed) and are not loaded by a replica starting afterwards; a
// hybrid search finds them only with IncludeCold (through the store's
// lexical search, Cold set); reading one by id brings it back into the
// indexes.
func TestIndexesHoldTheHotTier(t *testing.T) {
	forEachStore(t, func(t *testing.T, sa, sb store) {
		emb := embed.NewBuiltin()
		va := vectors(t, emb, sa)
		vb := vectors(t, emb, sb)
		svcA := memory.NewService(sa, memory.Options{Vectors: va})
		svcB := memory.NewService(sb, memory.Options{Vectors: vb})
		alice := as("acme", "alice", "org:acme")
		a := memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}

		hot := add(t, svcA, alice, memory.Input{Content: "Billing retries webhooks with exponential backoff."})
		cold := add(t, svcA, alice, memory.Input{Content: "Billing used to retry webhooks every minute."})
		gone := add(t, svcA, alice, memory.Input{Content: "Billing webhooks were signed with SHA-1."})
		if _, err := svcA.Transition(alice, gone.ID, memory.ActionArchive); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B holds all three", func() bool { return vb.Len() == 3 && vb.LexicalLen() == 3 })

		// cold: untouched since before the cut; gone: archived.
		if _, err := sa.(memory.Tiers).MoveCold(t.Context(), time.Now().Add(time.Hour), 10); err != nil {
			t.Fatal(err)
		}
		if _, err := svcA.Get(alice, hot.ID, memory.ViaREST); err != nil { // back to hot
			t.Fatal(err)
		}
		eventually(t, "B drops the cold memories from both indexes", func() bool { return vb.Len() == 1 && vb.LexicalLen() == 1 })
		fresh := retrieval.New(emb, sb, retrieval.Options{})
		defer fresh.Close()
		if err := fresh.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		if fresh.Len() != 1 || fresh.LexicalLen() != 1 {
			t.Errorf("a replica starting now loaded %d vectors and %d lexical entries, want the hot one only", fresh.Len(), fresh.LexicalLen())
		}
		if hits, _ := vb.Lexical(t.Context(), a, memory.Filter{}, "billing webhooks", 10); len(hits) != 1 || hits[0].ID != hot.ID {
			t.Errorf("B's lexical index: %v", hits)
		}

		res := search(t, svcB, alice, memory.SearchQuery{Text: "billing webhooks"})
		if got := hitIDs(res.Hits); !slices.Equal(got, []string{hot.ID}) {
			t.Errorf("hybrid search without cold = %v, want the hot memory only", got)
		}
		res = search(t, svcB, alice, memory.SearchQuery{Text: "billing webhooks", IncludeCold: true})
		got := hitIDs(res.Hits)
		if len(got) != 3 || !slices.Contains(got, cold.ID) || !slices.Contains(got, gone.ID) {
			t.Errorf("hybrid search with include_cold = %v, want all three", got)
		}
		for _, h := range res.Hits {
			if h.Memory.Cold != (h.Memory.ID != hot.ID) {
				t.Errorf("hit %s: cold = %v", h.Memory.ID, h.Memory.Cold)
			}
		}

		if _, err := svcB.Get(alice, cold.ID, memory.ViaMCP); err != nil {
			t.Fatal(err)
		}
		eventually(t, "A takes the memory read on B back into its indexes", func() bool { return va.Len() == 2 && va.LexicalLen() == 2 })
	})
}

// TestColdBeforeTheFeedSaysSo: a memory moved to the cold tier is left out
// of a search without IncludeCold even by a replica whose indexes have not
// yet read the move from the change feed (it polls hourly here): the hits'
// Lookup reads the tier from the store.
func TestColdBeforeTheFeedSaysSo(t *testing.T) {
	forEachStore(t, func(t *testing.T, sa, _ store) {
		emb := embed.NewBuiltin()
		v := retrieval.New(emb, sa, retrieval.Options{Every: time.Hour, Recheck: time.Hour, StatusEvery: time.Hour})
		if err := v.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		svc := memory.NewService(sa, memory.Options{Vectors: v})
		alice := as("acme", "alice", "org:acme")
		m := add(t, svc, alice, memory.Input{Content: "The ledger exporter writes Parquet files nightly."})
		if v.Len() != 1 {
			t.Fatalf("the index holds %d memories after the add, want 1", v.Len())
		}
		if n, err := sa.(memory.Tiers).MoveCold(t.Context(), time.Now().Add(time.Hour), 10); err != nil || n != 1 {
			t.Fatalf("move cold: %d, %v", n, err)
		}
		for _, mode := range []memory.SearchMode{memory.ModeVector, memory.ModeHybrid} {
			res := search(t, svc, alice, memory.SearchQuery{Text: "ledger exporter parquet", Mode: mode})
			if slices.Contains(hitIDs(res.Hits), m.ID) {
				t.Errorf("%s search without include_cold found the cold memory", mode)
			}
		}
		res := search(t, svc, alice, memory.SearchQuery{Text: "ledger exporter parquet", IncludeCold: true})
		if !slices.Contains(hitIDs(res.Hits), m.ID) {
			t.Errorf("include_cold search: %v, want the cold memory", hitIDs(res.Hits))
		}
	})
}
