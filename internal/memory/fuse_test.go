package memory

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Ranking invariants of fuse, the pure part of hybrid search: how ranks
// from the sources combine, and how boosts, recency and validity move a
// memory. They hold for any weights in the documented ranges; the tests
// do not pin scores.

var fuseNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func hm(id string) Hit {
	return Hit{Memory: Memory{ID: id, Scope: "org", CreatedAt: fuseNow, UpdatedAt: fuseNow}, Score: 1}
}

func hits(ids ...string) []Hit {
	out := make([]Hit, len(ids))
	for i, id := range ids {
		out[i] = hm(id)
	}
	return out
}

func order(hs []Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Memory.ID
	}
	return out
}

func fuseIDs(r Ranking, lists [3][]Hit, query string) []string {
	return order(r.fuse(lists, queryTermsOf(query), fuseNow, 100, false))
}

func TestFuseAgreementWins(t *testing.T) {
	r := DefaultRanking()
	// A is first for both lexical and vector, C second for both.
	got := fuseIDs(r, [3][]Hit{hits("A", "C", "D"), hits("A", "C", "E"), nil}, "q")
	if fmt.Sprint(got[:2]) != "[A C]" {
		t.Fatalf("first and second by both lexical and vector: got %v, want A, C first", got)
	}
	// A memory ranked first by every source ranks first whatever the
	// weights.
	for _, w := range [][3]float64{{1, 1, 1}, {1, 0.1, 0.1}, {0.1, 1, 0.1}, {0.1, 0.1, 1}} {
		r.LexicalWeight, r.VectorWeight, r.GraphWeight = w[0], w[1], w[2]
		if got := fuseIDs(r, [3][]Hit{hits("X", "Y", "Z"), hits("X", "Z", "Y"), hits("X", "Y")}, "q"); got[0] != "X" {
			t.Errorf("weights %v: got %v, want X first", w, got)
		}
	}
}

func TestFuseSingleSourceStillAppears(t *testing.T) {
	r := DefaultRanking()
	lexical := hits("L1", "L2", "L3")
	for src := range 3 {
		var lists [3][]Hit
		lists[0] = lexical
		lists[src] = append(slices.Clone(lists[src]), hm("only"))
		got := fuseIDs(r, lists, "q")
		if !slices.Contains(got, "only") {
			t.Errorf("a memory found by %s alone is missing: %v", sourceNames[src], got)
		}
	}
	// Also when that source is the only one that answered (degraded or
	// lexical found nothing).
	if got := fuseIDs(r, [3][]Hit{nil, hits("V1", "V2"), nil}, "q"); fmt.Sprint(got) != "[V1 V2]" {
		t.Errorf("vector alone: %v, want its order", got)
	}
}

func TestFuseTiesAreStable(t *testing.T) {
	r := DefaultRanking()
	r.VectorWeight = r.LexicalWeight // equal weights: rank 1 in either is the same score
	// A is first in lexical, B first in vector: the same fused score.
	lists := [3][]Hit{hits("A", "C"), hits("B", "D"), nil}
	first := fuseIDs(r, lists, "q")
	if first[0] != "A" || first[1] != "B" {
		t.Fatalf("tie: got %v, want A (lexical) before B (vector)", first)
	}
	for range 20 {
		if got := fuseIDs(r, lists, "q"); !slices.Equal(got, first) {
			t.Fatalf("same input, another order: %v then %v", first, got)
		}
	}
	// Ties within one source keep ids apart deterministically.
	got := fuseIDs(r, [3][]Hit{nil, nil, nil}, "q")
	if len(got) != 0 {
		t.Fatalf("no sources: %v", got)
	}
}

// TestFuseBoostsMoveUp: for each boost, the memory whose field the query
// names moves above the one ranked just ahead of it.
func TestFuseBoostsMoveUp(t *testing.T) {
	r := DefaultRanking()
	cases := []struct {
		name  string
		query string
		set   func(*Memory)
	}{
		{"entity", "how does the payments service retry?", func(m *Memory) { m.Entity = "Payments" }},
		{"artifact", "what does retry.go do", func(m *Memory) { m.ArtifactRef = "internal/payments/retry.go" }},
		{"artifact path", "internal/payments/retry.go owners", func(m *Memory) { m.ArtifactRef = "internal/payments/retry.go" }},
		{"category", "which decision did we take on retries", func(m *Memory) { m.Category = "decision" }},
		{"scope", "what does the team do on call", func(m *Memory) { m.Scope = "team" }},
		{"tag key", "anything about postgres", func(m *Memory) { m.Tags = map[string]any{"postgres": true} }},
		{"tag value", "which things use kafka", func(m *Memory) { m.Tags = map[string]any{"queue": "Kafka"} }},
	}
	for _, c := range cases {
		ahead, boosted := hm("ahead"), hm("boosted")
		c.set(&boosted.Memory)
		// Nearly equal: each first in one source, ahead in the heavier.
		lists := [3][]Hit{{ahead, boosted}, {boosted, ahead}, nil}
		if got := fuseIDs(r, lists, "unrelated words"); got[0] != "ahead" {
			t.Fatalf("%s: without a match the order is the sources': %v", c.name, got)
		}
		got := r.fuse(lists, queryTermsOf(c.query), fuseNow, 10, true)
		if got[0].Memory.ID != "boosted" {
			t.Errorf("%s: query %q did not move the matching memory up: %v", c.name, c.query, order(got))
			continue
		}
		if len(got[0].Explain.Boosts) != 1 {
			t.Errorf("%s: explain boosts %+v, want one", c.name, got[0].Explain.Boosts)
		}
	}
	// A boost weight of 0 turns it off.
	r.EntityBoost = 0
	boosted := hm("boosted")
	boosted.Memory.Entity = "payments"
	if got := fuseIDs(r, [3][]Hit{{hm("ahead"), boosted}, nil, nil}, "payments"); got[0] != "ahead" {
		t.Errorf("entity boost 0 still moved the memory: %v", got)
	}
}

func TestFuseRecencyOrdersEqualMemoriesByAge(t *testing.T) {
	r := DefaultRanking()
	r.VectorWeight = r.LexicalWeight
	ages := []time.Duration{0, 24 * time.Hour, 90 * 24 * time.Hour, 400 * 24 * time.Hour, 3 * 365 * 24 * time.Hour}
	// Every two of them, each first in a list of equal weight: equal fused
	// scores, and the older one in the list the tie would favour.
	for i := range ages {
		for j := i + 1; j < len(ages); j++ {
			newer, older := hm(fmt.Sprintf("age%d", i)), hm(fmt.Sprintf("age%d", j))
			newer.Memory.CreatedAt, older.Memory.CreatedAt = fuseNow.Add(-ages[i]), fuseNow.Add(-ages[j])
			got := r.fuse([3][]Hit{{older}, {newer}, nil}, queryTermsOf("q"), fuseNow, 10, true)
			if got[0].Memory.ID != newer.Memory.ID {
				t.Errorf("equal memories %v and %v old: got %v, want the newer first", ages[i], ages[j], order(got))
			}
		}
	}
	// The factor halves the decaying share every half-life.
	m := hm("m").Memory
	m.CreatedAt = fuseNow.Add(-r.HalfLife)
	if f, want := r.recency(m, fuseNow), 1-r.RecencyWeight/2; abs(f-want) > 1e-9 {
		t.Errorf("recency after one half-life %v, want %v", f, want)
	}
	m.CreatedAt = fuseNow.Add(time.Hour) // a clock ahead: no bonus
	if f := r.recency(m, fuseNow); f != 1 {
		t.Errorf("recency of a memory from the future %v, want 1", f)
	}
	r.HalfLife = 0
	m.CreatedAt = fuseNow.AddDate(-10, 0, 0)
	if f := r.recency(m, fuseNow); f != 1 {
		t.Errorf("recency with half-life 0 %v, want 1 (off)", f)
	}
}

func TestFuseSupersededRanksLower(t *testing.T) {
	r := DefaultRanking()
	old, current := hm("old"), hm("current")
	past := fuseNow.Add(-time.Hour)
	old.Memory.ValidTo = &past
	got := r.fuse([3][]Hit{{old, current}, {old, current}, nil}, queryTermsOf("q"), fuseNow, 10, true)
	if got[0].Memory.ID != "current" {
		t.Fatalf("superseded memory ranks first: %v", order(got))
	}
	if v := got[1].Explain.Validity; v != r.Superseded {
		t.Errorf("explain validity %v, want %v", v, r.Superseded)
	}
}

func TestFuseExplain(t *testing.T) {
	r := DefaultRanking()
	a := hm("A")
	a.Memory.Entity = "ledger"
	a.Memory.CreatedAt = fuseNow.AddDate(0, -6, 0)
	lists := [3][]Hit{{hm("B"), a}, {a}, {a}}
	lists[1][0].Score = 0.83
	got := r.fuse(lists, queryTermsOf("ledger balance"), fuseNow, 10, true)
	e := got[0].Explain
	if got[0].Memory.ID != "A" || e == nil {
		t.Fatalf("got %v", order(got))
	}
	want := []SourceScore{{SourceLexical, 2, 1}, {SourceVector, 1, 0.83}, {SourceGraph, 1, 1}}
	if !slices.Equal(e.Sources, want) {
		t.Errorf("sources %+v, want %+v", e.Sources, want)
	}
	if e.Fused <= 0 || e.Recency >= 1 || e.Recency <= 1-r.RecencyWeight || e.Score != got[0].Score {
		t.Errorf("explain %+v", e)
	}
	if len(e.Boosts) != 1 || e.Boosts[0].Field != "entity" || e.Boosts[0].Value != "ledger" {
		t.Errorf("boosts %+v", e.Boosts)
	}
	if got := r.fuse(lists, queryTermsOf("q"), fuseNow, 10, false); got[0].Explain != nil {
		t.Error("explain without asking")
	}
	if got := r.fuse(lists, queryTermsOf("q"), fuseNow, 1, false); len(got) != 1 {
		t.Errorf("limit 1: %d hits", len(got))
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestParseRanking(t *testing.T) {
	d := DefaultRanking()
	r, err := ParseRanking(" vector=1, half_life=48h ,near_duplicate=0.95,graph=0,recency=0", d)
	if err != nil {
		t.Fatal(err)
	}
	want := d
	want.VectorWeight, want.HalfLife, want.NearDuplicate, want.GraphWeight, want.RecencyWeight = 1, 48*time.Hour, 0.95, 0, 0
	if r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if r, err := ParseRanking("", d); err != nil || r != d {
		t.Errorf("empty: %+v, %v", r, err)
	}
	for _, bad := range []string{"vector", "vector=-1", "k=0", "recency=2", "half_life=soon", "colour=1", "candidates=101", "near_duplicate=x"} {
		if _, err := ParseRanking(bad, d); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
