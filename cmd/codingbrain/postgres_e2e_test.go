//go:build unix

package main

// These tests drive the binary against real PostgreSQL clusters (pgtest). They skip when the PostgreSQL server binaries are not
// installed, and fail instead when CODINGBRAIN_TEST_REQUIRE_SERVICES=1.

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/pgtest"
)

func init() { runTests = pgtest.Main }

// testPassword is put into database URLs to show it is never printed; the
// test clusters trust local connections, so it is not checked.
const testPassword = "s3cret-pw-5e1f"

func withPassword(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), testPassword)
	return u.String()
}

func noPassword(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, testPassword) {
			t.Errorf("%s printed the database password:\n%s", what, s)
		}
	}
}

// execSQL runs one statement on the database at dbURL.
func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), e2eTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestMigratePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := withPassword(t, pgtest.Database(t))
	bin := buildBinary(t)

	r := runCLI(t, bin, nil, "migrate", "status", "--database-url", dbURL)
	noPassword(t, "migrate status", r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "store: PostgreSQL postgres://postgres:xxxxx@127.0.0.1:") ||
		!strings.Contains(r.stdout, "1        0001_init  pending\n") ||
		!strings.Contains(r.stdout, "current version 0, latest 1: 1 pending; run `codingbrain migrate up`") {
		t.Fatalf("status of an empty database: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// The URL from the environment, as serve reads it.
	r = runCLI(t, bin, []string{"CODINGBRAIN_DATABASE_URL=" + dbURL}, "migrate", "up")
	noPassword(t, "migrate up", r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "applied 0001_init (version 1)\nschema is now at version 1\n") {
		t.Fatalf("up: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "status", "--database-url", dbURL)
	if r.code != 0 || !appliedRow.MatchString(r.stdout) || !strings.Contains(r.stdout, "current version 1, latest 1: up to date") {
		t.Errorf("status after up: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "up", "--database-url", dbURL)
	if r.code != 0 || !strings.HasSuffix(r.stdout, "schema is up to date at version 1\n") {
		t.Errorf("second up: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// A newer binary migrated further.
	execSQL(t, dbURL, `INSERT INTO schema_migrations (version, name) VALUES (2, '0002_from_the_future')`)
	r = runCLI(t, bin, nil, "migrate", "status", "--database-url", dbURL)
	if r.code != 0 || !strings.Contains(r.stdout, "0002_from_the_future") || !strings.Contains(r.stdout, "(not in this binary)") ||
		!strings.Contains(r.stdout, "current version 2, latest 1: the schema is ahead of this binary") {
		t.Errorf("status of a newer schema: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "up", "--database-url", dbURL)
	if r.code != 0 || !strings.Contains(r.stdout, "schema is at version 2, ahead of this binary (latest 1); nothing to apply") {
		t.Errorf("up on a newer schema: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// A server that does not answer is a clear failure.
	down := withPassword(t, "postgres://cb@"+freeAddr(t)+"/none?sslmode=disable")
	for _, sub := range []string{"status", "up"} {
		r = runCLI(t, bin, nil, "migrate", sub, "--database-url", down)
		noPassword(t, "migrate "+sub+" on a closed port", r.stdout, r.stderr)
		if r.code == 0 || !strings.Contains(r.stderr, "migrate "+sub+": open postgres: unavailable") ||
			!strings.Contains(r.stderr, "connection refused") {
			t.Errorf("%s against a closed port: exit %d, stderr %q", sub, r.code, r.stderr)
		}
	}
}
