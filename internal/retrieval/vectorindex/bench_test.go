package vectorindex

// Benchmarks that chose the exact scan over HNSW (hnsw_test.go), at 10k,
// 100k and 1M vectors of the built-in embedder's dimension (384):
//
//	go test ./internal/retrieval/vectorindex -run '^$' -bench Build -benchtime 1x -timeout 60m
//	go test ./internal/retrieval/vectorindex -run '^$' -bench Search -benchtime 300x -timeout 60m
//
// BenchmarkBuild reports the time to load n vectors and the bytes held;
// BenchmarkSearch the latency of one search (p50 and p99 over the run),
// over all vectors (access: org) and through a restrictive access filter
// (access: team, which sees 1 vector in 100). -bench 'Search/n=100k'
// selects one size. Set VECTORINDEX_BENCH_1M=1 for the 1M cases.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// benchDim is the built-in embedder's dimension.
const benchDim = embed.DefaultBuiltinDim

// corpus makes vectors shaped like the built-in embedder's: each text is a
// bag of Zipf-distributed words, each word a fixed set of hashed, signed
// features (its stem, its character n-grams), normalized. Queries are a
// few words of one text, so each has a handful of close matches and a long
// tail of texts sharing a common word.
type corpus struct {
	r     *rand.Rand
	words [][]int32 // feature index, sign in the high bit
	zipf  *rand.Zipf
}

func newCorpus(seed uint64) *corpus {
	r := rand.New(rand.NewPCG(seed, 99))
	c := &corpus{r: r, words: make([][]int32, 30000)}
	for i := range c.words {
		f := make([]int32, 10)
		for j := range f {
			f[j] = int32(r.IntN(benchDim))
			if r.IntN(2) == 0 {
				f[j] |= math.MinInt32
			}
		}
		c.words[i] = f
	}
	c.zipf = rand.NewZipf(r, 1.1, 2, uint64(len(c.words)-1))
	return c
}

func (c *corpus) text(n int) []int {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = int(c.zipf.Uint64())
	}
	return ws
}

func (c *corpus) vector(words []int) []float32 {
	v := make([]float32, benchDim)
	for _, w := range words {
		for _, f := range c.words[w] {
			if f < 0 {
				v[f&math.MaxInt32]--
			} else {
				v[f]++
			}
		}
	}
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n > 0 {
		for i := range v {
			v[i] /= float32(math.Sqrt(n))
		}
	}
	return v
}

type dataset struct {
	vecs    [][]float32
	queries [][]float32
}

var datasets = map[int]*dataset{}

func data(n int) *dataset {
	if d := datasets[n]; d != nil {
		return d
	}
	c := newCorpus(uint64(n))
	d := &dataset{vecs: make([][]float32, n)}
	texts := make([][]int, n)
	for i := range d.vecs {
		texts[i] = c.text(8 + c.r.IntN(40))
		d.vecs[i] = c.vector(texts[i])
	}
	for range 200 {
		t := texts[c.r.IntN(n)]
		q := make([]int, 3+c.r.IntN(4))
		for j := range q {
			q[j] = t[c.r.IntN(len(t))]
		}
		d.queries = append(d.queries, c.vector(q))
	}
	datasets[n] = d
	return d
}

func sizes(b *testing.B) []int {
	s := []int{10_000, 100_000}
	if os.Getenv("VECTORINDEX_BENCH_1M") != "" {
		s = append(s, 1_000_000)
	}
	return s
}

func label(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}

// build loads a dataset into an index: one org, 100 team entities.
func build(d *dataset) *Index {
	ix := New(benchDim)
	for i, v := range d.vecs {
		m := mem("acme", fmt.Sprintf("m%07d", i), fmt.Sprintf("team:acme/t%02d", i%100))
		if err := ix.Upsert(m, v); err != nil {
			panic(err)
		}
	}
	return ix
}

// benchAccess: the whole org, and one team of a hundred.
var benchAccess = map[string]memory.Access{
	"org":  {OrgID: "acme", Entities: []string{"org:acme"}, Prefixes: []string{"team:acme/"}},
	"team": {OrgID: "acme", Entities: []string{"team:acme/t42"}},
}

var emptyFilter memory.Filter

func BenchmarkBuild(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run("n="+label(n), func(b *testing.B) {
			d := data(n)
			var ix *Index
			var heap uint64
			for b.Loop() {
				if ix != nil {
					ix.Close()
				}
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				ix = build(d)
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
			}
			b.ReportMetric(float64(ix.Bytes())/(1<<20), "index-MiB")
			b.ReportMetric(float64(heap)/(1<<20), "goheap-MiB")
			ix.Close()
		})
	}
}

func BenchmarkSearch(b *testing.B) {
	for _, n := range sizes(b) {
		d := data(n)
		ix := build(d)
		for _, name := range []string{"org", "team"} {
			a := benchAccess[name]
			b.Run(fmt.Sprintf("n=%s/access=%s", label(n), name), func(b *testing.B) {
				var lat []time.Duration
				var cands, inexact int
				i := 0
				for b.Loop() {
					q := d.queries[i%len(d.queries)]
					i++
					start := time.Now()
					_, st, err := ix.Search(a, emptyFilter, q, 10)
					lat = append(lat, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
					cands += st.Candidates
					if !st.Exact {
						inexact++
					}
				}
				reportLatency(b, lat)
				b.ReportMetric(float64(cands)/float64(len(lat)), "reranked/op")
				b.ReportMetric(float64(inexact)/float64(len(lat)), "inexact/op")
			})
		}
		ix.Close()
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
