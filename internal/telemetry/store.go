package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// ObservedStore is a memory.Store that times every call into
// codingbrain_store_operation_duration_seconds{op}, counts failures into
// codingbrain_store_errors_total{op} and makes a span "store.<Op>" for it,
// then calls the store it wraps.
//
// It implements the optional capabilities memory.Service looks for with a
// type assertion — memory.Lookup, memory.GraphStore, memory.Transfer, and
// memory.Tiers through ObservedTieredStore when the store keeps tiers
// (postgres.Routed, PostgreSQL with read replicas, does not) — so wrapping
// hides none of them and claims none its store lacks; a test reads
// internal/memory and fails when the service starts asserting one the
// wrapper lacks. Give it to memory.Service
// only: the rest of the process (API keys, audit, the change feed,
// embeddings, backups) keeps using the store itself.
type ObservedStore struct {
	inner    memory.Store
	lookup   memory.Lookup
	graph    memory.GraphStore
	transfer memory.Transfer
	metrics  *Metrics
	tracer   trace.Tracer
}

// ObserveStore wraps s: in an ObservedTieredStore when s keeps tiers, else
// in an ObservedStore. When s lacks one of the capabilities ObservedStore
// implements, s is returned as it is (uninstrumented): a wrapper that
// claimed a capability its store lacks would break the service's checks.
func ObserveStore(s memory.Store, m *Metrics, tp trace.TracerProvider) memory.Store {
	l, lok := s.(memory.Lookup)
	g, gok := s.(memory.GraphStore)
	x, xok := s.(memory.Transfer)
	if !lok || !gok || !xok {
		return s
	}
	o := &ObservedStore{inner: s, lookup: l, graph: g, transfer: x, metrics: m, tracer: Tracer(tp)}
	if t, ok := s.(memory.Tiers); ok {
		return &ObservedTieredStore{ObservedStore: o, tiers: t}
	}
	return o
}

// ObservedTieredStore is the ObservedStore of a store that keeps hot and
// cold tiers: it adds memory.Tiers.
type ObservedTieredStore struct {
	*ObservedStore
	tiers memory.Tiers
}

var (
	_ memory.Store      = (*ObservedStore)(nil)
	_ memory.Lookup     = (*ObservedStore)(nil)
	_ memory.GraphStore = (*ObservedStore)(nil)
	_ memory.Tiers      = (*ObservedTieredStore)(nil)
)

// Unwrap returns the wrapped store.
func (o *ObservedStore) Unwrap() memory.Store { return o.inner }

// start begins a store call; the returned func ends it with its error.
func (o *ObservedStore) start(ctx context.Context, op string) (context.Context, func(error)) {
	ctx, span := o.tracer.Start(ctx, "store."+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("codingbrain.store.op", op)))
	t := time.Now()
	return ctx, func(err error) {
		failed := storeFailure(err)
		o.metrics.ObserveStore(op, time.Since(t), failed)
		if failed {
			span.RecordError(err)
			span.SetStatus(codes.Error, "store error")
		} else if err != nil {
			span.SetAttributes(attribute.String("codingbrain.store.result", resultOf(err)))
		}
		span.End()
	}
}

// storeFailure says whether err is a failure of the store rather than an
// answer about the data (not found, a conflict, invalid input, no access)
// or a caller that went away.
func storeFailure(err error) bool {
	var ve *memory.ValidationError
	switch {
	case err == nil,
		errors.Is(err, memory.ErrNotFound), errors.Is(err, memory.ErrConflict),
		errors.Is(err, memory.ErrForbidden), errors.Is(err, memory.ErrUnauthorized),
		errors.As(err, &ve),
		errors.Is(err, context.Canceled):
		return false
	}
	return true
}

func resultOf(err error) string {
	switch {
	case errors.Is(err, memory.ErrNotFound):
		return "not_found"
	case errors.Is(err, memory.ErrConflict):
		return "conflict"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "rejected"
}

// memory.Store

func (o *ObservedStore) Create(ctx context.Context, m memory.Memory, actor string) (stored memory.Memory, created bool, err error) {
	ctx, end := o.start(ctx, "Create")
	defer func() { end(err) }()
	return o.inner.Create(ctx, m, actor)
}

func (o *ObservedStore) Get(ctx context.Context, a memory.Access, id string) (m memory.Memory, err error) {
	ctx, end := o.start(ctx, "Get")
	defer func() { end(err) }()
	return o.inner.Get(ctx, a, id)
}

func (o *ObservedStore) Update(ctx context.Context, a memory.Access, id, actor, action string, change func(*memory.Memory) error) (m memory.Memory, err error) {
	ctx, end := o.start(ctx, "Update")
	defer func() { end(err) }()
	return o.inner.Update(ctx, a, id, actor, action, change)
}

func (o *ObservedStore) List(ctx context.Context, a memory.Access, q memory.ListQuery) (ms []memory.Memory, next string, err error) {
	ctx, end := o.start(ctx, "List")
	defer func() { end(err) }()
	return o.inner.List(ctx, a, q)
}

func (o *ObservedStore) Search(ctx context.Context, a memory.Access, q memory.SearchQuery) (hs []memory.Hit, err error) {
	ctx, end := o.start(ctx, "Search")
	defer func() { end(err) }()
	return o.inner.Search(ctx, a, q)
}

func (o *ObservedStore) History(ctx context.Context, a memory.Access, id string) (hs []memory.HistoryEntry, err error) {
	ctx, end := o.start(ctx, "History")
	defer func() { end(err) }()
	return o.inner.History(ctx, a, id)
}

func (o *ObservedStore) LogAccess(ctx context.Context, entries []memory.AccessEntry) (err error) {
	ctx, end := o.start(ctx, "LogAccess")
	defer func() { end(err) }()
	return o.inner.LogAccess(ctx, entries)
}

func (o *ObservedStore) Apps(ctx context.Context, a memory.Access) (as []memory.AppCount, err error) {
	ctx, end := o.start(ctx, "Apps")
	defer func() { end(err) }()
	return o.inner.Apps(ctx, a)
}

func (o *ObservedStore) Stats(ctx context.Context, a memory.Access) (st memory.Stats, err error) {
	ctx, end := o.start(ctx, "Stats")
	defer func() { end(err) }()
	return o.inner.Stats(ctx, a)
}

func (o *ObservedStore) Ping(ctx context.Context) (err error) {
	ctx, end := o.start(ctx, "Ping")
	defer func() { end(err) }()
	return o.inner.Ping(ctx)
}

// Close closes the wrapped store.
func (o *ObservedStore) Close() error { return o.inner.Close() }

// memory.Lookup

func (o *ObservedStore) Lookup(ctx context.Context, a memory.Access, f memory.Filter, ids []string) (ms []memory.Memory, err error) {
	ctx, end := o.start(ctx, "Lookup")
	defer func() { end(err) }()
	return o.lookup.Lookup(ctx, a, f, ids)
}

// memory.Tiers: moves are also counted in codingbrain_tier_moves_total.

func (o *ObservedTieredStore) MoveCold(ctx context.Context, untouchedSince time.Time, limit int) (n int, err error) {
	ctx, end := o.start(ctx, "MoveCold")
	defer func() { end(err) }()
	n, err = o.tiers.MoveCold(ctx, untouchedSince, limit)
	o.metrics.TierMoved(memory.TierCold, n)
	return n, err
}

func (o *ObservedTieredStore) Warm(ctx context.Context, a memory.Access, ids []string) (n int, err error) {
	ctx, end := o.start(ctx, "Warm")
	defer func() { end(err) }()
	n, err = o.tiers.Warm(ctx, a, ids)
	o.metrics.TierMoved(memory.TierHot, n)
	return n, err
}

func (o *ObservedTieredStore) TierCounts(ctx context.Context) (hot, cold int64, err error) {
	ctx, end := o.start(ctx, "TierCounts")
	defer func() { end(err) }()
	hot, cold, err = o.tiers.TierCounts(ctx)
	if err == nil {
		o.metrics.SetTierCounts(hot, cold)
	}
	return hot, cold, err
}

// memory.GraphStore

func (o *ObservedStore) Entities(ctx context.Context, a memory.Access, q memory.EntityQuery) (es []memory.Entity, err error) {
	ctx, end := o.start(ctx, "Entities")
	defer func() { end(err) }()
	return o.graph.Entities(ctx, a, q)
}

func (o *ObservedStore) Edges(ctx context.Context, a memory.Access, q memory.EdgeQuery) (es []memory.Edge, err error) {
	ctx, end := o.start(ctx, "Edges")
	defer func() { end(err) }()
	return o.graph.Edges(ctx, a, q)
}

func (o *ObservedStore) RelatedMemories(ctx context.Context, a memory.Access, id string, limit int) (rs []memory.RelatedMemory, err error) {
	ctx, end := o.start(ctx, "RelatedMemories")
	defer func() { end(err) }()
	return o.graph.RelatedMemories(ctx, a, id, limit)
}

func (o *ObservedStore) Aggregate(ctx context.Context, a memory.Access, q memory.AggregateQuery) (bs []memory.Bucket, err error) {
	ctx, end := o.start(ctx, "Aggregate")
	defer func() { end(err) }()
	return o.graph.Aggregate(ctx, a, q)
}

func (o *ObservedStore) TagCooccurrence(ctx context.Context, a memory.Access, tag string, limit int) (ps []memory.TagPair, err error) {
	ctx, end := o.start(ctx, "TagCooccurrence")
	defer func() { end(err) }()
	return o.graph.TagCooccurrence(ctx, a, tag, limit)
}

func (o *ObservedStore) LinkMemories(ctx context.Context, a memory.Access, l memory.MemoryLink) (stored memory.MemoryLink, created bool, err error) {
	ctx, end := o.start(ctx, "LinkMemories")
	defer func() { end(err) }()
	return o.graph.LinkMemories(ctx, a, l)
}

func (o *ObservedStore) GraphNeighbours(ctx context.Context, a memory.Access, seeds []string, f memory.Filter, limit int) (hs []memory.Hit, err error) {
	ctx, end := o.start(ctx, "GraphNeighbours")
	defer func() { end(err) }()
	return o.graph.GraphNeighbours(ctx, a, seeds, f, limit)
}
