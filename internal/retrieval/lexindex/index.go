// Package lexindex is the in-process lexical index of hybrid retrieval: an
// inverted index over the live memories of every org, ranked by BM25, with
// the fields search filters on.
//
// # Why in process
//
// The stores' own full-text search (SQLite FTS5 bm25(), PostgreSQL
// ts_rank) ranks every memory that holds any query word before it keeps
// the best: a word found in thousands of one org's 100,000 memories costs
// tens to hundreds of milliseconds, and neither can stop early. This index
// holds the same evidence in memory and stops early (MaxScore, below), so
// a search costs well under a millisecond at that size; the store is asked
// only for the rows of the final hits (memory.Lookup), and its own search
// stays as the fallback while the index is not ready.
//
// # What it ranks
//
// A memory's content, entity, artifact ref and tag keys and values are cut
// into words as the embedded store's tokenizer cuts them (letters and
// digits, lower case, diacritics removed) and stemmed (Snowball English).
// A query matches a memory that has any of its words (English stop words
// are left out when other words remain). Memories whose content holds all
// the query's words as a phrase come first; within each group BM25F orders
// (k1 1.2, b 0.75; the fields weigh 1, 1.5, 1 and 0.5 as the embedded
// store's bm25() weights, and FTS5's idf); ties go by id. The score is the
// stores': x/(1+x) for BM25 value x, plus 1 for a phrase match.
//
// Document frequencies and the average length are counted over the whole
// index, every org's memories, as FTS5 counts them over its table: counted
// per org they measured worse on the development set, whose orgs hold about
// sixty memories each (docs/retrieval.md). What a search returns is always
// its own org's; only the weight of a word is shared.
//
// # How it stays fast
//
// Postings are two arrays per term, document numbers ([]uint32, in
// ascending order) and twice the weighted term frequency (uint8): five
// bytes a posting. Each memory also keeps its content's words in order,
// as uvarint term numbers, for the phrase test and to find its postings
// when it changes. A search is document-at-a-time MaxScore: terms are
// ordered by the most they can add to a score; once the k-th best visible
// score exceeds what the rarest-last prefix of terms can add together,
// those terms are only probed (galloping search) for documents the others
// found, so a common word costs a few lookups instead of a scan of its
// postings. Access and every filter are applied to each document before it
// is scored (internal/retrieval/filter), so a visible match behind any
// number of invisible ones is still found.
package lexindex

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval/filter"
)

// Field weights, doubled so that the weighted frequency of a word is an
// integer (content 1, entity 1.5, artifact ref 1, tags 0.5).
const (
	weightContent  = 2
	weightEntity   = 3
	weightArtifact = 2
	weightTags     = 1
)

// BM25 parameters.
const (
	k1 = 1.2
	b  = 0.75
)

// Hit is a memory the index found and its score (higher is better; above
// 1 for a phrase match).
type Hit struct {
	ID    string
	Score float64
}

// Index is the lexical index of every org. It is safe for concurrent use:
// searches of an org run in parallel with each other and wait only for
// writes to the same org.
type Index struct {
	mu   sync.RWMutex
	orgs map[string]*shard
	stem *stemmer
	seed maphash.Seed
	n    atomic.Int64

	// stats are the counts BM25 reads, over every org. Writers take them
	// after the shard's lock.
	stats struct {
		sync.RWMutex
		df       map[string]int32 // stem → documents holding it
		totalLen int64            // words of all documents
	}
}

// New returns an empty index.
func New() *Index {
	ix := &Index{orgs: map[string]*shard{}, stem: newStemmer(), seed: maphash.MakeSeed()}
	ix.stats.df = map[string]int32{}
	return ix
}

// Len is how many memories the index holds.
func (ix *Index) Len() int { return int(ix.n.Load()) }

// shard is one org's index. Documents are numbered in the order they are
// added, so postings are appended in order; a removed document keeps its
// number, with hot word 0 (which no predicate matches) and no words, and
// stays in its terms' postings until compact renumbers the shard.
type shard struct {
	mu    sync.RWMutex
	dicts *filter.Dicts
	pos   map[string]uint32 // memory id → document number
	// By document number: the packed fields every search reads (see
	// filter), each document's length, and the rest.
	hot        []uint64
	lens       []uint32
	docs       []doc
	live, dead int
	terms      map[string]uint32 // stem → term number (0 is none)
	stems      []string          // by term number
	post       []postings        // by term number
}

// doc is one memory.
type doc struct {
	id   string
	meta filter.Meta
	// text hashes what was indexed, so a change of other fields keeps
	// the postings.
	text uint64
	// words holds the content's term numbers in order, then 0, then the
	// other fields' distinct term numbers, as uvarints. A removed
	// document has nil.
	words []byte
}

// postings lists the documents holding a term, in ascending order, with
// twice the weighted frequency of the term in each (at most 255). maxTF
// and minLen bound what the term adds to any document's score; they are
// not loosened when documents leave.
type postings struct {
	docs   []uint32
	tf     []uint8
	maxTF  uint8
	minLen uint32
}

func newShard() *shard {
	return &shard{dicts: filter.NewDicts(), pos: map[string]uint32{}, terms: map[string]uint32{},
		stems: make([]string, 1), post: make([]postings, 1)}
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

// analyzed is a memory's text cut into stems, before it is numbered.
type analyzed struct {
	content []string          // the content's stems, in order
	other   []string          // stems only the other fields have
	freq    map[string]uint32 // stem → doubled weighted frequency over all fields
	length  uint32
}

// analyze cuts m's indexed fields into stems.
func (ix *Index) analyze(m memory.Memory) analyzed {
	a := analyzed{freq: map[string]uint32{}}
	add := func(text string, w uint32, content bool) {
		for _, word := range words(text) {
			st := ix.stem.stem(word)
			if _, seen := a.freq[st]; !seen && !content {
				a.other = append(a.other, st)
			}
			a.freq[st] += w
			a.length++
			if content {
				a.content = append(a.content, st)
			}
		}
	}
	add(m.Content, weightContent, true)
	add(m.Entity, weightEntity, false)
	add(m.ArtifactRef, weightArtifact, false)
	for _, k := range sortedKeys(m.Tags) {
		add(k, weightTags, false)
		switch v := m.Tags[k].(type) {
		case string:
			add(v, weightTags, false)
		case float64, int, int64, bool:
			// Numbers and booleans say little as words; the key carries
			// the tag.
		}
	}
	return a
}

// textHash hashes the fields the index reads words from.
func (ix *Index) textHash(m memory.Memory) uint64 {
	var h maphash.Hash
	h.SetSeed(ix.seed)
	for _, s := range []string{m.Content, m.Entity, m.ArtifactRef} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	for _, k := range sortedKeys(m.Tags) {
		h.WriteString(k)
		h.WriteByte(1)
		if v, ok := m.Tags[k].(string); ok {
			h.WriteString(v)
		}
		h.WriteByte(0)
	}
	return h.Sum64()
}

// Upsert adds m, or replaces what the index holds of it. A deleted memory
// is removed instead.
func (ix *Index) Upsert(m memory.Memory) {
	if m.State == memory.StateDeleted {
		ix.Remove(m.OrgID, m.ID)
		return
	}
	text := ix.textHash(m)
	sh := ix.shard(m.OrgID, true)
	sh.mu.RLock()
	d, ok := sh.pos[m.ID]
	same := ok && sh.docs[d].text == text
	sh.mu.RUnlock()
	var a analyzed
	if !same {
		a = ix.analyze(m) // outside the lock: stemming is the slow part
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d, ok = sh.pos[m.ID]
	if ok && sh.docs[d].text == text {
		sh.hot[d], sh.docs[d].meta = sh.dicts.Fields(m)
		return
	}
	if a.freq == nil {
		a = ix.analyze(m) // changed since it was read: rare
	}
	if ok {
		ix.counted(sh.remove(m.ID), -1)
	} else {
		ix.n.Add(1)
	}
	sh.add(m, text, a)
	ix.counted(a, 1)
}

// counted adds a document's stems and length to the statistics (sign 1)
// or takes them out (-1).
func (ix *Index) counted(a analyzed, sign int32) {
	ix.stats.Lock()
	defer ix.stats.Unlock()
	for st := range a.freq {
		if ix.stats.df[st] += sign; ix.stats.df[st] <= 0 {
			delete(ix.stats.df, st)
		}
	}
	ix.stats.totalLen += int64(sign) * int64(a.length)
}

// SetFields replaces the fields filters read (state, access entity,
// category, …) of a memory the index holds, keeping its words, and reports
// whether it held it. A deleted memory is removed.
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
	d, ok := sh.pos[m.ID]
	if ok {
		sh.hot[d], sh.docs[d].meta = sh.dicts.Fields(m)
	}
	return ok
}

// Remove drops a memory and reports whether the index held it.
func (ix *Index) Remove(orgID, id string) bool {
	sh := ix.shard(orgID, false)
	if sh == nil {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.pos[id]; !ok {
		return false
	}
	ix.counted(sh.remove(id), -1)
	ix.n.Add(-1)
	return true
}

// Has reports whether the index holds the memory.
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

// Bytes estimates the memory the index holds: postings, the documents'
// words and fields, ids and the maps over them.
func (ix *Index) Bytes() int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var n int64
	for _, sh := range ix.orgs {
		sh.mu.RLock()
		for i := range sh.post {
			p := &sh.post[i]
			n += 5*int64(cap(p.docs)) + 56
		}
		for i := range sh.docs {
			d := &sh.docs[i]
			n += int64(len(d.id)) + int64(cap(d.words)) + d.meta.Bytes() + 64 + 12
		}
		n += int64(len(sh.pos))*48 + int64(len(sh.terms))*56
		sh.mu.RUnlock()
	}
	return n
}

// term returns the number of stem st, adding it.
func (sh *shard) term(st string) uint32 {
	if t, ok := sh.terms[st]; ok {
		return t
	}
	t := uint32(len(sh.post))
	sh.terms[st] = t
	sh.stems = append(sh.stems, st)
	sh.post = append(sh.post, postings{})
	return t
}

// add indexes m as a new document, numbered after every other.
func (sh *shard) add(m memory.Memory, text uint64, a analyzed) {
	d := uint32(len(sh.docs))
	buf := make([]byte, 0, 2*(len(a.content)+len(a.other))+1)
	for _, st := range a.content {
		buf = binary.AppendUvarint(buf, uint64(sh.term(st)))
	}
	buf = append(buf, 0)
	for _, st := range a.other {
		buf = binary.AppendUvarint(buf, uint64(sh.term(st)))
	}
	for st, f := range a.freq {
		p := &sh.post[sh.term(st)]
		tf := uint8(min(f, math.MaxUint8))
		if len(p.docs) == 0 {
			p.minLen = a.length
		}
		p.docs = append(p.docs, d)
		p.tf = append(p.tf, tf)
		p.maxTF, p.minLen = max(p.maxTF, tf), min(p.minLen, a.length)
	}
	hot, meta := sh.dicts.Fields(m)
	sh.hot = append(sh.hot, hot)
	sh.lens = append(sh.lens, a.length)
	sh.docs = append(sh.docs, doc{id: m.ID, meta: meta, text: text, words: slices.Clip(buf)})
	sh.pos[m.ID] = d
	sh.live++
}

// remove marks id's document, which the shard holds, removed, and returns
// its stems and length for the statistics. When removed documents
// outnumber half the live ones, the shard is compacted.
func (sh *shard) remove(id string) analyzed {
	d := sh.pos[id]
	delete(sh.pos, id)
	dc := &sh.docs[d]
	a := analyzed{freq: map[string]uint32{}, length: sh.lens[d]}
	for t := range termsOf(dc.words, false) {
		a.freq[sh.stems[t]] = 1
	}
	*dc = doc{}
	sh.hot[d] = 0
	sh.live--
	sh.dead++
	if sh.dead >= compactMin && 2*sh.dead > sh.live {
		sh.compact()
	}
	return a
}

// compactMin is the fewest removed documents compact is run for.
const compactMin = 1024

// compact renumbers the live documents in their order and drops removed
// ones from every posting list: a pass over all postings, so that the
// cost of a removal, counted over the removals that lead to it, is a few
// postings.
func (sh *shard) compact() {
	renum := make([]uint32, len(sh.docs))
	n := uint32(0)
	for d := range sh.docs {
		if sh.docs[d].words == nil {
			renum[d] = math.MaxUint32
			continue
		}
		renum[d] = n
		sh.hot[n], sh.lens[n], sh.docs[n] = sh.hot[d], sh.lens[d], sh.docs[d]
		sh.pos[sh.docs[n].id] = n
		n++
	}
	clear(sh.docs[n:])
	sh.hot, sh.lens, sh.docs = slices.Clip(sh.hot[:n]), slices.Clip(sh.lens[:n]), slices.Clip(sh.docs[:n])
	for t := range sh.post {
		p := &sh.post[t]
		j := 0
		for i, d := range p.docs {
			if nd := renum[d]; nd != math.MaxUint32 {
				p.docs[j], p.tf[j] = nd, p.tf[i]
				j++
			}
		}
		if j == 0 {
			*p = postings{}
			continue
		}
		p.docs, p.tf = slices.Clip(p.docs[:j]), slices.Clip(p.tf[:j])
	}
	sh.dead = 0
}

// termsOf yields the term numbers of a document's words: the content's in
// order (with repeats), then, unless contentOnly, the other fields'.
func termsOf(words []byte, contentOnly bool) func(func(uint32) bool) {
	return func(yield func(uint32) bool) {
		for i := 0; i < len(words); {
			t, n := binary.Uvarint(words[i:])
			i += n
			if t == 0 {
				if contentOnly {
					return
				}
				continue
			}
			if !yield(uint32(t)) {
				return
			}
		}
	}
}

// sortedKeys returns the keys of a tag map in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
