package vectorindex

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

func TestKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dim := range []int{32, 64, 96, 256, 384, 1536} {
		n := 37
		q := make([]int8, dim)
		vecs := make([]int8, n*dim)
		for i := range q {
			q[i] = int8(r.IntN(255) - 127)
		}
		for i := range vecs {
			vecs[i] = int8(r.IntN(255) - 127)
		}
		// The extremes too: every code at ±127 (the kernel's int16 pair
		// sums must not saturate) and zeros.
		for i := range dim {
			vecs[i], vecs[dim+i], vecs[2*dim+i] = 127, -127, 0
			vecs[3*dim+i] = int8(127 * (1 - 2*(i%2)))
		}
		for _, qv := range [][]int8{q, slices.Repeat([]int8{127}, dim), slices.Repeat([]int8{-127}, dim), slices.Repeat([]int8{127, -127}, dim/2)} {
			got, want := make([]int32, n), make([]int32, n)
			dotsInt8(qv, vecs, got)
			dotsInt8Go(qv, vecs, want)
			if !slices.Equal(got, want) {
				t.Fatalf("dim %d: int8 kernel %v, want %v", dim, got[:4], want[:4])
			}
		}
		fq, fv := randVec(r, dim), randVec(r, dim)
		var exact float64
		for i := range fq {
			exact += float64(fq[i]) * float64(fv[i])
		}
		if g := dotF32(fq, fv); math.Abs(float64(g)-exact) > 1e-5 {
			t.Fatalf("dim %d: float32 kernel %v, want %v", dim, g, exact)
		}
	}
	t.Logf("AVX2: %v", hasAVX2)
}

func randVec(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var n float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		n += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}

// near returns a unit vector at about the given cosine from v.
func near(r *rand.Rand, v []float32, cos float64) []float32 {
	noise := randVec(r, len(v))
	// Remove noise's component along v, then mix.
	var d float64
	for i := range v {
		d += float64(v[i]) * float64(noise[i])
	}
	out := make([]float32, len(v))
	var n float64
	for i := range v {
		o := float64(noise[i]) - d*float64(v[i])
		out[i] = float32(o)
		n += o * o
	}
	s := math.Sqrt(1 - cos*cos)
	for i := range out {
		out[i] = float32(cos*float64(v[i]) + s*float64(out[i])/math.Sqrt(n))
	}
	return out
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func mem(org, id, entity string) memory.Memory {
	return memory.Memory{ID: id, OrgID: org, AccessEntity: entity, State: memory.StateActive, Scope: "team",
		CreatedAt: t0, UpdatedAt: t0}
}

// brute is the reference: every visible memory scored in float64.
func brute(ms map[string]memory.Memory, vecs map[string][]float32, visible func(memory.Memory) bool, q []float32, k int) []Hit {
	var hits []Hit
	for id, m := range ms {
		if !visible(m) {
			continue
		}
		var d float64
		for i := range q {
			d += float64(q[i]) * float64(vecs[id][i])
		}
		hits = append(hits, Hit{ID: id, Score: float32(d)})
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if a.Score != b.Score {
			return cmp.Compare(b.Score, a.Score)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return hits[:min(k, len(hits))]
}

func ids(hs []Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

// sameRanking compares two rankings, allowing neighbours whose scores are
// within float32 rounding to swap.
func sameRanking(t *testing.T, got, want []Hit) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d hits %v, want %d %v", len(got), ids(got), len(want), ids(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID && math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
			t.Fatalf("rank %d: got %s (%.6f), want %s (%.6f)\ngot  %v\nwant %v", i, got[i].ID, got[i].Score,
				want[i].ID, want[i].Score, ids(got), ids(want))
		}
		if math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
			t.Fatalf("rank %d: score %v, want %v", i, got[i].Score, want[i].Score)
		}
	}
}

// TestSearchIsExact checks the int8 scan with float32 re-ranking against
// a float64 brute force, on clustered data (many close neighbours) with
// one and two workers, unfiltered and through a selective access filter.
func TestSearchIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const dim, n = 96, 30000
	centers := make([][]float32, 50)
	for i := range centers {
		centers[i] = randVec(r, dim)
	}
	for _, workers := range []int{1, 2} {
		ix := New(dim, Workers(workers))
		defer ix.Close()
		ms, vecs := map[string]memory.Memory{}, map[string][]float32{}
		for i := range n {
			id := fmt.Sprintf("m%05d", i)
			m := mem("acme", id, fmt.Sprintf("team:acme/t%d", i%20))
			v := near(r, centers[r.IntN(len(centers))], 0.6+0.39*r.Float64())
			ms[id], vecs[id] = m, v
			if err := ix.Upsert(m, v); err != nil {
				t.Fatal(err)
			}
		}
		for qi := range 20 {
			q := near(r, centers[qi%len(centers)], 0.8)
			for _, a := range []memory.Access{
				{OrgID: "acme", Entities: []string{"org:acme"}, Prefixes: []string{"team:acme/"}},
				{OrgID: "acme", Entities: []string{"team:acme/t7"}},
			} {
				for _, k := range []int{1, 10, 100} {
					got, st, err := ix.Search(a, memory.Filter{}, q, k)
					if err != nil {
						t.Fatal(err)
					}
					if !st.Exact {
						t.Fatalf("not exact: %+v", st)
					}
					sameRanking(t, got, brute(ms, vecs, func(m memory.Memory) bool { return a.Allows(m.AccessEntity) }, q, k))
					if qi == 0 && k == 10 {
						t.Logf("workers %d, %d entities: %+v", workers, len(a.Entities)+len(a.Prefixes), st)
					}
				}
			}
		}
	}
}

// TestFilterBeforeTopK: a visible match ranked behind 1000 invisible,
// closer vectors is still found, for k=1.
func TestFilterBeforeTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const dim = 64
	ix := New(dim)
	defer ix.Close()
	q := randVec(r, dim)
	for i := range 1000 {
		if err := ix.Upsert(mem("acme", fmt.Sprintf("hidden%04d", i), "user:bob"), near(r, q, 0.99)); err != nil {
			t.Fatal(err)
		}
		// Same vectors in another org, under the caller's own entity.
		if err := ix.Upsert(mem("other", fmt.Sprintf("foreign%04d", i), "user:alice"), near(r, q, 0.99)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Upsert(mem("acme", "mine", "user:alice"), near(r, q, 0.3)); err != nil {
		t.Fatal(err)
	}
	alice := memory.Access{OrgID: "acme", Entities: []string{"user:alice"}}
	got, st, err := ix.Search(alice, memory.Filter{}, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "mine" {
		t.Fatalf("got %v, want [mine]", ids(got))
	}
	if st.Visible != 1 {
		t.Fatalf("scored %d vectors, want only the visible one", st.Visible)
	}
	bob := memory.Access{OrgID: "acme", Entities: []string{"user:bob"}}
	if got, _, _ := ix.Search(bob, memory.Filter{}, q, 5); len(got) != 5 || slices.Contains(ids(got), "mine") {
		t.Fatalf("bob got %v", ids(got))
	}
}

// TestTenantIsolation: an org's search never returns another org's
// vectors, whatever the grants name.
func TestTenantIsolation(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ix := New(32)
	defer ix.Close()
	v := randVec(r, 32)
	for _, org := range []string{"acme", "globex"} {
		for i := range 50 {
			if err := ix.Upsert(mem(org, fmt.Sprintf("%s-%d", org, i), "org:"+org), near(r, v, 0.9)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A principal of acme whose grants name globex's entity (AccessFor
	// drops such grants; the index must not rely on that).
	a := memory.Access{OrgID: "acme", Entities: []string{"org:acme", "org:globex"}}
	got, _, _ := ix.Search(a, memory.Filter{}, v, 100)
	if len(got) != 50 {
		t.Fatalf("got %d hits, want acme's 50", len(got))
	}
	for _, h := range got {
		if h.ID[:4] != "acme" {
			t.Fatalf("acme's search returned %s", h.ID)
		}
	}
	if got, _, _ := ix.Search(memory.Access{OrgID: "initech", Entities: []string{"org:acme"}}, memory.Filter{}, v, 10); len(got) != 0 {
		t.Fatalf("an org without vectors got %v", ids(got))
	}
}

// TestFilters checks each filter against the memories it should keep,
// mirroring the stores' WHERE clauses.
func TestFilters(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	ix := New(16)
	defer ix.Close()
	at := func(d int) *time.Time { t := t0.AddDate(0, 0, d); return &t }
	ms := []memory.Memory{
		{ID: "a", Category: "decision", Scope: "team", AccessEntity: "team:acme/api", State: memory.StateActive,
			Entity: "payments", ArtifactRef: "svc/pay", App: "cursor", Tags: map[string]any{"db": true, "lang": "go"},
			CreatedAt: *at(0), ValidFrom: at(0), ValidTo: at(10)},
		{ID: "b", Category: "runbook", Scope: "project", AccessEntity: "project:acme/web", State: memory.StatePaused,
			Entity: "billing", App: "claude", Tags: map[string]any{"lang": "ts", "n": 1.0, "x": nil}, CreatedAt: *at(5)},
		{ID: "c", Scope: "user", AccessEntity: "user:alice", State: memory.StateArchived, CreatedAt: *at(10),
			ValidFrom: at(10)},
		{ID: "d", Category: "decision", Scope: "team", AccessEntity: "team:acme/api", State: memory.StateActive,
			Entity: "payments", Tags: map[string]any{"lang": "go"}, CreatedAt: *at(20), ValidTo: at(5)},
	}
	for _, m := range ms {
		m.OrgID = "acme"
		if err := ix.Upsert(m, randVec(r, 16)); err != nil {
			t.Fatal(err)
		}
	}
	all := memory.Access{OrgID: "acme", Entities: []string{"org:acme", "user:alice"}, Prefixes: []string{"team:acme/", "project:acme/"}}
	cases := []struct {
		f    memory.Filter
		want string
	}{
		{memory.Filter{}, "abcd"},
		{memory.Filter{States: []memory.State{memory.StatePaused, memory.StateArchived}}, "bc"},
		{memory.Filter{States: []memory.State{memory.StateDeleted}}, ""},
		{memory.Filter{Categories: []memory.Category{"decision"}}, "ad"},
		{memory.Filter{Scopes: []memory.Scope{"user", "project"}}, "bc"},
		{memory.Filter{Entity: "payments"}, "ad"},
		{memory.Filter{Entity: "nobody"}, ""},
		{memory.Filter{ArtifactRef: "svc/pay"}, "a"},
		{memory.Filter{App: "claude"}, "b"},
		{memory.Filter{AccessEntity: "team:acme/api"}, "ad"},
		{memory.Filter{AccessEntity: "team:acme/other"}, ""},
		{memory.Filter{Tags: []string{"lang"}}, "abd"},
		{memory.Filter{Tags: []string{"lang=go"}}, "ad"},
		{memory.Filter{Tags: []string{"lang=go", "db"}}, "a"},
		{memory.Filter{Tags: []string{"n=1"}}, ""},
		{memory.Filter{Tags: []string{"x"}}, "b"},
		{memory.Filter{Tags: []string{"=go"}}, ""},
		{memory.Filter{CreatedAfter: at(0)}, "bcd"},
		{memory.Filter{CreatedBefore: at(10)}, "ab"},
		{memory.Filter{CreatedAfter: at(0), CreatedBefore: at(20)}, "bc"},
		{memory.Filter{ValidAt: at(3)}, "abd"},
		{memory.Filter{ValidAt: at(10)}, "bc"},
		{memory.Filter{ValidAt: at(-1)}, "bd"},
	}
	for _, c := range cases {
		got, _, err := ix.Search(all, c.f, randVec(r, 16), 10)
		if err != nil {
			t.Fatal(err)
		}
		g := ids(got)
		slices.Sort(g)
		if s := fmt.Sprint(g); s != fmt.Sprint(split(c.want)) {
			t.Errorf("filter %+v: got %s, want %v", c.f, s, split(c.want))
		}
	}
	alice := memory.Access{OrgID: "acme", Entities: []string{"user:alice"}}
	if got, _, _ := ix.Search(alice, memory.Filter{}, randVec(r, 16), 10); fmt.Sprint(ids(got)) != "[c]" {
		t.Errorf("alice sees %v", ids(got))
	}
	// A prefix covers longer entities only, like the stores' range.
	if got, _, _ := ix.Search(memory.Access{OrgID: "acme", Prefixes: []string{"team:acme/api"}}, memory.Filter{}, randVec(r, 16), 10); len(got) != 0 {
		t.Errorf("prefix equal to the entity matched %v", ids(got))
	}
}

func split(s string) []string {
	out := []string{}
	for _, c := range s {
		out = append(out, string(c))
	}
	return out
}

// TestUpdatesAndRemoves: replacing, re-filing and removing entries keeps
// every remaining vector findable under its own id (removal moves the last
// vector into the hole).
func TestUpdatesAndRemoves(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const dim = 32
	ix := New(dim)
	defer ix.Close()
	vecs := map[string][]float32{}
	for i := range 3000 {
		id := fmt.Sprintf("m%04d", i)
		vecs[id] = randVec(r, dim)
		if err := ix.Upsert(mem("acme", id, "org:acme"), vecs[id]); err != nil {
			t.Fatal(err)
		}
	}
	a := memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}
	for i := 0; i < 3000; i += 3 {
		id := fmt.Sprintf("m%04d", i)
		if !ix.Remove("acme", id) {
			t.Fatalf("remove %s: not found", id)
		}
		delete(vecs, id)
	}
	for i := 1; i < 3000; i += 3 {
		id := fmt.Sprintf("m%04d", i)
		vecs[id] = randVec(r, dim) // a changed memory gets a new vector
		if err := ix.Upsert(mem("acme", id, "org:acme"), vecs[id]); err != nil {
			t.Fatal(err)
		}
	}
	if ix.Len() != len(vecs) {
		t.Fatalf("Len %d, want %d", ix.Len(), len(vecs))
	}
	for id, v := range vecs {
		got, _, _ := ix.Search(a, memory.Filter{}, v, 1)
		if len(got) != 1 || got[0].ID != id || got[0].Score < 0.999 {
			t.Fatalf("%s: nearest is %v", id, got)
		}
	}
	// Archiving keeps the vector and changes what filters see.
	m := mem("acme", "m0001", "org:acme")
	m.State = memory.StateArchived
	if !ix.SetFields(m) {
		t.Fatal("SetFields: not found")
	}
	if got, _, _ := ix.Search(a, memory.Filter{States: []memory.State{memory.StateArchived}}, vecs["m0001"], 5); fmt.Sprint(ids(got)) != "[m0001]" {
		t.Fatalf("archived: %v", ids(got))
	}
	m.State = memory.StateDeleted
	ix.SetFields(m)
	if ix.Has("acme", "m0001") {
		t.Fatal("a deleted memory stays in the index")
	}
	for id := range vecs {
		ix.Remove("acme", id)
	}
	if ix.Len() != 0 {
		t.Fatalf("Len %d after removing everything", ix.Len())
	}
	if got, _, _ := ix.Search(a, memory.Filter{}, randVec(r, dim), 3); len(got) != 0 {
		t.Fatalf("empty index found %v", ids(got))
	}
	if err := ix.Upsert(mem("acme", "x", "org:acme"), make([]float32, dim+1)); err == nil {
		t.Fatal("a vector of the wrong dimension was accepted")
	}
}

// TestConcurrent runs writes and searches together (meaningful with -race).
func TestConcurrent(t *testing.T) {
	const dim = 32
	ix := New(dim, Workers(2))
	defer ix.Close()
	a := memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 3000 {
				id := fmt.Sprintf("w%d-%d", w, r.IntN(500))
				switch i % 4 {
				case 0, 1:
					_ = ix.Upsert(mem("acme", id, "org:acme"), randVec(r, dim))
				case 2:
					ix.Remove("acme", id)
				default:
					if _, _, err := ix.Search(a, memory.Filter{}, randVec(r, dim), 10); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
}
