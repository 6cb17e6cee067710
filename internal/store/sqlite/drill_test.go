package sqlite

import (
	"os"
	"strconv"
	"testing"
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
	if err := seedGenerated(ctx, s, newGenerator(42), n); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildGraph(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
}
