// Package vectorindex is the in-process nearest-neighbour index of hybrid
// retrieval: the embeddings of the live memories of every org, with the
// fields that search filters on, searched exhaustively.
//
// # Why an exact scan
//
// The index is a brute-force scan, not a graph (HNSW) or a clustering
// (IVF), chosen by measurement on the 2-core development machine
// (bench_test.go, docs/design.md): at 100k vectors a scan answers in a few
// milliseconds, costs nothing to build (loading is copying), updates and
// deletes in place, and — the reason that decides it — applies the caller's
// access and every filter to each vector before ranking, so a visible match
// behind any number of invisible, closer vectors is still returned. An
// approximate graph would need a filtered fallback to exactly this scan for
// selective filters, and a build of tens of seconds at start.
//
// # How a scan stays fast
//
// The scan is bound by memory bandwidth, so it reads each vector as int8
// codes (a quarter of float32's bytes) through an AVX2 kernel, on up to
// two cores. Each stored vector v keeps its scale s (v ≈ s·codes), the norm
// of its quantization error ‖v − s·codes‖ and the norm of s·codes; with the
// query quantized the same way, |q·v − approx| ≤ ‖q‖·‖v−v'‖ + ‖q−q'‖·‖v'‖.
// The scan keeps every vector whose upper bound reaches the k-th best lower
// bound, and those few are re-ranked with their float32 values: the result
// is the exact top k (see Stats.Exact for the one exception).
//
// Vectors live in chunks, mapped outside the Go heap when large; each org
// has its own chunks, so a search reads only its org's vectors.
package vectorindex

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval/filter"
)

// Hit is a memory the index found and the cosine similarity of its vector
// to the query (their dot product: embedders return unit vectors).
type Hit struct {
	ID    string
	Score float32
}

// Stats describes one search.
type Stats struct {
	// Visible is how many vectors passed access and filters and were
	// scored.
	Visible int
	// Candidates is how many were re-ranked with their float32 values.
	Candidates int
	// Exact is false when more than MaxRerank vectors scored within the
	// quantization error of the k-th best — all about equally similar, as
	// for a query unrelated to everything — and only the MaxRerank best by
	// their int8 score were re-ranked.
	Exact bool
}

// MaxRerank bounds the vectors one search re-ranks with float32 values.
const MaxRerank = 4096

// Index holds vectors of one dimension for every org. It is safe for
// concurrent use: searches of an org run in parallel with each other and
// wait only for writes to the same org.
type Index struct {
	dim, pdim int
	workers   int

	mu   sync.RWMutex
	orgs map[string]*shard

	n atomic.Int64
}

// Option configures an Index.
type Option func(*Index)

// Workers sets how many goroutines one large search uses (default: up to
// 2, at most GOMAXPROCS).
func Workers(n int) Option { return func(ix *Index) { ix.workers = max(n, 1) } }

// New returns an empty index of dim-dimensional vectors.
func New(dim int, opts ...Option) *Index {
	ix := &Index{dim: dim, pdim: padded(dim), workers: min(2, runtime.GOMAXPROCS(0)), orgs: map[string]*shard{}}
	for _, o := range opts {
		o(ix)
	}
	return ix
}

// Dim is the dimension of the index's vectors.
func (ix *Index) Dim() int { return ix.dim }

// Len is how many vectors the index holds.
func (ix *Index) Len() int { return int(ix.n.Load()) }

// ErrDim reports a vector whose length is not the index's dimension.
var ErrDim = errors.New("vector has the wrong dimension")

// Upsert adds m's vector, or replaces the vector and fields of m if the
// index holds it. A deleted memory is removed instead.
func (ix *Index) Upsert(m memory.Memory, vec []float32) error {
	if len(vec) != ix.dim {
		return fmt.Errorf("index memory %s: %w: %d, not %d", m.ID, ErrDim, len(vec), ix.dim)
	}
	if m.State == memory.StateDeleted {
		ix.Remove(m.OrgID, m.ID)
		return nil
	}
	sh := ix.shard(m.OrgID, true)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l, ok := sh.pos[m.ID]
	if !ok {
		l = sh.grow(ix.pdim)
		sh.pos[m.ID] = l
		ix.n.Add(1)
	}
	c := sh.chunks[l.chunk]
	c.ids[l.off] = m.ID
	c.hot[l.off], c.meta[l.off] = sh.dicts.Fields(m)
	c.put(int(l.off), ix.pdim, vec)
	return nil
}

// SetFields replaces the fields filters read (state, access entity,
// category, …) of a memory the index holds, keeping its vector, and
// reports whether it held it. A deleted memory is removed.
func (ix *Index) SetFields(m memory.Memory) bool {
	if m.State == memory.StateDeleted {
		return ix.Remove(m.OrgID, m.ID)
	}
	sh := ix.shard(m.OrgID, false)
	if sh == nil {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l, ok := sh.pos[m.ID]
	if ok {
		c := sh.chunks[l.chunk]
		c.hot[l.off], c.meta[l.off] = sh.dicts.Fields(m)
	}
	return ok
}

// Remove drops a memory's vector and reports whether the index held it.
func (ix *Index) Remove(orgID, id string) bool {
	sh := ix.shard(orgID, false)
	if sh == nil {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.remove(id, ix.pdim) {
		return false
	}
	ix.n.Add(-1)
	return true
}

// Has reports whether the index holds a vector for the memory.
func (ix *Index) Has(orgID, id string) bool {
	sh := ix.shard(orgID, false)
	if sh == nil {
		return false
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, ok := sh.pos[id]
	return ok
}

// Bytes estimates the memory the index holds: vectors, the fields filters
// read, ids and the maps over them.
func (ix *Index) Bytes() int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var b int64
	for _, sh := range ix.orgs {
		sh.mu.RLock()
		for _, c := range sh.chunks {
			b += int64(len(c.slab.codes)) + 4*int64(len(c.slab.vals)) + int64(cap(c.ids))*(16+26) +
				8*int64(cap(c.hot)) + 3*4*int64(cap(c.scale))
			for i := range c.meta {
				b += c.meta[i].Bytes()
			}
		}
		b += int64(len(sh.pos)) * 64
		sh.mu.RUnlock()
	}
	return b
}

// Close releases the index's mapped memory. The index must not be used
// after.
func (ix *Index) Close() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, sh := range ix.orgs {
		sh.mu.Lock()
		for _, c := range sh.chunks {
			c.slab.free()
		}
		sh.chunks, sh.pos = nil, map[string]loc{}
		sh.mu.Unlock()
	}
	ix.orgs = map[string]*shard{}
	ix.n.Store(0)
}

func (ix *Index) shard(org string, create bool) *shard {
	ix.mu.RLock()
	sh := ix.orgs[org]
	ix.mu.RUnlock()
	if sh != nil || !create {
		return sh
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if sh = ix.orgs[org]; sh == nil {
		sh = newShard()
		ix.orgs[org] = sh
	}
	return sh
}

// Search returns the k visible memories of a.OrgID passing f whose vectors
// are most similar to q, best first (ties by id). Access and filters are
// applied to every vector before ranking.
func (ix *Index) Search(a memory.Access, f memory.Filter, q []float32, k int) ([]Hit, Stats, error) {
	if len(q) != ix.dim {
		return nil, Stats{}, fmt.Errorf("search vectors: %w: %d, not %d", ErrDim, len(q), ix.dim)
	}
	if k < 1 {
		return nil, Stats{Exact: true}, nil
	}
	sh := ix.shard(a.OrgID, false)
	if sh == nil {
		return []Hit{}, Stats{Exact: true}, nil
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	p, ok := sh.dicts.Compile(a, f)
	if !ok {
		return []Hit{}, Stats{Exact: true}, nil
	}
	query := quantizeQuery(q, ix.pdim)
	return ix.scan(sh, &p, &query, k)
}

// A loc is where a vector is: its chunk and its offset in the chunk.
type loc struct {
	chunk, off int32
}

// shard holds one org's vectors.
type shard struct {
	mu     sync.RWMutex
	chunks []*chunk
	pos    map[string]loc
	// dicts number the strings filters compare.
	dicts *filter.Dicts
}

func newShard() *shard {
	return &shard{pos: map[string]loc{}, dicts: filter.NewDicts()}
}

// chunk is a run of vectors: entries 0..n-1 are in use.
type chunk struct {
	n    int
	ids  []string
	hot  []uint64 // the fields every search reads, packed (see pack)
	meta []filter.Meta
	slab slab
	// Per vector: the scale of its codes, the norm of its quantization
	// error and the norm of its dequantized value.
	scale, qerr, qnorm []float32
}

// maxChunk is the capacity of every chunk after the first few, which grow
// from minChunk by doubling so that small orgs stay small.
const (
	minChunk = 16
	maxChunk = 8192
)

func newChunk(capacity, pdim int) *chunk {
	return &chunk{
		ids: make([]string, capacity), hot: make([]uint64, capacity), meta: make([]filter.Meta, capacity),
		slab:  newSlab(capacity, pdim),
		scale: make([]float32, capacity), qerr: make([]float32, capacity), qnorm: make([]float32, capacity),
	}
}

// grow makes room for one more vector at the end and returns its place.
func (sh *shard) grow(pdim int) loc {
	last := len(sh.chunks) - 1
	if last < 0 || sh.chunks[last].n == len(sh.chunks[last].ids) {
		capacity := minChunk
		if last >= 0 {
			capacity = min(2*len(sh.chunks[last].ids), maxChunk)
		}
		sh.chunks = append(sh.chunks, newChunk(capacity, pdim))
		last++
	}
	c := sh.chunks[last]
	c.n++
	return loc{int32(last), int32(c.n - 1)}
}

// remove takes id's vector out, moving the last vector into its place so
// that chunks stay dense.
func (sh *shard) remove(id string, pdim int) bool {
	l, ok := sh.pos[id]
	if !ok {
		return false
	}
	delete(sh.pos, id)
	lastC := sh.chunks[len(sh.chunks)-1]
	lastOff := lastC.n - 1
	dst := sh.chunks[l.chunk]
	if dst != lastC || int(l.off) != lastOff {
		o, d := lastOff, int(l.off)
		dst.ids[d], dst.hot[d], dst.meta[d] = lastC.ids[o], lastC.hot[o], lastC.meta[o]
		dst.scale[d], dst.qerr[d], dst.qnorm[d] = lastC.scale[o], lastC.qerr[o], lastC.qnorm[o]
		copy(dst.slab.codes[d*pdim:(d+1)*pdim], lastC.slab.codes[o*pdim:(o+1)*pdim])
		copy(dst.slab.vals[d*pdim:(d+1)*pdim], lastC.slab.vals[o*pdim:(o+1)*pdim])
		sh.pos[dst.ids[d]] = l
	}
	lastC.ids[lastOff], lastC.hot[lastOff], lastC.meta[lastOff] = "", 0, filter.Meta{}
	lastC.n--
	if lastC.n == 0 {
		lastC.slab.free()
		sh.chunks = sh.chunks[:len(sh.chunks)-1]
	}
	return true
}

// put stores vec at offset i: its float32 values and its int8 codes with
// their scale and error norms, all padded with zeros to pdim.
func (c *chunk) put(i, pdim int, vec []float32) {
	vals := c.slab.vals[i*pdim : (i+1)*pdim]
	copy(vals, vec)
	clear(vals[len(vec):])
	c.scale[i], c.qerr[i], c.qnorm[i] = quantize(vals, c.slab.codes[i*pdim:(i+1)*pdim])
}

// quantize writes the int8 codes of v (round(v/scale), scale =
// max|v|/127) and returns the scale, the norm of the quantization error
// and the norm of the dequantized vector.
func quantize(v []float32, codes []int8) (scale, errNorm, norm float32) {
	var maxAbs float64
	for _, x := range v {
		maxAbs = max(maxAbs, math.Abs(float64(x)))
	}
	if maxAbs == 0 {
		clear(codes)
		return 0, 0, 0
	}
	s := maxAbs / 127
	var e2, n2 float64
	for i, x := range v {
		c := math.Round(float64(x) / s)
		c = max(-127, min(127, c))
		codes[i] = int8(c)
		d := c * s
		e2 += (float64(x) - d) * (float64(x) - d)
		n2 += d * d
	}
	return float32(s), float32(math.Sqrt(e2)), float32(math.Sqrt(n2))
}

// query is a search vector prepared for the scan.
type query struct {
	vals               []float32
	codes              []int8
	scale, qerr, qnorm float32
	norm               float32
}

func quantizeQuery(q []float32, pdim int) query {
	vals := make([]float32, pdim)
	copy(vals, q)
	codes := make([]int8, pdim)
	scale, qerr, qnorm := quantize(vals, codes)
	var n2 float64
	for _, x := range q {
		n2 += float64(x) * float64(x)
	}
	return query{vals: vals, codes: codes, scale: scale, qerr: qerr, qnorm: qnorm, norm: float32(math.Sqrt(n2))}
}

// boundSlack covers the float32 rounding of the bounds and of the exact
// dot products they are compared with.
const boundSlack = 1e-4

// span is a run of entries [lo, hi) of one chunk that one worker scans.
type span struct {
	c      *chunk
	lo, hi int
}

// spanLen is how many entries a worker takes at a time.
const spanLen = 2048

// parallelMin is the number of vectors below which a search uses one
// goroutine: starting another costs more than it saves.
const parallelMin = 16384

// cand is a vector kept for re-ranking: its place, its int8 estimate and
// the estimate's upper bound.
type cand struct {
	c          *chunk
	i          int
	approx, hi float32
}

// scanner is one worker's state.
type scanner struct {
	p     *filter.Pred
	q     *query
	pdim  int
	k     int
	vis   []int
	dots  []int32
	lows  []float32 // min-heap of the k best lower bounds
	cands []cand
	seen  int
}

func (ix *Index) scan(sh *shard, p *filter.Pred, q *query, k int) ([]Hit, Stats, error) {
	var spans []span
	total := 0
	for _, c := range sh.chunks {
		for lo := 0; lo < c.n; lo += spanLen {
			spans = append(spans, span{c, lo, min(lo+spanLen, c.n)})
		}
		total += c.n
	}
	workers := 1
	if total >= parallelMin {
		workers = min(ix.workers, len(spans))
	}
	scanners := make([]*scanner, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range scanners {
		s := &scanner{p: p, q: q, pdim: ix.pdim, k: k, dots: make([]int32, spanLen)}
		scanners[w] = s
		run := func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(spans) {
					return
				}
				s.span(spans[i])
			}
		}
		if w == workers-1 {
			run()
		} else {
			wg.Add(1)
			go func() { defer wg.Done(); run() }()
		}
	}
	wg.Wait()

	// The k-th best lower bound over every worker; a vector none kept had an
	// upper bound below its worker's threshold, which is at most this one.
	var lows []float32
	var cands []cand
	st := Stats{Exact: true}
	for _, s := range scanners {
		lows = append(lows, s.lows...)
		cands = append(cands, s.cands...)
		st.Visible += s.seen
	}
	threshold := float32(math.Inf(-1))
	if len(lows) >= k {
		slices.Sort(lows)
		threshold = lows[len(lows)-k]
	}
	cands = slices.DeleteFunc(cands, func(c cand) bool { return c.hi < threshold })
	if len(cands) > MaxRerank {
		slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(b.approx, a.approx) })
		cands, st.Exact = cands[:MaxRerank], false
	}
	st.Candidates = len(cands)
	hits := make([]Hit, len(cands))
	for i, c := range cands {
		hits[i] = Hit{ID: c.c.ids[c.i], Score: dotF32(q.vals, c.c.slab.vals[c.i*ix.pdim:(c.i+1)*ix.pdim])}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if a.Score != b.Score {
			return cmp.Compare(b.Score, a.Score)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return hits[:min(k, len(hits))], st, nil
}

// span scores the visible vectors of sp.
func (s *scanner) span(sp span) {
	c := sp.c
	vis := s.vis[:0]
	for i := sp.lo; i < sp.hi; i++ {
		if s.p.Match(c.hot[i], &c.meta[i]) {
			vis = append(vis, i)
		}
	}
	s.vis = vis
	if len(vis) == 0 {
		return
	}
	s.seen += len(vis)
	pd := s.pdim
	if first, last := vis[0], vis[len(vis)-1]+1; 4*len(vis) >= last-first {
		// Dense enough: one kernel call over the run, skipping the
		// invisible results.
		out := s.dots[:last-first]
		dotsInt8(s.q.codes, c.slab.codes[first*pd:last*pd], out)
		for _, i := range vis {
			s.consider(c, i, out[i-first])
		}
		return
	}
	for _, i := range vis {
		dotsInt8(s.q.codes, c.slab.codes[i*pd:(i+1)*pd], s.dots[:1])
		s.consider(c, i, s.dots[0])
	}
}

// consider bounds the similarity of vector i from its int8 dot product and
// keeps it if it may be among the k best.
func (s *scanner) consider(c *chunk, i int, dot int32) {
	approx := s.q.scale * c.scale[i] * float32(dot)
	eps := s.q.norm*c.qerr[i] + s.q.qerr*c.qnorm[i] + boundSlack
	lo, hi := approx-eps, approx+eps
	if len(s.lows) == s.k && hi < s.lows[0] {
		return
	}
	s.cands = append(s.cands, cand{c: c, i: i, approx: approx, hi: hi})
	switch {
	case len(s.lows) < s.k:
		s.lows = append(s.lows, lo)
		heapUp(s.lows, len(s.lows)-1)
	case lo > s.lows[0]:
		s.lows[0] = lo
		heapDown(s.lows, 0)
		// Drop candidates that can no longer make it, now and then, so
		// the list stays short.
		if len(s.cands) >= 4*MaxRerank {
			t := s.lows[0]
			s.cands = slices.DeleteFunc(s.cands, func(c cand) bool { return c.hi < t })
		}
	}
}

func heapUp(h []float32, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func heapDown(h []float32, i int) {
	for {
		l, m := 2*i+1, i
		if l < len(h) && h[l] < h[m] {
			m = l
		}
		if r := l + 1; r < len(h) && h[r] < h[m] {
			m = r
		}
		if m == i {
			return
		}
		h[m], h[i] = h[i], h[m]
		i = m
	}
}
