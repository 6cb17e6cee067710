package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/embed"
)

// ObservedEmbedder is an embed.Embedder that times every Embed call into
// codingbrain_embedder_request_duration_seconds, counts failures into
// codingbrain_embedder_errors_total and makes a span "embedder.Embed" with
// the model and the number of texts.
type ObservedEmbedder struct {
	inner   embed.Embedder
	metrics *Metrics
	tracer  trace.Tracer
}

var _ embed.Embedder = (*ObservedEmbedder)(nil)

// ObserveEmbedder wraps e.
func ObserveEmbedder(e embed.Embedder, m *Metrics, tp trace.TracerProvider) *ObservedEmbedder {
	return &ObservedEmbedder{inner: e, metrics: m, tracer: Tracer(tp)}
}

// Unwrap returns the wrapped embedder (to reach its own methods, such as
// embed.HTTP's State).
func (o *ObservedEmbedder) Unwrap() embed.Embedder { return o.inner }

// Embed implements embed.Embedder.
func (o *ObservedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	ctx, span := o.tracer.Start(ctx, "embedder.Embed", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("codingbrain.embedder.model", o.inner.Model()), attribute.Int("codingbrain.embedder.texts", len(texts))))
	defer span.End()
	t := time.Now()
	vs, err := o.inner.Embed(ctx, texts)
	failed := err != nil && !errors.Is(err, context.Canceled)
	o.metrics.ObserveEmbedder(time.Since(t), failed)
	if failed {
		span.RecordError(err)
		span.SetStatus(codes.Error, "embedder error")
	}
	return vs, err
}

// Model implements embed.Embedder.
func (o *ObservedEmbedder) Model() string { return o.inner.Model() }

// Dim implements embed.Embedder.
func (o *ObservedEmbedder) Dim() int { return o.inner.Dim() }
