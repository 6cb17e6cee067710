package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// ReplicaOptions configure read routing to streaming replicas.
type ReplicaOptions struct {
	// MaxLag is the replay lag above which a replica gets no reads
	// (default 5s).
	MaxLag time.Duration
	// CheckInterval is how often each replica's health and lag are
	// measured (default 1s).
	CheckInterval time.Duration
	// BreakerTimeout is how long an open circuit breaker keeps reads off a
	// replica before one is tried again (default 10s). A breaker opens
	// after three failures in a row (health checks or reads).
	BreakerTimeout time.Duration
	// Writes remembers, per principal, the WAL position of its last write,
	// so that every server replica routes its next reads to a database
	// that has it: give every server the same shared store (kv.Valkey).
	// nil keeps them in process.
	Writes kv.Store
	// WriteTTL is how long a principal's last write position is kept
	// (default one hour); afterwards its reads only need MaxLag.
	WriteTTL time.Duration
	// Registerer receives the routing metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger hears of replicas going unhealthy and back; nil discards.
	Logger *slog.Logger
	// OnStateChange, when set, hears of every change of a replica's
	// circuit breaker (gobreaker's state names: closed, half-open, open).
	OnStateChange func(replica, from, to string)
}

// Routed is the primary Store with read routing: reads of memories (get,
// list, search, history, lookups, graph reads, apps, stats, exports) go to
// a replica that is healthy, within MaxLag, and has replayed the calling
// principal's last write; everything else, and any read no replica
// qualifies for, goes to the primary. Writes go to the primary and record
// the principal's WAL position (pg_current_wal_insert_lsn() after the commit)
// in ReplicaOptions.Writes.
//
// Every method Routed does not override is the primary's, so it keeps
// every capability of Store (change feed, embeddings, backups, GDPR, …).
type Routed struct {
	*Store
	replicas []*replica
	opts     ReplicaOptions
	next     atomic.Uint64 // round-robin start

	reads     *prometheus.CounterVec
	fallbacks *prometheus.CounterVec

	mu      sync.Mutex
	samples []lsnSample // the primary's WAL position over time, oldest first

	stop func()
}

// lsnSample is the primary's WAL insert position at a time.
type lsnSample struct {
	at  time.Time
	lsn int64
}

// replica is one streaming replica: its store, breaker and last measured
// state.
type replica struct {
	name   string
	store  *Store
	cb     *gobreaker.CircuitBreaker[struct{}]
	replay atomic.Int64 // pg_last_wal_replay_lsn at the last check, bytes
	lagNs  atomic.Int64
	up     atomic.Bool

	lag     prometheus.Gauge
	healthy prometheus.Gauge
	state   prometheus.Gauge
}

var _ memory.Store = (*Routed)(nil)

// OpenReplica connects a pool to a replica without requiring it to answer
// now: a replica that is down at start gets reads once it is up.
func OpenReplica(cfg Config) (*Store, error) {
	pc, err := poolConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("open replica: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("open replica: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open replica: %w", err)
	}
	return &Store{pool: pool, migrations: sub}, nil
}

// NewRouted routes reads of primary to replicas (named replica-1, … in
// metrics and logs, never by URL). It measures them once before it
// returns and then every CheckInterval until Close, which also closes the
// replicas and the primary.
func NewRouted(ctx context.Context, primary *Store, replicas []*Store, opts ReplicaOptions) (*Routed, error) {
	if opts.MaxLag <= 0 {
		opts.MaxLag = 5 * time.Second
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = time.Second
	}
	if opts.BreakerTimeout <= 0 {
		opts.BreakerTimeout = 10 * time.Second
	}
	if opts.WriteTTL <= 0 {
		opts.WriteTTL = time.Hour
	}
	if opts.Writes == nil {
		opts.Writes = kv.NewMemory(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Routed{Store: primary, opts: opts,
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "codingbrain_db_reads_total",
			Help: "Routed store reads by the database that served them: primary or replica-N."}, []string{"target"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "codingbrain_db_read_fallbacks_total",
			Help: "Reads served by the primary although replicas are configured, by reason: unhealthy, lagging, behind_write (no replica has replayed the caller's last write), error (the replica failed the read), no_write_position (the shared store did not answer)."},
			[]string{"reason"}),
	}
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "codingbrain_db_replica_lag_seconds",
		Help: "Replay lag of each replica at its last check: how long ago the primary had WAL the replica has not replayed (0 when caught up)."}, []string{"replica"})
	healthy := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "codingbrain_db_replica_healthy",
		Help: "1 when the replica answered its last check and is in recovery, else 0."}, []string{"replica"})
	state := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "codingbrain_db_replica_breaker_state",
		Help: "The replica's circuit breaker: 0 closed, 1 half-open, 2 open."}, []string{"replica"})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.reads, r.fallbacks, lag, healthy, state} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("replica metrics: %w", err)
			}
		}
	}
	for i, s := range replicas {
		rep := &replica{name: fmt.Sprintf("replica-%d", i+1), store: s}
		rep.lag, rep.healthy, rep.state = lag.WithLabelValues(rep.name), healthy.WithLabelValues(rep.name), state.WithLabelValues(rep.name)
		rep.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        rep.name,
			Timeout:     opts.BreakerTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
			IsSuccessful: func(err error) bool {
				return err == nil || !errors.Is(err, memory.ErrUnavailable)
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				rep.state.Set(float64(to))
				opts.Logger.Warn("replica circuit breaker", "replica", name, "from", from.String(), "to", to.String())
				if opts.OnStateChange != nil {
					opts.OnStateChange(name, from.String(), to.String())
				}
			},
		})
		r.replicas = append(r.replicas, rep)
	}
	r.Check(ctx)
	loop, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(opts.CheckInterval)
		defer t.Stop()
		for {
			select {
			case <-loop.Done():
				return
			case <-t.C:
				r.Check(loop)
			}
		}
	}()
	r.stop = func() { cancel(); <-done }
	return r, nil
}

// Close stops the checks and closes the replicas and the primary.
func (r *Routed) Close() error {
	r.stop()
	for _, rep := range r.replicas {
		rep.store.Close()
	}
	return r.Store.Close()
}

// WAL positions, as bytes from 0/0. A write's position is where WAL is
// inserted after its commit (pg_current_wal_insert_lsn): with asynchronous
// commit the WAL written so far (pg_current_wal_lsn) can still be short of
// the commit record, and a replica that replayed up to it would not show
// the write — the read-your-writes test caught exactly that. The checks
// compare replicas with the WAL written (pg_current_wal_lsn), which a
// caught-up replica reaches exactly.
const (
	insertLSN  = `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint`
	currentLSN = `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`
	replayLSN  = `SELECT coalesce((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, -1), pg_is_in_recovery()`
)

// Check measures every replica now: it answers, is in recovery, and how
// far its replay is behind the primary. The lag is how long ago the
// primary first had WAL the replica has not replayed, from the primary's
// positions sampled at each check (0 when it has replayed what the primary
// had at this check). NewRouted runs it every CheckInterval.
func (r *Routed) Check(ctx context.Context) {
	now := time.Now()
	var primary int64
	if err := r.Store.pool.QueryRow(ctx, currentLSN).Scan(&primary); err != nil {
		// Without the primary's position the lag is unknown: keep the
		// last measurements (reads fall back to the primary anyway if
		// it is down, and so would fail there too).
		return
	}
	r.mu.Lock()
	r.samples = append(r.samples, lsnSample{at: now, lsn: primary})
	keep := now.Add(-2*r.opts.MaxLag - 2*r.opts.CheckInterval)
	for len(r.samples) > 1 && r.samples[1].at.Before(keep) {
		r.samples = r.samples[1:]
	}
	samples := append([]lsnSample(nil), r.samples...)
	r.mu.Unlock()
	for _, rep := range r.replicas {
		var replay int64
		var recovering bool
		_, err := rep.cb.Execute(func() (struct{}, error) {
			err := rep.store.pool.QueryRow(ctx, replayLSN).Scan(&replay, &recovering)
			return struct{}{}, rep.store.dbErr(err)
		})
		up := err == nil && recovering && replay >= 0
		if up != rep.up.Load() {
			if up {
				r.opts.Logger.Info("replica healthy", "replica", rep.name)
			} else {
				r.opts.Logger.Warn("replica unhealthy", "replica", rep.name, "err", err, "in_recovery", recovering)
			}
		}
		rep.up.Store(up)
		rep.healthy.Set(b2f(up))
		if !up {
			continue
		}
		rep.replay.Store(replay)
		lag := time.Duration(0)
		for _, s := range samples { // the oldest position the replica lacks
			if s.lsn > replay {
				lag = max(time.Since(s.at), time.Nanosecond)
				break
			}
		}
		rep.lagNs.Store(int64(lag))
		rep.lag.Set(lag.Seconds())
	}
}

// Breakers are the replicas' names with their circuit breakers' states
// (closed, half-open, open), for /health/deps.
func (r *Routed) Breakers() map[string]func() string {
	out := make(map[string]func() string, len(r.replicas))
	for _, rep := range r.replicas {
		out[rep.name] = func() string { return rep.cb.State().String() }
	}
	return out
}

// Healthy is how many replicas answered their last check in recovery.
func (r *Routed) Healthy() int {
	n := 0
	for _, rep := range r.replicas {
		if rep.up.Load() {
			n++
		}
	}
	return n
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeKey is where a principal's last write position is kept.
func writeKey(p auth.Principal) string { return "rlsn:" + p.OrgID + ":" + p.Subject }

// wrote records the primary's WAL position after a write by the caller.
func (r *Routed) wrote(ctx context.Context) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok || p.Subject == "" {
		return
	}
	var lsn int64
	if err := r.Store.pool.QueryRow(ctx, insertLSN).Scan(&lsn); err != nil {
		// Unknown position: reads go to the primary until the key
		// expires or a later write records one.
		lsn = -1
	}
	if err := r.opts.Writes.Set(ctx, writeKey(p), []byte(strconv.FormatInt(lsn, 10)), r.opts.WriteTTL); err != nil {
		r.opts.Logger.Warn("record write position", "err", err)
	}
}

// needed is the WAL position the caller's reads need: 0 for none, -1 when
// only the primary will do.
func (r *Routed) needed(ctx context.Context) (int64, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok || p.Subject == "" {
		return 0, nil
	}
	b, err := r.opts.Writes.Get(ctx, writeKey(p))
	if errors.Is(err, kv.ErrMiss) {
		return 0, nil
	}
	if err != nil {
		return -1, err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return -1, err
	}
	return n, nil
}

// reader picks the replica for a read by the caller, or nil for the
// primary (and counts why).
func (r *Routed) reader(ctx context.Context) *replica {
	if len(r.replicas) == 0 {
		return nil
	}
	need, err := r.needed(ctx)
	if err != nil {
		r.fallbacks.WithLabelValues("no_write_position").Inc()
		return nil
	}
	if need < 0 {
		r.fallbacks.WithLabelValues("behind_write").Inc()
		return nil
	}
	reason := "unhealthy"
	start := r.next.Add(1)
	for i := range r.replicas {
		rep := r.replicas[(int(start)+i)%len(r.replicas)]
		if !rep.up.Load() || rep.cb.State() == gobreaker.StateOpen {
			continue
		}
		if time.Duration(rep.lagNs.Load()) > r.opts.MaxLag {
			reason = "lagging"
			continue
		}
		if need > 0 && rep.replay.Load() < need && !r.caughtUp(ctx, rep, need) {
			reason = "behind_write"
			continue
		}
		return rep
	}
	r.fallbacks.WithLabelValues(reason).Inc()
	return nil
}

// caughtUp asks a replica whether it has replayed position need now.
func (r *Routed) caughtUp(ctx context.Context, rep *replica, need int64) bool {
	var replay int64
	var recovering bool
	_, err := rep.cb.Execute(func() (struct{}, error) {
		err := rep.store.pool.QueryRow(ctx, replayLSN).Scan(&replay, &recovering)
		return struct{}{}, rep.store.dbErr(err)
	})
	if err != nil || !recovering {
		return false
	}
	if replay > rep.replay.Load() {
		rep.replay.Store(replay)
	}
	return replay >= need
}

// read runs fn on the database reader picks; a replica that fails it with
// an unavailable error hands it to the primary.
func read[T any](r *Routed, ctx context.Context, fn func(*Store) (T, error)) (T, error) {
	rep := r.reader(ctx)
	if rep == nil {
		r.reads.WithLabelValues("primary").Inc()
		return fn(r.Store)
	}
	var out T
	_, err := rep.cb.Execute(func() (struct{}, error) {
		var err error
		out, err = fn(rep.store)
		return struct{}{}, err
	})
	if err == nil || !(errors.Is(err, memory.ErrUnavailable) || errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)) {
		r.reads.WithLabelValues(rep.name).Inc()
		return out, err
	}
	r.fallbacks.WithLabelValues("error").Inc()
	r.reads.WithLabelValues("primary").Inc()
	return fn(r.Store)
}

// Reads, routed.

// Get reads one memory from a replica that qualifies, else the primary.
func (r *Routed) Get(ctx context.Context, a memory.Access, id string) (memory.Memory, error) {
	return read(r, ctx, func(s *Store) (memory.Memory, error) { return s.Get(ctx, a, id) })
}

// List is routed like Get.
func (r *Routed) List(ctx context.Context, a memory.Access, q memory.ListQuery) ([]memory.Memory, string, error) {
	type page struct {
		ms   []memory.Memory
		next string
	}
	p, err := read(r, ctx, func(s *Store) (page, error) {
		ms, next, err := s.List(ctx, a, q)
		return page{ms, next}, err
	})
	return p.ms, p.next, err
}

// Search is routed like Get.
func (r *Routed) Search(ctx context.Context, a memory.Access, q memory.SearchQuery) ([]memory.Hit, error) {
	return read(r, ctx, func(s *Store) ([]memory.Hit, error) { return s.Search(ctx, a, q) })
}

// History is routed like Get.
func (r *Routed) History(ctx context.Context, a memory.Access, id string) ([]memory.HistoryEntry, error) {
	return read(r, ctx, func(s *Store) ([]memory.HistoryEntry, error) { return s.History(ctx, a, id) })
}

// Apps is routed like Get.
func (r *Routed) Apps(ctx context.Context, a memory.Access) ([]memory.AppCount, error) {
	return read(r, ctx, func(s *Store) ([]memory.AppCount, error) { return s.Apps(ctx, a) })
}

// Stats is routed like Get.
func (r *Routed) Stats(ctx context.Context, a memory.Access) (memory.Stats, error) {
	return read(r, ctx, func(s *Store) (memory.Stats, error) { return s.Stats(ctx, a) })
}

// Lookup is routed like Get.
func (r *Routed) Lookup(ctx context.Context, a memory.Access, f memory.Filter, ids []string) ([]memory.Memory, error) {
	return read(r, ctx, func(s *Store) ([]memory.Memory, error) { return s.Lookup(ctx, a, f, ids) })
}

// Entities is routed like Get.
func (r *Routed) Entities(ctx context.Context, a memory.Access, q memory.EntityQuery) ([]memory.Entity, error) {
	return read(r, ctx, func(s *Store) ([]memory.Entity, error) { return s.Entities(ctx, a, q) })
}

// Edges is routed like Get.
func (r *Routed) Edges(ctx context.Context, a memory.Access, q memory.EdgeQuery) ([]memory.Edge, error) {
	return read(r, ctx, func(s *Store) ([]memory.Edge, error) { return s.Edges(ctx, a, q) })
}

// RelatedMemories is routed like Get.
func (r *Routed) RelatedMemories(ctx context.Context, a memory.Access, id string, limit int) ([]memory.RelatedMemory, error) {
	return read(r, ctx, func(s *Store) ([]memory.RelatedMemory, error) { return s.RelatedMemories(ctx, a, id, limit) })
}

// Aggregate is routed like Get.
func (r *Routed) Aggregate(ctx context.Context, a memory.Access, q memory.AggregateQuery) ([]memory.Bucket, error) {
	return read(r, ctx, func(s *Store) ([]memory.Bucket, error) { return s.Aggregate(ctx, a, q) })
}

// TagCooccurrence is routed like Get.
func (r *Routed) TagCooccurrence(ctx context.Context, a memory.Access, tag string, limit int) ([]memory.TagPair, error) {
	return read(r, ctx, func(s *Store) ([]memory.TagPair, error) { return s.TagCooccurrence(ctx, a, tag, limit) })
}

// GraphNeighbours is routed like Get.
func (r *Routed) GraphNeighbours(ctx context.Context, a memory.Access, seeds []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	return read(r, ctx, func(s *Store) ([]memory.Hit, error) { return s.GraphNeighbours(ctx, a, seeds, f, limit) })
}

// Export reads from a replica that qualifies, else the primary. A replica
// that fails before the export has begun hands it to the primary; one that
// fails part way fails the export (its lines are already sent).
func (r *Routed) Export(ctx context.Context, a memory.Access, q memory.ExportQuery, start func(int) error, page func([]memory.Exported) error) error {
	begun := false
	_, err := read(r, ctx, func(s *Store) (struct{}, error) {
		if begun {
			return struct{}{}, fmt.Errorf("export: the replica failed part way")
		}
		return struct{}{}, s.Export(ctx, a, q, func(n int) error { begun = true; return start(n) }, page)
	})
	return err
}

// Writes, on the primary, remembered for the writer's next reads.

// Create writes on the primary and records the caller's write position.
func (r *Routed) Create(ctx context.Context, m memory.Memory, actor string) (memory.Memory, bool, error) {
	stored, created, err := r.Store.Create(ctx, m, actor)
	if err == nil && created {
		r.wrote(ctx)
	}
	return stored, created, err
}

// Update is written like Create.
func (r *Routed) Update(ctx context.Context, a memory.Access, id, actor, action string, change func(*memory.Memory) error) (memory.Memory, error) {
	m, err := r.Store.Update(ctx, a, id, actor, action, change)
	if err == nil {
		r.wrote(ctx)
	}
	return m, err
}

// CreateBatch is written like Create.
func (r *Routed) CreateBatch(ctx context.Context, ms []memory.Memory, actor string) ([]bool, error) {
	created, err := r.Store.CreateBatch(ctx, ms, actor)
	if err == nil {
		r.wrote(ctx)
	}
	return created, err
}

// LinkMemories is written like Create.
func (r *Routed) LinkMemories(ctx context.Context, a memory.Access, l memory.MemoryLink) (memory.MemoryLink, bool, error) {
	stored, created, err := r.Store.LinkMemories(ctx, a, l)
	if err == nil {
		r.wrote(ctx)
	}
	return stored, created, err
}

// Import is written like Create.
func (r *Routed) Import(ctx context.Context, fn func(memory.ImportTx) error) error {
	err := r.Store.Import(ctx, fn)
	if err == nil {
		r.wrote(ctx)
	}
	return err
}
