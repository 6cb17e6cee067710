package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval"
	"github.com/codingbrain/codingbrain/internal/retrieval/embedding"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// valkeyPrefix namespaces Coding Brain's keys in a shared Valkey.
const valkeyPrefix = "codingbrain:"

// backends are what serve keeps its state in: the store (the system of
// record) and the shared state of replicas (kv), with their health checks.
type backends struct {
	store  memory.Store
	shared kv.Store
	checks []httpapi.Check
	// embedder computes the vectors of semantic search (openEmbedder).
	// The stored embeddings are kept current for it by backfill, once
	// startEmbedding has started it.
	embedder embed.Embedder
	backfill *embedding.Backfiller

	stopEmbedding func() // set by startEmbedding

	// vectors is the in-process vector index of hybrid search, loaded and
	// kept current by startVectors; nil when the store cannot feed it.
	vectors     *retrieval.Vectors
	stopVectors func()

	// breakers are the circuit breakers around the remote dependencies
	// (Valkey, the HTTP embedder), shown by /health/deps; their state
	// goes to metrics once observe has been called.
	breakers []httpapi.Breaker
	metrics  atomic.Pointer[telemetry.Metrics]
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
	if status := schemaStatus(b.store); status != nil {
		// Another replica may have migrated past this binary (fine) or the
		// database may have been restored to an older schema (not fine).
		b.checks = append(b.checks, httpapi.Check{Name: "schema", Critical: true, Public: true, Probe: func(ctx context.Context) error {
			ms, err := status(ctx)
			if err != nil {
				// This check's errors are shown without a token, and a
				// connection error names hosts and users: the log has it.
				log.Warn("read schema version", "err", err)
				return errors.New("schema version could not be read")
			}
			if current, latest := versions(ms); current < latest {
				return fmt.Errorf("database schema is at version %d, this binary needs %d", current, latest)
			}
			return nil
		}})
	}

	sharedAttrs := []any{"shared_state", "memory"}
	if cfg.ValkeyURL == "" {
		b.shared = kv.NewMemory(nil)
	} else {
		v, err := kv.NewValkeyWith(cfg.ValkeyURL, valkeyPrefix, kv.ValkeyOptions{
			OnStateChange: func(from, to string) {
				log.Warn("valkey circuit breaker", "from", from, "to", to, "valkey_url", config.MaskURL(cfg.ValkeyURL))
				b.breakerChanged("valkey", to)
			},
		})
		if err != nil {
			b.store.Close()
			return nil, fmt.Errorf("valkey: %w", err)
		}
		b.shared = v
		// Not critical: REST works without it; MCP sessions fail until it
		// answers, and /health/deps shows it.
		b.checks = append(b.checks, httpapi.Check{Name: "valkey", Critical: false, Probe: v.Ping})
		b.breakers = append(b.breakers, httpapi.Breaker{Name: "valkey", State: v.State})
		sharedAttrs = []any{"shared_state", "valkey", "valkey_url", config.MaskURL(cfg.ValkeyURL)}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := v.Ping(pctx); err != nil {
			log.Warn("valkey does not answer; MCP sessions fail until it does", "err", cfg.Redact(err.Error()))
		}
		cancel()
	}
	if b.embedder, err = openEmbedderWith(cfg, log, embed.BreakerConfig{}, b.breakerChanged); err != nil {
		b.Close()
		return nil, err
	}
	if h, ok := b.embedder.(*embed.HTTP); ok {
		// Not critical: search falls back to lexical and graph retrieval
		// and writes do not wait for embeddings.
		b.checks = append(b.checks, httpapi.Check{Name: "embedder", Critical: false, Probe: func(context.Context) error {
			if st := h.State(); st == "open" {
				return fmt.Errorf("%w: circuit %s", embed.ErrUnavailable, st)
			}
			return nil
		}})
		b.breakers = append(b.breakers, httpapi.Breaker{Name: "embedder", State: h.State})
	}
	log.Info("backends", append(storeAttrs, append(sharedAttrs, "embedder", b.embedder.Model())...)...)
	return b, nil
}

// openEmbedder builds the embedder cfg names: the builtin one, or the
// OpenAI-compatible HTTP one with its API key read from the variable
// embedder_api_key_env names. Its breaker's state changes are logged.
func openEmbedder(cfg config.Config, log *slog.Logger) (embed.Embedder, error) {
	return openEmbedderWith(cfg, log, embed.BreakerConfig{}, nil)
}

// openEmbedderWith is openEmbedder with the HTTP embedder's breaker
// settings (zero: the defaults) and a listener for its changes of state
// (name "embedder").
func openEmbedderWith(cfg config.Config, log *slog.Logger, breaker embed.BreakerConfig,
	onBreaker func(name, to string)) (embed.Embedder, error) {
	switch cfg.Embedder {
	case "", "builtin":
		return embed.NewBuiltin(), nil
	case "openai":
		e, err := embed.NewHTTP(embed.HTTPConfig{
			URL: cfg.EmbedderURL, Model: cfg.EmbedderModel, APIKey: cfg.EmbedderAPIKey(),
			BatchSize: cfg.EmbedderBatch, Timeout: cfg.EmbedderTimeout, Breaker: breaker,
			OnStateChange: func(from, to string) {
				log.Warn("embedder circuit breaker", "from", from, "to", to, "embedder_url", config.MaskURL(cfg.EmbedderURL))
				if onBreaker != nil {
					onBreaker("embedder", to)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("embedder: %w", err)
		}
		if cfg.EmbedderAPIKey() == "" {
			log.Info("no embedder API key", "variable", cfg.EmbedderAPIKeyEnv)
		}
		return e, nil
	}
	return nil, fmt.Errorf("embedder %q: use builtin or openai", cfg.Embedder)
}

// schemaStatus reads the schema version of the stores serve opens; nil
// for another store.
func schemaStatus(s memory.Store) func(context.Context) ([]migration, error) {
	switch st := s.(type) {
	case *postgres.Store:
		return pgMigrator{st}.status
	case *sqlite.Store:
		return sqliteMigrator{st}.status
	}
	return nil
}

// observe sends the breakers' states to m (codingbrain_breaker_state):
// each one's state now, then every change.
func (b *backends) observe(m *telemetry.Metrics) {
	b.metrics.Store(m)
	for _, br := range b.breakers {
		m.SetBreakerState(br.Name, breakerState(br.State()))
	}
}

func (b *backends) breakerChanged(name, to string) {
	b.metrics.Load().SetBreakerState(name, breakerState(to)) // nil-safe
}

// breakerState is gobreaker's state name as the metric's value.
func breakerState(s string) telemetry.BreakerState {
	switch s {
	case "open":
		return telemetry.BreakerOpen
	case "half-open":
		return telemetry.BreakerHalfOpen
	}
	return telemetry.BreakerClosed
}

// startEmbedding starts keeping the stored embeddings current for the
// embedder in the background (embedding.Backfiller.Run: a model change is
// re-embedded, new and changed memories follow through the change feed).
// onEmbedded and onRemoved, if not nil, hear of every memory's current
// embedding, for an in-process vector index. Close stops it. A store
// without embeddings or a change feed starts nothing.
func (b *backends) startEmbedding(ctx context.Context, log *slog.Logger,
	onEmbedded func([]memory.Embedding), onRemoved func([]memory.MemoryKey)) {
	es, ok := b.store.(memory.EmbeddingStore)
	feed, fok := b.store.(memory.ChangeFeed)
	if !ok || !fok || b.stopEmbedding != nil {
		return
	}
	b.backfill = embedding.New(es, b.embedder, embedding.Options{
		Logger: log, OnEmbedded: onEmbedded, OnRemoved: onRemoved,
	})
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.backfill.Run(ctx, feed) // returns ctx.Err() when stopped
	}()
	b.stopEmbedding = func() { cancel(); <-done }
}

// startVectors loads the vector index of hybrid search from the stored
// embeddings of the embedder's model (logging how many and how long it
// took) and keeps it following the change feed in the background until
// Close. Start it before startEmbedding, whose reports it takes
// (Vectors.Embedded and Removed). A store that cannot feed it starts
// nothing: search is then lexical.
func (b *backends) startVectors(ctx context.Context, log *slog.Logger) error {
	src, ok := b.store.(retrieval.Source)
	if !ok || b.vectors != nil {
		return nil
	}
	v := retrieval.New(b.embedder, src, retrieval.Options{Logger: log})
	if err := v.Load(ctx); err != nil {
		v.Close()
		return err
	}
	// Loading read every memory and embedding once; give that garbage back
	// now rather than holding it until the heap grows again.
	debug.FreeOSMemory()
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = v.Run(ctx) // returns ctx.Err() when stopped
	}()
	b.vectors = v
	b.stopVectors = func() { cancel(); <-done; v.Close() }
	return nil
}

// searchRanking is the ranking search_ranking configures over the
// defaults.
func searchRanking(cfg config.Config) (memory.Ranking, error) {
	r, err := memory.ParseRanking(cfg.SearchRanking, memory.DefaultRanking())
	if err != nil {
		return r, fmt.Errorf("config: search_ranking: %w", err)
	}
	return r, nil
}

// serviceVectors is the Vectors for memory.Options: nil without an index.
func (b *backends) serviceVectors() memory.Vectors {
	if b.vectors == nil {
		return nil
	}
	return b.vectors
}

// Close stops the embedding backfill and the vector index's follower,
// then closes the shared state and the store.
func (b *backends) Close() error {
	if b.stopEmbedding != nil {
		b.stopEmbedding()
	}
	if b.stopVectors != nil {
		b.stopVectors()
	}
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
