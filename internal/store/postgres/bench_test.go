package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// Benchmarks run memory.Service over a store seeded with n memories of
// generated coding-team knowledge (the same generator as the embedded
// store's benchmarks: four orgs, a dozen users and three teams each, a
// vocabulary of a few hundred words). Latency benchmarks report p50 and p99
// of single operations besides ns/op.
//
//	go test ./internal/store/postgres -run '^$' -bench . -benchtime 2000x

func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, g := seededStore(b, n)
			svc := memory.NewService(s, memory.Options{})
			var lat []time.Duration
			hits := 0
			for b.Loop() {
				p := g.principal()
				q := memory.SearchQuery{Text: g.query(), Limit: 10}
				ctx := auth.WithPrincipal(b.Context(), p)
				start := time.Now()
				res, err := svc.Search(ctx, q, memory.ViaMCP)
				hs := res.Hits
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				hits += len(hs)
			}
			reportPercentiles(b, lat)
			b.ReportMetric(float64(hits)/float64(len(lat)), "hits/op")
		})
	}
}

// BenchmarkBulkImport measures memories/s into a store that already holds
// 10,000: through memory.Service.Add from a few concurrent workers (as an
// import or several agents would), with per-add latency; and through
// Store.CreateBatch, the bulk path for import and restore, 500 memories to
// a transaction from two workers.
func BenchmarkBulkImport(b *testing.B) {
	for _, workers := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("service/workers=%d", workers), func(b *testing.B) { benchServiceAdd(b, workers) })
	}
	b.Run("batch/size=500/workers=2", func(b *testing.B) { benchCreateBatch(b, 500, 2) })
}

func benchServiceAdd(b *testing.B, workers int) {
	s, g := seededStore(b, 10_000)
	svc := memory.NewService(s, memory.Options{})
	// Inputs are made by one goroutine ahead of the workers.
	type job struct {
		p  auth.Principal
		in memory.Input
	}
	jobs := make(chan job, 1024)
	go func() {
		defer close(jobs)
		for range b.N {
			p := g.principal()
			jobs <- job{p, g.input(p)}
		}
	}()
	lats := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for j := range jobs {
				t := time.Now()
				if _, _, err := svc.Add(auth.WithPrincipal(b.Context(), j.p), j.in); err != nil {
					b.Error(err)
					return
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportPercentiles(b, slices.Concat(lats...))
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "memories/s")
}

func benchCreateBatch(b *testing.B, size, workers int) {
	s, g := seededStore(b, 10_000)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := memory.NewULIDSource(func() time.Time { return base })
	batches := make(chan []memory.Memory, 4)
	go func() {
		defer close(batches)
		var batch []memory.Memory
		for i := range b.N {
			p := g.principal()
			in := g.input(p)
			if in.AccessEntity == "" {
				in.AccessEntity = p.UserEntity()
			}
			at := base.Add(time.Duration(i) * time.Millisecond)
			batch = append(batch, memory.Memory{
				ID: ids(), OrgID: p.OrgID, Content: in.Content, Category: in.Category, Scope: in.Scope,
				ArtifactType: in.ArtifactType, ArtifactRef: in.ArtifactRef, Entity: in.Entity, Source: "user",
				Evidence: in.Evidence, Tags: in.Tags, AccessEntity: in.AccessEntity, App: in.App,
				State: memory.StateActive, CreatedBy: p.Subject, CreatedAt: at, UpdatedAt: at,
				ContentHash: memory.ContentHash(in.Content),
			})
			if len(batch) == size || i == b.N-1 {
				batches <- batch
				batch = nil
			}
		}
	}()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for batch := range batches {
				if _, err := s.CreateBatch(b.Context(), batch, "importer"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "memories/s")
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		i := min(len(lat)-1, int(p*float64(len(lat))))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// seededStore opens a migrated store on a fresh database and fills it with
// n generated memories.
func seededStore(b *testing.B, n int) (*Store, *generator) {
	b.Helper()
	ctx := b.Context()
	s, err := Open(ctx, Config{URL: pgtest.Database(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	g, seeded, err := seed(ctx, s, n)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d memories in %v", seeded, time.Since(start).Round(time.Millisecond))
	return s, g
}

// seed writes n generated memories (fewer if some are duplicates) and
// their history rows by COPY, then vacuums and analyzes the tables, as
// autovacuum would have on a live database. It returns the generator, to
// make principals and queries that fit the data.
func seed(ctx context.Context, s *Store, n int) (*generator, int, error) {
	g := newGenerator(42)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := memory.NewULIDSource(func() time.Time { return base })
	seen := map[string]bool{} // org, access entity and hash of live memories
	var rows, history [][]any
	for i := range n {
		p := g.principal()
		in := g.input(p)
		if in.AccessEntity == "" {
			in.AccessEntity = p.UserEntity()
		}
		at := base.Add(time.Duration(i) * time.Minute)
		m := memory.Memory{
			ID: ids(), OrgID: p.OrgID, Content: in.Content, Category: in.Category, Scope: in.Scope,
			ArtifactType: in.ArtifactType, ArtifactRef: in.ArtifactRef, Entity: in.Entity, Source: "user",
			Evidence: in.Evidence, Tags: in.Tags, AccessEntity: in.AccessEntity, App: in.App,
			State: memory.StateActive, CreatedBy: p.Subject, CreatedAt: at, UpdatedAt: at,
		}
		if i%50 == 0 {
			m.State = memory.StateArchived
		}
		args, err := canonical(&m)
		if err != nil {
			return nil, 0, err
		}
		key := m.OrgID + " " + m.AccessEntity + " " + m.ContentHash
		if seen[key] {
			continue
		}
		seen[key] = true
		after, err := marshalJSON(m)
		if err != nil {
			return nil, 0, err
		}
		rows = append(rows, args)
		history = append(history, []any{m.OrgID, m.ID, m.CreatedBy, "create", m.CreatedAt, after})
	}
	cols := []string{"org_id", "id", "access_entity", "state", "category", "scope", "app",
		"entity", "artifact_ref", "artifact_type", "source", "created_by", "created_at", "updated_at",
		"valid_from", "valid_to", "content_hash", "idempotency_key", "evidence", "tags", "metadata", "content"}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"memories"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return nil, 0, fmt.Errorf("copy memories: %w", err)
	}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"history"},
		[]string{"org_id", "memory_id", "actor", "action", "at", "after"}, pgx.CopyFromRows(history)); err != nil {
		return nil, 0, fmt.Errorf("copy history: %w", err)
	}
	for _, table := range []string{"memories", "history"} {
		if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE `+table); err != nil {
			return nil, 0, fmt.Errorf("vacuum %s: %w", table, err)
		}
	}
	return g, len(rows), nil
}
