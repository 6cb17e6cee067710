package main

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" driver, to tamper with the file

	"github.com/codingbrain/codingbrain/internal/audit"
)

// TestAuditEndToEnd runs serve, causes audit events over REST, stops the
// server, and checks the chain with `codingbrain audit verify`: intact it
// passes; after one row is changed with raw SQL on the SQLite file (the
// append-only trigger dropped first, as anyone with write access to the
// file could) it exits 1 naming the broken seq.
func TestAuditEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	srv := startServer(t, bin, dataDir)
	issue := func(sub, scopes string) string {
		t.Helper()
		r := runCLI(t, bin, nil, "token", "issue", "--data-dir", dataDir, "--public-url", srv.url,
			"--sub", sub, "--org", "acme", "--scopes", scopes, "--ttl", "1h")
		if r.code != 0 {
			t.Fatalf("token issue: exit %d, %s", r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	alice := issue("alice", "memories:read memories:write memories:delete")
	auditor := issue("auditor", "audit:read")
	do := func(method, path, token, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.url+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// Events: two failed authentications (no org), a missing scope, a
	// deletion, and a refused audit read.
	if code, _ := do("GET", "/api/v1/memories", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := do("GET", "/api/v1/memories", alice+"x", ""); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}
	if code, _ := do("GET", "/api/v1/stats", alice, ""); code != http.StatusForbidden {
		t.Fatalf("stats without stats:read: %d", code)
	}
	code, body := do("POST", "/api/v1/memories", alice, `{"content":"The audit log is append-only"}`)
	var m struct{ ID string }
	if err := json.Unmarshal(body, &m); code != http.StatusCreated || err != nil {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, body := do("DELETE", "/api/v1/memories/"+m.ID, alice, ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := do("GET", "/api/v1/audit", alice, ""); code != http.StatusForbidden {
		t.Fatalf("audit without audit:read: %d", code)
	}

	// The org's auditor sees the org's three records, not the 401s.
	code, body = do("GET", "/api/v1/audit", auditor, "")
	var page struct{ Records []audit.Record }
	if err := json.Unmarshal(body, &page); code != http.StatusOK || err != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	var actions []string
	for _, r := range page.Records {
		actions = append(actions, r.Action+" "+r.Actor+" "+r.Target)
	}
	want := []string{
		"access.forbidden alice GET /api/v1/stats",
		"memory.delete alice memory:" + m.ID,
		"access.forbidden alice GET /api/v1/audit",
	}
	if strings.Join(actions, "\n") != strings.Join(want, "\n") {
		t.Errorf("the auditor sees\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}

	if err := srv.stop(t); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	if strings.Contains(srv.out.String(), "audit write failed") {
		t.Errorf("audit writes failed:\n%s", srv.out.String())
	}

	r := runCLI(t, bin, nil, "audit", "verify", "--data-dir", dataDir)
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain ok: 5 records\n") || !strings.Contains(r.stdout, "head: seq 5, hash ") {
		t.Fatalf("verify of the intact chain: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if env := runCLI(t, bin, []string{"CODINGBRAIN_DATA_DIR=" + dataDir}, "audit", "verify"); env.code != 0 || env.stdout != r.stdout {
		t.Errorf("verify with CODINGBRAIN_DATA_DIR: exit %d\n%s%s", env.code, env.stdout, env.stderr)
	}

	// Tamper with seq 3 (alice's missing scope) on the file.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'mallory' WHERE seq = 3`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("UPDATE of audit_log with the trigger in place: %v, want it refused", err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq = 3`); err == nil {
		t.Fatal("DELETE from audit_log with the trigger in place: no error")
	}
	for _, stmt := range []string{
		`DROP TRIGGER audit_log_no_update`,
		`UPDATE audit_log SET actor = 'mallory' WHERE seq = 3`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	r = runCLI(t, bin, nil, "audit", "verify", "--data-dir", dataDir)
	if r.code != 1 || !strings.Contains(r.stdout, "audit chain BROKEN at seq 3: hash does not match") ||
		!strings.Contains(r.stdout, "2 records intact before it") || !strings.Contains(r.stderr, "audit chain broken at seq 3") {
		t.Errorf("verify of the tampered chain: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, args := range [][]string{{"audit"}, {"audit", "check"}, {"audit", "verify", "extra"}} {
		if r := runCLI(t, bin, nil, args...); r.code != 1 || !strings.Contains(r.stderr, "Usage: codingbrain audit verify") {
			t.Errorf("%v: exit %d, stderr %s", args, r.code, r.stderr)
		}
	}
	if r := runCLI(t, bin, nil, "audit", "--help"); r.code != 0 || !strings.Contains(r.stdout, "audit chain ok: N records") {
		t.Errorf("audit --help: exit %d, %s", r.code, r.stdout)
	}
	empty := t.TempDir()
	if r := runCLI(t, bin, nil, "audit", "verify", "--data-dir", empty); r.code != 1 || !strings.Contains(r.stderr, "no database at") {
		t.Errorf("verify of an empty data dir: exit %d, %s", r.code, r.stderr)
	}
	if r := runCLI(t, bin, nil, "audit", "verify", "--data-dir", empty, "--database-url", "postgres://x@127.0.0.1:1/x"); r.code != 1 || !strings.Contains(r.stderr, "not both") {
		t.Errorf("both stores: exit %d, %s", r.code, r.stderr)
	}
	if r := runCLI(t, bin, nil, "help"); !strings.Contains(r.stdout, "codingbrain audit verify") {
		t.Errorf("usage does not list audit verify:\n%s", r.stdout)
	}
}
