// Package postgres is the production memory.Store on PostgreSQL (15 or
// later) through a pgx connection pool: memories, their history and the
// access log in one database, lexical search on a generated tsvector column
// with a GIN index, and schema migrations embedded in the binary.
//
// Every query carries the caller's visibility (org and access entities) in
// its WHERE clause; nothing is filtered after the fact. Writes are single
// transactions. Open does not migrate: Migrate does, under an advisory lock
// so that replicas starting together apply each migration once, and Ping
// reports a schema that is behind as memory.ErrUnavailable.
//
// Errors that mean the database cannot be reached (dial failures, lost
// connections, a closed pool, a server shutting down) wrap
// memory.ErrUnavailable, so the API can answer 503 and readiness can fail.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Config says how to reach the database.
type Config struct {
	// URL is a libpq connection string or postgres:// URL.
	URL string
	// MaxConns caps the pool; zero keeps pgxpool's default (the larger of 4
	// and the number of CPUs).
	MaxConns int32
	// ConnectTimeout bounds dialling one connection; zero keeps the URL's
	// connect_timeout, if any.
	ConnectTimeout time.Duration
	// StatementTimeout is set as the statement_timeout of every connection;
	// zero keeps the server's setting.
	StatementTimeout time.Duration
}

// Store is a memory.Store on a PostgreSQL database.
type Store struct {
	pool       *pgxpool.Pool
	migrations fs.FS // NNNN_description.sql files at the root
}

var _ memory.Store = (*Store)(nil)

// Open connects a pool to the database of cfg and checks that the server
// answers. It does not migrate: call Migrate (the migrate command, or serve
// at start). A server that cannot be reached is memory.ErrUnavailable.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return open(ctx, cfg, sub)
}

// poolConfig is the pool configuration of cfg, for the primary and for
// each replica alike.
func poolConfig(cfg Config) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.ConnectTimeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	if cfg.StatementTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "codingbrain"
	}
	return pc, nil
}

func open(ctx context.Context, cfg Config, migrations fs.FS) (*Store, error) {
	if strings.TrimSpace(cfg.URL) == "" {
		return nil, errors.New("open postgres: no database URL")
	}
	pc, err := poolConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	s := &Store{pool: pool, migrations: migrations}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", s.dbErr(err))
	}
	return s, nil
}

// Ping checks that the database answers and that its schema is not behind
// this binary's migrations. A newer schema is accepted: migrations are
// written expand-then-contract, so an older binary keeps working on it.
// Every failure wraps memory.ErrUnavailable: the store cannot serve.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.ping(ctx); err != nil {
		if !errors.Is(err, memory.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", memory.ErrUnavailable, err)
		}
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

func (s *Store) ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.dbErr(err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	latest, err := latestVersion(s.migrations)
	if err != nil {
		return err
	}
	if v < latest {
		return fmt.Errorf("schema version %d is behind %d; run migrate up: %w", v, latest, memory.ErrUnavailable)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// dbErr marks err as memory.ErrUnavailable when it says the database cannot
// be reached, and otherwise returns it as it is. A lost connection usually
// means every idle connection of the pool is dead too (the server restarted
// or the network dropped), so the pool is reset: the next request dials
// afresh instead of failing on another stale connection.
func (s *Store) dbErr(err error) error {
	if err == nil || !unreachable(err) {
		return err
	}
	var pgErr *pgconn.PgError
	if !errors.Is(err, puddle.ErrClosedPool) && !(errors.As(err, &pgErr) && pgErr.Code == "53300") {
		s.pool.Reset()
	}
	return fmt.Errorf("%w: %w", memory.ErrUnavailable, err)
}

// unreachable reports whether err means the server could not be reached or
// the connection was lost, as opposed to an error in a statement.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		var ce *pgconn.ConnectError
		return errors.As(err, &ce) // a dial that timed out
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now (starting up, recovering)
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// isUnique reports whether err is a unique violation.
func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
