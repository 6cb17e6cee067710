package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// latest is the highest migration in migrations/: the files run 1, 2, 3, …
// without gaps, so it is their number.
var latest = func() int {
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) == 0 {
		panic(fmt.Sprintf("no migrations found: %v", err))
	}
	return len(names)
}()

func TestOpenMigrates(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "brain.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != latest {
		t.Fatalf("schema version after open: %d, %v; want %d", v, err, latest)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	svc := memory.NewService(s, memory.Options{})
	actx := auth.WithPrincipal(ctx, auth.Principal{Subject: "alice", OrgID: "acme"})
	m, _, err := svc.Add(actx, memory.Input{Content: "survives a reopen"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing and keeps the data.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if applied, err := s.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Errorf("migrate after reopen applied %v, %v; want nothing", applied, err)
	}
	status, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != latest || !status[0].Applied || !status[0].Known || status[0].Name != "0001_init" || status[0].AppliedAt.IsZero() {
		t.Errorf("migration status: %+v", status)
	}
	got, err := memory.NewService(s, memory.Options{}).Get(actx, m.ID, memory.ViaREST)
	if err != nil || got.Content != m.Content {
		t.Errorf("memory after reopen: %+v, %v", got, err)
	}
}

func TestOpenWithoutMigrate(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "brain.db"), sqlite.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Errorf("schema version of a new file: %d, %v; want 0", v, err)
	}
	if err := s.Ping(ctx); !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("ping with the schema behind: %v, want ErrUnavailable", err)
	}
	status, err := s.MigrationStatus(ctx)
	if err != nil || len(status) != latest || status[0].Applied {
		t.Errorf("status before migrate: %+v, %v", status, err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil || len(applied) != latest || applied[0].Version != 1 {
		t.Fatalf("migrate: %+v, %v", applied, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping after migrate: %v", err)
	}
}

// TestConcurrentOpen starts several stores on one new file at once, as
// replicas or a CLI beside a server would: each migration runs once.
func TestConcurrentOpen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "brain.db")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			s, err := sqlite.Open(ctx, path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent open: %v", err)
		}
	}
	db := rawDB(t, path)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != latest {
		t.Errorf("schema_migrations has %d rows (%v), want %d", n, err, latest)
	}
}

// TestNewerSchema opens a database migrated by a newer binary: it works,
// and the status names the unknown version.
func TestNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "brain.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future', '2030-01-01T00:00:00.000000000Z')`); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("open a newer schema: %v", err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping on a newer schema: %v", err)
	}
	if v, _ := s.SchemaVersion(ctx); v != 99 {
		t.Errorf("schema version %d, want 99", v)
	}
	status, err := s.MigrationStatus(ctx)
	if err != nil || len(status) != latest+1 || status[latest].Version != 99 || status[latest].Known {
		t.Errorf("status: %+v, %v", status, err)
	}
}

func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", t.TempDir()} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("open %q: no error", path)
		}
	}
}

// TestOddPath opens a file whose name holds URI syntax.
func TestOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a b?c=d#e%20f.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("path %q, want %q", s.Path(), path)
	}
	if _, err := os.Stat(path); err != nil { // the file is where it was asked to be
		t.Error(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			t.Errorf("stray file %s beside the database", e.Name())
		}
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?mode=rw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	return db
}
