package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

// seededDataDir returns a data directory whose SQLite database holds the
// backup contract's seed data.
func seededDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Seed(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// webhook is a local receiver of verify's alerts.
type webhook struct {
	*httptest.Server
	mu     sync.Mutex
	alerts []backup.Alert
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var a backup.Alert
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&a) != nil {
			http.Error(rw, "bad alert", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.alerts = append(w.alerts, a)
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) received() []backup.Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]backup.Alert(nil), w.alerts...)
}

// verify runs backup verify --json on from and returns the exit code and
// the report.
func verifyCLI(t *testing.T, bin, from string, args ...string) (int, backup.Report) {
	t.Helper()
	r := runCLI(t, bin, nil, append([]string{"backup", "verify", "--from", from, "--json", "--tmp-dir", t.TempDir()}, args...)...)
	var rep backup.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify printed no JSON report (exit %d): %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	return r.code, rep
}

func checkStatus(rep backup.Report, name string) (string, string) {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c.Status, c.Detail
		}
	}
	return "", ""
}

// createBackup runs backup create of dataDir into a new directory and
// returns the archive's path.
func createBackup(t *testing.T, bin, dataDir string, args ...string) string {
	t.Helper()
	to := t.TempDir()
	r := runCLI(t, bin, nil, append([]string{"backup", "create", "--data-dir", dataDir, "--to", to}, args...)...)
	if r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	objs, err := backup.Dir{Path: to}.List(t.Context())
	if err != nil || len(objs) != 1 {
		t.Fatalf("backup create left %v, %v", objs, err)
	}
	return filepath.Join(to, objs[0].Name)
}

// rewrite decompresses an unencrypted archive, lets edit change its files
// (name → content; the manifest included) and writes it back in order.
func rewrite(t *testing.T, path string, edit func(files map[string][]byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files, order := map[string][]byte{}, []string{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
		order = append(order, h.Name)
	}
	f.Close()
	edit(files)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range order {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write(files[n])
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// editManifest changes the manifest of files.
func editManifest(t *testing.T, files map[string][]byte, edit func(m *backup.Manifest)) {
	var m backup.Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, _ := json.Marshal(m)
	files["manifest.json"] = b
}

// resealTable makes the manifest agree with a changed table file.
func resealTable(files map[string][]byte, m *backup.Manifest, table string) {
	name := "data/" + table + ".jsonl"
	sum := sha256.Sum256(files[name])
	h := hex.EncodeToString(sum[:])
	m.Files[name] = backup.FileInfo{Size: int64(len(files[name])), SHA256: h}
	m.Tables[table] = backup.TableInfo{Rows: int64(bytes.Count(files[name], []byte("\n"))), SHA256: h}
}

// TestBackupVerifyFailures: each way a backup can be bad is reported by
// its check, exits 1 (2 when verification itself could not run) and posts
// one alert to the webhook; a good backup exits 0 and posts nothing.
func TestBackupVerifyFailures(t *testing.T) {
	bin := buildBinary(t)
	data := seededDataDir(t)
	good := createBackup(t, bin, data)

	keyA, _ := age.GenerateX25519Identity()
	keyB, _ := age.GenerateX25519Identity()
	idFile := func(k *age.X25519Identity) string {
		p := filepath.Join(t.TempDir(), "identity.txt")
		os.WriteFile(p, []byte(k.String()+"\n"), 0o600)
		return p
	}

	copyOf := func(t *testing.T, path string) string {
		dst := filepath.Join(t.TempDir(), filepath.Base(path))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(dst, b, 0o600)
		return dst
	}

	cases := []struct {
		name  string
		from  func(t *testing.T) string
		args  []string
		code  int
		check string
	}{
		{"missing", func(t *testing.T) string { return t.TempDir() }, nil, 1, backup.CheckExists},
		{"stale", func(t *testing.T) string {
			p := copyOf(t, good)
			old := filepath.Join(filepath.Dir(p), backup.ArchiveName(time.Now().Add(-72*time.Hour), false))
			os.Rename(p, old)
			return filepath.Dir(p)
		}, []string{"--max-age", "26h"}, 1, backup.CheckFreshness},
		{"truncated", func(t *testing.T) string {
			p := copyOf(t, good)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o600)
			return p
		}, nil, 1, backup.CheckChecksums},
		{"corrupted byte", func(t *testing.T) string {
			p := copyOf(t, good)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o600)
			return p
		}, nil, 1, backup.CheckChecksums},
		{"tampered manifest", func(t *testing.T) string {
			p := copyOf(t, good)
			rewrite(t, p, func(files map[string][]byte) {
				editManifest(t, files, func(m *backup.Manifest) {
					ti := m.Tables[backup.TableMemories]
					ti.Rows++
					m.Tables[backup.TableMemories] = ti
				})
			})
			return p
		}, nil, 1, backup.CheckChecksums},
		{"tampered data", func(t *testing.T) string {
			p := copyOf(t, good)
			rewrite(t, p, func(files map[string][]byte) {
				n := "data/memories.jsonl"
				files[n] = bytes.Replace(files[n], []byte("PostgreSQL"), []byte("PostgreSQl"), 1)
			})
			return p
		}, nil, 1, backup.CheckChecksums},
		{"wrong decryption key", func(t *testing.T) string {
			return createBackup(t, bin, data, "--recipient", keyA.Recipient().String())
		}, []string{"--identity", idFile(keyB)}, 1, backup.CheckDecrypt},
		{"encrypted, no key given", func(t *testing.T) string {
			return createBackup(t, bin, data, "--recipient", keyA.Recipient().String())
		}, nil, 2, backup.CheckDecrypt},
		{"schema newer than the binary", func(t *testing.T) string {
			p := copyOf(t, good)
			rewrite(t, p, func(files map[string][]byte) {
				editManifest(t, files, func(m *backup.Manifest) { m.SchemaVersion = 999 })
			})
			return p
		}, nil, 1, backup.CheckSchema},
		{"restore fails", func(t *testing.T) string {
			// Consistent with its manifest, but a history row names a
			// memory that is not in the backup.
			p := copyOf(t, good)
			rewrite(t, p, func(files map[string][]byte) {
				n := "data/history.jsonl"
				files[n] = bytes.Replace(files[n], []byte(`"memory_id":"01SEED0003"`), []byte(`"memory_id":"01MISSING0"`), 1)
				editManifest(t, files, func(m *backup.Manifest) { resealTable(files, m, backup.TableHistory) })
			})
			return p
		}, nil, 1, backup.CheckRestore},
		{"scratch store unreachable", func(t *testing.T) string { return good },
			[]string{"--scratch-database-url", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, 2, backup.CheckRestore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hook := newWebhook(t)
			from := c.from(t)
			code, rep := verifyCLI(t, bin, from, append([]string{"--webhook", hook.URL}, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d; report %+v", code, c.code, rep.Checks)
			}
			want := map[int]string{1: backup.StatusFailed, 2: backup.StatusError}[c.code]
			if st, detail := checkStatus(rep, c.check); st != want {
				t.Errorf("check %s: %s %q, want %s; report %+v", c.check, st, detail, want, rep.Checks)
			}
			alerts := hook.received()
			if len(alerts) != 1 {
				t.Fatalf("webhook got %d alerts, want 1", len(alerts))
			}
			a := alerts[0]
			if a.Status != "firing" || len(a.Alerts) != 1 || a.Alerts[0].Labels["alertname"] != backup.AlertName ||
				!strings.Contains(a.Text, c.check) || a.Report == nil || a.Report.Status != rep.Status {
				t.Errorf("alert %+v does not describe the failure of %s", a, c.check)
			}
		})
	}

	t.Run("good", func(t *testing.T) {
		hook := newWebhook(t)
		metrics := filepath.Join(t.TempDir(), "backup.prom")
		code, rep := verifyCLI(t, bin, filepath.Dir(good), "--webhook", hook.URL, "--textfile", metrics, "--max-age", "1h")
		if code != 0 || rep.Status != backup.StatusOK || rep.Canaries == 0 {
			t.Fatalf("exit %d, report %+v", code, rep)
		}
		if n := len(hook.received()); n != 0 {
			t.Errorf("a good backup sent %d alerts", n)
		}
		prom, _ := os.ReadFile(metrics)
		if !strings.Contains(string(prom), backup.MetricVerifyLastSuccess+" ") || !strings.Contains(string(prom), backup.MetricVerifyStatus+" 0") {
			t.Errorf("metrics after success:\n%s", prom)
		}
		last := lastSuccess(t, metrics)
		// A failure keeps the last success and sets the status.
		if code, _ := verifyCLI(t, bin, t.TempDir(), "--textfile", metrics); code != 1 {
			t.Fatalf("verify of an empty directory: exit %d", code)
		}
		prom, _ = os.ReadFile(metrics)
		if !strings.Contains(string(prom), backup.MetricVerifyStatus+" 1") || lastSuccess(t, metrics) != last || last == "" {
			t.Errorf("metrics after a failure:\n%s", prom)
		}
		// The right key decrypts.
		keyed := createBackup(t, bin, data, "--recipient", keyA.Recipient().String())
		if code, rep := verifyCLI(t, bin, keyed, "--identity", idFile(keyA)); code != 0 {
			t.Errorf("encrypted backup with its key: exit %d, %+v", code, rep.Checks)
		}
	})
}

func lastSuccess(t *testing.T, path string) string {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, backup.MetricVerifyLastSuccess+" "); ok {
			return v
		}
	}
	return ""
}

// TestBackupRestoreCLI: create on SQLite, restore into SQLite and into
// PostgreSQL with the same checksums; a store with data is refused
// without --force; list and prune.
func TestBackupRestoreCLI(t *testing.T) {
	bin := buildBinary(t)
	data := seededDataDir(t)
	archive := createBackup(t, bin, data)
	want := manifestOf(t, archive).Tables

	// Into a new SQLite data directory.
	dst := t.TempDir()
	r := runCLI(t, bin, nil, "backup", "restore", "--from", filepath.Dir(archive), "--data-dir", dst)
	if r.code != 0 || !strings.Contains(r.stdout, "memories     5 rows") {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(dst, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	got := tableSums(t, st)
	emb, _ := st.EmbeddingModels(t.Context())
	st.Close()
	compareSums(t, "sqlite", want, got, 1) // + the restore's audit record
	if n := emb["builtin-v1-d384"]; n != 5 {
		t.Errorf("embeddings after restore: %v, want 5 (every memory not deleted)", emb)
	}

	// Again: refused, then --force keeps the old file aside.
	r = runCLI(t, bin, nil, "backup", "restore", "--from", archive, "--data-dir", dst, "--skip-embeddings")
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("restore over data: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, bin, nil, "backup", "restore", "--from", archive, "--data-dir", dst, "--force", "--skip-embeddings")
	if r.code != 0 || !strings.Contains(r.stdout, "previous database is kept as") {
		t.Errorf("restore --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Into PostgreSQL.
	url := pgtest.Database(t)
	r = runCLI(t, bin, nil, "backup", "restore", "--from", archive, "--database-url", url)
	if r.code != 0 {
		t.Fatalf("restore into PostgreSQL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	pg, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	compareSums(t, "postgres", want, tableSums(t, pg), 1)
	pg.Close()
	r = runCLI(t, bin, nil, "backup", "restore", "--from", archive, "--database-url", url, "--skip-embeddings")
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("restore over PostgreSQL data: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, bin, nil, "backup", "restore", "--from", archive, "--database-url", url, "--force", "--skip-embeddings")
	if r.code != 0 {
		t.Errorf("restore --force into PostgreSQL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A backup of the PostgreSQL store verifies in a scratch PostgreSQL
	// database and in a scratch SQLite file.
	to := t.TempDir()
	if r := runCLI(t, bin, nil, "backup", "create", "--database-url", url, "--to", to); r.code != 0 {
		t.Fatalf("backup create from PostgreSQL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code, rep := verifyCLI(t, bin, to, "--scratch-database-url", url); code != 0 || rep.Restore == nil {
		t.Errorf("verify into scratch PostgreSQL: exit %d %+v", code, rep.Checks)
	}
	if code, rep := verifyCLI(t, bin, to); code != 0 {
		t.Errorf("verify into scratch SQLite: exit %d %+v", code, rep.Checks)
	}

	// create --textfile: the metrics the backup-stale alert reads.
	prom := filepath.Join(t.TempDir(), "create.prom")
	createBackup(t, bin, data, "--textfile", prom)
	if b, _ := os.ReadFile(prom); !strings.Contains(string(b), backup.MetricBackupLastSuccess+" ") ||
		!strings.Contains(string(b), backup.MetricBackupLastStatus+" 0") {
		t.Errorf("create metrics:\n%s", b)
	}
	r = runCLI(t, bin, nil, "backup", "create", "--data-dir", t.TempDir(), "--to", t.TempDir(), "--textfile", prom)
	if b, _ := os.ReadFile(prom); r.code != 1 || !strings.Contains(string(b), backup.MetricBackupLastStatus+" 1") {
		t.Errorf("a failed create: exit %d, metrics:\n%s", r.code, b)
	}

	// list and prune.
	r = runCLI(t, bin, nil, "backup", "list", "--from", filepath.Dir(archive))
	if r.code != 0 || !strings.Contains(r.stdout, filepath.Base(archive)) || !strings.Contains(r.stdout, "newest") {
		t.Errorf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	old := filepath.Join(filepath.Dir(archive), backup.ArchiveName(time.Now().Add(-40*24*time.Hour), false))
	b, _ := os.ReadFile(archive)
	os.WriteFile(old, b, 0o600)
	// Days and weeks count those that have a backup (as restic does): with
	// one of each, only the newest stays.
	r = runCLI(t, bin, nil, "backup", "prune", "--from", filepath.Dir(archive), "--keep-daily", "1", "--keep-weekly", "1")
	if _, err := os.Stat(old); r.code != 0 || err == nil {
		t.Errorf("prune kept a 40-day-old backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(archive); err != nil {
		t.Errorf("prune removed the newest backup: %v", err)
	}
}

func manifestOf(t *testing.T, path string) backup.Manifest {
	t.Helper()
	rc, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	x, err := backup.Extract(rc, nil, t.TempDir(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	x.Remove()
	return x.Manifest
}

func tableSums(t *testing.T, src backup.Source) map[string]backup.TableInfo {
	t.Helper()
	var out map[string]backup.TableInfo
	if err := src.Snapshot(t.Context(), func(s backup.Snapshot) error {
		var err error
		out, err = backup.Checksums(t.Context(), s)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// compareSums compares every table but the audit log, which holds
// extraAudit more records (the restore's own).
func compareSums(t *testing.T, what string, want, got map[string]backup.TableInfo, extraAudit int64) {
	t.Helper()
	for table, w := range want {
		g := got[table]
		if table == backup.TableAudit {
			if g.Rows != w.Rows+extraAudit {
				t.Errorf("%s: audit_log has %d rows, want %d", what, g.Rows, w.Rows+extraAudit)
			}
			continue
		}
		if g != w {
			t.Errorf("%s: %s = %+v, want %+v", what, table, g, w)
		}
	}
}

// TestServeScheduledBackups: serve with backup_schedule and
// backup_verify_schedule writes archives into backup_dir while it serves,
// verifies them, and stops cleanly.
func TestServeScheduledBackups(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	srv := startServer(t, bin, seededDataDir(t), "--backup-dir", dir,
		"--backup-schedule", "@every 1s", "--backup-verify-schedule", "@every 2s")
	deadline := time.After(e2eTimeout)
	for !strings.Contains(srv.out.String(), `"backup verified"`) && !strings.Contains(srv.out.String(), "backup verified") {
		select {
		case <-deadline:
			t.Fatalf("no verified backup after %s:\n%s", e2eTimeout, srv.out.String())
		case <-srv.exited:
			t.Fatalf("server exited: %v\n%s", srv.err, srv.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	objs, err := backup.Dir{Path: dir}.List(t.Context())
	if err != nil || len(objs) == 0 {
		t.Fatalf("backup_dir holds %v, %v", objs, err)
	}
	if code, rep := verifyCLI(t, bin, dir); code != 0 || rep.Manifest.Tables[backup.TableMemories].Rows != 5 {
		t.Errorf("a scheduled backup: exit %d, %+v", code, rep.Checks)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("serve exited with %v", err)
	}
}
