package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestBackupContract(t *testing.T) {
	storetest.RunBackup(t, func(t *testing.T) storetest.BackupStore {
		return openStore(t, pgtest.Database(t))
	})
}

// indexes lists the index definitions of the tables a restore fills.
func indexes(t *testing.T, url string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(t.Context(), `SELECT indexdef FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename IN ('memories', 'history', 'access_log') ORDER BY indexname`)
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

// TestBulkLoadKeepsIndexes: a restore into an empty database drops the
// non-unique indexes for the load and builds every one of them again.
func TestBulkLoadKeepsIndexes(t *testing.T) {
	srcURL, dstURL := pgtest.Database(t), pgtest.Database(t)
	src, dst := openStore(t, srcURL), openStore(t, dstURL)
	storetest.Seed(t, src)
	want := indexes(t, dstURL)
	if len(want) < 8 {
		t.Fatalf("a migrated database has only these indexes: %v", want)
	}
	storetest.CopyByBackup(t, src, dst)
	if got := indexes(t, dstURL); !slices.Equal(got, want) {
		t.Errorf("indexes after restore:\n%v\nwant\n%v", got, want)
	}
}
