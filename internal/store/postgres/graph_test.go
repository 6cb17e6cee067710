package postgres_test

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
)

// TestGraphMigrationBackfills: migration 0006 writes the graph of the
// memories stored before it, in its own transaction, and RebuildGraph
// writes it again from the memories.
func TestGraphMigrationBackfills(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Database(t)
	embedded, err := postgres.EmbeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	// The schema before the graph: migrations 1-5.
	before := fstest.MapFS{}
	names, _ := fs.Glob(embedded, "*.sql")
	for _, n := range names {
		if n < "0006" {
			b, _ := fs.ReadFile(embedded, n)
			before[n] = &fstest.MapFile{Data: b}
		}
	}
	old, err := postgres.OpenWithMigrations(ctx, postgres.Config{URL: url}, before)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, m := range []struct{ id, state, entity, tags string }{
		{"01A", "active", "Billing", `{"relation:uses": "ledger", "lang": "go"}`},
		{"01B", "archived", "attic", `{}`},
	} {
		if err := old.ExecGraphSQL(ctx, `INSERT INTO memories (org_id, id, access_entity, state, scope, source, created_by,
			created_at, updated_at, content_hash, content, entity, tags)
			VALUES ('acme', $1, 'team:acme/core', $2, 'team', 'user', 'ann', $3, $3, $1, $1, $4, $5::jsonb)`,
			m.id, m.state, at, m.entity, m.tags); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, url) // migrates to the latest: 0006 and its backfill
	a := memory.AccessFor(auth.Principal{Subject: "ann", OrgID: "acme", Grants: []string{"team:acme/core"}})
	check := func(when string) {
		t.Helper()
		es, err := s.Entities(ctx, a, memory.EntityQuery{Names: []string{"billing", "ledger", "attic", "lang=go"}})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Name)
		}
		edges, err := s.Edges(ctx, a, memory.EdgeQuery{From: []string{"billing"}, Types: []string{memory.EdgeRelation}})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(got) != 3 || strings.Contains(strings.Join(got, " "), "attic") || len(edges) != 1 || edges[0].To != "ledger" {
			t.Errorf("%s: entities %v, relations %+v; want billing, ledger and lang=go, billing uses ledger", when, got, edges)
		}
	}
	check("after the migration")
	if err := s.ExecGraphSQL(ctx, `DELETE FROM mentions`); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildGraph(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
}
