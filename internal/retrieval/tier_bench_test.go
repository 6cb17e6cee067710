package retrieval_test

// BenchmarkTiers: the same memories (RETRIEVAL_BENCH_N, default 100,000,
// seeded as BenchmarkRetrieval seeds them, on SQLite and on PostgreSQL)
// all in the hot tier, then with the oldest 90% moved to the cold tier by
// the tiering job (memory.RunTiering): for each, the in-process indexes' sizes, the Go heap
// in use after a GC with the indexes loaded, and hot hybrid search p50/p99
// for a principal who sees the whole org and for a team member.
//
//	go test ./internal/retrieval -run '^$' -bench Tiers -benchtime 200x -timeout 30m
//
// (-bench 'Tiers/store=sqlite' or 'Tiers/store=postgres' picks one store.)
//
// The searches log access rows, which count as touches: the memories they
// returned during the all-hot run stay hot, so slightly fewer than 90%
// move ("cold" reports how many did).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

func BenchmarkTiers(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run("store="+kind, func(b *testing.B) { benchTiers(b, kind) })
	}
}

func benchTiers(b *testing.B, kind string) {
	w := newWorld(b, kind)
	n := benchN()
	measure := func(b *testing.B, wantCold bool) {
		v, took := w.load(b)
		defer v.Close()
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		hot, cold, err := w.st.(memory.Tiers).TierCounts(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if wantCold != (cold > 0) {
			b.Fatalf("%d hot, %d cold", hot, cold)
		}
		b.Logf("hot %d, cold %d: loaded in %v, %d vectors (%.0f MiB), lexical %d (%.0f MiB), heap in use %.0f MiB, rss %d MiB",
			hot, cold, took.Round(time.Millisecond), v.Len(), float64(v.Bytes())/(1<<20), v.LexicalLen(),
			float64(v.LexicalBytes())/(1<<20), float64(ms.HeapInuse)/(1<<20), rssMiB())
		svc := memory.NewService(w.st, memory.Options{Vectors: v})
		for _, who := range []string{"org", "team"} {
			b.Run("search/access="+who, func(b *testing.B) {
				ctx := auth.WithPrincipal(context.Background(), benchPrincipals[who])
				g := gen{rand.New(rand.NewPCG(1, 2))}
				var lat []time.Duration
				hits := 0
				for b.Loop() {
					start := time.Now()
					res, err := svc.Search(ctx, memory.SearchQuery{Text: g.query(n), Limit: 10}, memory.ViaMCP)
					lat = append(lat, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
					if res.Degraded {
						b.Fatalf("degraded: %s", res.Reason)
					}
					hits += len(res.Hits)
				}
				percentiles(b, lat)
				b.ReportMetric(float64(hits)/float64(len(lat)), "hits/op")
				b.ReportMetric(float64(hot), "hot")
				b.ReportMetric(float64(cold), "cold")
				b.ReportMetric(float64(v.Bytes())/(1<<20), "index-MiB")
				b.ReportMetric(float64(v.LexicalBytes())/(1<<20), "lexical-MiB")
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
			})
		}
	}
	b.Run("tier=all-hot", func(b *testing.B) { measure(b, false) })
	// Seeded memories were written a minute apart from this base (seed):
	// the first 90% are older than the cut.
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n*9/10) * time.Minute)
	start := time.Now()
	rep, err := memory.RunTiering(context.Background(), w.st.(memory.Tiers), cut, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("tiering moved %d memories to the cold tier in %v (%d hot, %d cold)", rep.MovedCold,
		time.Since(start).Round(time.Millisecond), rep.Hot, rep.Cold)
	b.Run(fmt.Sprintf("tier=%dpct-cold", 90), func(b *testing.B) { measure(b, true) })
}
