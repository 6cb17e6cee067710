package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestChangesAcrossStores opens two stores on one file, as two processes
// would: a write through one is in the feed of the other, and the numbers
// continue across them.
func TestChangesAcrossStores(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "brain.db")
	a, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	actx := auth.WithPrincipal(ctx, auth.Principal{Subject: "alice", OrgID: "acme"})

	cs, end, err := b.Changes(ctx, memory.ChangeCursor{}, 10)
	if err != nil || len(cs) != 0 {
		t.Fatalf("changes of a new file: %+v, %v", cs, err)
	}
	m1, _, err := memory.NewService(a, memory.Options{}).Add(actx, memory.Input{Content: "written through store a"})
	if err != nil {
		t.Fatal(err)
	}
	cs, end, err = b.Changes(ctx, end, 10)
	if err != nil || len(cs) != 1 || cs[0].ID != m1.ID || cs[0].OrgID != "acme" || cs[0].State != memory.StateActive {
		t.Fatalf("store b's feed after a write through a: %+v, %v; want %s", cs, err, m1.ID)
	}
	m2, _, err := memory.NewService(b, memory.Options{}).Add(actx, memory.Input{Content: "written through store b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memory.NewService(a, memory.Options{}).Delete(actx, m1.ID); err != nil {
		t.Fatal(err)
	}
	cs, _, err = b.Changes(ctx, end, 10)
	if err != nil || len(cs) != 2 || cs[0].ID != m2.ID || cs[1].ID != m1.ID || cs[1].State != memory.StateDeleted ||
		cs[0].Seq <= end.Seq || cs[1].Seq <= cs[0].Seq {
		t.Errorf("store b's feed after writes through both: %+v, %v; want %s then %s deleted, after seq %d", cs, err, m2.ID, m1.ID, end.Seq)
	}
}

// TestChangeFeedMigration migrates a file that holds memories (made with
// migration 0001 alone) to the change feed: the memories are numbered in
// the order they were written, and new writes continue after them.
func TestChangeFeedMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "brain.db")
	init, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(init)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT;
		INSERT INTO schema_migrations VALUES (1, '0001_init', '2026-01-01T00:00:00.000000000Z')`); err != nil {
		t.Fatal(err)
	}
	ids := []string{"01C", "01A", "01B"} // rowid order, not id order
	for _, id := range ids {
		if _, err := db.Exec(`INSERT INTO memories (id, org_id, access_entity, state, scope, source, created_by,
			created_at, updated_at, content_hash, acl, content)
			VALUES (?, 'acme', 'user:alice', 'active', 'user', 'user', 'alice',
			'2026-01-01T00:00:00.000000000Z', '2026-01-01T00:00:00.000000000Z', ?, '', ?)`, id, "hash "+id, "memory "+id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs, c, err := s.Changes(ctx, memory.ChangeCursor{}, 10)
	if err != nil || len(cs) != 3 {
		t.Fatalf("changes after the migration: %+v, %v", cs, err)
	}
	for i, id := range ids {
		if cs[i].ID != id || cs[i].Seq != int64(i+1) {
			t.Errorf("change %d: %+v, want %s at seq %d", i, cs[i], id, i+1)
		}
	}
	a := memory.Access{OrgID: "acme", Entities: []string{"user:alice"}}
	if _, err := s.Update(ctx, a, "01C", "alice", "update", func(m *memory.Memory) error {
		m.Content = "edited after the migration"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cs, _, err = s.Changes(ctx, c, 10)
	if err != nil || len(cs) != 1 || cs[0].ID != "01C" || cs[0].Seq != 4 {
		t.Errorf("changes after an update: %+v, %v; want 01C at seq 4", cs, err)
	}
}
