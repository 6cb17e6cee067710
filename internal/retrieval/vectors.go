// Package retrieval keeps the in-process indexes of hybrid search — the
// vector index and the lexical index — equal to the system of record, on
// every replica, and answers the service's vector and lexical queries
// (memory.Vectors, memory.LexicalIndex).
//
// The index (internal/retrieval/vectorindex) holds the current embedding
// of every live memory of the hot tier (memory.Tiers: cold memories stay
// in the store only) for the configured embedder's model, with the
// memory's access entity, state and the other fields filters read. It is
// loaded at start by reading the store's change feed from the beginning,
// and then follows the feed (internal/changes.Follow): every page of
// changes is read back from the store — the memories and their current
// embeddings — so the index takes the store's present state, whatever
// replica or process wrote it. Writes made through this process reach the
// index at once (Written), before the feed reports them; and since a
// memory's embedding may be stored a moment after the memory itself (by
// this replica's write, or by the backfill of any replica), memories found
// without one are read again when the backfill reports it (Embedded).
package retrieval

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codingbrain/codingbrain/internal/changes"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval/lexindex"
	"github.com/codingbrain/codingbrain/internal/retrieval/vectorindex"
)

// Source is what Vectors reads: the change feed, the stored embeddings,
// and memories by key across orgs. Both stores implement it; like the
// feed, it is internal and never exposed to callers.
type Source interface {
	memory.ChangeFeed
	memory.EmbeddingStore
	// MemoriesOf returns the memories named by keys (at most
	// memory.MaxEmbeddingKeys), in any state; missing ones are left out.
	MemoriesOf(ctx context.Context, keys []memory.MemoryKey) ([]memory.Memory, error)
}

// Options configure Vectors. Zero values take defaults.
type Options struct {
	// Every is how often the change feed is polled (changes.DefaultEvery).
	Every time.Duration
	// Recheck is how often memories written here, and memories whose
	// embedding was reported stored, are read back (default 500ms).
	Recheck time.Duration
	// StatusEvery is how often the stored embeddings' models are counted
	// to tell whether the vectors are current, and live memories still
	// without an embedding are looked for again (default 10s): in a
	// process without a backfill of its own, nobody reports them.
	StatusEvery time.Duration
	// Workers is how many goroutines one large index search uses.
	Workers int
	Logger  *slog.Logger
}

// Vectors is the in-process side of retrieval: the embedder, the index
// over the stored embeddings of its model, and the lexical index over every
// live memory. It implements memory.Vectors and memory.LexicalIndex.
type Vectors struct {
	emb   embed.Embedder
	model string
	src   Source
	log   *slog.Logger
	o     Options

	// ix is the index, made once its dimension is known: the embedder's
	// when it knows it, else that of the first vector seen (an HTTP
	// embedder learns its dimension from its first answer).
	ixMu sync.Mutex
	ix   atomic.Pointer[vectorindex.Index]

	// lex is the lexical index; loaded says Load has filled it.
	lex    *lexindex.Index
	loaded atomic.Bool

	cursor memory.ChangeCursor // Load's and Run's; not shared

	// feedMu serializes applying changes: the follower's pages and the
	// catch-up of searches. tail is where a catch-up reads the feed from:
	// the follower's position or a later one; caughtUp is when the last
	// catch-up began reading.
	feedMu   sync.Mutex
	tail     memory.ChangeCursor
	caughtUp time.Time

	mu sync.Mutex
	// recheck holds memories to read back from the store at the next
	// tick: written here (the store may hold a newer state than the one
	// Written saw) or reported embedded while not in the index.
	recheck map[memory.MemoryKey]bool
	// missing holds live memories without a current embedding.
	missing map[memory.MemoryKey]bool

	status atomic.Pointer[status]
}

type status struct {
	ok     bool
	reason string
}

var (
	_ memory.Vectors      = (*Vectors)(nil)
	_ memory.LexicalIndex = (*Vectors)(nil)
)

// New returns Vectors for emb's model over src, with an empty index: call
// Load, then Run.
func New(emb embed.Embedder, src Source, o Options) *Vectors {
	if o.Recheck <= 0 {
		o.Recheck = 500 * time.Millisecond
	}
	if o.StatusEvery <= 0 {
		o.StatusEvery = 10 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Vectors{emb: emb, model: emb.Model(), src: src, log: log, o: o, lex: lexindex.New(),
		recheck: map[memory.MemoryKey]bool{}, missing: map[memory.MemoryKey]bool{}}
	if d := emb.Dim(); d > 0 {
		v.indexFor(d)
	}
	v.status.Store(&status{reason: "the vector index is loading"})
	return v
}

// index is the index, or nil before its dimension is known.
func (v *Vectors) index() *vectorindex.Index { return v.ix.Load() }

// indexFor returns the index, making it for vectors of dim dimensions if
// there is none yet.
func (v *Vectors) indexFor(dim int) *vectorindex.Index {
	if ix := v.ix.Load(); ix != nil {
		return ix
	}
	v.ixMu.Lock()
	defer v.ixMu.Unlock()
	if ix := v.ix.Load(); ix != nil {
		return ix
	}
	var opts []vectorindex.Option
	if v.o.Workers > 0 {
		opts = append(opts, vectorindex.Workers(v.o.Workers))
	}
	ix := vectorindex.New(dim, opts...)
	v.ix.Store(ix)
	return ix
}

// upsert puts m's vector in the index.
func (v *Vectors) upsert(m memory.Memory, vec []float32) error {
	return v.indexFor(len(vec)).Upsert(m, vec)
}

// Model is the embedder's model, whose vectors the index holds.
func (v *Vectors) Model() string { return v.model }

// Len is how many vectors the index holds.
func (v *Vectors) Len() int {
	if ix := v.index(); ix != nil {
		return ix.Len()
	}
	return 0
}

// Bytes estimates the memory the index holds.
func (v *Vectors) Bytes() int64 {
	if ix := v.index(); ix != nil {
		return ix.Bytes()
	}
	return 0
}

// Close releases the index. v must not be used after.
func (v *Vectors) Close() {
	v.loaded.Store(false)
	if ix := v.index(); ix != nil {
		ix.Close()
	}
}

// Load reads the change feed from the beginning until it has caught up,
// putting every live memory's current embedding in the index, and logs how
// many and how long it took.
func (v *Vectors) Load(ctx context.Context) error {
	start := time.Now()
	limit := changes.PageLimit
	for {
		cs, next, err := v.src.Changes(ctx, v.cursor, limit)
		if err != nil {
			return fmt.Errorf("load vector index: %w", err)
		}
		if len(cs) > 0 {
			if err := v.apply(ctx, cs); err != nil {
				return fmt.Errorf("load vector index: %w", err)
			}
		}
		full, progress := len(cs) >= limit, next.Seq > v.cursor.Seq
		v.cursor = next
		if !full {
			break
		}
		if !progress {
			limit *= 2 // see changes.Follow: rows to re-read fill the page
		}
	}
	v.refreshStatus(ctx)
	dims := 0
	if ix := v.index(); ix != nil {
		dims = ix.Dim()
	}
	v.tail = v.cursor
	v.loaded.Store(true)
	v.log.Info("vector index loaded", "model", v.model, "dims", dims, "memories", v.Len(),
		"without_embedding", v.missingCount(), "mib", v.Bytes()>>20,
		"lexical_memories", v.lex.Len(), "lexical_mib", v.lex.Bytes()>>20,
		"took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// Run follows the change feed from where Load stopped until ctx ends, and
// then returns ctx.Err(). It also reads back the memories Written and
// Embedded named, and recounts the stored models to tell whether the
// vectors are current.
func (v *Vectors) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { v.tick(ctx) })
	err := changes.Follow(ctx, followed{v}, v.cursor, v.o.Every, func(cs []memory.Change) error {
		v.feedMu.Lock()
		defer v.feedMu.Unlock()
		return v.apply(ctx, cs)
	}, changes.OnError(func(err error, retryIn time.Duration) {
		v.log.Warn("vector index: following the change feed failed", "err", err, "retry_in", retryIn.String())
	}))
	wg.Wait()
	return err
}

// followed is the change feed as Run's follower reads it: each read from
// a cursor says that every change before it has been applied, so that a
// catch-up starts from there.
type followed struct{ v *Vectors }

func (f followed) Changes(ctx context.Context, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error) {
	f.v.feedMu.Lock()
	if after.Seq > f.v.tail.Seq {
		f.v.tail = after
	}
	f.v.feedMu.Unlock()
	return f.v.src.Changes(ctx, after, limit)
}

// catchUp applies the changes committed since the follower's last read,
// up to a page of them, so that a search sees every write committed before
// it began — by this replica or any other — without waiting for the next
// poll: one read of the feed, which finds nothing when nothing was
// written. Searches that wait for a catch-up which began after they did
// take its result instead of reading again. A failure leaves the index as
// it was (the follower retries).
func (v *Vectors) catchUp(ctx context.Context) {
	start := time.Now()
	v.feedMu.Lock()
	defer v.feedMu.Unlock()
	if v.caughtUp.After(start) {
		return
	}
	began := time.Now()
	cs, next, err := v.src.Changes(ctx, v.tail, changes.PageLimit)
	if err != nil {
		return
	}
	if len(cs) > 0 {
		if err := v.apply(ctx, cs); err != nil {
			return
		}
	}
	v.tail, v.caughtUp = next, began
}

// tick reads back the memories to recheck, and refreshes the status.
func (v *Vectors) tick(ctx context.Context) {
	recheck := time.NewTicker(v.o.Recheck)
	defer recheck.Stop()
	st := time.NewTicker(v.o.StatusEvery)
	defer st.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-recheck.C:
			v.mu.Lock()
			keys := slices.Collect(maps.Keys(v.recheck))
			clear(v.recheck)
			v.mu.Unlock()
			if len(keys) == 0 {
				continue
			}
			if err := v.refresh(ctx, keys); err != nil && ctx.Err() == nil {
				v.log.Warn("vector index: reading memories back failed; retrying", "err", err, "memories", len(keys))
				v.mu.Lock()
				for _, k := range keys {
					v.recheck[k] = true
				}
				v.mu.Unlock()
			}
		case <-st.C:
			v.mu.Lock()
			for k := range v.missing {
				if len(v.recheck) >= maxMissingRecheck {
					break
				}
				v.recheck[k] = true
			}
			v.mu.Unlock()
			v.refreshStatus(ctx)
		}
	}
}

// maxMissingRecheck bounds how many memories without an embedding one
// status tick reads back (map order picks them, so all are reached).
const maxMissingRecheck = 5000

// apply takes one page of changes: deleted memories and memories moved to
// the cold tier leave the indexes, the others are read back.
func (v *Vectors) apply(ctx context.Context, cs []memory.Change) error {
	latest := make(map[memory.MemoryKey]memory.Change, len(cs))
	for _, c := range cs {
		k := memory.MemoryKey{OrgID: c.OrgID, ID: c.ID}
		if prev, ok := latest[k]; !ok || c.Seq > prev.Seq {
			latest[k] = c
		}
	}
	var live []memory.MemoryKey
	for k, c := range latest {
		if c.State == memory.StateDeleted || c.Cold {
			v.remove(k, false)
			v.lex.Remove(k.OrgID, k.ID)
		} else {
			live = append(live, k)
		}
	}
	return v.refresh(ctx, live)
}

// refresh reads the memories and current embeddings of keys and makes the
// index hold exactly that: the memory with its embedding, or nothing.
func (v *Vectors) refresh(ctx context.Context, keys []memory.MemoryKey) error {
	slices.SortFunc(keys, func(a, b memory.MemoryKey) int {
		if a.Less(b) {
			return -1
		}
		if b.Less(a) {
			return 1
		}
		return 0
	})
	for chunk := range slices.Chunk(keys, memory.MaxEmbeddingKeys) {
		ms, err := v.src.MemoriesOf(ctx, chunk)
		if err != nil {
			return err
		}
		es, err := v.src.Embeddings(ctx, v.model, chunk)
		if err != nil {
			return err
		}
		vecs := make(map[memory.MemoryKey]memory.Embedding, len(es))
		for _, e := range es {
			vecs[memory.MemoryKey{OrgID: e.OrgID, ID: e.MemoryID}] = e
		}
		found := make(map[memory.MemoryKey]bool, len(ms))
		for _, m := range ms {
			k := memory.MemoryKey{OrgID: m.OrgID, ID: m.ID}
			found[k] = true
			if m.Cold { // the indexes hold the hot tier only
				v.remove(k, false)
				v.lex.Remove(k.OrgID, k.ID)
				continue
			}
			v.lex.Upsert(m) // a deleted memory leaves it
			e, ok := vecs[k]
			switch {
			case m.State == memory.StateDeleted:
				v.remove(k, false)
			case ok && e.ContentHash == m.ContentHash:
				if err := v.upsert(m, e.Vector); err != nil {
					v.log.Warn("vector index: embedding not indexed", "memory_id", m.ID, "err", err)
					v.remove(k, true)
					continue
				}
				v.setMissing(k, false)
			default:
				v.remove(k, true) // changed since embedded, or never embedded yet
			}
		}
		for _, k := range chunk {
			if !found[k] {
				v.remove(k, false) // purged
				v.lex.Remove(k.OrgID, k.ID)
			}
		}
	}
	return nil
}

// remove takes k out of the index; missing says whether it is a live
// memory waiting for an embedding.
func (v *Vectors) remove(k memory.MemoryKey, missing bool) {
	if ix := v.index(); ix != nil {
		ix.Remove(k.OrgID, k.ID)
	}
	v.setMissing(k, missing)
}

func (v *Vectors) setMissing(k memory.MemoryKey, missing bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if missing {
		v.missing[k] = true
	} else {
		delete(v.missing, k)
	}
}

func (v *Vectors) missingCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.missing)
}

// refreshStatus decides whether the vectors are current: not while the
// store holds embeddings of another model (a change of model being
// re-embedded), nor while more than 5% of the live memories wait for an
// embedding.
func (v *Vectors) refreshStatus(ctx context.Context) {
	models, err := v.src.EmbeddingModels(ctx)
	if err != nil {
		if ctx.Err() == nil {
			v.log.Warn("vector index: cannot count stored embeddings", "err", err)
		}
		return
	}
	others := 0
	for m, n := range models {
		if m != v.model {
			others += n
		}
	}
	missing := v.missingCount()
	live := v.Len() + missing
	st := &status{ok: true}
	switch {
	case others > 0:
		st = &status{reason: fmt.Sprintf("the embedding model changed to %s and %d memories still have vectors of another model "+
			"(they are being re-embedded; codingbrain reindex does it at once)", v.model, others)}
	case missing > 10 && missing*20 > live:
		st = &status{reason: fmt.Sprintf("%d of %d memories are not embedded yet (the backfill is under way)", missing, live)}
	}
	if prev := v.status.Swap(st); prev.ok != st.ok {
		if st.ok {
			v.log.Info("vector index current", "model", v.model, "memories", v.Len())
		} else {
			v.log.Warn("vector search degraded", "reason", st.reason)
		}
	}
}

// Embed returns the vector of text.
func (v *Vectors) Embed(ctx context.Context, text string) ([]float32, error) {
	vecs, err := v.emb.Embed(ctx, []string{text})
	if err != nil {
		return nil, err
	}
	if len(vecs) != 1 || len(vecs[0]) == 0 {
		return nil, fmt.Errorf("embed: %s returned %d vectors for 1 text", v.model, len(vecs))
	}
	if ix := v.index(); ix != nil && ix.Dim() != len(vecs[0]) {
		return nil, fmt.Errorf("embed: %s returned %d dimensions, the index holds %d", v.model, len(vecs[0]), ix.Dim())
	}
	return vecs[0], nil
}

// Current reports whether the index holds current vectors for (nearly)
// every memory, and if not why.
func (v *Vectors) Current() (bool, string) {
	st := v.status.Load()
	return st.ok, st.reason
}

// Nearest searches the index; see memory.Vectors.
func (v *Vectors) Nearest(_ context.Context, a memory.Access, f memory.Filter, vec []float32, k int) ([]memory.VectorHit, error) {
	ix := v.index()
	if ix == nil {
		return []memory.VectorHit{}, nil
	}
	hits, _, err := ix.Search(a, f, vec, k)
	if err != nil {
		return nil, err
	}
	out := make([]memory.VectorHit, len(hits))
	for i, h := range hits {
		out[i] = memory.VectorHit{ID: h.ID, Score: float64(h.Score)}
	}
	return out, nil
}

// Lexical searches the lexical index, after catching up with the change
// feed; see memory.LexicalIndex. It is not ready until Load has filled it.
func (v *Vectors) Lexical(ctx context.Context, a memory.Access, f memory.Filter, text string, k int) ([]memory.VectorHit, bool) {
	if !v.loaded.Load() {
		return nil, false
	}
	v.catchUp(ctx)
	hits, _ := v.lex.Search(a, f, text, k)
	out := make([]memory.VectorHit, len(hits))
	for i, h := range hits {
		out[i] = memory.VectorHit{ID: h.ID, Score: h.Score}
	}
	return out, true
}

// LexicalLen is how many memories the lexical index holds.
func (v *Vectors) LexicalLen() int { return v.lex.Len() }

// LexicalBytes estimates the memory the lexical index holds.
func (v *Vectors) LexicalBytes() int64 { return v.lex.Bytes() }

// putTimeout bounds storing the embedding of a memory written here; the
// backfill stores it if this does not.
const putTimeout = 2 * time.Second

// Written updates the index for a memory this process has just written,
// stores its embedding when it has a new one, and has it read back at the
// next tick; see memory.Vectors.
func (v *Vectors) Written(ctx context.Context, m memory.Memory, vec []float32, contentChanged bool) {
	k := memory.MemoryKey{OrgID: m.OrgID, ID: m.ID}
	v.lex.Upsert(m) // a deleted memory leaves it
	switch {
	case m.State == memory.StateDeleted:
		v.remove(k, false)
	case contentChanged && vec != nil:
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), putTimeout)
		_, err := v.src.PutEmbeddings(pctx, []memory.Embedding{{OrgID: m.OrgID, MemoryID: m.ID, Model: v.model,
			ContentHash: m.ContentHash, Vector: vec}})
		cancel()
		if err != nil {
			v.log.Warn("vector index: storing the embedding of a new memory failed; the backfill stores it",
				"memory_id", m.ID, "err", err)
		}
		if err := v.upsert(m, vec); err != nil {
			v.log.Warn("vector index: embedding not indexed", "memory_id", m.ID, "err", err)
		} else {
			v.setMissing(k, false)
		}
	case contentChanged:
		v.remove(k, true)
	default:
		if ix := v.index(); ix == nil || !ix.SetFields(m) {
			v.setMissing(k, true)
		}
	}
	v.mu.Lock()
	v.recheck[k] = true
	v.mu.Unlock()
}

// Embedded is the backfill's report of stored current embeddings
// (embedding.Options.OnEmbedded): memories not in the index are read back
// at the next tick. (One in the index is current or will be: the change
// that made its vector stale is on the feed and is read back after it.)
func (v *Vectors) Embedded(es []memory.Embedding) {
	if len(es) == 0 || es[0].Model != v.model {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range es {
		if ix := v.index(); ix == nil || !ix.Has(e.OrgID, e.MemoryID) {
			v.recheck[memory.MemoryKey{OrgID: e.OrgID, ID: e.MemoryID}] = true
		}
	}
}

// Removed is the backfill's report of memories without a current
// embedding (embedding.Options.OnRemoved); they are read back at the next
// tick.
func (v *Vectors) Removed(keys []memory.MemoryKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, k := range keys {
		v.recheck[k] = true
	}
}
