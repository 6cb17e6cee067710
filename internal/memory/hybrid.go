package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/codingbrain/codingbrain/internal/embed"
)

// Hybrid search: the memories the lexical index (the in-process
// LexicalIndex when the service's Vectors has one and it is ready, else
// Store.Search), the vector index (Vectors) and the entity graph
// (GraphStore.GraphNeighbours) find for a query are fused by reciprocal
// rank fusion, then adjusted for what the query names (entity, artifact,
// category, scope, tags), for age (a half-life) and for validity
// (superseded facts rank lower). Every source applies the caller's access
// and the query's filters before it ranks, so a visible match is never
// crowded out by invisible ones, and memories found by the in-process
// indexes are read back through Lookup, in one query, which checks access
// and filters again against the system of record.

// SearchMode selects the retrieval a search runs.
type SearchMode string

// Search modes.
const (
	// ModeHybrid fuses lexical, vector and graph retrieval (the default
	// when the service has Vectors).
	ModeHybrid SearchMode = "hybrid"
	// ModeLexical is full-text ranking alone, without boosts: BM25 in the
	// in-process LexicalIndex when there is one and it is ready, else the
	// store's own (BM25 on SQLite, ts_rank on PostgreSQL); the default
	// without Vectors.
	ModeLexical SearchMode = "lexical"
	// ModeVector ranks by embedding similarity alone.
	ModeVector SearchMode = "vector"
)

// SearchModes lists the modes a query may ask for.
var SearchModes = []SearchMode{ModeHybrid, ModeLexical, ModeVector}

// Retrieval sources, as Explain names them.
const (
	SourceLexical = "lexical"
	SourceVector  = "vector"
	SourceGraph   = "graph"
)

// SearchResult is what a search found, and how.
type SearchResult struct {
	Hits []Hit `json:"hits"`
	// Mode is the retrieval that ran: the one asked for, except that a
	// vector search without vectors runs lexical.
	Mode SearchMode `json:"mode" jsonschema:"the retrieval that ran: hybrid, lexical or vector"`
	// Degraded is true when vector retrieval was wanted but could not run
	// (the embedder is unavailable, or the stored vectors are not yet
	// those of its model); Reason says why. The hits then come from the
	// other sources.
	Degraded bool   `json:"degraded,omitempty" jsonschema:"vector retrieval was wanted but could not run; see reason"`
	Reason   string `json:"reason,omitempty"`
}

// Explain says how a hit got its rank: each source's rank and score, the
// boosts that applied, and the recency and validity factors. Score =
// Fused × (1 + Σ boost weights) × Recency × Validity.
type Explain struct {
	Sources []SourceScore `json:"sources"`
	// Fused is the reciprocal rank fusion score: Σ weight/(k + rank) over
	// the sources that found the memory.
	Fused    float64      `json:"fused,omitempty"`
	Boosts   []BoostMatch `json:"boosts,omitempty"`
	Recency  float64      `json:"recency,omitempty" jsonschema:"the age factor, 1 for a memory created now"`
	Validity float64      `json:"validity,omitempty" jsonschema:"the factor for a superseded memory (valid_to passed), else 1"`
	Score    float64      `json:"score"`
}

// SourceScore is one source's opinion of a hit: its rank there (1 is
// best) and its own score (lexical: the store's BM25 or ts_rank score;
// vector: cosine similarity; graph: the neighbourhood score).
type SourceScore struct {
	Source string  `json:"source"`
	Rank   int     `json:"rank"`
	Score  float64 `json:"score"`
}

// BoostMatch is a boost that applied: the memory's field, its value that
// the query names, and the weight added.
type BoostMatch struct {
	Field  string  `json:"field" jsonschema:"entity, artifact, category, scope or tag"`
	Value  string  `json:"value"`
	Weight float64 `json:"weight"`
}

// Ranking tunes hybrid search and near-duplicate detection. The zero
// value means DefaultRanking.
type Ranking struct {
	// RRFK is the k of reciprocal rank fusion: a source's rank r adds
	// weight/(RRFK + r).
	RRFK float64
	// Weights of the sources in the fusion.
	LexicalWeight, VectorWeight, GraphWeight float64
	// Candidates is how many memories each source contributes (at least
	// the query's limit, at most MaxSearchLimit).
	Candidates int
	// MinSimilarity drops vector candidates less similar than this to the
	// query from the fusion (0 keeps all).
	MinSimilarity float64
	// Boost weights, added to 1 and multiplied into the score when the
	// query names the memory's entity, artifact ref (or its file name),
	// category, scope, or one of its tags.
	EntityBoost, ArtifactBoost, CategoryBoost, ScopeBoost, TagBoost float64
	// HalfLife and RecencyWeight weigh age: a memory created HalfLife ago
	// keeps 1 − RecencyWeight/2 of its score, a very old one
	// 1 − RecencyWeight. HalfLife 0 turns recency off.
	HalfLife      time.Duration
	RecencyWeight float64
	// Superseded multiplies the score of a memory whose valid_to has
	// passed (0 or 1 leave it alone).
	Superseded float64
	// NearDuplicate is the cosine similarity from which a new memory is
	// linked to an existing one of the same access entity (see Add); 0
	// turns detection off.
	NearDuplicate float64
	// GraphBudget bounds how long a search waits for the graph source,
	// from its start: a graph that has not answered by then is left out
	// of that search's fusion, its query left to finish (0 waits for it).
	GraphBudget time.Duration
}

// DefaultRanking is the ranking hybrid search uses unless configured,
// chosen on the development set (testdata/retrieval; docs/retrieval.md):
//
//   - RRFK 10, not the customary 60: with two or three short lists, k=60
//     makes neighbouring ranks almost equal (1/61 against 1/62), so any
//     boost or age factor of a few percent reorders them at random; at
//     k=10 a rank is worth about 9% over the next;
//   - lexical weighs more than vector (1 against 0.8): the built-in
//     embedder matches words and word pieces, not meaning, and BM25 is
//     the sharper of the two on the same evidence;
//   - the graph weighs 0.05: enough to lift the memories it alone finds
//     into the candidates and to break ties, not to reorder what lexical
//     and vector agree on (at 0.25 it cost recall@1 on the set);
//   - boosts and recency are small for the same reason: each is a factor
//     of a few percent, comparable to one rank.
func DefaultRanking() Ranking {
	return Ranking{
		RRFK: 10, LexicalWeight: 1, VectorWeight: 0.8, GraphWeight: 0.05, Candidates: 20,
		EntityBoost: 0.15, ArtifactBoost: 0.1, CategoryBoost: 0.05, ScopeBoost: 0.025, TagBoost: 0.05,
		HalfLife: 365 * 24 * time.Hour, RecencyWeight: 0.1, Superseded: 0.5, NearDuplicate: 0.92,
		GraphBudget: 3 * time.Millisecond,
	}
}

// Vectors is the vector side of retrieval as the service sees it: an
// embedder and the in-process index over the stored embeddings of its
// model (internal/retrieval implements it).
type Vectors interface {
	// Embed returns the vector of one text: a query, or a memory's content
	// before it is stored. An embedder that cannot answer now returns an
	// error wrapping embed.ErrUnavailable.
	Embed(ctx context.Context, text string) ([]float32, error)
	// Current reports whether the index holds the embedder's vectors for
	// (nearly) every memory; when not — a change of model waiting for the
	// re-embedding, a backfill under way — it says why.
	Current() (ok bool, reason string)
	// Nearest returns up to k memories of a.OrgID that a may see and that
	// pass f, whose vectors are most similar to vec (cosine), best first.
	// Access and filters apply before the k are chosen.
	Nearest(ctx context.Context, a Access, f Filter, vec []float32, k int) ([]VectorHit, error)
	// Written tells of a memory this replica has just written, so that
	// search sees it at once: vec is the vector of its content when the
	// content changed (nil when it could not be embedded: the memory
	// leaves the index until the backfill embeds it); with contentChanged
	// false only its other fields changed and its vector still holds.
	Written(ctx context.Context, m Memory, vec []float32, contentChanged bool)
}

// LexicalIndex is implemented by Vectors that also keep an in-process
// lexical index over the store's memories (internal/retrieval does); the
// service then ranks lexical matches there and reads only the final hits
// from the store (Lookup), and uses Store.Search while the index is not
// ready or the store cannot Lookup.
type LexicalIndex interface {
	// Lexical returns up to k memories of a.OrgID that a may see, that
	// pass f and that hold any of text's words, best first, with scores
	// as Store.Search gives them (above 1 for a phrase match). Access and
	// filters apply before the k are chosen. ok is false while the index
	// is not ready.
	Lexical(ctx context.Context, a Access, f Filter, text string, k int) (hits []VectorHit, ok bool)
}

// VectorHit is a memory an in-process index found and its score: for the
// vector index, the cosine similarity to the query.
type VectorHit struct {
	ID    string
	Score float64
}

// Lookup is implemented by stores that read memories by id; hybrid search
// reads the memories the vector index found through it.
type Lookup interface {
	// Lookup returns the memories among ids that a may see, that match f
	// and that are in the hot tier, in any order; others are left out. (An
	// index that has not yet read a move to the cold tier from the change
	// feed may still name a cold memory; searches without IncludeCold must
	// not return it, and those with it find cold memories through the
	// store's search.)
	Lookup(ctx context.Context, a Access, f Filter, ids []string) ([]Memory, error)
}

// NearDuplicateKey is the metadata key under which Add records the
// existing memory a new one nearly duplicates: {"id": …, "similarity": …}.
const NearDuplicateKey = "near_duplicate_of"

// writeEmbedTimeout bounds the wait for the embedder on a write: a write
// never fails for it, and a memory not embedded now is embedded by the
// backfill.
const writeEmbedTimeout = 2 * time.Second

// prepareAdd embeds the content of m, about to be stored, and when an
// existing memory of the same access entity is at least
// Ranking.NearDuplicate similar, records it in m's metadata
// (NearDuplicateKey). It returns the vector, or nil when there is none.
func (s *Service) prepareAdd(ctx context.Context, m *Memory) []float32 {
	if s.vectors == nil {
		return nil
	}
	vec := s.embedForWrite(ctx, m.Content)
	if vec == nil || s.ranking.NearDuplicate <= 0 {
		return vec
	}
	a := Access{OrgID: m.OrgID, Entities: []string{m.AccessEntity}}
	hits, err := s.vectors.Nearest(ctx, a, Filter{}, vec, 1)
	if err == nil && len(hits) == 1 && hits[0].Score >= s.ranking.NearDuplicate {
		md := maps.Clone(m.Metadata)
		if md == nil {
			md = map[string]any{}
		}
		md[NearDuplicateKey] = map[string]any{"id": hits[0].ID, "similarity": math.Round(hits[0].Score*1e4) / 1e4}
		m.Metadata = md
	}
	return vec
}

// embedForWrite embeds the content of a memory being written, or returns
// nil when the embedder cannot (the backfill embeds it later).
func (s *Service) embedForWrite(ctx context.Context, content string) []float32 {
	ctx, cancel := context.WithTimeout(ctx, writeEmbedTimeout)
	defer cancel()
	vec, err := s.vectors.Embed(ctx, content)
	if err != nil {
		return nil
	}
	return vec
}

// written tells Vectors about a committed write.
func (s *Service) written(ctx context.Context, m Memory, vec []float32, contentChanged bool) {
	if s.vectors != nil {
		s.vectors.Written(ctx, m, vec, contentChanged)
	}
}

// NearDuplicateOf returns the memory m was found to nearly duplicate when
// it was added, and the similarity, from its metadata.
func NearDuplicateOf(m Memory) (id string, similarity float64, ok bool) {
	nd, _ := m.Metadata[NearDuplicateKey].(map[string]any)
	id, _ = nd["id"].(string)
	similarity, _ = nd["similarity"].(float64)
	return id, similarity, id != ""
}

// defaultMode is the mode of a query that names none.
func (s *Service) defaultMode() SearchMode {
	if s.vectors != nil {
		return ModeHybrid
	}
	return ModeLexical
}

// retrieve runs a validated search for the caller's access a.
func (s *Service) retrieve(ctx context.Context, a Access, q SearchQuery) (SearchResult, error) {
	mode := q.Mode
	if mode == "" {
		mode = s.defaultMode()
	}
	switch mode {
	case ModeVector:
		vh, reason, err := s.vectorSearch(ctx, a, q.Text, q.Filter, q.Limit)
		if err != nil {
			return SearchResult{}, err
		}
		if reason != "" {
			res, err := s.lexicalOnly(ctx, a, q)
			res.Degraded, res.Reason = true, reason+"; ran lexical search instead"
			return res, err
		}
		lists, err := s.lookupRanked(ctx, a, q.Filter, nil, vh)
		if err != nil {
			return SearchResult{}, err
		}
		list := lists[0]
		hits := make([]Hit, len(list))
		for i, h := range list {
			hits[i] = h
			if q.Explain {
				hits[i].Explain = &Explain{Sources: []SourceScore{{SourceVector, i + 1, h.Score}}, Score: h.Score}
			}
		}
		return SearchResult{Hits: hits, Mode: ModeVector}, nil
	case ModeHybrid:
		return s.hybrid(ctx, a, q)
	}
	return s.lexicalOnly(ctx, a, q)
}

// lexicalOnly is lexical search as it ranks.
func (s *Service) lexicalOnly(ctx context.Context, a Access, q SearchQuery) (SearchResult, error) {
	var hits []Hit
	if lh, ok := s.indexLexical(ctx, a, q, q.Limit); ok {
		lists, err := s.lookupRanked(ctx, a, q.Filter, nil, lh)
		if err != nil {
			return SearchResult{}, err
		}
		hits = lists[0]
	} else {
		var err error
		if hits, err = s.store.Search(ctx, a, q); err != nil {
			return SearchResult{}, err
		}
	}
	if q.Explain {
		for i := range hits {
			hits[i].Explain = &Explain{Sources: []SourceScore{{SourceLexical, i + 1, hits[i].Score}}, Score: hits[i].Score}
		}
	}
	return SearchResult{Hits: hits, Mode: ModeLexical}, nil
}

// vectorSearch embeds the query and asks the index for k memories. When
// vector retrieval cannot run it returns the reason instead; an error is
// only the request's own cancellation.
func (s *Service) vectorSearch(ctx context.Context, a Access, text string, f Filter, k int) ([]VectorHit, string, error) {
	if s.vectors == nil {
		return nil, "no embedder is configured", nil
	}
	if _, ok := s.store.(Lookup); !ok {
		return nil, "this store cannot read memories by id", nil
	}
	if ok, why := s.vectors.Current(); !ok {
		return nil, why, nil
	}
	vec, err := s.vectors.Embed(ctx, text)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if errors.Is(err, embed.ErrUnavailable) {
			return nil, "the embedder is unavailable", nil
		}
		return nil, "the embedder failed on the query", nil
	}
	if isZero(vec) {
		return []VectorHit{}, "", nil // no word to compare: nothing is similar
	}
	hits, err := s.vectors.Nearest(ctx, a, f, vec, k)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "the vector index failed", nil
	}
	return hits, "", nil
}

func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// indexLexical asks the in-process lexical index for k memories; ok is
// false when there is none ready (or the store cannot Lookup what it
// finds), and when q includes the cold tier or deleted memories, which
// the index does not hold: the store's search is then the lexical source.
func (s *Service) indexLexical(ctx context.Context, a Access, q SearchQuery, k int) ([]VectorHit, bool) {
	if q.IncludeCold || slices.Contains(q.Filter.States, StateDeleted) {
		return nil, false
	}
	text, f := q.Text, q.Filter
	lx, ok := s.vectors.(LexicalIndex)
	if !ok {
		return nil, false
	}
	if _, ok := s.store.(Lookup); !ok {
		return nil, false
	}
	if k <= 0 {
		k = DefaultHitLimit
	}
	return lx.Lexical(ctx, a, f, text, min(k, MaxSearchLimit))
}

// lookupRanked reads the memories of the in-process indexes' hit lists
// that are not in known, in one Lookup, and returns each list as hits in
// its order, dropping those the store no longer shows (changed, deleted,
// or filtered since the index saw them).
func (s *Service) lookupRanked(ctx context.Context, a Access, f Filter, known map[string]Memory, lists ...[]VectorHit) ([][]Hit, error) {
	var ids []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, h := range l {
			if _, ok := known[h.ID]; !ok && !seen[h.ID] {
				seen[h.ID] = true
				ids = append(ids, h.ID)
			}
		}
	}
	rows := map[string]Memory{}
	if len(ids) > 0 {
		ms, err := s.store.(Lookup).Lookup(ctx, a, f, ids)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			rows[m.ID] = m
		}
	}
	out := make([][]Hit, len(lists))
	for i, l := range lists {
		out[i] = make([]Hit, 0, len(l))
		for _, h := range l {
			m, ok := known[h.ID]
			if !ok {
				m, ok = rows[h.ID]
			}
			if ok {
				out[i] = append(out[i], Hit{Memory: m, Score: h.Score})
			}
		}
	}
	return out, nil
}

// fusedHit is a memory in the fusion: its rank (1-based, 0 when absent)
// and score in each source.
type fusedHit struct {
	m      Memory
	rank   [3]int
	score  [3]float64
	fused  float64
	final  float64
	best   int // the best rank over sources
	source int // the first source with that rank
	ex     *Explain
}

var sourceNames = [3]string{SourceLexical, SourceVector, SourceGraph}

// hybrid runs the three sources concurrently and fuses them.
func (s *Service) hybrid(ctx context.Context, a Access, q SearchQuery) (SearchResult, error) {
	r := s.ranking
	n := min(MaxSearchLimit, max(q.Limit, r.Candidates))
	lq := q
	lq.Limit = n
	var (
		wg             sync.WaitGroup
		lexical, graph []Hit
		vector         []VectorHit
		lexErr, vecErr error
		graphErr       error
		reason         string
	)
	type graphResult struct {
		hits []Hit
		err  error
	}
	var graphDone chan graphResult
	var graphLate <-chan time.Time
	if r.GraphWeight > 0 {
		// The graph runs on its own and is not waited for past its budget,
		// but its query is not cancelled either: GraphCommonMentions
		// bounds it to a few milliseconds, and cancelling costs more —
		// pgx cancels by closing the connection (the pool then starts a
		// new server process), SQLite's interrupt slowed the searches
		// after it (docs/design.md, "Retrieval").
		graphDone = make(chan graphResult, 1)
		go func() {
			hits, err := s.GraphNeighbours(context.WithoutCancel(ctx), a, q.Text, q.Filter, n)
			graphDone <- graphResult{hits, err}
		}()
		if r.GraphBudget > 0 {
			t := time.NewTimer(r.GraphBudget)
			defer t.Stop()
			graphLate = t.C
		}
	}
	wg.Go(func() { vector, reason, vecErr = s.vectorSearch(ctx, a, q.Text, q.Filter, n) })
	// The in-process lexical index answers in about a millisecond or less:
	// it runs here while the vectors are searched, and so does the read of
	// its hits' rows; the store's search, its fallback, runs beside them.
	if lexIx, fromIndex := s.indexLexical(ctx, a, q, n); fromIndex {
		var lists [][]Hit
		if lists, lexErr = s.lookupRanked(ctx, a, q.Filter, nil, lexIx); lexErr == nil {
			lexical = lists[0]
		}
	} else {
		wg.Go(func() { lexical, lexErr = s.store.Search(ctx, a, lq) })
	}
	wg.Wait()
	if err := cmp.Or(lexErr, vecErr); err != nil {
		return SearchResult{}, err
	}
	if graphDone != nil {
		var g graphResult
		select {
		case g = <-graphDone: // answered while the others ran: always taken
		default:
			select {
			case g = <-graphDone:
			case <-graphLate:
				g.err = context.DeadlineExceeded
			}
		}
		graph, graphErr = g.hits, g.err
	}
	res := SearchResult{Mode: ModeHybrid}
	if reason != "" {
		res.Degraded, res.Reason = true, reason+"; results are lexical and graph only"
	}
	if graphErr != nil {
		if ctx.Err() != nil {
			return SearchResult{}, ctx.Err()
		}
		// The graph is an extra source: search goes on without it when it
		// fails or is late (GraphBudget).
		graph = nil
	}
	if r.MinSimilarity > 0 {
		vector = slices.DeleteFunc(vector, func(h VectorHit) bool { return h.Score < r.MinSimilarity })
	}
	known := map[string]Memory{}
	for _, h := range lexical {
		known[h.Memory.ID] = h.Memory
	}
	for _, h := range graph {
		known[h.Memory.ID] = h.Memory
	}
	var vhits []Hit
	if len(vector) > 0 {
		lists, err := s.lookupRanked(ctx, a, q.Filter, known, vector)
		if err != nil {
			return SearchResult{}, err
		}
		vhits = lists[0]
	}

	res.Hits = r.fuse([3][]Hit{lexical, vhits, graph}, queryTermsOf(q.Text), s.now().UTC(), q.Limit, q.Explain)
	return res, nil
}

// fuse ranks the memories of the three source lists (lexical, vector,
// graph; each best first): reciprocal rank fusion, times the boosts, the
// recency factor at now and the validity factor. It returns the best
// limit, best first; ties go to the memory with the better rank in any
// source, then to the earlier source, then by id.
func (r Ranking) fuse(lists [3][]Hit, terms queryTerms, now time.Time, limit int, explain bool) []Hit {
	byID := map[string]*fusedHit{}
	var order []*fusedHit
	weights := [3]float64{r.LexicalWeight, r.VectorWeight, r.GraphWeight}
	for src, list := range lists {
		for i, h := range list {
			f := byID[h.Memory.ID]
			if f == nil {
				f = &fusedHit{m: h.Memory, best: math.MaxInt}
				byID[h.Memory.ID] = f
				order = append(order, f)
			}
			if f.rank[src] != 0 {
				continue
			}
			f.rank[src], f.score[src] = i+1, h.Score
			f.fused += weights[src] / (r.RRFK + float64(i+1))
			if i+1 < f.best {
				f.best, f.source = i+1, src
			}
		}
	}
	for _, f := range order {
		boost, matches := r.boosts(f.m, terms)
		recency := r.recency(f.m, now)
		validity := 1.0
		if r.Superseded > 0 && r.Superseded < 1 && f.m.ValidTo != nil && !f.m.ValidTo.After(now) {
			validity = r.Superseded
		}
		f.final = f.fused * (1 + boost) * recency * validity
		if explain {
			f.ex = &Explain{Fused: f.fused, Boosts: matches, Recency: recency, Validity: validity, Score: f.final}
			for src := range 3 {
				if f.rank[src] > 0 {
					f.ex.Sources = append(f.ex.Sources, SourceScore{sourceNames[src], f.rank[src], f.score[src]})
				}
			}
		}
	}
	slices.SortStableFunc(order, func(x, y *fusedHit) int {
		return cmp.Or(cmp.Compare(y.final, x.final), cmp.Compare(y.fused, x.fused),
			cmp.Compare(x.best, y.best), cmp.Compare(x.source, y.source), cmp.Compare(x.m.ID, y.m.ID))
	})
	order = order[:min(len(order), limit)]
	hits := make([]Hit, len(order))
	for i, f := range order {
		hits[i] = Hit{Memory: f.m, Score: f.final, Explain: f.ex}
	}
	return hits
}

// recency is the age factor of m at now: 1 − w + w·2^(−age/half-life).
func (r Ranking) recency(m Memory, now time.Time) float64 {
	if r.HalfLife <= 0 || r.RecencyWeight <= 0 {
		return 1
	}
	age := max(now.Sub(m.CreatedAt), 0)
	return 1 - r.RecencyWeight + r.RecencyWeight*math.Exp2(-float64(age)/float64(r.HalfLife))
}

// queryTerms is what boosts compare a memory with: the query's words
// (lower case) and the entity names it may mention (QueryEntityNames).
type queryTerms struct {
	words map[string]bool
	names map[string]bool
}

func queryTermsOf(text string) queryTerms {
	t := queryTerms{words: map[string]bool{}, names: map[string]bool{}}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	}) {
		t.words[w] = true
	}
	for _, n := range QueryEntityNames(text) {
		t.names[n] = true
	}
	return t
}

// categoryWords are the query words that name a category.
var categoryWords = map[Category][]string{
	"decision":     {"decision", "decisions", "decide", "decided"},
	"convention":   {"convention", "conventions"},
	"architecture": {"architecture", "architectural"},
	"dependency":   {"dependency", "dependencies"},
	"workflow":     {"workflow", "workflows"},
	"testing":      {"test", "tests", "testing"},
	"security":     {"security"},
	"performance":  {"performance"},
	"runbook":      {"runbook", "runbooks"},
	"glossary":     {"glossary", "definition"},
}

// scopeWords are the query words that name a shared scope.
var scopeWords = map[Scope][]string{
	"team": {"team"}, "project": {"project"}, "org": {"org", "organization", "company"}, "enterprise": {"enterprise"},
}

// boosts returns the sum of the boost weights that apply to m for the
// query, and which.
func (r Ranking) boosts(m Memory, t queryTerms) (float64, []BoostMatch) {
	var sum float64
	var out []BoostMatch
	add := func(field, value string, w float64) {
		if w > 0 {
			sum += w
			out = append(out, BoostMatch{Field: field, Value: value, Weight: w})
		}
	}
	if m.Entity != "" && t.names[NormalizeEntity(m.Entity)] {
		add("entity", m.Entity, r.EntityBoost)
	}
	if ref := m.ArtifactRef; ref != "" {
		base := ref[strings.LastIndexAny(ref, "/\\")+1:]
		stem := strings.TrimSuffix(base, pathExt(base))
		if t.names[NormalizeEntity(ref)] || t.names[NormalizeEntity(base)] || t.names[NormalizeEntity(stem)] {
			add("artifact", ref, r.ArtifactBoost)
		}
	}
	if slices.ContainsFunc(categoryWords[m.Category], func(w string) bool { return t.words[w] }) {
		add("category", string(m.Category), r.CategoryBoost)
	}
	if slices.ContainsFunc(scopeWords[m.Scope], func(w string) bool { return t.words[w] }) {
		add("scope", string(m.Scope), r.ScopeBoost)
	}
	for _, k := range sortedKeys(m.Tags) {
		if strings.HasPrefix(k, RelationPrefix) {
			continue
		}
		v, _ := m.Tags[k].(string)
		if t.names[NormalizeEntity(k)] || v != "" && t.names[NormalizeEntity(v)] {
			tag := k
			if v != "" {
				tag += "=" + v
			}
			add("tag", tag, r.TagBoost)
			break // one tag boost per memory
		}
	}
	return sum, out
}

// pathExt is the extension of a file name (".go"), or "".
func pathExt(name string) string {
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		return name[i:]
	}
	return ""
}

// RankingSettings names the settings ParseRanking accepts, in the order
// they are documented.
var RankingSettings = []string{
	"k", "lexical", "vector", "graph", "candidates", "min_similarity",
	"entity", "artifact", "category", "scope", "tag",
	"half_life", "recency", "superseded", "near_duplicate", "graph_budget",
}

// ParseRanking applies comma-separated name=value settings to base: k (the
// RRF k), the source weights lexical, vector and graph, candidates,
// min_similarity, the boosts entity, artifact, category, scope and tag,
// half_life (a duration such as 8760h), recency, superseded,
// near_duplicate and graph_budget (a duration). Settings not named keep
// base's value; "" is base.
func ParseRanking(s string, base Ranking) (Ranking, error) {
	r := base
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok {
			return base, fmt.Errorf("ranking %q: want name=value", part)
		}
		if name == "half_life" || name == "graph_budget" {
			d, err := time.ParseDuration(value)
			if err != nil || d < 0 {
				return base, fmt.Errorf("ranking %s: %q is not a duration of 0 or more (like 8760h)", name, value)
			}
			if name == "half_life" {
				r.HalfLife = d
			} else {
				r.GraphBudget = d
			}
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return base, fmt.Errorf("ranking %s: %q is not a number of 0 or more", name, value)
		}
		unit := func(dst *float64) error {
			if f > 1 {
				return fmt.Errorf("ranking %s: %v is above 1", name, f)
			}
			*dst = f
			return nil
		}
		switch name {
		case "k":
			if f == 0 {
				return base, errors.New("ranking k: must be above 0")
			}
			r.RRFK = f
		case "lexical":
			r.LexicalWeight = f
		case "vector":
			r.VectorWeight = f
		case "graph":
			r.GraphWeight = f
		case "candidates":
			if f < 1 || f > MaxSearchLimit || f != math.Trunc(f) {
				return base, fmt.Errorf("ranking candidates: must be a whole number from 1 to %d", MaxSearchLimit)
			}
			r.Candidates = int(f)
		case "min_similarity":
			err = unit(&r.MinSimilarity)
		case "entity":
			r.EntityBoost = f
		case "artifact":
			r.ArtifactBoost = f
		case "category":
			r.CategoryBoost = f
		case "scope":
			r.ScopeBoost = f
		case "tag":
			r.TagBoost = f
		case "recency":
			err = unit(&r.RecencyWeight)
		case "superseded":
			err = unit(&r.Superseded)
		case "near_duplicate":
			err = unit(&r.NearDuplicate)
		default:
			return base, fmt.Errorf("ranking %q: unknown setting; use one of: %s", name, strings.Join(RankingSettings, ", "))
		}
		if err != nil {
			return base, err
		}
	}
	return r, nil
}
