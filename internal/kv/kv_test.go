package kv_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/redistest"
)

// contract runs the same checks on every Store. Expiry is checked with short
// real TTLs on Valkey (whose clock we do not control) and with a fake clock
// in process.
func contract(t *testing.T, s kv.Store, advance func(time.Duration)) {
	ctx := context.Background()
	t.Run("get set delete", func(t *testing.T) {
		if _, err := s.Get(ctx, "a"); !errors.Is(err, kv.ErrMiss) {
			t.Fatalf("get absent: %v", err)
		}
		if err := s.Set(ctx, "a", []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get(ctx, "a"); err != nil || !bytes.Equal(v, []byte("1")) {
			t.Fatalf("get = %q, %v", v, err)
		}
		if err := s.Delete(ctx, "a", "never-set"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "a"); !errors.Is(err, kv.ErrMiss) {
			t.Fatalf("get deleted: %v", err)
		}
	})
	t.Run("setnx and expiry", func(t *testing.T) {
		ok, err := s.SetNX(ctx, "jti", []byte("x"), 200*time.Millisecond)
		if err != nil || !ok {
			t.Fatalf("first setnx = %v, %v", ok, err)
		}
		if ok, _ := s.SetNX(ctx, "jti", []byte("y"), time.Second); ok {
			t.Fatal("second setnx succeeded: a replay would pass")
		}
		advance(300 * time.Millisecond)
		if ok, _ := s.SetNX(ctx, "jti", []byte("z"), time.Second); !ok {
			t.Fatal("setnx after expiry failed")
		}
	})
	t.Run("setnx is atomic", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 20 {
			wg.Go(func() {
				if ok, err := s.SetNX(ctx, "race", []byte("1"), time.Minute); err == nil && ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d concurrent SetNX calls won, want 1", wins)
		}
	})
	t.Run("token bucket", func(t *testing.T) {
		for i := range 3 {
			d, err := s.Allow(ctx, "bucket", 5, 3)
			if err != nil || !d.Allowed {
				t.Fatalf("request %d refused: %+v %v", i, d, err)
			}
		}
		d, err := s.Allow(ctx, "bucket", 5, 3)
		if err != nil || d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 250*time.Millisecond {
			t.Fatalf("4th request: %+v %v; want refused with retry ≤ 200ms", d, err)
		}
		if d.Remaining != 0 || d.ResetAfter <= 400*time.Millisecond || d.ResetAfter > 600*time.Millisecond {
			t.Fatalf("4th request: %+v; want 0 remaining and the bucket full again in about 600ms", d)
		}
		if d, _ := s.Allow(ctx, "other-bucket", 5, 3); !d.Allowed {
			t.Fatal("an independent bucket was limited")
		}
		advance(250 * time.Millisecond)
		if d, _ := s.Allow(ctx, "bucket", 5, 3); !d.Allowed {
			t.Fatalf("after refill: %+v", d)
		}
	})
}

func TestMemory(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	contract(t, kv.NewMemory(clock), advance)
}

func TestValkey(t *testing.T) {
	srv := redistest.New(t)
	s, err := kv.NewValkey(srv.URL(), "test:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	contract(t, s, time.Sleep)
}

// TestValkeyOutage: while the server is down calls fail with ErrUnavailable;
// once it is back they succeed again without a new client.
func TestValkeyOutage(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	s, err := kv.NewValkey(srv.URL(), "test:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := s.SetNX(ctx, "jti", []byte("1"), time.Minute); !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("setnx while down: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("ping while down: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if ok, err := s.SetNX(ctx, "jti", []byte("1"), time.Minute); err != nil || !ok {
		t.Fatalf("setnx after restart: %v %v", ok, err)
	}
}

// TestValkeyBreaker: after Failures consecutive unreachable calls the
// circuit opens and calls fail at once with ErrUnavailable, without asking
// the server; after the cooldown a call that reaches the server closes it.
func TestValkeyBreaker(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	var mu sync.Mutex
	var changes []string
	opts := kv.ValkeyOptions{OnStateChange: func(from, to string) {
		mu.Lock()
		changes = append(changes, from+">"+to)
		mu.Unlock()
	}}
	opts.Breaker.Failures = 3
	opts.Breaker.Cooldown = 50 * time.Millisecond
	s, err := kv.NewValkeyWith(srv.URL(), "test:", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, "absent"); !errors.Is(err, kv.ErrMiss) {
		t.Fatalf("get of an absent key: %v", err)
	}
	if s.State() != "closed" {
		t.Fatalf("state %s after a miss, want closed (a miss is an answer)", s.State())
	}
	srv.Stop()
	for i := range 3 {
		if err := s.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, kv.ErrUnavailable) || strings.Contains(err.Error(), "circuit open") {
			t.Fatalf("set %d while down: %v, want ErrUnavailable from the server", i, err)
		}
	}
	if s.State() != "open" {
		t.Fatalf("state %s after 3 failures, want open", s.State())
	}
	_, err = s.Allow(ctx, "bucket", 1, 1)
	if !errors.Is(err, kv.ErrUnavailable) || !strings.Contains(err.Error(), "circuit open") {
		t.Fatalf("allow while open: %v, want ErrUnavailable: circuit open", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Polls until the cooldown has passed and a trial call succeeds.
	for s.Set(ctx, "k", []byte("v"), 0) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	if s.State() != "closed" {
		t.Fatalf("state %s after a successful trial, want closed", s.State())
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(changes, " "); got != "closed>open open>half-open half-open>closed" {
		t.Fatalf("state changes %q", got)
	}
}

// TestMemoryKeepsSlowBuckets: a bucket that refills slower than the sweep
// runs is kept until it is full again, so a daily limit is not reset by
// an hour of quiet.
func TestMemoryKeepsSlowBuckets(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := kv.NewMemory(func() time.Time { return now })
	if d, _ := m.Allow(ctx, "daily", 1.0/86400, 1); !d.Allowed {
		t.Fatal("first request refused")
	}
	now = now.Add(2 * time.Hour)
	_ = m.Set(ctx, "sweep", nil, 0) // runs the sweep
	if d, _ := m.Allow(ctx, "daily", 1.0/86400, 1); d.Allowed || d.RetryAfter < 21*time.Hour {
		t.Fatalf("second request after 2h: %+v, want refused for about 22h", d)
	}
	now = now.Add(23 * time.Hour)
	_ = m.Set(ctx, "sweep", nil, 0)
	if d, _ := m.Allow(ctx, "daily", 1.0/86400, 1); !d.Allowed {
		t.Fatalf("after a day: %+v", d)
	}
}

// BenchmarkAllow: the cost of one rate-limit decision in process and on a
// local redis-server (one round trip running the GCRA script).
func BenchmarkAllow(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, s kv.Store) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Allow(ctx, "ratelimit:read:p:acme/u"+strconv.Itoa(i%100), 10, 600); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, kv.NewMemory(nil)) })
	b.Run("valkey", func(b *testing.B) {
		srv := redistest.New(b)
		v, err := kv.NewValkey(srv.URL(), "bench:")
		if err != nil {
			b.Fatal(err)
		}
		defer v.Close()
		run(b, v)
	})
}
