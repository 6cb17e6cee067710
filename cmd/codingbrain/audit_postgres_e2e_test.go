//go:build unix

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
)

// TestAuditVerifyPostgres: `audit verify --database-url` on a PostgreSQL
// chain, intact and after the table's owner switched the append-only
// triggers off and changed a row.
func TestAuditVerifyPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := withPassword(t, pgtest.Database(t))
	bin := buildBinary(t)

	r := runCLI(t, bin, nil, "audit", "verify", "--database-url", dbURL)
	noPassword(t, "audit verify", r.stdout, r.stderr)
	if r.code != 1 || !strings.Contains(r.stderr, "migration 0004_audit_log is not applied") {
		t.Fatalf("verify before migrating: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, bin, nil, "migrate", "up", "--database-url", dbURL); r.code != 0 {
		t.Fatalf("migrate up: %s", r.stderr)
	}
	r = runCLI(t, bin, nil, "audit", "verify", "--database-url", dbURL)
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain ok: 0 records\n") {
		t.Fatalf("verify of an empty chain: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	s, err := postgres.Open(t.Context(), postgres.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, actor := range []string{"alice", "bob", "carol", "dave"} {
		if _, err := s.AppendAudit(t.Context(), audit.Event{OrgID: "acme", Actor: actor, Action: audit.ActionMemoryDelete}); err != nil {
			t.Fatal(err)
		}
	}
	r = runCLI(t, bin, nil, "audit", "verify", "--database-url", dbURL)
	noPassword(t, "audit verify", r.stdout, r.stderr)
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain ok: 4 records\n") || !strings.Contains(r.stdout, "store: PostgreSQL postgres://postgres:xxxxx@") {
		t.Fatalf("verify of the intact chain: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// The triggers refuse changes, also to a superuser.
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{
		`UPDATE audit_log SET actor = 'mallory' WHERE seq = 2`,
		`DELETE FROM audit_log WHERE seq = 2`,
		`TRUNCATE audit_log`,
	} {
		if _, err := conn.Exec(t.Context(), stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want it refused", stmt, err)
		}
	}
	execSQL(t, dbURL, `ALTER TABLE audit_log DISABLE TRIGGER USER;
		DELETE FROM audit_log WHERE seq = 2;
		ALTER TABLE audit_log ENABLE TRIGGER USER`)
	r = runCLI(t, bin, nil, "audit", "verify", "--database-url", dbURL)
	if r.code != 1 || !strings.Contains(r.stdout, "audit chain BROKEN at seq 3: records 2 to 2 are missing") {
		t.Errorf("verify of the tampered chain: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
