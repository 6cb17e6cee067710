package telemetry_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// BenchmarkObservedStore measures what observing the store costs a read
// of one memory by id among 500 on SQLite (a cheap call, so that the
// wrapper's cost shows): the store alone, observed with tracing off
// (metrics only), and observed with tracing on (every span recorded and
// handed to an exporter that drops it).
func BenchmarkObservedStore(b *testing.B) {
	ctx := b.Context()
	inner, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { inner.Close() })
	pctx := principalCtx(ctx)
	seed := memory.NewService(inner, memory.Options{})
	words := []string{"deploy", "release", "cache", "schema", "index", "queue", "token", "backup", "search", "graph"}
	var id string
	for i := range 500 {
		c := fmt.Sprintf("memory %d: the %s step uses the %s and the %s", i, words[i%10], words[(i/10)%10], words[(i/100)%10])
		mem, _, err := seed.Add(pctx, memory.Input{Content: c, Category: "workflow"})
		if err != nil {
			b.Fatal(err)
		}
		id = mem.ID
	}
	m, err := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.Build{})
	if err != nil {
		b.Fatal(err)
	}
	stores := []struct {
		name  string
		store memory.Store
	}{
		{"plain", inner},
		{"observed-tracing-off", telemetry.ObserveStore(inner, m, nil)},
		{"observed-tracing-on", telemetry.ObserveStore(inner, m, telemetry.NewTestTracing(tracetest.NewNoopExporter()).Provider)},
	}
	for _, s := range stores {
		svc := memory.NewService(s.store, memory.Options{})
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Get(pctx, id, memory.ViaREST); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
