package changes

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// timeout bounds every wait of these tests for something to happen.
const timeout = 10 * time.Second

// follow runs Follow on its own goroutine and returns stop, which cancels
// it and returns what Follow returned. stop also runs when the test ends.
func follow(t *testing.T, feed memory.ChangeFeed, every time.Duration, apply func([]memory.Change) error, opts ...Option) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() { res <- Follow(ctx, feed, memory.ChangeCursor{}, every, apply, opts...) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-res:
			return err
		case <-time.After(timeout):
			return errors.New("Follow did not return after its context was cancelled")
		}
	})
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor receives from ch until ok accepts a value, failing the test after
// timeout.
func waitFor[T any](t *testing.T, what string, ch <-chan T, ok func(T) bool) T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v
			}
		case <-deadline.C:
			t.Fatalf("%s: nothing within %v", what, timeout)
		}
	}
}

func hasID(id string) func([]memory.Change) bool {
	return func(cs []memory.Change) bool {
		return slices.ContainsFunc(cs, func(c memory.Change) bool { return c.ID == id })
	}
}

// TestFollowSQLite follows a real store: writes through it, and through a
// second store on the same file (another process), reach apply.
func TestFollowSQLite(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "brain.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	actx := auth.WithPrincipal(ctx, auth.Principal{Subject: "alice", OrgID: "acme"})
	m0, _, err := memory.NewService(s, memory.Options{}).Add(actx, memory.Input{Content: "there before Follow starts"})
	if err != nil {
		t.Fatal(err)
	}

	batches := make(chan []memory.Change, 100)
	stop := follow(t, s, 20*time.Millisecond, func(cs []memory.Change) error {
		batches <- cs
		return nil
	})
	waitFor(t, "the memory written before Follow started", batches, hasID(m0.ID))

	m1, _, err := memory.NewService(s, memory.Options{}).Add(actx, memory.Input{Content: "written through this store"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write through the followed store", batches, hasID(m1.ID))

	m2, _, err := memory.NewService(other, memory.Options{}).Add(actx, memory.Input{Content: "written by another process"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write through another store on the file", batches, hasID(m2.ID))

	if _, err := memory.NewService(other, memory.Options{}).Delete(actx, m1.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a delete", batches, func(cs []memory.Change) bool {
		return slices.ContainsFunc(cs, func(c memory.Change) bool { return c.ID == m1.ID && c.State == memory.StateDeleted })
	})

	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow returned %v, want context.Canceled", err)
	}
}

// fakeFeed serves n changes numbered 1…n, by seq, through a hook that can
// replace the answer, and records the limits it was asked with.
type fakeFeed struct {
	mu     sync.Mutex
	n      int64
	limits []int
	hook   func(call int, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error, bool)
}

func (f *fakeFeed) Changes(_ context.Context, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	if f.hook != nil {
		if cs, next, err, ok := f.hook(len(f.limits), after, limit); ok {
			return cs, next, err
		}
	}
	var cs []memory.Change
	for seq := after.Seq + 1; seq <= f.n && len(cs) < limit; seq++ {
		cs = append(cs, memory.Change{Seq: seq, ID: "m", OrgID: "acme", State: memory.StateActive})
	}
	if len(cs) == 0 {
		return nil, after, nil
	}
	return cs, memory.ChangeCursor{Seq: cs[len(cs)-1].Seq}, nil
}

func (f *fakeFeed) askedLimits() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.limits)
}

// TestFollowPages: full pages are read one after the other without waiting
// for the interval (an hour here); the last, short one ends the burst.
func TestFollowPages(t *testing.T) {
	feed := &fakeFeed{n: 2500}
	sizes := make(chan int, 10)
	follow(t, feed, time.Hour, func(cs []memory.Change) error {
		sizes <- len(cs)
		return nil
	})
	for _, want := range []int{1000, 1000, 500} {
		if got := waitFor(t, "a page", sizes, func(int) bool { return true }); got != want {
			t.Errorf("page of %d changes, want %d", got, want)
		}
	}
}

// TestFollowRetries: feed errors and apply errors go to OnError with a
// wait that doubles while errors follow each other, and the same page is
// applied again until it succeeds.
func TestFollowRetries(t *testing.T) {
	feedErr, applyErr := errors.New("feed down"), errors.New("index busy")
	feed := &fakeFeed{n: 3}
	feed.hook = func(call int, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error, bool) {
		if call <= 3 {
			return nil, after, feedErr, true
		}
		return nil, memory.ChangeCursor{}, nil, false
	}
	type report struct {
		err  error
		wait time.Duration
	}
	reports := make(chan report, 10)
	applied := make(chan []memory.Change, 10)
	failed := false
	every := time.Millisecond
	follow(t, feed, every, func(cs []memory.Change) error {
		if !failed {
			failed = true
			return applyErr
		}
		applied <- cs
		return nil
	}, OnError(func(err error, wait time.Duration) { reports <- report{err, wait} }))

	for i, want := range []report{{feedErr, every}, {feedErr, 2 * every}, {feedErr, 4 * every}, {applyErr, 8 * every}} {
		got := waitFor(t, "an error report", reports, func(report) bool { return true })
		if !errors.Is(got.err, want.err) || got.wait != want.wait {
			t.Errorf("report %d: %v, retry in %v; want %v in %v", i, got.err, got.wait, want.err, want.wait)
		}
	}
	cs := waitFor(t, "the page after the failed apply", applied, func([]memory.Change) bool { return true })
	if len(cs) != 3 || cs[0].Seq != 1 {
		t.Errorf("applied %+v, want seqs 1-3 again", cs)
	}
}

func TestNextBackoff(t *testing.T) {
	every := 200 * time.Millisecond
	var got []time.Duration
	var b time.Duration
	for range 7 {
		b = nextBackoff(b, every)
		got = append(got, b)
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("backoffs %v, want %v", got, want)
	}
}

// TestFollowGrowsStuckPages: a feed that, after its first page, returns
// full pages without moving the cursor unless asked for 4000 at once is
// asked for 1000, 2000, then 4000; once a page comes back short the size is
// 1000 again.
func TestFollowGrowsStuckPages(t *testing.T) {
	type call struct {
		after memory.ChangeCursor
		limit int
	}
	calls := make(chan call, 100)
	feed := &fakeFeed{n: 5000}
	feed.hook = func(_ int, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error, bool) {
		select {
		case calls <- call{after, limit}:
		default:
		}
		if after.Seq != 1000 || limit >= 4000 {
			return nil, memory.ChangeCursor{}, nil, false
		}
		cs := make([]memory.Change, limit) // old changes again, nothing new
		for i := range cs {
			cs[i] = memory.Change{Seq: int64(i + 1), ID: "m"}
		}
		return cs, after, nil, true
	}
	follow(t, feed, time.Millisecond, func([]memory.Change) error { return nil })
	waitFor(t, "a poll after catching up", calls, func(c call) bool { return c.after.Seq == 5000 && c.limit == PageLimit })
	want := []int{1000, 1000, 2000, 4000, 4000, 1000}
	if got := feed.askedLimits(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("asked for pages of %v, want %v first", got, want)
	}
}
