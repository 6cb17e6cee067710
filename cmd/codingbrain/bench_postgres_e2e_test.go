//go:build unix

package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// TestBenchRetrievalPostgres runs the bench on PostgreSQL: in an empty
// database it works in a schema of its own and leaves the database empty;
// a database that holds a table is refused before anything is written.
func TestBenchRetrievalPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dbURL := withPassword(t, pgtest.Database(t))
	dir := filepath.Join("testdata", "bench")
	args := []string{"bench", "retrieval", "--corpus", filepath.Join(dir, "corpus.jsonl"),
		"--queries", filepath.Join(dir, "queries.jsonl"), "--k", "1,5", "--json", "--per-query",
		"--store", "postgres", "--database-url", dbURL}

	r := runCLI(t, bin, nil, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	noPassword(t, "bench retrieval", r.stdout, r.stderr)
	checkBenchJSON(t, r.stdout, "postgres")
	if n := countRelations(t, dbURL); n != 0 {
		t.Errorf("the bench left %d tables or schemas behind", n)
	}

	// A database with anything in it is not the bench's to fill.
	execSQL(t, dbURL, "CREATE TABLE customers (id int)")
	r = runCLI(t, bin, nil, args...)
	if r.code == 0 || !strings.Contains(r.stderr, "is not empty") || !strings.Contains(r.stderr, "public.customers") {
		t.Errorf("non-empty database: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	noPassword(t, "bench retrieval", r.stdout, r.stderr)
	if n := countRelations(t, dbURL); n != 1 {
		t.Errorf("after the refusal the database holds %d tables or schemas, want the 1 it had", n)
	}
}

// countRelations counts the tables outside the system schemas plus the
// schemas the bench makes.
func countRelations(t *testing.T, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), e2eTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
		        WHERE c.relkind IN ('r', 'p', 'v', 'm') AND s.nspname NOT IN ('pg_catalog', 'information_schema')
		          AND s.nspname NOT LIKE 'pg\_%')
		     + (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'codingbrain\_bench\_%')`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
