package gdpr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// RetentionPolicy is how long one org keeps what it does not need. A zero
// number of days keeps that kind of data for ever (the default).
type RetentionPolicy struct {
	OrgID string `json:"org_id"`
	// AccessLogDays: access-log rows older than this are deleted.
	AccessLogDays int `json:"access_log_days"`
	// ArchiveUntouchedDays: active and paused memories not updated for
	// this long are archived (a state change with a history row, by the
	// actor "retention").
	ArchiveUntouchedDays int `json:"archive_untouched_days"`
	// PurgeDeletedDays: deleted memories (soft-deleted, kept for history)
	// are removed for good this long after their deletion, with their
	// history, access log, embeddings and graph rows.
	PurgeDeletedDays int       `json:"purge_deleted_days"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// MaxRetentionDays bounds every retention period (100 years).
const MaxRetentionDays = 36500

// Validate reports every bad field at once as *memory.ValidationError
// values joined.
func (p RetentionPolicy) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"access_log_days", p.AccessLogDays}, {"archive_untouched_days", p.ArchiveUntouchedDays}, {"purge_deleted_days", p.PurgeDeletedDays}} {
		if f.v < 0 || f.v > MaxRetentionDays {
			errs = append(errs, &memory.ValidationError{Field: f.name, Reason: fmt.Sprintf("must be between 0 (keep for ever) and %d days", MaxRetentionDays)})
		}
	}
	return errors.Join(errs...)
}

// RetentionStore keeps retention policies and purges by them. Both stores
// implement it.
type RetentionStore interface {
	// RetentionPolicy returns the org's policy; an org without one gets
	// the zero policy (keep everything) with its OrgID set.
	RetentionPolicy(ctx context.Context, orgID string) (RetentionPolicy, error)
	// SetRetentionPolicy stores p, replacing the org's policy.
	SetRetentionPolicy(ctx context.Context, p RetentionPolicy) error
	// RetentionPolicies lists every stored policy, by org.
	RetentionPolicies(ctx context.Context) ([]RetentionPolicy, error)
	// PurgeAccessLog deletes the org's access-log rows older than before.
	PurgeAccessLog(ctx context.Context, orgID string, before time.Time) (int64, error)
	// PurgeDeleted removes the org's deleted memories last changed before
	// before, for good (their dependent rows go with them).
	PurgeDeleted(ctx context.Context, orgID string, before time.Time) (int64, error)
	// UntouchedMemories lists up to limit ids of the org's active or
	// paused memories last updated before before.
	UntouchedMemories(ctx context.Context, orgID string, before time.Time, limit int) ([]string, error)
}

// Purged-row kinds (label kind of codingbrain_retention_purged_rows_total).
const (
	PurgeAccessLog       = "access_log"
	PurgeArchived        = "archived_memories"
	PurgeDeletedMemories = "deleted_memories"
)

// PurgerOptions configure a Purger.
type PurgerOptions struct {
	// Registerer takes codingbrain_retention_purged_rows_total{kind} and
	// codingbrain_retention_last_success_timestamp_seconds; nil registers
	// nothing (the counters still count).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Purger applies every org's retention policy.
type Purger struct {
	rs     RetentionStore
	ms     memory.Store
	o      PurgerOptions
	purged *prometheus.CounterVec
	last   prometheus.Gauge
}

// NewPurger returns a Purger over the store (which must implement both
// interfaces: archiving goes through memory.Store.Update so that history and
// the graph stay right).
func NewPurger(rs RetentionStore, ms memory.Store, o PurgerOptions) (*Purger, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Purger{rs: rs, ms: ms, o: o,
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_retention_purged_rows_total",
			Help: "Rows removed or archived by retention policies, by kind (access_log, archived_memories, deleted_memories).",
		}, []string{"kind"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codingbrain_retention_last_success_timestamp_seconds",
			Help: "When the retention purge last completed without error (Unix time).",
		}),
	}
	for _, k := range []string{PurgeAccessLog, PurgeArchived, PurgeDeletedMemories} {
		p.purged.WithLabelValues(k)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{p.purged, p.last} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("retention metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Counter is the purged-rows counter (for tests and the bench).
func (p *Purger) Counter() *prometheus.CounterVec { return p.purged }

// RunOnce applies every stored policy now and returns what it removed, by
// kind. serve runs it on the scheduler (internal/schedule), which gives
// each occurrence to one replica.
func (p *Purger) RunOnce(ctx context.Context) (map[string]int64, error) {
	done := map[string]int64{}
	policies, err := p.rs.RetentionPolicies(ctx)
	if err != nil {
		return done, fmt.Errorf("retention: %w", err)
	}
	now := p.o.Now().UTC()
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }
	for _, pol := range policies {
		if pol.AccessLogDays > 0 {
			n, err := p.rs.PurgeAccessLog(ctx, pol.OrgID, days(pol.AccessLogDays))
			if err != nil {
				return done, fmt.Errorf("retention: org %s: %w", pol.OrgID, err)
			}
			done[PurgeAccessLog] += n
		}
		if pol.ArchiveUntouchedDays > 0 {
			n, err := p.archive(ctx, pol.OrgID, days(pol.ArchiveUntouchedDays), now)
			done[PurgeArchived] += n
			if err != nil {
				return done, fmt.Errorf("retention: org %s: %w", pol.OrgID, err)
			}
		}
		if pol.PurgeDeletedDays > 0 {
			n, err := p.rs.PurgeDeleted(ctx, pol.OrgID, days(pol.PurgeDeletedDays))
			if err != nil {
				return done, fmt.Errorf("retention: org %s: %w", pol.OrgID, err)
			}
			done[PurgeDeletedMemories] += n
		}
	}
	for k, n := range done {
		p.purged.WithLabelValues(k).Add(float64(n))
	}
	p.last.Set(float64(now.Unix()))
	return done, nil
}

// archive archives the org's untouched memories a page at a time.
func (p *Purger) archive(ctx context.Context, org string, before, now time.Time) (int64, error) {
	all := memory.Access{OrgID: org, Prefixes: []string{""}}
	var n int64
	for {
		ids, err := p.rs.UntouchedMemories(ctx, org, before, 500)
		if err != nil || len(ids) == 0 {
			return n, err
		}
		for _, id := range ids {
			_, err := p.ms.Update(ctx, all, id, "retention", "archive", func(m *memory.Memory) error {
				if !memory.Live(m.State) || !m.UpdatedAt.Before(before) {
					return errSkip // changed since it was listed
				}
				m.State = memory.StateArchived
				m.UpdatedAt = now
				return nil
			})
			switch {
			case err == nil:
				n++
			case errors.Is(err, errSkip), errors.Is(err, memory.ErrNotFound):
			default:
				return n, err
			}
		}
		if len(ids) < 500 {
			return n, nil
		}
	}
}

var errSkip = errors.New("skip")
