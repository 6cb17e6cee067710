//go:build unix

package main

// These tests drive the binary against real PostgreSQL clusters (pgtest):
// the migrate command, serve's schema check, and a database restart under a
// running server. They skip when the PostgreSQL server binaries are not
// installed, and fail instead when CODINGBRAIN_TEST_REQUIRE_SERVICES=1.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
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
	latest := latestMigration(t, "postgres")

	r := runCLI(t, bin, nil, "migrate", "status", "--database-url", dbURL)
	noPassword(t, "migrate status", r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "store: PostgreSQL postgres://postgres:xxxxx@127.0.0.1:") ||
		!statusHeader.MatchString(r.stdout) || !pendingRow.MatchString(r.stdout) ||
		!strings.Contains(r.stdout, fmt.Sprintf("current version 0, latest %d: %d pending; run `codingbrain migrate up`", latest, latest)) {
		t.Fatalf("status of an empty database: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// The URL from the environment, as serve reads it.
	r = runCLI(t, bin, []string{"CODINGBRAIN_DATABASE_URL=" + dbURL}, "migrate", "up")
	noPassword(t, "migrate up", r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "applied 0001_init (version 1)\n") ||
		!strings.HasSuffix(r.stdout, fmt.Sprintf("schema is now at version %d\n", latest)) {
		t.Fatalf("up: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "status", "--database-url", dbURL)
	if r.code != 0 || !appliedRow.MatchString(r.stdout) ||
		!strings.Contains(r.stdout, fmt.Sprintf("current version %d, latest %d: up to date", latest, latest)) {
		t.Errorf("status after up: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "up", "--database-url", dbURL)
	if r.code != 0 || !strings.HasSuffix(r.stdout, fmt.Sprintf("schema is up to date at version %d\n", latest)) {
		t.Errorf("second up: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// A newer binary migrated further.
	future := latest + 1
	execSQL(t, dbURL, fmt.Sprintf(`INSERT INTO schema_migrations (version, name) VALUES (%d, 'from_the_future')`, future))
	r = runCLI(t, bin, nil, "migrate", "status", "--database-url", dbURL)
	if r.code != 0 || !strings.Contains(r.stdout, "from_the_future") || !strings.Contains(r.stdout, "(not in this binary)") ||
		!strings.Contains(r.stdout, fmt.Sprintf("current version %d, latest %d: the schema is ahead of this binary", future, latest)) {
		t.Errorf("status of a newer schema: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "up", "--database-url", dbURL)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("schema is at version %d, ahead of this binary (latest %d); nothing to apply", future, latest)) {
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

func TestServePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := withPassword(t, pgtest.Database(t))
	bin := buildBinary(t)
	latest := latestMigration(t, "postgres")
	dataDir := t.TempDir()

	// A new database is behind: serve refuses unless told to migrate.
	r := runCLI(t, bin, nil, "serve", "--addr", freeAddr(t), "--data-dir", dataDir, "--database-url", dbURL)
	noPassword(t, "serve refusing", r.stdout, r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("database schema is at version 0, this binary needs %d; "+
		"run `codingbrain migrate up --database-url …` or start serve with --migrate", latest)) {
		t.Fatalf("serve on an empty database without --migrate: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// One public URL across restarts: it is the audience of the tokens.
	srv := startServer(t, bin, dataDir, "--database-url", dbURL, "--migrate", "--public-url", "http://brain.test")
	out := srv.out.String()
	noPassword(t, "serve --migrate", out)
	if !strings.Contains(out, `"msg":"applied migration","version":1,"name":"0001_init"`) ||
		!strings.Contains(out, `"store":"postgres","database_url":"postgres://postgres:xxxxx@127.0.0.1:`) ||
		!strings.Contains(out, `"shared_state":"memory"`) {
		t.Errorf("serve --migrate did not log the migration and its backends:\n%s", out)
	}
	admin := srv.admin // printed on the first start only
	c := client.New(srv.url, admin)
	content := "Production runs on PostgreSQL; the SQLite file is for one developer."
	m, created, err := c.Add(t.Context(), memory.Input{Content: content, Category: "architecture"}, "")
	if err != nil || !created {
		t.Fatalf("add: %v, created %v", err, created)
	}
	res, err := c.Search(t.Context(), client.SearchRequest{Query: "production postgresql"})
	hits := res.Hits
	if err != nil || len(hits) != 1 || hits[0].Memory.ID != m.ID || hits[0].Memory.Content != content {
		t.Errorf("search: %+v, %v", hits, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, dbFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve on PostgreSQL created a SQLite file: %v", err)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}

	// A newer binary migrated further: this one warns and serves.
	execSQL(t, dbURL, fmt.Sprintf(`INSERT INTO schema_migrations (version, name) VALUES (%d, 'from_the_future')`, latest+1))
	srv = launch(t, bin, dataDir, "--database-url", dbURL, "--public-url", "http://brain.test")
	if out := srv.out.String(); !strings.Contains(out, "database schema is ahead of this binary") {
		t.Errorf("no warning about the newer schema:\n%s", out)
	}
	got, err := client.New(srv.url, admin).Get(t.Context(), m.ID)
	if err != nil || got.Content != content {
		t.Errorf("get after restart: %+v, %v", got, err)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}

// wantUnavailable checks that a REST answer is 503 with the error envelope.
func wantUnavailable(t *testing.T, what string, code int, body map[string]any) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if code != http.StatusServiceUnavailable || e == nil || e["code"] != "unavailable" || e["request_id"] == "" || e["message"] == "" {
		t.Errorf("%s while PostgreSQL is down: %d %v; want 503 with code unavailable", what, code, body)
	}
}

func TestServePostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	pg := pgtest.New(t)
	bin := buildBinary(t)
	srv := startServer(t, bin, t.TempDir(), "--database-url", pg.URL("postgres"), "--migrate")
	c := client.New(srv.url, srv.admin)
	content := "The orders service retries PostgreSQL writes once after a failover."
	m, _, err := c.Add(t.Context(), memory.Input{Content: content}, "")
	if err != nil {
		t.Fatalf("add: %v", err)
	}

	// The test cluster commits asynchronously and Stop is an immediate
	// shutdown, which loses WAL not yet flushed; a checkpoint flushes it, as
	// synchronous_commit does on a production server.
	execSQL(t, pg.URL("postgres"), "CHECKPOINT")
	if err := pg.Stop(); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	api := srv.url + "/api/v1"
	code, body := call(t, "POST", api+"/search", srv.admin, map[string]any{"query": "orders retries"})
	wantUnavailable(t, "search", code, body)
	code, body = call(t, "GET", api+"/memories", srv.admin, nil)
	wantUnavailable(t, "list", code, body)
	code, body = call(t, "POST", api+"/memories", srv.admin, map[string]any{"content": "Written while the database is down."})
	wantUnavailable(t, "add", code, body)
	code, body = call(t, "GET", api+"/memories/"+m.ID, srv.admin, nil)
	wantUnavailable(t, "get", code, body)
	eventually(t, "/health/ready reports not ready", func() error {
		code, body := call(t, "GET", srv.url+"/health/ready", "", nil)
		if code != http.StatusServiceUnavailable || body["status"] != "unavailable" || !strings.HasPrefix(fmt.Sprint(body["reason"]), "store is unavailable") || strings.Contains(fmt.Sprint(body["reason"]), "127.0.0.1") {
			return fmt.Errorf("%d %v", code, body)
		}
		return nil
	})
	if code, _ := call(t, "GET", srv.url+"/health/live", "", nil); code != http.StatusOK {
		t.Errorf("/health/live while PostgreSQL is down: %d; the process still answers", code)
	}

	if err := pg.Start(); err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
	// The same server process recovers on its own.
	eventually(t, "search succeeds again", func() error {
		res, err := c.Search(t.Context(), client.SearchRequest{Query: "orders retries"})
		hits := res.Hits
		if err != nil {
			return err
		}
		if len(hits) != 1 || hits[0].Memory.ID != m.ID || hits[0].Memory.Content != content {
			return fmt.Errorf("hits %+v; want the memory written before the restart", hits)
		}
		return nil
	})
	if page, err := c.List(t.Context(), client.ListParams{}); err != nil || len(page.Memories) != 1 || page.Memories[0].ID != m.ID {
		t.Errorf("list after the restart: %+v, %v", page, err)
	}
	if _, created, err := c.Add(t.Context(), memory.Input{Content: "Written after the database came back."}, ""); err != nil || !created {
		t.Errorf("add after the restart: created %v, %v", created, err)
	}
	eventually(t, "/health/ready reports ready", func() error {
		if code, body := call(t, "GET", srv.url+"/health/ready", "", nil); code != http.StatusOK {
			return fmt.Errorf("%d %v", code, body)
		}
		return nil
	})
	if err := srv.stop(t); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}
