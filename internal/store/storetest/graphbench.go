package storetest

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// GraphBench is what BenchGraph needs from a store's benchmark: a service
// over a store seeded with the store package's generated memories, whose
// graph is written, and principals of that data.
type GraphBench struct {
	Service    *memory.Service
	Principals []auth.Principal
	// PathCTE, when set, computes the length of a shortest path between
	// two entities (0 when there is none within maxDepth) with one
	// recursive CTE over the caller's visible co-mentions, the alternative
	// to the service's breadth-first search, for comparison.
	PathCTE func(ctx context.Context, a memory.Access, from, to string, maxDepth int) (int, error)
}

// BenchGraph benchmarks the graph's queries as a caller sees them, each
// reporting p50 and p99 besides ns/op: networks of depth 1 and 2, paths
// (the service's bidirectional search, and PathCTE), related memories,
// the retrieval source, a hub's edges, aggregation by tag and every tag
// pair.
func BenchGraph(b *testing.B, gb GraphBench) {
	ctx := b.Context()
	r := rand.New(rand.NewPCG(7, 11))
	type caller struct {
		p        auth.Principal
		ctx      context.Context
		entities []string
		memories []string
	}
	var callers []caller
	for _, p := range gb.Principals {
		pctx := auth.WithPrincipal(ctx, p)
		es, err := gb.Service.Entities(pctx, memory.EntityQuery{Kind: memory.KindEntity, Limit: memory.MaxEntitiesLimit})
		if err != nil {
			b.Fatal(err)
		}
		page, err := gb.Service.List(pctx, memory.ListQuery{Limit: memory.MaxListLimit}, memory.ViaREST)
		if err != nil {
			b.Fatal(err)
		}
		c := caller{p: p, ctx: pctx}
		for _, e := range es {
			c.entities = append(c.entities, e.Name)
		}
		for _, m := range page.Memories {
			c.memories = append(c.memories, m.ID)
		}
		if len(c.entities) > 1 && len(c.memories) > 0 {
			callers = append(callers, c)
		}
	}
	if len(callers) == 0 {
		b.Fatal("no principal sees two entities")
	}
	pick := func() caller { return callers[r.IntN(len(callers))] }
	entity := func(c caller) string { return c.entities[r.IntN(len(c.entities))] }
	run := func(name string, op func(c caller) (int, error)) {
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			n := 0
			for b.Loop() {
				c := pick()
				start := time.Now()
				k, err := op(c)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				n += k
			}
			reportLatency(b, lat)
			b.ReportMetric(float64(n)/float64(len(lat)), "results/op")
		})
	}
	for _, depth := range []int{1, 2} {
		run("network/depth="+string(rune('0'+depth)), func(c caller) (int, error) {
			n, err := gb.Service.EntityNetwork(c.ctx, memory.NetworkQuery{Entity: entity(c), Depth: depth, Limit: memory.DefaultNetworkLimit})
			return len(n.Nodes), err
		})
	}
	run("path/bfs", func(c caller) (int, error) {
		p, err := gb.Service.PathBetweenEntities(c.ctx, memory.PathQuery{From: entity(c), To: entity(c)})
		return p.Hops, err
	})
	run("path/bfs/no-tags", func(c caller) (int, error) {
		p, err := gb.Service.PathBetweenEntities(c.ctx, memory.PathQuery{From: entity(c), To: entity(c),
			Types: []string{memory.EdgeCoMention, memory.EdgeRelation}})
		return p.Hops, err
	})
	if gb.PathCTE != nil {
		for _, depth := range []int{2, 3, 4} {
			run("path/cte/max-depth="+string(rune('0'+depth)), func(c caller) (int, error) {
				return gb.PathCTE(c.ctx, memory.AccessFor(c.p), entity(c), entity(c), depth)
			})
		}
	}
	run("related", func(c caller) (int, error) {
		rel, err := gb.Service.RelatedMemories(c.ctx, c.memories[r.IntN(len(c.memories))], memory.DefaultRelatedLimit, memory.ViaREST)
		return len(rel), err
	})
	run("neighbours", func(c caller) (int, error) {
		hits, err := gb.Service.GraphNeighbours(c.ctx, memory.AccessFor(c.p), "how do we handle "+entity(c)+" retries", memory.Filter{}, 10)
		return len(hits), err
	})
	run("entities/top", func(c caller) (int, error) {
		es, err := gb.Service.Entities(c.ctx, memory.EntityQuery{Limit: 20})
		return len(es), err
	})
	run("aggregate/tag", func(c caller) (int, error) {
		bs, err := gb.Service.Aggregate(c.ctx, memory.AggregateQuery{By: "tag"})
		return len(bs), err
	})
	run("tag-pairs/all", func(c caller) (int, error) {
		ps, err := gb.Service.TagCooccurrence(c.ctx, "", 20)
		return len(ps), err
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
