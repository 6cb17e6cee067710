package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestBackupContract(t *testing.T) {
	storetest.RunBackup(t, func(t *testing.T) storetest.BackupStore {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "codingbrain.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// schemaObjects lists the triggers and indexes of the database at path.
func schemaObjects(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master
		WHERE type IN ('trigger', 'index') ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// TestBulkLoadKeepsSchema: the bulk load drops triggers and indexes inside
// its transaction and recreates every one of them as it was.
func TestBulkLoadKeepsSchema(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, filepath.Join(dir, "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dstPath := filepath.Join(dir, "dst.db")
	dst, err := sqlite.Open(ctx, dstPath)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	want := schemaObjects(t, dstPath)
	storetest.Seed(t, src)
	storetest.CopyByBackup(t, src, dst)
	if got := schemaObjects(t, dstPath); !slices.Equal(got, want) || len(want) < 10 {
		t.Errorf("triggers and indexes after restore:\n%v\nwant\n%v", got, want)
	}
}
