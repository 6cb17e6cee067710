// Package sqlite is the embedded memory.Store: one SQLite file (pure-Go
// driver modernc.org/sqlite) holding memories, their history, the access log
// and an FTS5 lexical index, with schema migrations embedded in the binary.
//
// The store keeps two connection pools on the same file. Writes go through a
// pool of exactly one connection whose transactions begin IMMEDIATE, so
// writers in this process queue in Go instead of failing with SQLITE_BUSY, and
// a writer in another process waits on busy_timeout. Reads use a separate pool
// of read-only connections; in WAL mode they never wait for the writer. A
// background goroutine, stopped by Close, checkpoints the WAL so that
// commits do not pay for it.
//
// Visibility (memory.Access) is a condition of every statement. Search also
// puts the caller's access tokens into the FTS5 query (acl.go), so BM25 ranks
// only memories the caller may see; see Search for how filters still apply
// before the limit.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"

	driver "modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// walAutoCheckpoint is the WAL size, in pages, at which a committing writer
// checkpoints by itself; normally the background checkpoint runs long
// before.
const walAutoCheckpoint = 10_000

// busyTimeoutMS is how long a connection waits for a lock held by another
// process before giving up.
const busyTimeoutMS = 10_000

// Store is a memory.Store on one SQLite database file.
type Store struct {
	path string
	w    *sql.DB // one connection: every write transaction
	r    *sql.DB // read-only connections

	stmts      stmtCache            // prepared read statements
	graphStmts map[string]*sql.Stmt // prepared graph writes (graph.go)

	stopCheckpoints context.CancelFunc
	checkpointsDone chan struct{}
}

var _ memory.Store = (*Store)(nil)

// Option changes how Open prepares a store.
type Option func(*options)

type options struct {
	migrate bool
}

// WithoutMigrate opens the store without applying pending migrations, for
// commands that only report the schema (migrate status). Ping reports a
// schema that is behind as memory.ErrUnavailable.
func WithoutMigrate() Option { return func(o *options) { o.migrate = false } }

// Open opens (creating if needed) the database file at path in WAL mode with
// foreign keys on, synchronous=NORMAL and a busy timeout, and applies pending
// migrations unless WithoutMigrate is given. In-memory databases are not
// supported: the store needs two pools on one file.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{migrate: true}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("open sqlite: %q is not a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := &Store{path: abs}
	if s.w, err = sql.Open("sqlite", dsn(abs, false)); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	// The writer connection creates the file and switches it to WAL before
	// any reader opens it.
	if err := pingWriter(ctx, s.w); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if s.r, err = sql.Open("sqlite", dsn(abs, true)); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if o.migrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.prepareGraph(ctx)
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopCheckpoints, s.checkpointsDone = cancel, make(chan struct{})
	go s.checkpoint(cctx, checkpointEvery)
	return s, nil
}

// checkpointEvery is how often the WAL is copied back into the database file.
const checkpointEvery = time.Second

// checkpoint runs PASSIVE WAL checkpoints on a read connection until ctx
// ends, so that the copy back into the database file (and its fsync) does
// not land on a writer's commit. A PASSIVE checkpoint never blocks writers
// or readers. If it falls behind, the writer's own auto-checkpoint (set high,
// walAutoCheckpoint pages) still bounds the WAL. A failed checkpoint is
// retried on the next tick; a broken database shows in Ping and in writes.
func (s *Store) checkpoint(ctx context.Context, every time.Duration) {
	defer close(s.checkpointsDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.r.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// pingWriter opens the writer connection. When several processes create the
// same file at once, switching it to WAL can fail with SQLITE_BUSY without
// going through the busy handler; that is retried for up to busyTimeoutMS.
func pingWriter(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		var e *driver.Error
		if err == nil || !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// dsn builds the driver's connection string: a file: URI (so any character in
// the path is safe) with the connection settings as query parameters.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "NORMAL")
	// No memory map, and 8 MiB of page cache per connection. Searches rank
	// in process (internal/retrieval) and read only the rows of their hits,
	// so the file's pages are better left to the kernel's page cache than
	// mapped: a mapped page read once (loading the indexes reads every
	// memory) counts in the process's resident memory. At 100k memories
	// serve held 650 MiB resident with a 256 MiB map and 32 MiB caches,
	// 365 MiB with neither, at the same search latency (docs/design.md).
	q.Add("_pragma", "mmap_size(0)")
	q.Add("_pragma", "cache_size(-8000)")
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutoCheckpoint))
	if readOnly {
		q.Set("_query_only", "1") // WAL is a property of the file, set by the writer
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Ping checks that the database answers and that its schema is not behind
// this binary's migrations. A newer schema is accepted: migrations are
// written expand-then-contract, so an older binary keeps working on it.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w: %w", memory.ErrUnavailable, err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("ping sqlite: %w: %w", memory.ErrUnavailable, err)
	}
	if latest := latestVersion(); v < latest {
		return fmt.Errorf("ping sqlite: schema version %d is behind %d; run migrate up: %w", v, latest, memory.ErrUnavailable)
	}
	return nil
}

// Close runs PRAGMA optimize (keeps planner statistics fresh) and closes
// both pools.
func (s *Store) Close() error {
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
		<-s.checkpointsDone
	}
	errs := []error{s.stmts.close()}
	for _, st := range s.graphStmts {
		errs = append(errs, st.Close())
	}
	if s.w != nil {
		_, _ = s.w.Exec("PRAGMA optimize")
		errs = append(errs, s.w.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}
