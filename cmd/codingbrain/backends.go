package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// valkeyPrefix namespaces Coding Brain's keys in a shared Valkey.
const valkeyPrefix = "codingbrain:"

// backends are what serve keeps its state in: the store (the system of
// record) and the shared state of replicas (kv), with their health checks.
type backends struct {
	store  memory.Store
	shared kv.Store
	checks []httpapi.Check
}

// openBackends opens the store that cfg names — PostgreSQL when
// database_url is set, else the SQLite file in the data directory — with
// its schema checked (see ensureSchema), and the shared state: Valkey when
// valkey_url is set, else in process. It logs which it uses, never secrets.
func openBackends(ctx context.Context, cfg config.Config, log *slog.Logger) (*backends, error) {
	b := &backends{}
	var err error
	var storeAttrs []any
	if cfg.DatabaseURL != "" {
		b.store, err = openPostgres(ctx, cfg, log)
		storeAttrs = []any{"store", "postgres", "database_url", config.MaskURL(cfg.DatabaseURL)}
	} else {
		path := filepath.Join(cfg.DataDir, dbFile)
		b.store, err = openSQLite(ctx, path, cfg, log)
		storeAttrs = []any{"store", "sqlite", "database", path}
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	b.checks = []httpapi.Check{{Name: "store", Critical: true, Probe: b.store.Ping}}

	sharedAttrs := []any{"shared_state", "memory"}
	if cfg.ValkeyURL == "" {
		b.shared = kv.NewMemory(nil)
	} else {
		v, err := kv.NewValkey(cfg.ValkeyURL, valkeyPrefix)
		if err != nil {
			b.store.Close()
			return nil, fmt.Errorf("valkey: %w", err)
		}
		b.shared = v
		// Not critical: REST works without it; MCP sessions fail until it
		// answers, and /health/deps shows it.
		b.checks = append(b.checks, httpapi.Check{Name: "valkey", Critical: false, Probe: v.Ping})
		sharedAttrs = []any{"shared_state", "valkey", "valkey_url", config.MaskURL(cfg.ValkeyURL)}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := v.Ping(pctx); err != nil {
			log.Warn("valkey does not answer; MCP sessions fail until it does", "err", cfg.Redact(err.Error()))
		}
		cancel()
	}
	log.Info("backends", append(storeAttrs, sharedAttrs...)...)
	return b, nil
}

// Close closes the shared state, then the store.
func (b *backends) Close() error {
	return errors.Join(b.shared.Close(), b.store.Close())
}

func postgresConfig(cfg config.Config) postgres.Config {
	return postgres.Config{
		URL:              cfg.DatabaseURL,
		MaxConns:         int32(cfg.DBMaxConns), // Validate keeps it in range
		ConnectTimeout:   cfg.DBConnectTimeout,
		StatementTimeout: cfg.DBStatementTimeout,
	}
}

func openPostgres(ctx context.Context, cfg config.Config, log *slog.Logger) (*postgres.Store, error) {
	s, err := postgres.Open(ctx, postgresConfig(cfg))
	if err != nil {
		return nil, err
	}
	// Migrations run on a pool of their own without the serving
	// statement_timeout: a long migration, or the wait for another replica's
	// advisory lock, must not be cut off by it.
	migrate := func(ctx context.Context) ([]migration, error) {
		mc := postgresConfig(cfg)
		mc.MaxConns, mc.StatementTimeout = 2, 0
		ms, err := postgres.Open(ctx, mc)
		if err != nil {
			return nil, err
		}
		defer ms.Close()
		return pgMigrator{ms}.up(ctx)
	}
	err = ensureSchema(ctx, pgMigrator{s}.status, migrate, cfg.Migrate, false,
		"codingbrain migrate up --database-url …", log)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string, cfg config.Config, log *slog.Logger) (*sqlite.Store, error) {
	s, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
	if err != nil {
		return nil, err
	}
	m := sqliteMigrator{s}
	err = ensureSchema(ctx, m.status, m.up, cfg.Migrate, true,
		"codingbrain migrate up --data-dir "+cfg.DataDir, log)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ensureSchema compares the database's schema version with the latest
// migration this binary carries:
//
//   - behind: with --migrate (allow) it applies the pending migrations;
//     without, it refuses, naming the command that would (hint). An empty
//     database (version 0) is initialised without --migrate when
//     initEmpty is set: the embedded SQLite file is serve's own and holds
//     no data yet, so there is nothing to protect;
//   - ahead (a newer binary migrated): it warns and goes on, since
//     migrations are written expand-then-contract for older binaries;
//   - equal: nothing to do.
func ensureSchema(ctx context.Context, status, up func(context.Context) ([]migration, error),
	allow, initEmpty bool, hint string, log *slog.Logger) error {
	ms, err := status(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	current, latest := versions(ms)
	switch {
	case current < latest && (allow || initEmpty && current == 0):
		applied, err := up(ctx)
		for _, m := range applied {
			log.Info("applied migration", "version", m.Version, "name", m.Name)
		}
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	case current < latest:
		return fmt.Errorf("database schema is at version %d, this binary needs %d; "+
			"run `%s` or start serve with --migrate", current, latest, hint)
	case current > latest:
		log.Warn("database schema is ahead of this binary; continuing (migrations are expand-then-contract)",
			"schema_version", current, "binary_version", latest)
	}
	return nil
}
