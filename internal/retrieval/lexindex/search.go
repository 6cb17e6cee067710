package lexindex

import (
	"cmp"
	"math"
	"slices"
	"sort"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval/filter"

	"github.com/codingbrain/codingbrain/internal/retrieval/lexical"
)

// Stats describes one search.
type Stats struct {
	// Scored is how many visible documents were scored; Postings how many
	// postings were read or skipped over by a lookup.
	Scored, Postings int
	// Phrase is how many visible documents matched the query as a phrase.
	Phrase int
}

// Search returns up to k memories of a.OrgID that a may see, that pass f
// and that hold any of text's words, best first (see the package comment).
// Access and filters apply before the k are chosen.
func (ix *Index) Search(a memory.Access, f memory.Filter, text string, k int) ([]Hit, Stats) {
	var st Stats
	if k < 1 {
		return []Hit{}, st
	}
	ws := words(text)
	if len(ws) > 4*maxQueryTokens {
		ws = ws[:4*maxQueryTokens]
	}
	match := ix.matchStems(ws)
	if len(match) == 0 {
		return []Hit{}, st
	}
	var phrase []string
	if len(ws) > 1 {
		for _, w := range ws[:min(len(ws), maxQueryTokens)] {
			phrase = append(phrase, ix.stem.stem(w))
		}
	}
	sh := ix.shard(a.OrgID, false)
	if sh == nil {
		return []Hit{}, st
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	p, ok := sh.dicts.Compile(a, f)
	if !ok || sh.live == 0 {
		return []Hit{}, st
	}
	ix.stats.RLock()
	n := float64(ix.n.Load())
	s := searcher{sh: sh, p: &p, st: &st, avgdl: float64(ix.stats.totalLen) / n}
	dfs := make([]float64, len(match))
	for i, m := range match {
		dfs[i] = float64(ix.stats.df[m])
	}
	ix.stats.RUnlock()
	for i, m := range match {
		t, ok := sh.terms[m]
		if !ok || len(sh.post[t].docs) == 0 || dfs[i] == 0 {
			continue // no live document holds it
		}
		pl := &sh.post[t]
		idf := math.Log((n - dfs[i] + 0.5) / (dfs[i] + 0.5))
		if idf <= 0 {
			idf = 1e-6 // as FTS5's bm25(): a word in most documents still counts a little
		}
		// The most the term adds: at its highest frequency in its shortest
		// document.
		ub := contrib(idf, pl.maxTF, k1*(1-b+b*float64(pl.minLen)/s.avgdl))
		s.terms = append(s.terms, cursor{p: pl, idf: idf, ub: ub})
	}
	if len(s.terms) == 0 {
		return []Hit{}, st
	}
	phrased := s.phrase(phrase)
	st.Phrase = len(phrased)
	hits := make([]scored, 0, k)
	for d := range phrased {
		hits = append(hits, scored{d, s.bm25(d)})
	}
	s.order(hits)
	if len(hits) > k {
		hits = hits[:k]
	}
	np := len(hits)
	if need := k - np; need > 0 {
		hits = append(hits, s.top(need, phrased)...)
	}
	out := make([]Hit, len(hits))
	for i, h := range hits {
		sc := h.score / (1 + h.score)
		if sc == 0 {
			sc = 1e-9 // a match always scores above zero
		}
		if i < np {
			sc++
		}
		out[i] = Hit{ID: sh.docs[h.doc].id, Score: sc}
	}
	return out, st
}

// matchStems returns the distinct stems of the words to match, leaving out
// stop words when other words remain.
func (ix *Index) matchStems(ws []string) []string {
	seen := map[string]bool{}
	var keep, stop []string
	for _, w := range ws {
		if seen[w] {
			continue
		}
		seen[w] = true
		if lexical.StopWord(w) {
			stop = append(stop, w)
		} else {
			keep = append(keep, w)
		}
	}
	if len(keep) == 0 {
		keep = stop
	}
	keep = keep[:min(len(keep), maxQueryTokens)]
	var stems []string
	for _, w := range keep {
		if st := ix.stem.stem(w); !slices.Contains(stems, st) {
			stems = append(stems, st)
		}
	}
	return stems
}

// cursor walks one term's postings.
type cursor struct {
	p   *postings
	i   int
	idf float64
	ub  float64 // the most the term adds to any document's score
}

// seek moves c to the first posting at or after d (galloping search).
func (c *cursor) seek(d uint32, st *Stats) {
	docs := c.p.docs
	i := c.i
	if i >= len(docs) || docs[i] >= d {
		return
	}
	lo, step := i, 1
	hi := lo + step
	for hi < len(docs) && docs[hi] < d {
		lo = hi
		step *= 2
		hi = lo + step
	}
	hi = min(hi, len(docs))
	c.i = lo + 1 + sort.Search(hi-lo-1, func(j int) bool { return docs[lo+1+j] >= d })
	st.Postings += c.i - i
}

// scored is a document and its BM25 value.
type scored struct {
	doc   uint32
	score float64
}

type searcher struct {
	sh    *shard
	p     *filter.Pred
	st    *Stats
	avgdl float64
	terms []cursor
}

// visible reports whether document d is live and passes access and
// filters: a removed one has hot word 0, which no predicate matches.
func (s *searcher) visible(d uint32) bool {
	return s.p.Match(s.sh.hot[d], &s.sh.docs[d].meta)
}

// norm is BM25's length normalization of document d.
func (s *searcher) norm(d uint32) float64 {
	return k1 * (1 - b + b*float64(s.sh.lens[d])/s.avgdl)
}

// contrib is what a term with doubled frequency tf adds to a document of
// normalization k.
func contrib(idf float64, tf uint8, k float64) float64 {
	f := float64(tf) / 2
	return idf * f * (k1 + 1) / (f + k)
}

// bm25 scores one document over every term (by lookup), in the terms'
// order.
func (s *searcher) bm25(d uint32) float64 {
	k := s.norm(d)
	var sum float64
	for i := range s.terms {
		c := &s.terms[i]
		if j, ok := slices.BinarySearch(c.p.docs, d); ok {
			sum += contrib(c.idf, c.p.tf[j], k)
		}
	}
	return sum
}

// better orders hits: higher score first, then smaller id.
func (s *searcher) better(x, y scored) bool {
	if x.score != y.score {
		return x.score > y.score
	}
	return s.sh.docs[x.doc].id < s.sh.docs[y.doc].id
}

func (s *searcher) order(hs []scored) {
	slices.SortFunc(hs, func(x, y scored) int {
		return cmp.Or(cmp.Compare(y.score, x.score), cmp.Compare(s.sh.docs[x.doc].id, s.sh.docs[y.doc].id))
	})
}

// phrase returns the visible documents whose content holds the stems in
// order, next to each other.
func (s *searcher) phrase(stems []string) map[uint32]bool {
	out := map[uint32]bool{}
	if len(stems) < 2 {
		return out
	}
	want := make([]uint32, len(stems))
	var lists []cursor
	for i, st := range stems {
		t, ok := s.sh.terms[st]
		if !ok || len(s.sh.post[t].docs) == 0 {
			return out
		}
		want[i] = t
		if !slices.ContainsFunc(lists, func(c cursor) bool { return c.p == &s.sh.post[t] }) {
			lists = append(lists, cursor{p: &s.sh.post[t]})
		}
	}
	slices.SortFunc(lists, func(x, y cursor) int { return cmp.Compare(len(x.p.docs), len(y.p.docs)) })
	var buf []uint32
next:
	for _, d := range lists[0].p.docs {
		s.st.Postings++
		if !s.visible(d) {
			continue
		}
		for i := 1; i < len(lists); i++ {
			c := &lists[i]
			c.seek(d, s.st)
			if c.i >= len(c.p.docs) {
				break next
			}
			if c.p.docs[c.i] != d {
				continue next
			}
		}
		buf = buf[:0]
		for t := range termsOf(s.sh.docs[d].words, true) {
			buf = append(buf, t)
		}
		for i := 0; i+len(want) <= len(buf); i++ {
			if slices.Equal(buf[i:i+len(want)], want) {
				out[d] = true
				break
			}
		}
	}
	return out
}

// top returns the k best visible documents not in skip, by BM25, best
// first: document-at-a-time MaxScore. Terms are ordered by their bound
// ub; the prefix of terms whose bounds together cannot reach the k-th best
// score so far is not walked, only probed for the documents the other
// terms bring.
func (s *searcher) top(k int, skip map[uint32]bool) []scored {
	ts := s.terms
	slices.SortFunc(ts, func(x, y cursor) int { return cmp.Compare(x.ub, y.ub) })
	cum := make([]float64, len(ts))
	sum := 0.0
	for i, t := range ts {
		sum += t.ub
		cum[i] = sum
	}
	heap := make([]scored, 0, k) // the worst of the best k at heap[0]
	threshold := math.Inf(-1)
	// The bounds are compared with a margin for rounding: a document
	// whose score equals the k-th best may still win on its id.
	const margin = 1e-9
	first := 0 // ts[:first] are probed only
	parts := make([]float64, len(ts))
	for {
		d := uint32(math.MaxUint32)
		for i := first; i < len(ts); i++ {
			if c := &ts[i]; c.i < len(c.p.docs) {
				d = min(d, c.p.docs[c.i])
			}
		}
		if d == math.MaxUint32 {
			break
		}
		ok := s.visible(d) && (len(skip) == 0 || !skip[d])
		var k0, partial float64
		if ok {
			k0 = s.norm(d)
			clear(parts)
		}
		for i := first; i < len(ts); i++ {
			if c := &ts[i]; c.i < len(c.p.docs) && c.p.docs[c.i] == d {
				if ok {
					parts[i] = contrib(c.idf, c.p.tf[c.i], k0)
					partial += parts[i]
				}
				c.i++
				s.st.Postings++
			}
		}
		if !ok {
			continue
		}
		s.st.Scored++
		full := len(heap) == k
		for i := first - 1; i >= 0; i-- {
			if full && partial+cum[i] < threshold-margin {
				break
			}
			c := &ts[i]
			c.seek(d, s.st)
			if c.i < len(c.p.docs) && c.p.docs[c.i] == d {
				parts[i] = contrib(c.idf, c.p.tf[c.i], k0)
				partial += parts[i]
			}
		}
		if full && partial < threshold-margin {
			continue
		}
		// The score is summed in one order for every document, so that
		// equal documents score equal to the last bit.
		score := 0.0
		for _, x := range parts {
			score += x
		}
		h := scored{d, score}
		switch {
		case !full:
			heap = append(heap, h)
			s.up(heap, len(heap)-1)
		case s.better(h, heap[0]):
			heap[0] = h
			s.down(heap, 0)
		default:
			continue
		}
		if len(heap) == k {
			threshold = heap[0].score
			for first < len(ts) && cum[first] < threshold-margin {
				first++
			}
		}
	}
	s.order(heap)
	return heap
}

// up and down keep heap ordered with the worst hit first.
func (s *searcher) up(h []scored, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.better(h[p], h[i]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (s *searcher) down(h []scored, i int) {
	for {
		l, m := 2*i+1, i
		if l < len(h) && s.better(h[m], h[l]) {
			m = l
		}
		if r := l + 1; r < len(h) && s.better(h[m], h[r]) {
			m = r
		}
		if m == i {
			return
		}
		h[m], h[i] = h[i], h[m]
		i = m
	}
}
