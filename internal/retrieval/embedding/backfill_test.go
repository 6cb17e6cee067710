package embedding_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval/embedding"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// fakeEmbedder wraps the builtin embedder under another model name, and
// can be made unavailable or refuse texts containing "poison".
type fakeEmbedder struct {
	model string
	b     *embed.Builtin
	down  atomic.Bool
	calls atomic.Int32
}

func newFake(model string) *fakeEmbedder { return &fakeEmbedder{model: model, b: embed.NewBuiltin()} }

func (f *fakeEmbedder) Model() string { return f.model }
func (f *fakeEmbedder) Dim() int      { return f.b.Dim() }
func (f *fakeEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, fmt.Errorf("fake: %w", embed.ErrUnavailable)
	}
	for _, t := range texts {
		if strings.Contains(t, "poison") {
			return nil, errors.New("fake: status 400: input rejected")
		}
	}
	return f.b.Embed(ctx, texts)
}

type world struct {
	t     *testing.T
	store *sqlite.Store
	svc   *memory.Service
	ctx   context.Context
}

func newWorld(t *testing.T) *world {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p := auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"org:acme"}}
	return &world{t: t, store: s, svc: memory.NewService(s, memory.Options{}), ctx: auth.WithPrincipal(t.Context(), p)}
}

func (w *world) add(content string) memory.Memory {
	w.t.Helper()
	m, _, err := w.svc.Add(w.ctx, memory.Input{Content: content, Scope: "org"})
	if err != nil {
		w.t.Fatalf("add %q: %v", content, err)
	}
	return m
}

func (w *world) missing(model string) int {
	w.t.Helper()
	n, err := w.store.CountMissingEmbeddings(w.t.Context(), model)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10s", what)
}

func TestBackfillAndModelChange(t *testing.T) {
	w := newWorld(t)
	for i := range 150 {
		w.add(fmt.Sprintf("memory number %d about the billing service", i))
	}
	a := newFake("model-a")
	bf := embedding.New(w.store, a, embedding.Options{Batch: 32})
	var calls []embedding.Progress
	p, err := bf.Backfill(t.Context(), func(p embedding.Progress) { calls = append(calls, p) })
	if err != nil || p.Embedded != 150 || p.Skipped != 0 || len(calls) != 5 {
		t.Fatalf("first pass: %+v, %v, %d progress calls; want 150 embedded in 5 batches", p, err, len(calls))
	}
	if w.missing("model-a") != 0 {
		t.Fatal("memories still miss an embedding")
	}
	a.calls.Store(0)
	if p, err := bf.Backfill(t.Context(), nil); err != nil || p != (embedding.Progress{}) || a.calls.Load() != 0 {
		t.Errorf("second pass: %+v, %v, %d embed calls; want nothing to do", p, err, a.calls.Load())
	}

	// Model B: every memory misses its embedding; a pass cancelled midway
	// keeps what it stored, and the next pass does only the rest.
	b := newFake("model-b")
	ctx, cancel := context.WithCancel(t.Context())
	bfb := embedding.New(w.store, b, embedding.Options{Batch: 40})
	p, err = bfb.Backfill(ctx, func(p embedding.Progress) {
		if p.Embedded >= 80 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || p.Embedded != 80 {
		t.Fatalf("cancelled pass: %+v, %v; want 80 embedded and context.Canceled", p, err)
	}
	if n := w.missing("model-b"); n != 70 {
		t.Fatalf("after the cancelled pass %d miss model B, want 70", n)
	}
	p, err = bfb.Backfill(t.Context(), nil)
	if err != nil || p.Embedded != 70 {
		t.Fatalf("resumed pass: %+v, %v; want the 70 left", p, err)
	}
	models, err := w.store.EmbeddingModels(t.Context())
	if err != nil || len(models) != 1 || models["model-b"] != 150 {
		t.Errorf("models after the change: %v, %v; want only model-b, 150", models, err)
	}
}

func TestBackfillSkipsRefusedAndStops(t *testing.T) {
	w := newWorld(t)
	for i := range 10 {
		w.add(fmt.Sprintf("fine memory %d", i))
	}
	poison := w.add("a poison memory the embedder refuses")
	f := newFake("m")
	bf := embedding.New(w.store, f, embedding.Options{Batch: 4})
	p, err := bf.Backfill(t.Context(), nil)
	if err != nil || p.Embedded != 10 || p.Skipped != 1 {
		t.Fatalf("pass with a refused memory: %+v, %v; want 10 embedded, 1 skipped", p, err)
	}
	srcs, err := w.store.MissingEmbeddings(t.Context(), "m", memory.MemoryKey{}, 10)
	if err != nil || len(srcs) != 1 || srcs[0].MemoryID != poison.ID {
		t.Errorf("missing after the pass: %+v, %v; want only the refused one", srcs, err)
	}

	f.down.Store(true)
	w.add("written while the embedder is down")
	p, err = bf.Backfill(t.Context(), nil)
	if !errors.Is(err, embed.ErrUnavailable) || p.Embedded != 0 {
		t.Errorf("pass with the embedder down: %+v, %v; want ErrUnavailable", p, err)
	}
}

// sink records what Run reports, as an in-process index would hold it.
type sink struct {
	mu  sync.Mutex
	vec map[string][]float32
}

func (s *sink) put(es []memory.Embedding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		s.vec[e.MemoryID] = e.Vector
	}
}

func (s *sink) remove(ks []memory.MemoryKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range ks {
		delete(s.vec, k.ID)
	}
}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.vec {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func TestRunFollowsWritesAndOutages(t *testing.T) {
	w := newWorld(t)
	old := w.add("stored before the start")
	f := newFake("m")
	idx := &sink{vec: map[string][]float32{}}
	bf := embedding.New(w.store, f, embedding.Options{Every: 10 * time.Millisecond, Retry: 20 * time.Millisecond,
		MaxRetry: 50 * time.Millisecond, OnEmbedded: idx.put, OnRemoved: idx.remove})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- bf.Run(ctx, w.store) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	}()

	eventually(t, "the memory stored before the start is embedded and reported", func() bool {
		return bf.Status().Ready && slices.Equal(idx.ids(), []string{old.ID})
	})

	// A new write is embedded and reported.
	m := w.add("written while running")
	eventually(t, "a new memory is embedded", func() bool { return w.missing("m") == 0 && len(idx.ids()) == 2 })

	// The embedder goes down: writes still succeed and wait.
	f.down.Store(true)
	var waiting []string
	for i := range 3 {
		waiting = append(waiting, w.add(fmt.Sprintf("written during the outage %d", i)).ID)
	}
	eventually(t, "the outage is noticed", func() bool { return bf.Status().Pending })
	if n := w.missing("m"); n != 3 {
		t.Fatalf("%d memories miss an embedding during the outage, want 3", n)
	}
	// A changed memory's old vector leaves the index until re-embedded.
	if _, err := w.svc.Update(w.ctx, m.ID, memory.Patch{Content: ptr("written while running, then changed")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changed memory leaves the index", func() bool { return !slices.Contains(idx.ids(), m.ID) })

	// It comes back: everything is embedded without a new write.
	f.down.Store(false)
	eventually(t, "pending memories are embedded after the outage", func() bool {
		s := bf.Status()
		return w.missing("m") == 0 && !s.Pending && len(idx.ids()) == 5
	})
	for _, id := range append(waiting, m.ID) {
		if !slices.Contains(idx.ids(), id) {
			t.Errorf("memory %s is not in the index after the outage", id)
		}
	}

	// A delete leaves the index.
	if _, err := w.svc.Delete(w.ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a deleted memory leaves the index", func() bool { return !slices.Contains(idx.ids(), old.ID) })
	if s := bf.Status(); s.Embedded != 6 || s.Model != "m" {
		t.Errorf("status %+v; want 6 embedded (5 memories, one twice)", s)
	}
}

func ptr[T any](v T) *T { return &v }
