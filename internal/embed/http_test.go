package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "sk-test-secret-0123456789"

// fakeAPI is an OpenAI-compatible embeddings endpoint whose answers a test
// scripts: each request takes the next answer from script (then the last
// one for ever); an answer of 0 is a normal response.
type fakeAPI struct {
	t        *testing.T
	mu       sync.Mutex
	script   []answer
	requests []embedRequest
	auth     []string
	dim      int
	reversed bool // answer in reverse index order
}

type answer struct {
	status     int
	retryAfter string
	body       string
	dim        int // 0: the fake's dim
	hang       time.Duration
}

func newFakeAPI(t *testing.T, script ...answer) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, script: script, dim: 3}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req embedRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	a := answer{}
	if n := len(f.requests) - 1; len(f.script) > 0 {
		a = f.script[min(n, len(f.script)-1)]
	}
	dim := f.dim
	if a.dim > 0 {
		dim = a.dim
	}
	reversed := f.reversed
	f.mu.Unlock()
	if a.hang > 0 {
		select {
		case <-time.After(a.hang):
		case <-r.Context().Done():
			return
		}
	}
	if a.status != 0 {
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
		return
	}
	type item struct {
		Embedding []float64 `json:"embedding"`
		Index     int       `json:"index"`
	}
	var data []item
	for i, in := range req.Input {
		v := make([]float64, dim)
		for j := range v {
			v[j] = float64(len(in)+j) + 1 // not normalized
		}
		data = append(data, item{v, i})
	}
	if reversed {
		for i, j := 0, len(data)-1; i < j; i, j = i+1, j-1 {
			data[i], data[j] = data[j], data[i]
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"data": data, "model": req.Model})
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// newTestHTTP makes an embedder for srv whose waits are recorded, not
// slept, and whose breaker cools down quickly.
func newTestHTTP(t *testing.T, srv *httptest.Server, change func(*HTTPConfig)) (*HTTP, *[]time.Duration) {
	cfg := HTTPConfig{URL: srv.URL + "/v1", Model: "test-embed", APIKey: testKey, BatchSize: 2,
		Timeout: 2 * time.Second, Breaker: BreakerConfig{Failures: 3, Cooldown: 100 * time.Millisecond}}
	if change != nil {
		change(&cfg)
	}
	e, err := NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	e.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	e.jitter = func() float64 { return 0.5 }
	return e, waits
}

func noKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testKey) {
		t.Errorf("the API key appears in an error: %v", err)
	}
}

func TestHTTPBatchesAndNormalizes(t *testing.T) {
	f, srv := newFakeAPI(t)
	f.reversed = true
	e, _ := newTestHTTP(t, srv, nil)
	if e.Model() != "openai:test-embed" || e.Dim() != 0 {
		t.Errorf("model %q dim %d before any request", e.Model(), e.Dim())
	}
	texts := []string{"a", "bb", "ccc", "dddd", "eeeee"}
	vs, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.count(); got != 3 {
		t.Errorf("%d requests for 5 texts in batches of 2, want 3", got)
	}
	for i, r := range f.requests {
		if r.Model != "test-embed" || len(r.Input) != min(2, 5-2*i) || r.Input[0] != texts[2*i] {
			t.Errorf("request %d: %+v", i, r)
		}
		if f.auth[i] != "Bearer "+testKey {
			t.Errorf("request %d: Authorization %q", i, f.auth[i])
		}
	}
	if len(vs) != 5 || e.Dim() != 3 {
		t.Fatalf("%d vectors, dim %d", len(vs), e.Dim())
	}
	for i, v := range vs {
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Errorf("vector %d: norm² %v", i, n)
		}
		// In input order despite the reversed answer: the fake's first
		// component grows with the text's length.
		if want := normalize([]float64{float64(len(texts[i])) + 1, float64(len(texts[i])) + 2, float64(len(texts[i])) + 3}); v[0] != want[0] {
			t.Errorf("vector %d is not the one of %q", i, texts[i])
		}
	}
	if e.State() != "closed" {
		t.Errorf("state %q", e.State())
	}
}

func TestHTTPRetries(t *testing.T) {
	t.Run("ThenSuccess", func(t *testing.T) {
		f, srv := newFakeAPI(t, answer{status: 503}, answer{status: 502, body: `{"error":{"message":"upstream"}}`}, answer{})
		e, waits := newTestHTTP(t, srv, func(c *HTTPConfig) { c.BackoffBase = 100 * time.Millisecond })
		if _, err := e.Embed(t.Context(), []string{"x"}); err != nil {
			t.Fatal(err)
		}
		if f.count() != 3 {
			t.Errorf("%d requests, want 3", f.count())
		}
		// Jitter fixed at 0.5: ¾ of 100ms, then of 200ms.
		if want := []time.Duration{75 * time.Millisecond, 150 * time.Millisecond}; fmt.Sprint(*waits) != fmt.Sprint(want) {
			t.Errorf("waits %v, want %v", *waits, want)
		}
	})
	t.Run("RetryAfterHonored", func(t *testing.T) {
		_, srv := newFakeAPI(t, answer{status: 429, retryAfter: "7"}, answer{})
		e, waits := newTestHTTP(t, srv, nil)
		if _, err := e.Embed(t.Context(), []string{"x"}); err != nil {
			t.Fatal(err)
		}
		if len(*waits) != 1 || (*waits)[0] != 7*time.Second {
			t.Errorf("waits %v, want [7s] as Retry-After says", *waits)
		}
	})
	t.Run("RetryAfterDate", func(t *testing.T) {
		at := time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat)
		_, srv := newFakeAPI(t, answer{status: 503, retryAfter: at}, answer{})
		e, waits := newTestHTTP(t, srv, nil)
		if _, err := e.Embed(t.Context(), []string{"x"}); err != nil {
			t.Fatal(err)
		}
		if len(*waits) != 1 || (*waits)[0] < 3*time.Second || (*waits)[0] > 5*time.Second {
			t.Errorf("waits %v, want about 5s", *waits)
		}
	})
	t.Run("RetryAfterTooLong", func(t *testing.T) {
		f, srv := newFakeAPI(t, answer{status: 429, retryAfter: "3600"}, answer{})
		e, waits := newTestHTTP(t, srv, nil)
		_, err := e.Embed(t.Context(), []string{"x"})
		if !errors.Is(err, ErrUnavailable) || f.count() != 1 || len(*waits) != 0 {
			t.Errorf("an hour's Retry-After: %v after %d requests, waits %v; want ErrUnavailable at once", err, f.count(), *waits)
		}
	})
	t.Run("Exhausted", func(t *testing.T) {
		f, srv := newFakeAPI(t, answer{status: 500, body: "boom " + testKey})
		e, _ := newTestHTTP(t, srv, func(c *HTTPConfig) { c.MaxRetries = 2; c.Breaker.Failures = 10 })
		_, err := e.Embed(t.Context(), []string{"x"})
		if !errors.Is(err, ErrUnavailable) || f.count() != 3 {
			t.Errorf("after %d requests: %v; want 3 and ErrUnavailable", f.count(), err)
		}
		noKey(t, err)
		if err != nil && !strings.Contains(err.Error(), "status 500") {
			t.Errorf("error does not say what failed: %v", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		f, srv := newFakeAPI(t, answer{hang: time.Second}, answer{})
		e, _ := newTestHTTP(t, srv, func(c *HTTPConfig) { c.Timeout = 50 * time.Millisecond })
		if _, err := e.Embed(t.Context(), []string{"x"}); err != nil {
			t.Fatalf("a timed-out request is retried: %v", err)
		}
		if f.count() != 2 {
			t.Errorf("%d requests, want 2", f.count())
		}
	})
	t.Run("PermanentNotRetried", func(t *testing.T) {
		for _, code := range []int{400, 401, 404, 413, 422} {
			f, srv := newFakeAPI(t, answer{status: code, body: `{"error":{"message":"bad input"}}`})
			e, _ := newTestHTTP(t, srv, nil)
			for range 5 { // more than Failures: a bad request does not open the breaker
				_, err := e.Embed(t.Context(), []string{"x"})
				if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "bad input") {
					t.Errorf("status %d: %v; want the server's message, not ErrUnavailable", code, err)
				}
				noKey(t, err)
			}
			if f.count() != 5 || e.State() != "closed" {
				t.Errorf("status %d: %d requests for 5 calls, breaker %s; want 5 and closed", code, f.count(), e.State())
			}
		}
	})
}

func TestHTTPBreaker(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"data":[{"embedding":[1,0],"index":0}]}`)
	}))
	defer srv.Close()
	var mu sync.Mutex
	var changes []string
	e, _ := newTestHTTP(t, srv, func(c *HTTPConfig) {
		c.MaxRetries = -1
		c.OnStateChange = func(from, to string) {
			mu.Lock()
			changes = append(changes, from+"→"+to)
			mu.Unlock()
		}
	})
	for i := range 3 {
		if _, err := e.Embed(t.Context(), []string{"x"}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("call %d to a server that is down: %v", i, err)
		}
	}
	if e.State() != "open" {
		t.Fatalf("after 3 failures the breaker is %s, want open", e.State())
	}
	before := calls.Load()
	start := time.Now()
	_, err := e.Embed(t.Context(), []string{"x"})
	if !errors.Is(err, ErrUnavailable) || calls.Load() != before || time.Since(start) > 50*time.Millisecond {
		t.Errorf("open breaker: %v, %d requests sent, took %v; want ErrUnavailable at once, none sent",
			err, calls.Load()-before, time.Since(start))
	}
	noKey(t, err)

	// The server recovers; after the cooldown a trial request closes it.
	down.Store(false)
	time.Sleep(150 * time.Millisecond)
	if e.State() != "half-open" {
		t.Errorf("after the cooldown the breaker is %s, want half-open", e.State())
	}
	if _, err := e.Embed(t.Context(), []string{"x"}); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if e.State() != "closed" {
		t.Errorf("after a successful trial the breaker is %s, want closed", e.State())
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[closed→open open→half-open half-open→closed]"; fmt.Sprint(changes) != want {
		t.Errorf("state changes %v, want %s", changes, want)
	}
}

func TestHTTPDimension(t *testing.T) {
	t.Run("Learned", func(t *testing.T) {
		_, srv := newFakeAPI(t, answer{}, answer{dim: 4})
		e, _ := newTestHTTP(t, srv, nil)
		if _, err := e.Embed(t.Context(), []string{"x"}); err != nil || e.Dim() != 3 {
			t.Fatalf("first: dim %d, %v", e.Dim(), err)
		}
		_, err := e.Embed(t.Context(), []string{"x"})
		if err == nil || !strings.Contains(err.Error(), "dimension mismatch") {
			t.Errorf("a response of another dimension: %v", err)
		}
	})
	t.Run("Configured", func(t *testing.T) {
		f, srv := newFakeAPI(t)
		e, _ := newTestHTTP(t, srv, func(c *HTTPConfig) { c.Dim = 1536 })
		_, err := e.Embed(t.Context(), []string{"x"})
		if err == nil || !strings.Contains(err.Error(), "got 3, want 1536") || f.count() != 1 {
			t.Errorf("configured 1536, got 3: %v after %d requests (a mismatch is not retried)", err, f.count())
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		for _, body := range []string{`{"data":[]}`, `{"data":[{"embedding":[1],"index":5}]}`, `not json`,
			`{"data":[{"embedding":[],"index":0}]}`} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
			e, _ := newTestHTTP(t, srv, nil)
			if _, err := e.Embed(t.Context(), []string{"x"}); err == nil {
				t.Errorf("response %s: no error", body)
			}
			srv.Close()
		}
	})
}

func TestHTTPConfigErrors(t *testing.T) {
	for _, c := range []HTTPConfig{{URL: "", Model: "m"}, {URL: "ftp://x", Model: "m"}, {URL: "http://x"}, {URL: "http://x", Model: "m", Dim: -1}} {
		if _, err := NewHTTP(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	e, err := NewHTTP(HTTPConfig{URL: "http://user:" + testKey + "@127.0.0.1:1/v1", Model: "m", APIKey: testKey, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Embed(t.Context(), []string{"x"})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable server: %v", err)
	}
	noKey(t, err)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "12": 12 * time.Second, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", in, got, want)
		}
	}
}
