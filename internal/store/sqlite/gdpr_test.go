package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

// TestErasureTriggerFailure: a trigger that fails on the second delete
// from access_log (the cascade from the subject's deleted memories counts
// too) aborts the erasure part-way; nothing of it stays, and a retry
// without the trigger completes.
func TestErasureTriggerFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "brain.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(t *testing.T, q string) {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	storetest.ErasureFailure(t, st, func(t *testing.T) {
		exec(t, `CREATE TABLE fail_counter (n INTEGER NOT NULL);
			INSERT INTO fail_counter VALUES (0);
			CREATE TRIGGER fail_nth_delete BEFORE DELETE ON access_log BEGIN
				UPDATE fail_counter SET n = n + 1;
				SELECT RAISE(ABORT, 'injected failure') WHERE (SELECT n FROM fail_counter) >= 2;
			END;`)
	}, func(t *testing.T) {
		exec(t, `DROP TRIGGER fail_nth_delete; DROP TABLE fail_counter`)
	})
}
