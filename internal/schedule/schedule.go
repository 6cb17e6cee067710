// Package schedule runs jobs on cron schedules inside serve, one replica at
// a time. Every replica runs the same Scheduler; when a job is due, each
// replica tries to claim that occurrence in the shared kv store (SetNX of a
// key naming the job and the due time) and only the one that succeeds runs
// it. With the in-process kv.Memory (a single node) the claim always
// succeeds.
//
// A claim is per occurrence, not a held lock: there is nothing to release
// and nothing to renew, and a replica that dies while running a job does
// not block the next occurrence (that one occurrence is lost, which the
// staleness checks of whatever the job maintains will report). Claims
// expire after ClaimTTL so the kv store does not fill up.
//
// A job never overlaps itself on one replica: its next occurrence is
// computed when its run returns, so occurrences that came due meanwhile
// are skipped.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/codingbrain/codingbrain/internal/kv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ClaimTTL is how long the claim of one occurrence is kept in the kv store.
const ClaimTTL = 24 * time.Hour

// Parse parses a cron expression: five fields (minute hour day-of-month
// month day-of-week) or a descriptor such as @daily, @hourly or
// "@every 6h". Times are UTC unless the expression starts with
// CRON_TZ=<zone>.
func Parse(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("parse schedule %q: %w (five fields: minute hour day-of-month month day-of-week, or @daily, @hourly, @every 1h)", spec, err)
	}
	return s, nil
}

// Job is one scheduled piece of work. Run gets a context that ends when the
// scheduler stops; its error is logged.
type Job struct {
	// Name identifies the job in logs and in the claim key; it must be the
	// same on every replica.
	Name     string
	Schedule cron.Schedule
	Run      func(ctx context.Context) error
}

// Scheduler runs Jobs on their schedules. Create it with New, add jobs, then
// Start; Stop ends it and waits for running jobs.
type Scheduler struct {
	kv      kv.Store
	log     *slog.Logger
	now     func() time.Time
	replica string
	tracer  trace.Tracer

	mu      sync.Mutex
	jobs    []Job
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// New returns a scheduler that claims occurrences in store. replica names
// this process in the claim (for an operator reading the kv store).
func New(store kv.Store, replica string, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{kv: store, log: log, now: time.Now, replica: replica, tracer: noop.NewTracerProvider().Tracer("")}
}

// Trace gives every run of a job a span named "job <name>" from tp, with
// the job's error recorded on it. Call it before Start.
func (s *Scheduler) Trace(tp trace.TracerProvider) {
	if tp != nil {
		s.tracer = tp.Tracer("github.com/codingbrain/codingbrain/internal/schedule")
	}
}

// Add registers a job. It must be called before Start.
func (s *Scheduler) Add(j Job) error {
	if j.Name == "" || j.Schedule == nil || j.Run == nil {
		return errors.New("schedule: a job needs a name, a schedule and a function")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("schedule: Add after Start")
	}
	s.jobs = append(s.jobs, j)
	return nil
}

// Start runs every job's loop in the background until Stop.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	for _, j := range s.jobs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, j)
		}()
	}
}

// Stop ends the loops and waits for running jobs to return (their context
// is cancelled) or for ctx to end.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop scheduler: %w", ctx.Err())
	}
}

func (s *Scheduler) loop(ctx context.Context, j Job) {
	for {
		next := j.Schedule.Next(s.now())
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.RunOnce(ctx, j, next)
	}
}

// RunOnce claims the occurrence of j due at due and, when this replica got
// it, runs j. It reports whether j ran. The loop calls it; tests call it to
// run an occurrence without waiting for the clock.
func (s *Scheduler) RunOnce(ctx context.Context, j Job, due time.Time) bool {
	key := ClaimKey(j.Name, due)
	ok, err := s.kv.SetNX(ctx, key, []byte(s.replica), ClaimTTL)
	if err != nil {
		s.log.Warn("scheduled job not run: cannot claim it", "job", j.Name, "due", due.UTC(), "err", err)
		return false
	}
	if !ok {
		s.log.Debug("scheduled job run by another replica", "job", j.Name, "due", due.UTC())
		return false
	}
	start := s.now()
	s.log.Info("scheduled job started", "job", j.Name, "due", due.UTC())
	ctx, span := s.tracer.Start(ctx, "job "+j.Name, trace.WithAttributes(
		attribute.String("job.name", j.Name), attribute.String("job.due", due.UTC().Format(time.RFC3339))))
	defer span.End()
	if err := j.Run(ctx); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "job failed")
		s.log.Error("scheduled job failed", "job", j.Name, "took", time.Since(start).Round(time.Millisecond), "err", err)
		return true
	}
	s.log.Info("scheduled job done", "job", j.Name, "took", time.Since(start).Round(time.Millisecond))
	return true
}

// ClaimKey is the kv key that claims the occurrence of job due at due.
func ClaimKey(job string, due time.Time) string {
	return "codingbrain:schedule:" + job + ":" + due.UTC().Format(time.RFC3339)
}
