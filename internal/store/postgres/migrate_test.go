package postgres_test

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
)

// openUnmigrated opens a store on url without migrating it.
func openUnmigrated(t *testing.T, url string, fsys fs.FS) *postgres.Store {
	t.Helper()
	var s *postgres.Store
	var err error
	if fsys == nil {
		s, err = postgres.Open(t.Context(), postgres.Config{URL: url})
	} else {
		s, err = postgres.OpenWithMigrations(t.Context(), postgres.Config{URL: url}, fsys)
	}
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// withMigrations returns the embedded migrations plus extra files.
func withMigrations(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	embedded, err := postgres.EmbeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	err = fs.WalkDir(embedded, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(embedded, path)
		m[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, sql := range extra {
		m[name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return m
}

// embeddedLatest is the highest version of the embedded migrations; tests
// add theirs after it.
func embeddedLatest(t *testing.T) int {
	t.Helper()
	embedded, err := postgres.EmbeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(embedded, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v, %v", names, err)
	}
	return len(names) // they run 1, 2, 3, … without gaps
}

// connect opens a plain connection for looking at the database directly.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return conn
}

func tableExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestPingReportsSchemaBehind(t *testing.T) {
	url := pgtest.Database(t)
	s := openUnmigrated(t, url, nil)
	ctx := t.Context()
	if err := s.Ping(ctx); !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("ping on an empty database: got %v, want ErrUnavailable", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Errorf("schema version of an empty database: %d, %v", v, err)
	}
	st, err := s.MigrationStatus(ctx)
	if err != nil || len(st) == 0 || st[0].Applied || !st[0].Known || st[0].Version != 1 {
		t.Fatalf("status of an empty database: %+v, %v", st, err)
	}
	if tableExists(t, connect(t, url), "memories") {
		t.Fatal("Open created tables; it must not migrate")
	}

	done, err := s.Migrate(ctx)
	if err != nil || len(done) != len(st) {
		t.Fatalf("migrate: applied %+v, %v; want %d migrations", done, err, len(st))
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping after migrate: %v", err)
	}
	if done, err := s.Migrate(ctx); err != nil || len(done) != 0 {
		t.Errorf("second migrate: applied %+v, %v; want nothing", done, err)
	}

	// A version from a newer binary is accepted and listed as unknown.
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping on a newer schema: %v", err)
	}
	st, err = s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last := st[len(st)-1]; last.Version != 99 || last.Known || !last.Applied {
		t.Errorf("status lists the newer version as %+v", last)
	}
}

// TestMigrateConcurrently starts several stores (replicas) migrating one
// fresh database at once, with a slow migration to make them overlap: all
// succeed, and each migration is applied exactly once.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.Database(t)
	latest := embeddedLatest(t)
	fsys := withMigrations(t, map[string]string{
		fmt.Sprintf("%04d_slow.sql", latest+1): `SELECT pg_sleep(0.2); CREATE TABLE slow_marker (x int); INSERT INTO slow_marker VALUES (1);`,
	})
	const replicas = 4
	stores := make([]*postgres.Store, replicas)
	for i := range stores {
		stores[i] = openUnmigrated(t, url, fsys)
	}
	var wg sync.WaitGroup
	applied := make([][]postgres.Migration, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i, s := range stores {
		wg.Go(func() {
			<-start
			applied[i], errs[i] = s.Migrate(t.Context())
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("replica %d: migrate: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != latest+1 {
		t.Errorf("replicas applied %d migrations in all, want %d (each once): %+v", total, latest+1, applied)
	}
	conn := connect(t, url)
	var rows, markers int
	if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM schema_migrations), (SELECT count(*) FROM slow_marker)`).Scan(&rows, &markers); err != nil {
		t.Fatal(err)
	}
	if rows != latest+1 || markers != 1 {
		t.Errorf("schema_migrations has %d rows and slow_marker %d, want %d and 1", rows, markers, latest+1)
	}
	for i, s := range stores {
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("replica %d: ping: %v", i, err)
		}
	}
}

// TestFailedMigrationRollsBack applies a migration that fails half-way: the
// tables it created are gone, its version is not recorded, the earlier
// migrations stay, and Ping reports the schema behind.
func TestFailedMigrationRollsBack(t *testing.T) {
	url := pgtest.Database(t)
	latest := embeddedLatest(t)
	name := fmt.Sprintf("%04d_broken.sql", latest+1)
	broken := withMigrations(t, map[string]string{
		name: `CREATE TABLE half_done (x int);
			ALTER TABLE memories ADD COLUMN half_column int;
			INSERT INTO memories (no_such_column) VALUES (1);`,
	})
	s := openUnmigrated(t, url, broken)
	ctx := t.Context()
	done, err := s.Migrate(ctx)
	if err == nil {
		t.Fatal("migrate with a broken migration: no error")
	}
	if len(done) != latest || done[len(done)-1].Version != latest {
		t.Errorf("migrate applied %+v before failing, want the %d embedded ones", done, latest)
	}
	conn := connect(t, url)
	if tableExists(t, conn, "half_done") {
		t.Error("the failed migration left table half_done behind")
	}
	var cols int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'memories' AND column_name = 'half_column'`).Scan(&cols); err != nil || cols != 0 {
		t.Errorf("the failed migration left column half_column behind (%d, %v)", cols, err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != latest {
		t.Errorf("schema version after the failure: %d, %v; want %d", v, err, latest)
	}
	if err := s.Ping(ctx); !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("ping with %s pending: got %v, want ErrUnavailable", name, err)
	}

	// The fixed migration applies cleanly afterwards.
	fixed := openUnmigrated(t, url, withMigrations(t, map[string]string{
		name: `CREATE TABLE half_done (x int);`,
	}))
	if done, err := fixed.Migrate(ctx); err != nil || len(done) != 1 || done[0].Version != latest+1 {
		t.Errorf("migrate with the fix: applied %+v, %v; want %s", done, err, name)
	}
	if err := fixed.Ping(ctx); err != nil {
		t.Errorf("ping after the fix: %v", err)
	}
}
