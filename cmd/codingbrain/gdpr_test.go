package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestGDPRCommands drives gdpr export, erase, check and ledger through run
// on a SQLite data directory.
func TestGDPRCommands(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	svc := memory.NewService(st, memory.Options{})
	for _, p := range []auth.Principal{
		{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes},
		{Subject: "bob", OrgID: "acme", Scopes: auth.AllScopes},
	} {
		if _, _, err := svc.Add(auth.WithPrincipal(t.Context(), p), memory.Input{Content: p.Subject + "'s own note", Scope: "user"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	gdprRun := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		env := func(string) string { return "" }
		err := run(t.Context(), append(append([]string{"gdpr"}, args...), "--data-dir", dir), env, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), err
	}
	export := filepath.Join(dir, "alice.json")
	if out, stderr, err := gdprRun("export", "--org", "acme", "--subject", "alice", "--out", export); err != nil || !strings.Contains(out, "memories_authored  1") {
		t.Fatalf("export: %v\n%s%s", err, out, stderr)
	}
	var x gdpr.Export
	b, _ := os.ReadFile(export)
	if err := json.Unmarshal(b, &x); err != nil || len(x.MemoriesAuthored) != 1 || x.MemoriesAuthored[0].CreatedBy != "alice" {
		t.Errorf("export file: %+v, %v", x, err)
	}
	if fi, err := os.Stat(export); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode: %v, %v", fi, err)
	}
	if _, _, err := gdprRun("erase", "--org", "acme", "--subject", "alice"); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("erase without --reason: %v", err)
	}
	if _, _, err := gdprRun("check", "--org", "acme", "--subject", "alice"); err == nil {
		t.Error("check before the erasure passed")
	}
	out, stderr, err := gdprRun("erase", "--org", "acme", "--subject", "alice", "--reason", "DSR-9")
	if err != nil || !strings.Contains(out, "no trace: clean") || !strings.Contains(out, "memories_authored 1") {
		t.Fatalf("erase: %v\n%s%s", err, out, stderr)
	}
	if out, _, err := gdprRun("check", "--org", "acme", "--subject", "alice"); err != nil || !strings.Contains(out, "no trace: clean") {
		t.Errorf("check after the erasure: %v\n%s", err, out)
	}
	if out, _, err := gdprRun("check", "--org", "acme", "--subject", "bob"); err == nil {
		t.Errorf("bob was erased too:\n%s", out)
	}
	backups := filepath.Join(dir, "backups")
	if out, _, err := gdprRun("ledger", "--to", backups); err != nil || !strings.Contains(out, "1 entries added") {
		t.Errorf("ledger --to: %v\n%s", err, out)
	}
	if out, _, err := gdprRun("ledger", "--to", backups); err != nil || !strings.Contains(out, "0 entries added") {
		t.Errorf("ledger --to again: %v\n%s", err, out)
	}
	entries, err := gdpr.ReadLedger(filepath.Join(backups, gdpr.LedgerFileName))
	if err != nil || len(entries) != 1 || entries[0].SubjectHash != (gdpr.Subject{OrgID: "acme", ID: "alice"}).Hash() {
		t.Errorf("ledger file: %+v, %v", entries, err)
	}
	if strings.Contains(mustRead(t, filepath.Join(backups, gdpr.LedgerFileName)), "alice") {
		t.Error("the ledger file names the subject")
	}
	if out, _, err := gdprRun("ledger", "--reapply", backups); err != nil || !strings.Contains(out, "0 subjects erased again") {
		t.Errorf("ledger --reapply: %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
