package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestGraphMigrationBackfills: migration 0006 writes the graph of the
// memories stored before it, in its own transaction, and RebuildGraph
// writes it again from the memories.
func TestGraphMigrationBackfills(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	svc := memory.NewService(s, memory.Options{Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	pctx := auth.WithPrincipal(ctx, auth.Principal{Subject: "ann", OrgID: "acme", Grants: []string{"team:acme/core"}})
	if _, _, err := svc.Add(pctx, memory.Input{Content: "live", Scope: "team", Entity: "Billing", Tags: map[string]any{"relation:uses": "ledger"}}); err != nil {
		t.Fatal(err)
	}
	gone, _, err := svc.Add(pctx, memory.Input{Content: "archived", Scope: "team", Entity: "attic"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Transition(pctx, gone.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	// Back to schema 5, with the memories.
	for _, q := range []string{`DROP TABLE memory_links`, `DROP TABLE edges`, `DROP TABLE mentions`, `DROP TABLE entities`,
		`DELETE FROM schema_migrations WHERE version = 6`} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	check := func(when string) {
		t.Helper()
		a := memory.AccessFor(auth.Principal{Subject: "ann", OrgID: "acme", Grants: []string{"team:acme/core"}})
		es, err := s.Entities(ctx, a, memory.EntityQuery{Names: []string{"billing", "ledger", "attic"}})
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
		if len(got) != 2 || len(edges) != 1 || edges[0].To != "ledger" {
			t.Errorf("%s: entities %v, relations %+v; want billing and ledger, billing uses ledger", when, got, edges)
		}
	}
	done, err := s.Migrate(ctx)
	if err != nil || len(done) != 1 || done[0].Name != "0006_entity_graph" {
		t.Fatalf("migrate: %+v, %v", done, err)
	}
	check("after the migration")
	if _, err := s.w.ExecContext(ctx, `DELETE FROM mentions`); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildGraph(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
}
