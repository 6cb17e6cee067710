//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// TestRollingRestart replaces both replicas of a two-replica deployment,
// one at a time, with a new build while clients keep writing, searching
// and reading through a load balancer: not one request may fail. Each
// replica is stopped gracefully (SIGTERM: readiness turns 503, new work is
// refused with 503 and Retry-After, in-flight requests finish), then the
// new build starts in its place. The balancer behaves like a real one: it
// polls /health/ready, routes only to ready replicas, and retries on
// another replica a request that was refused (a connection refused, or the
// drain's 503 with Retry-After, which the server sends before doing any
// work; writes also carry an Idempotency-Key).
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary twice")
	}
	dbURL := pgtest.Database(t)
	oldBin := buildBinary(t)
	newBin := buildVersion(t, "rolling-v2")
	dataDir := t.TempDir() // both replicas read the one signing key
	flags := []string{"--database-url", dbURL, "--migrate", "--public-url", "http://brain.test",
		"--shutdown-delay", "300ms", "--shutdown-wait", "10s", "--rate-limits", "read=0,write=0,search=0"}
	first := startServer(t, oldBin, dataDir, flags...)
	replicas := []*server{first, launch(t, oldBin, dataDir, flags...)}

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	lb := newBalancer(replicas[0].url, replicas[1].url)
	var probes sync.WaitGroup
	probes.Go(func() { lb.probe(ctx) })
	defer probes.Wait()
	defer stop()
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.Out.URL.Scheme, r.Out.URL.Host = "http", "backend" },
		Transport: lb,
	})
	defer front.Close()
	eventually(t, "both replicas ready behind the balancer", func() error { return lb.wantReady(2) })

	// Clients: each adds a memory, searches for it and reads it back, in a
	// loop, until told to finish.
	var (
		requests, failures atomic.Int64
		failMu             sync.Mutex
		firstFailures      []string
		idsMu              sync.Mutex
		ids                []string
		finish             atomic.Bool
		clients            sync.WaitGroup
	)
	fail := func(op string, err error) {
		failures.Add(1)
		failMu.Lock()
		if len(firstFailures) < 5 {
			firstFailures = append(firstFailures, fmt.Sprintf("%s: %v", op, err))
		}
		failMu.Unlock()
	}
	for w := range 3 {
		clients.Go(func() {
			c := client.New(front.URL, first.admin)
			for i := 0; !finish.Load(); i++ {
				content := fmt.Sprintf("Rolling restart note %d from client %d: deploys replace one replica at a time.", i, w)
				m, _, err := c.Add(ctx, memory.Input{Content: content, Category: "convention"}, fmt.Sprintf("roll-%d-%d", w, i))
				requests.Add(1)
				if err != nil {
					fail("add", err)
					continue
				}
				idsMu.Lock()
				ids = append(ids, m.ID)
				idsMu.Unlock()
				_, err = c.Search(ctx, client.SearchRequest{Query: "rolling restart replica", Limit: 5})
				requests.Add(1)
				if err != nil {
					fail("search", err)
				}
				got, err := c.Get(ctx, m.ID)
				requests.Add(1)
				if err != nil || got.Content != content {
					fail("get", fmt.Errorf("%v (content %q)", err, got.Content))
				}
			}
		})
	}
	// waitRequests returns once n more requests have been answered.
	waitRequests := func(what string, n int64) {
		t.Helper()
		target := requests.Load() + n
		eventually(t, what, func() error {
			if got := requests.Load(); got < target {
				return fmt.Errorf("%d of %d requests", got, target)
			}
			return nil
		})
	}
	waitRequests("traffic through both replicas", 60)

	for i := range replicas {
		old := replicas[i]
		if err := old.stop(t); err != nil {
			t.Fatalf("replica %d did not stop cleanly on SIGTERM: %v\n%s", i, err, old.out.String())
		}
		// Only the other replica serves now.
		waitRequests(fmt.Sprintf("traffic while replica %d is down", i), 60)
		replicas[i] = launch(t, newBin, dataDir, flags...)
		lb.replace(i, replicas[i].url)
		eventually(t, fmt.Sprintf("the new replica %d taking traffic", i), func() error {
			if n := lb.servedBy(replicas[i].url); n < 30 {
				return fmt.Errorf("%d requests served by the new replica", n)
			}
			return nil
		})
	}
	waitRequests("traffic after the roll", 60)
	finish.Store(true)
	clients.Wait()

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during the rolling restart; first: %v", n, requests.Load(), firstFailures)
	}
	for i, r := range replicas {
		h, err := client.New(r.url, "").Health(ctx, "live")
		if err != nil || h.Body["version"] != "rolling-v2" {
			t.Errorf("replica %d after the roll: version %v, %v; want rolling-v2", i, h.Body["version"], err)
		}
	}
	// Nothing written during the roll is missing.
	c := client.New(front.URL, first.admin)
	for _, id := range ids {
		if _, err := c.Get(ctx, id); err != nil {
			t.Fatalf("memory %s written during the roll: %v", id, err)
		}
	}
	t.Logf("rolling restart of 2 replicas: %d requests, 0 failed; %d memories written and all readable; "+
		"the balancer retried %d refused requests on the other replica", requests.Load(), len(ids), lb.retried.Load())
}

// buildVersion builds the binary with main.version set to v.
func buildVersion(t *testing.T, v string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "codingbrain")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", path, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", v, err, out)
	}
	return path
}

// balancer is a load balancer as a RoundTripper behind httputil.ReverseProxy:
// round robin over the replicas whose /health/ready last answered 200.
type balancer struct {
	mu       sync.Mutex
	backends []*lbBackend
	next     int
	fwd      *http.Transport
	retried  atomic.Int64
}

type lbBackend struct {
	url    string
	host   string
	ready  bool
	served int
}

func newBalancer(urls ...string) *balancer {
	b := &balancer{fwd: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, u := range urls {
		b.backends = append(b.backends, newLBBackend(u))
	}
	return b
}

func newLBBackend(u string) *lbBackend {
	p, _ := url.Parse(u)
	return &lbBackend{url: u, host: p.Host}
}

// replace puts a new replica in slot i; it gets traffic once it is ready.
func (b *balancer) replace(i int, u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends[i] = newLBBackend(u)
}

func (b *balancer) servedBy(u string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.backends {
		if be.url == u {
			return be.served
		}
	}
	return 0
}

func (b *balancer) wantReady(n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ready := 0
	for _, be := range b.backends {
		if be.ready {
			ready++
		}
	}
	if ready < n {
		return fmt.Errorf("%d of %d replicas ready", ready, n)
	}
	return nil
}

// probe asks every replica's /health/ready every 20ms until ctx ends.
func (b *balancer) probe(ctx context.Context) {
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		targets := append([]*lbBackend(nil), b.backends...)
		b.mu.Unlock()
		for _, be := range targets {
			ok := false
			if req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.url+"/health/ready", nil); err == nil {
				if resp, err := hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
			}
			b.mu.Lock()
			be.ready = ok
			b.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pick returns the next ready replica, or nil.
func (b *balancer) pick() *lbBackend {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.backends {
		be := b.backends[b.next%len(b.backends)]
		b.next++
		if be.ready {
			return be
		}
	}
	return nil
}

func (b *balancer) markDown(be *lbBackend) {
	b.mu.Lock()
	be.ready = false
	b.mu.Unlock()
}

// RoundTrip sends req to a ready replica. A request the replica refused —
// the connection was refused or dropped before an answer, or the drain's
// 503 with Retry-After — takes the replica out of rotation until its
// readiness probe passes again, and goes to another replica.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	deadline := time.Now().Add(e2eTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		be := b.pick()
		if be == nil {
			select { // every replica is out of rotation: wait for a probe
			case <-req.Context().Done():
				return nil, req.Context().Err()
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		out := req.Clone(req.Context())
		out.URL.Host, out.Host = be.host, ""
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		resp, err := b.fwd.RoundTrip(out)
		switch {
		case err != nil:
			lastErr = err
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lastErr = errors.New("503 draining")
		default:
			b.mu.Lock()
			be.served++
			b.mu.Unlock()
			return resp, nil
		}
		b.markDown(be)
		b.retried.Add(1)
	}
	return nil, fmt.Errorf("no replica answered within %s: %w", e2eTimeout, lastErr)
}
