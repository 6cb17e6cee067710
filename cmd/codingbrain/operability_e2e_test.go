//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/redistest"
)

// send sends one request and returns the status and headers, the body
// read and closed.
func send(t *testing.T, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: e2eTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestRateLimitAcrossReplicas: two serve processes share one redis-server;
// requests alternate between them and the limit of a principal's class
// holds for the pair — the 11th read of a 10-read budget is refused on
// whichever replica gets it, not the 21st. MCP POSTs count in their own
// class the same way.
func TestRateLimitAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rs := redistest.New(t)
	bin := buildBinary(t)
	dataDir := t.TempDir() // one signing key (and SQLite file) for both
	flags := []string{"--valkey-url", rs.URL(), "--rate-limits", "read=10/1h,mcp=3/1h"}
	a := startServer(t, bin, dataDir, flags...)
	b := launch(t, bin, dataDir, flags...)
	replicas := []*server{a, b}

	for i := range 10 {
		code, h, body := send(t, "GET", replicas[i%2].url+"/api/v1/memories", a.admin, "")
		if code != http.StatusOK {
			t.Fatalf("read %d on replica %d: %d %s", i+1, i%2, code, body)
		}
		if got := h.Get("X-RateLimit-Remaining"); got != strconv.Itoa(9-i) {
			t.Errorf("read %d: X-RateLimit-Remaining %s, want %d (one budget for both replicas)", i+1, got, 9-i)
		}
	}
	for i := range 2 {
		code, h, body := send(t, "GET", replicas[i].url+"/api/v1/memories", a.admin, "")
		if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || h.Get("X-RateLimit-Limit") != "10" {
			t.Fatalf("read past the shared limit on replica %d: %d %v %s", i, code, h, body)
		}
		var e struct{ Error struct{ Code string } }
		if json.Unmarshal([]byte(body), &e); e.Error.Code != "rate_limited" {
			t.Errorf("429 body %s", body)
		}
	}
	// Another class of the same principal is unaffected.
	if code, _, body := send(t, "POST", b.url+"/api/v1/search", a.admin, `{"query":"anything"}`); code != http.StatusOK {
		t.Errorf("search after reads ran out: %d %s", code, body)
	}

	// Each replica counted the rejection it made; both see Valkey and its
	// closed breaker.
	for i, r := range replicas {
		code, _, m := send(t, "GET", r.url+"/metrics", a.admin, "")
		for _, want := range []string{`codingbrain_rate_limit_rejections_total{class="read"} 1`,
			`codingbrain_breaker_state{name="valkey"} 0`} {
			if code != http.StatusOK || !strings.Contains(m, want) {
				t.Errorf("replica %d /metrics (%d) lacks %s", i, code, want)
			}
		}
	}

	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	for i := range 3 {
		if code, _, body := send(t, "POST", replicas[i%2].url+"/mcp", a.admin, ping); code == http.StatusTooManyRequests {
			t.Fatalf("MCP POST %d refused within the limit: %s", i+1, body)
		}
	}
	code, h, _ := send(t, "POST", b.url+"/mcp", a.admin, ping)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("4th MCP POST: %d %v, want 429 with Retry-After", code, h)
	}
}

// slowEmbedder is an OpenAI-compatible embeddings API that holds every
// request whose input mentions "slow-marker" until release is closed.
func slowEmbedder(t *testing.T) (srv *httptest.Server, entered chan struct{}, release chan struct{}) {
	entered, release = make(chan struct{}, 8), make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if strings.Contains(strings.Join(req.Input, " "), "slow-marker") {
			entered <- struct{}{}
			<-release
		}
		type item struct {
			Embedding []float64 `json:"embedding"`
			Index     int       `json:"index"`
		}
		var out struct {
			Data []item `json:"data"`
		}
		for i, s := range req.Input {
			v := []float64{1, float64(len(s) % 5), 0, 0}
			out.Data = append(out.Data, item{Embedding: v, Index: i})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return srv, entered, release
}

// TestGracefulShutdown: with a search in flight (its embedder holds it) and
// an MCP SSE stream open, SIGTERM first makes /health/ready answer 503 and
// new requests 503 while the search is still running; then the listener
// closes, the search finishes with 200, the stream ends cleanly, and the
// process exits with status 0.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	emb, entered, release := slowEmbedder(t)
	bin := buildBinary(t)
	srv := startServer(t, bin, t.TempDir(), "--embedder", "openai", "--embedder-url", emb.URL, "--embedder-model", "test",
		"--shutdown-delay", "2s", "--shutdown-wait", "20s")

	// /health/deps lists the embedder's breaker.
	code, deps := call(t, "GET", srv.url+"/health/deps", "", nil)
	if bs, _ := deps["breakers"].([]any); code != http.StatusOK || len(bs) != 1 || bs[0].(map[string]any)["state"] != "closed" {
		t.Errorf("/health/deps: %d %v, want the embedder's breaker closed", code, deps)
	}

	// An SSE stream: read up to its endpoint event.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.url+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+srv.admin)
	req.Header.Set("Accept", "text/event-stream")
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("open SSE stream: %v %v", stream, err)
	}
	defer stream.Body.Close()
	events := bufio.NewReader(stream.Body)
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream ended before its endpoint event: %v", err)
		}
		if strings.HasPrefix(line, "event: endpoint") {
			break
		}
	}
	streamEnded := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, events)
		streamEnded <- err
	}()

	type answer struct {
		code int
		body string
	}
	slow := make(chan answer, 1)
	go func() {
		c, _, b := sendNoFatal(srv.url+"/api/v1/search", srv.admin, `{"query":"slow-marker"}`)
		slow <- answer{c, b}
	}()
	select {
	case <-entered:
	case a := <-slow:
		t.Fatalf("the search did not wait for the embedder: %d %s", a.code, a.body)
	case <-time.After(e2eTimeout):
		t.Fatal("the search never reached the embedder")
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness fails and new work is refused while the search runs.
	eventually(t, "/health/ready answers 503 after SIGTERM", func() error {
		if code, _ := call(t, "GET", srv.url+"/health/ready", "", nil); code != http.StatusServiceUnavailable {
			return errors.New("ready answered " + strconv.Itoa(code))
		}
		return nil
	})
	if code, h, body := send(t, "GET", srv.url+"/api/v1/memories", srv.admin, ""); code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("a new request while draining: %d %v %s, want 503 with Retry-After", code, h, body)
	}
	select {
	case a := <-slow:
		t.Fatalf("the search ended before it was released: %d %s", a.code, a.body)
	case err := <-streamEnded:
		t.Fatalf("the SSE stream ended during the shutdown delay: %v", err)
	default:
	}

	// After the delay the listener closes; the search is still running.
	eventually(t, "the listener closes", func() error {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.url, "http://"), time.Second)
		if err == nil {
			c.Close()
			return errors.New("still accepting connections")
		}
		return nil
	})
	close(release)
	select {
	case a := <-slow:
		if a.code != http.StatusOK || !strings.Contains(a.body, `"hits"`) {
			t.Errorf("the in-flight search: %d %s, want 200", a.code, a.body)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the in-flight search did not finish")
	}
	select {
	case err := <-streamEnded:
		if err != nil {
			t.Errorf("the SSE stream did not end cleanly: %v", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the SSE stream was not closed")
	}
	select {
	case <-srv.exited:
		if srv.err != nil {
			t.Fatalf("serve exited with %v, want status 0:\n%s", srv.err, srv.out.String())
		}
	case <-time.After(e2eTimeout):
		t.Fatal("serve did not exit")
	}
	if out := srv.out.String(); !strings.Contains(out, `"msg":"stopped"`) {
		t.Errorf("no stopped line:\n%s", out)
	}
}

// sendNoFatal POSTs body and returns the status and body; errors come back
// as status 0, so that it can run outside the test goroutine.
func sendNoFatal(url, token, body string) (int, http.Header, string) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: e2eTimeout}).Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
