package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// Rows of `migrate status`: the header, migration 1 applied (with its
// time) and pending.
var (
	statusHeader = regexp.MustCompile(`(?m)^VERSION\s+NAME\s+APPLIED$`)
	appliedRow   = regexp.MustCompile(`(?m)^1\s+0001_init\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	pendingRow   = regexp.MustCompile(`(?m)^1\s+0001_init\s+pending$`)
)

// latestMigration is the highest migration version the binary carries for
// a store ("sqlite" or "postgres"): the stores require versions 1, 2, …
// without gaps, so it is the number of files.
func latestMigration(t *testing.T, store string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "internal", "store", store, "migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s migrations found: %v", store, err)
	}
	return len(files)
}

func TestMigrateSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	latest := latestMigration(t, "sqlite")
	dataDir := filepath.Join(t.TempDir(), "data")
	dbPath := filepath.Join(dataDir, "codingbrain.db")

	// status reports, it does not create the database.
	r := runCLI(t, bin, nil, "migrate", "status", "--data-dir", dataDir)
	if r.code != 0 || !strings.Contains(r.stdout, "no database there yet") {
		t.Errorf("status of a missing database: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("status created %s: %v", dataDir, err)
	}

	r = runCLI(t, bin, nil, "migrate", "up", "--data-dir", dataDir)
	if r.code != 0 || !strings.Contains(r.stdout, "store: SQLite "+dbPath) ||
		!strings.Contains(r.stdout, "applied 0001_init (version 1)\n") ||
		!strings.HasSuffix(r.stdout, fmt.Sprintf("schema is now at version %d\n", latest)) {
		t.Fatalf("up: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// The data directory from the environment, as serve reads it.
	r = runCLI(t, bin, []string{"CODINGBRAIN_DATA_DIR=" + dataDir}, "migrate", "status")
	if r.code != 0 || !statusHeader.MatchString(r.stdout) || !appliedRow.MatchString(r.stdout) ||
		!strings.Contains(r.stdout, fmt.Sprintf("current version %d, latest %d: up to date", latest, latest)) {
		t.Errorf("status after up: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, bin, nil, "migrate", "up", "--data-dir", dataDir)
	if r.code != 0 || !strings.HasSuffix(r.stdout, fmt.Sprintf("schema is up to date at version %d\n", latest)) || strings.Contains(r.stdout, "applied") {
		t.Errorf("second up: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// An explicit --data-dir wins over a database URL in the environment.
	r = runCLI(t, bin, []string{"CODINGBRAIN_DATABASE_URL=postgres://nobody@127.0.0.1:1/none"}, "migrate", "status", "--data-dir", dataDir)
	if r.code != 0 || !strings.Contains(r.stdout, "SQLite") {
		t.Errorf("--data-dir with CODINGBRAIN_DATABASE_URL set: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// serve runs on the migrated file.
	srv := startServer(t, bin, dataDir)
	c := client.New(srv.url, srv.admin)
	m, _, err := c.Add(t.Context(), memory.Input{Content: "Migrations run before serve on SQLite too."}, "")
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if res, err := c.Search(t.Context(), client.SearchRequest{Query: "migrations serve sqlite"}); err != nil || len(res.Hits) != 1 || res.Hits[0].Memory.ID != m.ID {
		t.Errorf("search: %+v, %v", res.Hits, err)
	}
}

func TestMigrateUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout+stderr
	}{
		{[]string{"migrate"}, 1, "Usage: codingbrain migrate up|status"},
		{[]string{"migrate", "sideways"}, 1, `unknown subcommand "sideways"`},
		{[]string{"migrate", "status", "extra"}, 1, `unexpected argument "extra"`},
		{[]string{"migrate", "-h"}, 0, "Usage: codingbrain migrate up|status"},
		{[]string{"migrate", "status", "--data-dir", "x", "--database-url", "postgres://db/x"}, 1, "not both"},
		{[]string{"migrate", "up", "--database-url", "mysql://root:hunter2@db/x"}, 1, "database_url: use postgres://"},
		{[]string{"help"}, 0, "codingbrain migrate up|status"},
		{[]string{"serve", "-h"}, 0, "-database-url URL"},
		{[]string{"serve", "-h"}, 0, "-valkey-url URL"},
		{[]string{"serve", "-h"}, 0, "a new, empty\n    \tSQLite database is the exception"},
	} {
		r := runCLI(t, bin, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) || strings.Contains(r.stdout+r.stderr, "hunter2") {
			t.Errorf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", tc.args, r.code, tc.code, r.stdout, r.stderr, tc.want)
		}
	}
}
