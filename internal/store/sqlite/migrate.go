package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema migrations, named NNNN_description.sql and
// applied in version order, each in its own transaction.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one schema migration and whether the database has it.
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

// availableMigrations reads the embedded migrations in version order. The
// versions must run 1, 2, 3, … without gaps.
func availableMigrations() ([]migrationFile, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
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
		b, err := migrationFiles.ReadFile(n)
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

// latestVersion is the highest migration version this binary carries.
func latestVersion() int {
	ms, err := availableMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT`

// SchemaVersion returns the highest applied migration version, 0 for an
// empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	applied, err := s.appliedMigrations(ctx)
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
func (s *Store) appliedMigrations(ctx context.Context) ([]Migration, error) {
	var n int
	err := s.r.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	defer rows.Close()
	var ms []Migration
	for rows.Next() {
		m := Migration{Applied: true}
		var at string
		if err := rows.Scan(&m.Version, &m.Name, &at); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
		if m.AppliedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	return ms, nil
}

// MigrationStatus lists every migration this binary carries, applied or
// not, followed by any applied version it does not know (from a newer
// binary), in version order.
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	avail, err := availableMigrations()
	if err != nil {
		return nil, err
	}
	applied, err := s.appliedMigrations(ctx)
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

// Migrate applies every pending migration, each in its own IMMEDIATE
// transaction, so concurrent starters (several processes on one file) apply
// each migration exactly once. It returns the migrations it applied.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	avail, err := availableMigrations()
	if err != nil {
		return nil, err
	}
	if _, err := s.w.ExecContext(ctx, createSchemaMigrations); err != nil {
		return nil, fmt.Errorf("migrate sqlite: %w", err)
	}
	var done []Migration
	for _, m := range avail {
		ok, at, err := s.applyMigration(ctx, m)
		if err != nil {
			return done, err
		}
		if ok {
			done = append(done, Migration{Version: m.version, Name: m.name, Applied: true, AppliedAt: at, Known: true})
		}
	}
	return done, nil
}

// applyMigration runs m unless it is already recorded, and records it.
func (s *Store) applyMigration(ctx context.Context, m migrationFile) (bool, time.Time, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = ?`, m.version).Scan(&one)
	if err == nil {
		return false, time.Time{}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	if hook := migrationHooks[m.name]; hook != nil {
		if err := hook(s, ctx, tx); err != nil {
			return false, time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	at := time.Now().UTC()
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, formatTime(at)); err != nil {
		return false, time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, time.Time{}, fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	return true, at, nil
}
