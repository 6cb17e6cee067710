package vectorindex

// A compact HNSW (Malkov & Yashunin, with the neighbour-selection
// heuristic), only to measure the alternative to the exact scan on the
// same data and kernels: build time, memory, latency and recall, without
// and with a restrictive access filter. It is not used by the server.
//
//	go test ./internal/retrieval/vectorindex -run '^$' -bench HNSWBuild -benchtime 1x -timeout 60m
//	go test ./internal/retrieval/vectorindex -run '^$' -bench HNSWSearch -benchtime 300x -timeout 60m

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type hnsw struct {
	pdim, m, m0, efC int
	ml               float64
	vecs             [][]float32
	links            [][][]int32 // node → level → neighbours
	entry            int32
	top              int
	r                *rand.Rand
	seen             []uint32
	gen              uint32
}

func newHNSW(dim, m, efC int) *hnsw {
	return &hnsw{pdim: padded(dim), m: m, m0: 2 * m, efC: efC, ml: 1 / math.Log(float64(m)), entry: -1,
		r: rand.New(rand.NewPCG(1, 1))}
}

type item struct {
	sim float32
	id  int32
}

// minHeap pops the least similar first; maxHeap the most similar.
type minHeap []item

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].sim < h[j].sim }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *minHeap) Pop() any          { o := *h; x := o[len(o)-1]; *h = o[:len(o)-1]; return x }

type maxHeap struct{ minHeap }

func (h maxHeap) Less(i, j int) bool { return h.minHeap[i].sim > h.minHeap[j].sim }

func (h *hnsw) sim(q []float32, id int32) float32 { return dotF32(q, h.vecs[id]) }

func (h *hnsw) add(v []float32) {
	pv := make([]float32, h.pdim)
	copy(pv, v)
	id := int32(len(h.vecs))
	h.vecs = append(h.vecs, pv)
	h.seen = append(h.seen, 0)
	level := int(-math.Log(1-h.r.Float64()) * h.ml)
	h.links = append(h.links, make([][]int32, level+1))
	if h.entry < 0 {
		h.entry, h.top = id, level
		return
	}
	ep := h.entry
	for l := h.top; l > level; l-- {
		ep = h.greedy(pv, ep, l)
	}
	eps := []item{{h.sim(pv, ep), ep}}
	for l := min(level, h.top); l >= 0; l-- {
		found := h.layer(pv, eps, h.efC, l, nil)
		maxN := h.m
		if l == 0 {
			maxN = h.m0
		}
		nb := h.selectNeighbours(found, h.m)
		h.links[id][l] = ids32(nb)
		for _, n := range nb {
			ls := append(h.links[n.id][l], id)
			if len(ls) > maxN {
				cs := make([]item, len(ls))
				for i, x := range ls {
					cs[i] = item{h.sim(h.vecs[n.id], x), x}
				}
				ls = ids32(h.selectNeighbours(cs, maxN))
			}
			h.links[n.id][l] = ls
		}
		eps = found
	}
	if level > h.top {
		h.entry, h.top = id, level
	}
}

func ids32(items []item) []int32 {
	out := make([]int32, len(items))
	for i, x := range items {
		out[i] = x.id
	}
	return out
}

// selectNeighbours keeps up to m candidates, most similar first, skipping
// one that is closer to an already kept neighbour than to the base.
func (h *hnsw) selectNeighbours(cs []item, m int) []item {
	slices.SortFunc(cs, func(a, b item) int {
		switch {
		case a.sim > b.sim:
			return -1
		case a.sim < b.sim:
			return 1
		}
		return 0
	})
	var out []item
	for _, c := range cs {
		if len(out) == m {
			break
		}
		ok := true
		for _, o := range out {
			if h.sim(h.vecs[c.id], o.id) > c.sim {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, c)
		}
	}
	return out
}

func (h *hnsw) greedy(q []float32, ep int32, l int) int32 {
	best := h.sim(q, ep)
	for changed := true; changed; {
		changed = false
		for _, n := range h.links[ep][l] {
			if s := h.sim(q, n); s > best {
				best, ep, changed = s, n, true
			}
		}
	}
	return ep
}

// layer is the beam search of one level; keep, when set, decides which
// nodes may be results (the filter), while every node is still traversed.
func (h *hnsw) layer(q []float32, eps []item, ef, l int, keep func(int32) bool) []item {
	h.gen++
	cand := &maxHeap{}
	res := &minHeap{}
	for _, e := range eps {
		h.seen[e.id] = h.gen
		heap.Push(cand, e)
		if keep == nil || keep(e.id) {
			heap.Push(res, e)
		}
	}
	for cand.Len() > 0 {
		c := heap.Pop(cand).(item)
		if res.Len() >= ef && c.sim < (*res)[0].sim {
			break
		}
		for _, n := range h.links[c.id][l] {
			if h.seen[n] == h.gen {
				continue
			}
			h.seen[n] = h.gen
			s := h.sim(q, n)
			if res.Len() < ef || s > (*res)[0].sim {
				heap.Push(cand, item{s, n})
				if keep == nil || keep(n) {
					heap.Push(res, item{s, n})
					if res.Len() > ef {
						heap.Pop(res)
					}
				}
			}
		}
	}
	return *res
}

func (h *hnsw) search(q []float32, k, ef int, keep func(int32) bool) []int32 {
	pq := make([]float32, h.pdim)
	copy(pq, q)
	ep := h.entry
	for l := h.top; l > 0; l-- {
		ep = h.greedy(pq, ep, l)
	}
	res := h.layer(pq, []item{{h.sim(pq, ep), ep}}, max(ef, k), 0, keep)
	slices.SortFunc(res, func(a, b item) int {
		if a.sim > b.sim {
			return -1
		}
		if a.sim < b.sim {
			return 1
		}
		return 0
	})
	return ids32(res[:min(k, len(res))])
}

func (h *hnsw) bytes() int64 {
	b := int64(len(h.vecs)) * int64(h.pdim) * 4
	for _, ls := range h.links {
		for _, l := range ls {
			b += int64(cap(l))*4 + 24
		}
	}
	return b
}

var hnswCache = map[int]*hnsw{}

func buildHNSW(b *testing.B, n int) *hnsw {
	if h := hnswCache[n]; h != nil {
		return h
	}
	d := data(n)
	start := time.Now()
	h := newHNSW(benchDim, 16, 100)
	for _, v := range d.vecs {
		h.add(v)
	}
	b.Logf("HNSW n=%d: built in %v, %.0f MiB", n, time.Since(start).Round(time.Millisecond), float64(h.bytes())/(1<<20))
	hnswCache[n] = h
	return h
}

func BenchmarkHNSWBuild(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run("n="+label(n), func(b *testing.B) {
			d := data(n)
			var h *hnsw
			for b.Loop() {
				h = newHNSW(benchDim, 16, 100)
				for _, v := range d.vecs {
					h.add(v)
				}
			}
			hnswCache[n] = h
			b.ReportMetric(float64(h.bytes())/(1<<20), "index-MiB")
		})
	}
}

// BenchmarkHNSWSearch reports latency and recall@10 against the exact
// scan, unfiltered and for the team filter (1 vector in 100 visible), for
// two beam widths.
func BenchmarkHNSWSearch(b *testing.B) {
	for _, n := range sizes(b) {
		d := data(n)
		h := buildHNSW(b, n)
		ix := build(d)
		for _, filter := range []string{"org", "team"} {
			var keep func(int32) bool
			a := benchAccess[filter]
			if filter == "team" {
				keep = func(id int32) bool { return id%100 == 42 }
			}
			for _, ef := range []int{64, 512} {
				b.Run(fmt.Sprintf("n=%s/access=%s/ef=%d", label(n), filter, ef), func(b *testing.B) {
					var lat []time.Duration
					var recall float64
					i := 0
					for b.Loop() {
						qi := i % len(d.queries)
						i++
						start := time.Now()
						got := h.search(d.queries[qi], 10, ef, keep)
						lat = append(lat, time.Since(start))
						want, _, _ := ix.Search(a, emptyFilter, d.queries[qi], 10)
						recall += overlap(got, want)
					}
					reportLatency(b, lat)
					b.ReportMetric(recall/float64(len(lat)), "recall@10")
				})
			}
		}
		ix.Close()
	}
}

func overlap(got []int32, want []Hit) float64 {
	if len(want) == 0 {
		return 1
	}
	n := 0
	for _, g := range got {
		id := fmt.Sprintf("m%07d", g)
		for _, w := range want {
			if w.ID == id {
				n++
			}
		}
	}
	return float64(n) / float64(len(want))
}
