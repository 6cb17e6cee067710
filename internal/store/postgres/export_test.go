package postgres

import (
	"context"
	"io/fs"
)

// OpenWithMigrations opens a store that migrates from fsys (NNNN_name.sql
// files at its root) instead of the embedded migrations.
func OpenWithMigrations(ctx context.Context, cfg Config, fsys fs.FS) (*Store, error) {
	return open(ctx, cfg, fsys)
}

// EmbeddedMigrations are the migrations this binary carries.
func EmbeddedMigrations() (fs.FS, error) { return fs.Sub(migrationFiles, "migrations") }
