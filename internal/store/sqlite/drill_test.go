package sqlite

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestDrillSeed fills the database file CODINGBRAIN_DRILL_DB with
// CODINGBRAIN_DRILL_MEMORIES generated memories (the benchmarks' data:
// four orgs, their users and teams, one in fifty archived) and their
// history, for scripts/dr-drill.sh. It is skipped unless both are set.
func TestDrillSeed(t *testing.T) {
	path, nStr := os.Getenv("CODINGBRAIN_DRILL_DB"), os.Getenv("CODINGBRAIN_DRILL_MEMORIES")
	if path == "" || nStr == "" {
		t.Skip("skipping: set CODINGBRAIN_DRILL_DB and CODINGBRAIN_DRILL_MEMORIES to seed a database for the DR drill")
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 1 {
		t.Fatalf("CODINGBRAIN_DRILL_MEMORIES=%q: want a positive number", nStr)
	}
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := newGenerator(42)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := memory.NewULIDSource(func() time.Time { return base })
	batch := make([]memory.Memory, 0, 1000)
	for i := range n {
		p := g.principal()
		in := g.input(p)
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
		batch = append(batch, m)
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.insertBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.RebuildGraph(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
}
