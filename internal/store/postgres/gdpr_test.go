package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

// TestErasureTriggerFailure: a trigger that fails on the second row deleted
// from access_log aborts the erasure part-way; nothing of it stays, and a
// retry without the trigger completes.
func TestErasureTriggerFailure(t *testing.T) {
	url := pgtest.Database(t)
	st := openStore(t, url)
	exec := func(t *testing.T, q string) {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	storetest.ErasureFailure(t, st, func(t *testing.T) {
		exec(t, `CREATE SEQUENCE fail_counter;
			CREATE FUNCTION fail_nth_delete() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF nextval('fail_counter') >= 2 THEN
					RAISE EXCEPTION 'injected failure';
				END IF;
				RETURN OLD;
			END $$;
			CREATE TRIGGER fail_nth_delete BEFORE DELETE ON access_log
				FOR EACH ROW EXECUTE FUNCTION fail_nth_delete();`)
	}, func(t *testing.T) {
		exec(t, `DROP TRIGGER fail_nth_delete ON access_log; DROP FUNCTION fail_nth_delete(); DROP SEQUENCE fail_counter`)
	})
}
