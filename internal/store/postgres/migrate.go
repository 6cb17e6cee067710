package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema migrations, named NNNN_description.sql
// and applied in version order, each in its own transaction together with
// its schema_migrations row. A migration must not begin or commit a
// transaction itself, nor use statements that cannot run in one (CREATE
// INDEX CONCURRENTLY).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey is the pg_advisory_lock key Migrate holds, so that several
// replicas starting together apply each migration once: the first migrates,
// the others wait and then find nothing to do. ("cb-mig" in ASCII.)
const migrateLockKey int64 = 0x63622d6d6967

// Migration is one schema migration and whether the database has it. It has
// the same fields as sqlite.Migration, so a command can convert one to the
// other and report both stores alike.
type Migration struct {
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	Applied   bool      `json:"applied"`
	AppliedAt time.Time `json:"applied_at,omitzero"` // zero when not applied
	Known     bool      `json:"known"`               // false for a version applied by a newer binary
}

type migrationFile struct {
	version int
	name    string
	sql     string
}

// readMigrations reads the *.sql files at the root of fsys in version
// order. The versions must run 1, 2, 3, … without gaps.
func readMigrations(fsys fs.FS) ([]migrationFile, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migrationFile
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".sql")
		num, desc, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || desc == "" {
			return nil, fmt.Errorf("read migrations: %s is not named NNNN_description.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		ms = append(ms, migrationFile{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migrationFile) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("read migrations: expected version %d, found %s", i+1, m.name)
		}
	}
	return ms, nil
}

// latestVersion is the highest migration version in fsys.
func latestVersion(fsys fs.FS) (int, error) {
	ms, err := readMigrations(fsys)
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	return ms[len(ms)-1].version, nil
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// querier is a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SchemaVersion returns the highest applied migration version, 0 for an
// empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	applied, err := s.appliedMigrations(ctx, s.pool)
	if err != nil {
		return 0, err
	}
	v := 0
	for _, m := range applied {
		v = max(v, m.Version)
	}
	return v, nil
}

// appliedMigrations reads schema_migrations, which may not exist yet.
func (s *Store) appliedMigrations(ctx context.Context, q querier) ([]Migration, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read schema version: %w", s.dbErr(err))
	}
	if !exists {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", s.dbErr(err))
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Migration, error) {
		m := Migration{Applied: true}
		err := r.Scan(&m.Version, &m.Name, &m.AppliedAt)
		m.AppliedAt = m.AppliedAt.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", s.dbErr(err))
	}
	return ms, nil
}

// MigrationStatus lists every migration this binary carries, applied or
// not, followed by any applied version it does not know (from a newer
// binary), in version order.
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	avail, err := readMigrations(s.migrations)
	if err != nil {
		return nil, err
	}
	applied, err := s.appliedMigrations(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	byVersion := make(map[int]Migration, len(applied))
	for _, m := range applied {
		byVersion[m.Version] = m
	}
	out := make([]Migration, 0, len(avail))
	for _, a := range avail {
		m := Migration{Version: a.version, Name: a.name, Known: true}
		if am, ok := byVersion[a.version]; ok {
			m.Applied, m.AppliedAt = true, am.AppliedAt
			delete(byVersion, a.version)
		}
		out = append(out, m)
	}
	for _, m := range applied {
		if _, unknown := byVersion[m.Version]; unknown {
			out = append(out, m)
		}
	}
	return out, nil
}

// Migrate applies every pending migration and returns the ones it applied.
// It holds a session-level advisory lock on one connection throughout, so
// concurrent callers (replicas starting together) queue: the first applies
// the migrations, the others find them applied. Each migration runs in its
// own transaction with its schema_migrations row; one that fails is rolled
// back, leaving the schema at the previous version, and Migrate stops there.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	avail, err := readMigrations(s.migrations)
	if err != nil {
		return nil, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate postgres: %w", s.dbErr(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return nil, fmt.Errorf("migrate postgres: take lock: %w", s.dbErr(err))
	}
	defer unlock(ctx, conn)

	if _, err := conn.Exec(ctx, createSchemaMigrations); err != nil {
		return nil, fmt.Errorf("migrate postgres: %w", s.dbErr(err))
	}
	applied, err := s.appliedMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	var done []Migration
	have := make(map[int]bool, len(applied))
	for _, m := range applied {
		have[m.Version] = true
	}
	for _, m := range avail {
		if have[m.version] {
			continue
		}
		at, err := s.applyMigration(ctx, conn, m)
		if err != nil {
			return done, err
		}
		done = append(done, Migration{Version: m.version, Name: m.name, Applied: true, AppliedAt: at, Known: true})
	}
	return done, nil
}

// applyMigration runs m and records it in one transaction.
func (s *Store) applyMigration(ctx context.Context, conn *pgxpool.Conn, m migrationFile) (time.Time, error) {
	var at time.Time
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Without arguments pgx sends the file with the simple query
		// protocol, which runs several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		if hook := migrationHooks[m.name]; hook != nil {
			if err := hook(ctx, tx); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2) RETURNING applied_at`,
			m.version, m.name).Scan(&at)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, s.dbErr(err))
	}
	return at.UTC(), nil
}

// unlock releases the migration lock. If that fails (ctx ended, connection
// lost), the connection is closed instead: the server drops a session's
// advisory locks when the session ends, and the pool discards a closed
// connection when it is released.
func unlock(ctx context.Context, conn *pgxpool.Conn) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrateLockKey); err != nil {
		_ = conn.Conn().Close(uctx)
	}
}
