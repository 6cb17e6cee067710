package schedule_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/redistest"
	"github.com/codingbrain/codingbrain/internal/schedule"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestParse(t *testing.T) {
	for _, spec := range []string{"0 2 * * *", "@daily", "@every 6h", "CRON_TZ=Europe/Paris 30 3 * * 1"} {
		if _, err := schedule.Parse(spec); err != nil {
			t.Errorf("Parse(%q): %v", spec, err)
		}
	}
	for _, spec := range []string{"", "0 2 * *", "61 * * * *", "@sometimes"} {
		_, err := schedule.Parse(spec)
		if err == nil || !strings.Contains(err.Error(), "five fields") {
			t.Errorf("Parse(%q) = %v, want an error explaining the format", spec, err)
		}
	}
	s, _ := schedule.Parse("0 2 * * *")
	from := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	if got, want := s.Next(from), from.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("Next(%v) = %v, want %v", from, got, want)
	}
}

// claimOnce runs the same occurrence on replicas sharing one kv store and
// checks that exactly one ran it, and that the next occurrence runs again.
func claimOnce(t *testing.T, stores []kv.Store) {
	ctx := context.Background()
	var runs atomic.Int32
	sched, _ := schedule.Parse("@hourly")
	job := schedule.Job{Name: "backup", Schedule: sched, Run: func(context.Context) error { runs.Add(1); return nil }}
	due := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	ran := 0
	for i, st := range stores {
		if schedule.New(st, "replica-"+string(rune('a'+i)), nil).RunOnce(ctx, job, due) {
			ran++
		}
	}
	if ran != 1 || runs.Load() != 1 {
		t.Fatalf("occurrence ran on %d replicas (%d runs), want exactly 1", ran, runs.Load())
	}
	if !schedule.New(stores[0], "replica-a", nil).RunOnce(ctx, job, due.Add(time.Hour)) {
		t.Fatal("the next occurrence did not run")
	}
	other := schedule.Job{Name: "verify", Schedule: sched, Run: job.Run}
	if !schedule.New(stores[1], "replica-b", nil).RunOnce(ctx, other, due) {
		t.Fatal("another job due at the same time did not run")
	}
}

func TestClaimMemory(t *testing.T) {
	st := kv.NewMemory(time.Now)
	claimOnce(t, []kv.Store{st, st, st})
}

func TestClaimValkey(t *testing.T) {
	srv := redistest.New(t)
	var stores []kv.Store
	for range 3 {
		s, err := kv.NewValkey(srv.URL(), "test:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	claimOnce(t, stores)
}

// TestStartStop: a started scheduler runs a due job, and Stop cancels the
// running job's context and waits for it.
func TestStartStop(t *testing.T) {
	sched, _ := schedule.Parse("@every 1s")
	started := make(chan struct{})
	var cancelled atomic.Bool
	s := schedule.New(kv.NewMemory(time.Now), "a", nil)
	err := s.Add(schedule.Job{Name: "j", Schedule: sched, Run: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		cancelled.Store(true)
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	<-started
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !cancelled.Load() {
		t.Fatal("Stop returned before the running job saw its context end")
	}
	if err := s.Add(schedule.Job{Name: "late", Schedule: sched, Run: func(context.Context) error { return nil }}); err == nil {
		t.Fatal("Add after Start was accepted")
	}
}

func TestRunsAreTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	s := schedule.New(kv.NewMemory(nil), "replica-a", nil)
	s.Trace(tp)
	every, _ := schedule.Parse("@every 1h")
	due := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	var inJob trace.SpanContext
	ok := schedule.Job{Name: "backup", Schedule: every, Run: func(ctx context.Context) error {
		inJob = trace.SpanContextFromContext(ctx)
		return nil
	}}
	failing := schedule.Job{Name: "backup-verify", Schedule: every, Run: func(context.Context) error {
		return errors.New("canary search found nothing")
	}}
	if !s.RunOnce(t.Context(), ok, due) || !s.RunOnce(t.Context(), failing, due) {
		t.Fatal("a job did not run")
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want one per run", len(spans))
	}
	if spans[0].Name != "job backup" || spans[0].Status.Code == codes.Error || spans[0].SpanContext.SpanID() != inJob.SpanID() {
		t.Errorf("first span %q (status %v): want \"job backup\", not an error, and the job's context inside it", spans[0].Name, spans[0].Status.Code)
	}
	if spans[1].Name != "job backup-verify" || spans[1].Status.Code != codes.Error || len(spans[1].Events) == 0 {
		t.Errorf("second span %q (status %v, %d events): want \"job backup-verify\" with the error recorded", spans[1].Name, spans[1].Status.Code, len(spans[1].Events))
	}
}
