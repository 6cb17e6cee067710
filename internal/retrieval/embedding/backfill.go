// Package embedding keeps the stored embeddings of memories current: it
// computes the embedding of every live memory that misses one for the
// configured embedder — new memories, changed ones, and all of them after a
// change of model — and stores it next to the memory
// (memory.EmbeddingStore). serve runs it in the background (Run), the
// reindex command runs one pass (Backfill).
//
// Writes never wait for the embedder: a memory is stored whether or not
// its embedding can be computed, and the Backfiller computes it once the
// embedder answers. It learns of writes by following the store's change
// feed (internal/changes.Follow) rather than by being called after each
// write, so it also sees the writes of other replicas and processes (the
// stdio MCP server on the same SQLite file), and a write made while it was
// stopped is found again at the next start: the feed is read from the
// beginning, and a missing embedding stays missing until computed.
package embedding

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codingbrain/codingbrain/internal/changes"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// Options configure a Backfiller. Zero values take defaults.
type Options struct {
	// Batch is how many memories are embedded per Embed call and stored per
	// transaction (default 64).
	Batch int
	// Every is how often the change feed is polled (changes.DefaultEvery).
	Every time.Duration
	// Retry is the first wait before embedding again after the embedder
	// was unavailable; it doubles up to MaxRetry (defaults 1s and 1m).
	Retry, MaxRetry time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
	// OnEmbedded, if set, is called by Run with the current embeddings of
	// memories as they are found or computed: every live memory's at
	// start (from the beginning of the change feed), then each changed
	// memory's. OnRemoved is called with the memories that no longer have
	// a current embedding: deleted, or changed and not yet embedded again.
	// Together they keep an in-process index equal to the stored current
	// embeddings. Calls come one at a time, from Run's goroutines, and
	// should return quickly.
	OnEmbedded func([]memory.Embedding)
	OnRemoved  func([]memory.MemoryKey)
}

// Backfiller computes missing embeddings. Backfill and Run may be called
// concurrently; both only ever add what is missing.
type Backfiller struct {
	store memory.EmbeddingStore
	emb   embed.Embedder
	model string
	o     Options
	log   *slog.Logger

	emitMu sync.Mutex

	ready    atomic.Bool
	pending  atomic.Bool
	embedded atomic.Int64
	lastErr  atomic.Pointer[string]
}

// New returns a Backfiller that keeps store's embeddings current for emb.
func New(store memory.EmbeddingStore, emb embed.Embedder, o Options) *Backfiller {
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backfiller{store: store, emb: emb, model: emb.Model(), o: o, log: log}
}

// Model is the embedder's model, whose embeddings the Backfiller keeps.
func (b *Backfiller) Model() string { return b.model }

// Status says how far the Backfiller is.
type Status struct {
	Model string `json:"model"`
	// Ready is true once a pass over every memory completed: from then on
	// every live memory has a current embedding but for the writes of the
	// last moments (and those the embedder refused).
	Ready bool `json:"ready"`
	// Pending is true while memories wait for an embedder that was
	// unavailable.
	Pending bool `json:"pending"`
	// Embedded counts the embeddings this Backfiller stored.
	Embedded  int64  `json:"embedded"`
	LastError string `json:"last_error,omitempty"`
}

// Status reports the Backfiller's progress; safe to call at any time.
func (b *Backfiller) Status() Status {
	s := Status{Model: b.model, Ready: b.ready.Load(), Pending: b.pending.Load(), Embedded: b.embedded.Load()}
	if e := b.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// Progress counts what a Backfill pass did so far.
type Progress struct {
	// Embedded memories now have a current embedding.
	Embedded int
	// Skipped memories changed or were deleted while they were embedded
	// (their new content is embedded later), or the embedder refused
	// their content (a 4xx answer; logged with the memory's id).
	Skipped int
}

// Backfill embeds every live memory that misses a current embedding, in
// key order, Batch at a time, each batch stored in one transaction, and
// calls progress (if not nil) after each batch. It stops at the first
// error: the embedder unavailable (wrapping embed.ErrUnavailable), the
// store failing, or ctx ending. What it stored stays stored, and since it
// only looks for what is missing, running it again continues where it
// stopped.
func (b *Backfiller) Backfill(ctx context.Context, progress func(Progress)) (Progress, error) {
	var p Progress
	var after memory.MemoryKey
	for {
		srcs, err := b.store.MissingEmbeddings(ctx, b.model, after, b.o.Batch)
		if err != nil {
			return p, err
		}
		if len(srcs) == 0 {
			return p, nil
		}
		after = srcs[len(srcs)-1].Key()
		stored, skipped, err := b.embedAndStore(ctx, srcs)
		p.Embedded += stored
		p.Skipped += skipped
		if err == nil {
			err = b.emit(ctx, keysOf(srcs), nil)
		}
		if progress != nil {
			progress(p)
		}
		if err != nil {
			return p, err
		}
	}
}

// embedAndStore embeds srcs and stores their embeddings. When the embedder
// refuses a batch (an error that is not embed.ErrUnavailable), each memory
// is tried alone and those refused are skipped.
func (b *Backfiller) embedAndStore(ctx context.Context, srcs []memory.EmbeddingSource) (stored, skipped int, err error) {
	texts := make([]string, len(srcs))
	for i, s := range srcs {
		texts[i] = s.Content
	}
	vecs, err := b.emb.Embed(ctx, texts)
	if err == nil && len(vecs) != len(srcs) {
		err = fmt.Errorf("embed: %d vectors for %d texts", len(vecs), len(srcs))
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, embed.ErrUnavailable) {
			return 0, 0, err
		}
		if len(srcs) == 1 {
			b.log.Warn("cannot embed memory; it stays without an embedding until reindex",
				"memory_id", srcs[0].MemoryID, "org_id", srcs[0].OrgID, "model", b.model, "err", err)
			return 0, 1, nil
		}
		for i := range srcs {
			n, k, err := b.embedAndStore(ctx, srcs[i:i+1])
			stored, skipped = stored+n, skipped+k
			if err != nil {
				return stored, skipped, err
			}
		}
		return stored, skipped, nil
	}
	now := b.o.Now()
	es := make([]memory.Embedding, len(srcs))
	for i, s := range srcs {
		es[i] = memory.Embedding{OrgID: s.OrgID, MemoryID: s.MemoryID, Model: b.model,
			ContentHash: s.ContentHash, Vector: vecs[i], UpdatedAt: now}
	}
	n, err := b.store.PutEmbeddings(ctx, es)
	if err != nil {
		return 0, 0, err
	}
	b.embedded.Add(int64(n))
	return n, len(es) - n, nil
}

// emit reads the current embeddings of keys and hands them to OnEmbedded,
// and keys without one, with removed, to OnRemoved.
func (b *Backfiller) emit(ctx context.Context, keys, removed []memory.MemoryKey) error {
	if b.o.OnEmbedded == nil && b.o.OnRemoved == nil {
		return nil
	}
	var cur []memory.Embedding
	if len(keys) > 0 {
		var err error
		if cur, err = b.store.Embeddings(ctx, b.model, keys); err != nil {
			return err
		}
	}
	if len(cur) < len(keys) {
		have := make(map[memory.MemoryKey]bool, len(cur))
		for _, e := range cur {
			have[memory.MemoryKey{OrgID: e.OrgID, ID: e.MemoryID}] = true
		}
		for _, k := range keys {
			if !have[k] {
				removed = append(removed, k)
			}
		}
	}
	b.emitMu.Lock()
	defer b.emitMu.Unlock()
	if len(cur) > 0 && b.o.OnEmbedded != nil {
		b.o.OnEmbedded(cur)
	}
	if len(removed) > 0 && b.o.OnRemoved != nil {
		b.o.OnRemoved(removed)
	}
	return nil
}

// Run keeps the embeddings current until ctx ends, and then returns
// ctx.Err(). It logs the stored models (a change of model is re-embedded
// here, in the background), embeds what is missing (Backfill), then
// follows feed from its beginning: each page's live memories that miss an
// embedding are embedded, and OnEmbedded and OnRemoved hear of every
// memory. While the embedder is unavailable, Run keeps following — writes
// go on and their memories wait — and retries a Backfill pass with a
// growing wait (Retry … MaxRetry) until one completes.
func (b *Backfiller) Run(ctx context.Context, feed memory.ChangeFeed) error {
	b.logModels(ctx)
	start := time.Now()
	if p, err := b.Backfill(ctx, b.logProgress(start)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.failed("embedding pass failed; retrying in the background", err, p)
	} else {
		b.ready.Store(true)
		if p.Embedded+p.Skipped > 0 {
			b.log.Info("embeddings current", "model", b.model, "embedded", p.Embedded, "skipped", p.Skipped,
				"took", time.Since(start).Round(time.Millisecond).String())
		}
	}

	var wg sync.WaitGroup
	wg.Go(func() { b.retry(ctx) })
	err := changes.Follow(ctx, feed, memory.ChangeCursor{}, b.o.Every, func(cs []memory.Change) error {
		return b.apply(ctx, cs)
	}, changes.OnError(func(err error, retryIn time.Duration) {
		b.log.Warn("embedding: reading the change feed failed", "err", err, "retry_in", retryIn.String())
	}))
	wg.Wait()
	return err
}

// logModels says which models the stored embeddings are of, loudly when
// another model than the configured one is there.
func (b *Backfiller) logModels(ctx context.Context) {
	models, err := b.store.EmbeddingModels(ctx)
	if err != nil {
		b.log.Warn("embedding: cannot count stored embeddings", "err", err)
		return
	}
	var others []string
	stale := 0
	for m, n := range models {
		if m != b.model {
			others = append(others, fmt.Sprintf("%s (%d)", m, n))
			stale += n
		}
	}
	slices.Sort(others)
	if len(others) > 0 {
		b.log.Warn("embedding model changed: memories embedded by another model are re-embedded in the background; "+
			"until that completes vector search covers only the memories already re-embedded "+
			"(codingbrain reindex does the same offline)",
			"model", b.model, "stored_models", others, "to_re_embed", stale, "current", models[b.model])
	}
}

// logProgress returns a progress callback that logs a long pass every
// 10 seconds.
func (b *Backfiller) logProgress(start time.Time) func(Progress) {
	last := start
	return func(p Progress) {
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			b.log.Info("embedding memories", "model", b.model, "embedded", p.Embedded, "skipped", p.Skipped,
				"elapsed", time.Since(start).Round(time.Second).String())
		}
	}
}

func (b *Backfiller) failed(msg string, err error, p Progress) {
	b.pending.Store(true)
	s := err.Error()
	b.lastErr.Store(&s)
	b.log.Warn(msg, "model", b.model, "err", err, "embedded", p.Embedded,
		"embedder_unavailable", errors.Is(err, embed.ErrUnavailable))
}

// retry runs Backfill passes while memories are pending, waiting Retry,
// then twice as long each time up to MaxRetry, until one completes.
func (b *Backfiller) retry(ctx context.Context) {
	wait := b.o.Retry
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !b.pending.Load() {
			wait = b.o.Retry
			continue
		}
		// Cleared first: a failure during the pass sets it again.
		b.pending.Store(false)
		p, err := b.Backfill(ctx, b.logProgress(time.Now()))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.failed("embedding retry failed", err, p)
			wait = min(2*wait, b.o.MaxRetry)
			continue
		}
		b.lastErr.Store(nil)
		b.ready.Store(true)
		if p.Embedded > 0 {
			b.log.Info("embedder answers again; pending memories embedded", "model", b.model, "embedded", p.Embedded)
		}
		wait = b.o.Retry
	}
}

// apply embeds the live memories of one page of changes that miss an
// embedding and tells OnEmbedded and OnRemoved about all of them. An
// unavailable embedder does not fail the page (the feed moves on; the
// memories are pending); a failing store does (Follow retries the page).
func (b *Backfiller) apply(ctx context.Context, cs []memory.Change) error {
	latest := make(map[memory.MemoryKey]memory.Change, len(cs))
	for _, c := range cs {
		k := memory.MemoryKey{OrgID: c.OrgID, ID: c.ID}
		if prev, ok := latest[k]; !ok || c.Seq > prev.Seq {
			latest[k] = c
		}
	}
	var live, deleted []memory.MemoryKey
	for k, c := range latest {
		if c.State == memory.StateDeleted {
			deleted = append(deleted, k)
		} else {
			live = append(live, k)
		}
	}
	less := func(x, y memory.MemoryKey) int {
		if x.Less(y) {
			return -1
		}
		if y.Less(x) {
			return 1
		}
		return 0
	}
	slices.SortFunc(live, less)
	for chunk := range slices.Chunk(live, memory.MaxEmbeddingKeys) {
		srcs, err := b.store.MissingEmbeddingsOf(ctx, b.model, chunk)
		if err != nil {
			return err
		}
		for batch := range slices.Chunk(srcs, b.o.Batch) {
			if b.pending.Load() {
				break // the retry pass will do them
			}
			if _, _, err := b.embedAndStore(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !errors.Is(err, embed.ErrUnavailable) {
					return err
				}
				b.failed("embedder unavailable; new memories wait for it", err, Progress{})
			}
		}
		if err := b.emit(ctx, chunk, nil); err != nil {
			return err
		}
	}
	if len(deleted) > 0 {
		return b.emit(ctx, nil, deleted)
	}
	return nil
}

func keysOf(srcs []memory.EmbeddingSource) []memory.MemoryKey {
	out := make([]memory.MemoryKey, len(srcs))
	for i, s := range srcs {
		out[i] = s.Key()
	}
	return out
}
