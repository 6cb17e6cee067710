package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// embeddingServer is an OpenAI-compatible embeddings API that answers 503
// while down is set.
func embeddingServer(t *testing.T, down *atomic.Bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		var req struct {
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type item struct {
			Embedding []float64 `json:"embedding"`
			Index     int       `json:"index"`
		}
		out := struct {
			Data []item `json:"data"`
		}{}
		for i, s := range req.Input {
			v := make([]float64, 8)
			for j, c := range s {
				v[j%8] += float64(c % 7)
			}
			v[0]++
			out.Data = append(out.Data, item{Embedding: v, Index: i})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestEmbedderBreaker: the HTTP embedder's server fails repeatedly; its
// circuit breaker opens, search answers from lexical retrieval and says it
// is degraded and why, codingbrain_breaker_state{name="embedder"} is 2 and
// /health/deps shows the breaker open and the embedder unavailable. Once
// the server answers again, the next search after the (short, injected)
// cooldown closes the breaker and search is hybrid again.
func TestEmbedderBreaker(t *testing.T) {
	var down atomic.Bool
	embSrv := embeddingServer(t, &down)
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg, telemetry.Build{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	const cooldown = 2 * time.Second
	emb, err := embed.NewHTTP(embed.HTTPConfig{URL: embSrv.URL, Model: "test", Dim: 8, MaxRetries: -1, Timeout: 5 * time.Second,
		Breaker: embed.BreakerConfig{Failures: 3, Cooldown: cooldown},
		OnStateChange: func(_, to string) {
			s := map[string]telemetry.BreakerState{"closed": telemetry.BreakerClosed, "half-open": telemetry.BreakerHalfOpen, "open": telemetry.BreakerOpen}[to]
			metrics.SetBreakerState("embedder", s)
		}})
	if err != nil {
		t.Fatal(err)
	}
	metrics.SetBreakerState("embedder", telemetry.BreakerClosed)

	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	vec := retrieval.New(emb, store, retrieval.Options{Every: 20 * time.Millisecond, Recheck: 20 * time.Millisecond, StatusEvery: 50 * time.Millisecond})
	if err := vec.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = vec.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; vec.Close() })

	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	svc := memory.NewService(store, memory.Options{Vectors: vec})
	api := httpapi.New(svc, httpapi.Options{
		Verifier: tokens, Metrics: metrics, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Checks: []httpapi.Check{{Name: "embedder", Probe: func(context.Context) error {
			if emb.State() == "open" {
				return fmt.Errorf("%w: circuit open", embed.ErrUnavailable)
			}
			return nil
		}}},
		Breakers:     []httpapi.Breaker{{Name: "embedder", State: emb.State}},
		OnDependency: metrics.SetDependencyUp,
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, srv: srv, api: api, store: store, tokens: tokens}
	tok := f.token("alice", "acme")
	if r := f.do("POST", "/api/v1/memories", tok, map[string]any{"content": "Payments retries use exponential backoff.", "scope": "org"}); r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	type result struct {
		Mode     string
		Degraded bool
		Reason   string
		Hits     []json.RawMessage
	}
	search := func() result {
		t.Helper()
		r := f.do("POST", "/api/v1/search", tok, map[string]any{"query": "payments backoff"})
		var res result
		r.decode(t, &res)
		if r.status != http.StatusOK || len(res.Hits) != 1 {
			t.Fatalf("search: %d %s", r.status, r.body)
		}
		return res
	}
	// Waits for the memory's embedding, then a search that is not degraded.
	waitFor(t, func() bool { return !search().Degraded })
	if res := search(); res.Mode != "hybrid" {
		t.Fatalf("healthy search ran %q", res.Mode)
	}

	down.Store(true)
	for range 3 {
		if res := search(); !res.Degraded || res.Mode != "hybrid" || !strings.Contains(res.Reason, "embedder") {
			t.Fatalf("search with the embedder failing: %+v, want degraded hybrid naming the embedder", res)
		}
	}
	if st := emb.State(); st != "open" {
		t.Fatalf("breaker %s after 3 failed searches, want open", st)
	}
	res := search() // fails fast on the open circuit
	if !res.Degraded || !strings.Contains(res.Reason, "embedder") {
		t.Fatalf("search with the circuit open: %+v", res)
	}
	scrape := func() string {
		r := f.do("GET", "/metrics", tok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("/metrics: %d %s", r.status, r.body)
		}
		return string(r.body)
	}
	if m := scrape(); !strings.Contains(m, `codingbrain_breaker_state{name="embedder"} 2`) {
		t.Errorf("metrics while open:\n%s", grepLines(m, "codingbrain_breaker_state"))
	}
	r := f.do("GET", "/health/deps", "", nil)
	var deps struct {
		Deps     []struct{ Name, Status string }
		Breakers []struct{ Name, State string }
	}
	r.decode(t, &deps)
	if r.status != http.StatusServiceUnavailable || len(deps.Breakers) != 1 || deps.Breakers[0].State != "open" ||
		len(deps.Deps) != 1 || deps.Deps[0].Status != "unavailable" {
		t.Errorf("/health/deps while open: %d %s", r.status, r.body)
	}
	if m := scrape(); !strings.Contains(m, `codingbrain_dependency_up{name="embedder"} 0`) {
		t.Errorf("dependency_up while open:\n%s", grepLines(m, "codingbrain_dependency_up"))
	}

	// The server recovers; once the cooldown has passed a search's trial
	// request closes the circuit.
	down.Store(false)
	deadline := time.Now().Add(cooldown + 10*time.Second)
	for search().Degraded {
		if time.Now().After(deadline) {
			t.Fatalf("search still degraded %s after recovery; breaker %s", cooldown+10*time.Second, emb.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := emb.State(); st != "closed" {
		t.Fatalf("breaker %s after a successful search, want closed", st)
	}
	if m := scrape(); !strings.Contains(m, `codingbrain_breaker_state{name="embedder"} 0`) {
		t.Errorf("metrics after recovery:\n%s", grepLines(m, "codingbrain_breaker_state"))
	}
	waitFor(t, func() bool {
		r := f.do("GET", "/health/deps", "", nil)
		return r.status == http.StatusOK && strings.Contains(string(r.body), `"state":"closed"`)
	})
}

func grepLines(s, prefix string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
