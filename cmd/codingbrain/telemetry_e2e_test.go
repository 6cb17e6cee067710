package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// get answers the status and body of a GET with an optional bearer token
// and extra headers.
func get(t *testing.T, url, token string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: e2eTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsListener: serve --metrics-addr serves /metrics and pprof
// without a token there, while /metrics on the main address needs a token
// with metrics:read.
func TestMetricsListener(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	maddr := freeAddr(t)
	srv := startServer(t, bin, t.TempDir(), "--metrics-addr", maddr)

	code, body := get(t, "http://"+maddr+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, "codingbrain_build_info{") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics on --metrics-addr: %d\n%.300s", code, body)
	}
	if code, _ := get(t, "http://"+maddr+"/debug/pprof/", ""); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/ on --metrics-addr: %d", code)
	}
	if code, _ := get(t, srv.url+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics on the main address without a token: %d, want 401", code)
	}
	if code, _ := get(t, srv.url+"/debug/pprof/", srv.admin); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on the main address: %d, want 404", code)
	}
	// The admin key holds every scope, metrics:read included.
	code, body = get(t, srv.url+"/metrics", srv.admin)
	if code != http.StatusOK || !strings.Contains(body, `codingbrain_http_requests_total{code="401",method="GET",route="GET /metrics"} 1`) {
		t.Errorf("GET /metrics on the main address with the admin key: %d\n%s", code, body)
	}
	if !strings.Contains(srv.out.String(), "serving metrics and pprof without authentication") {
		t.Errorf("serve did not log the metrics listener:\n%s", srv.out.String())
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	// The key is printed once, on first start, for the operator; no log
	// line repeats it.
	if n := strings.Count(srv.out.String(), srv.admin); n != 1 {
		t.Errorf("the admin key appears %d times in the output, want once (the first-start notice)", n)
	}
}

// otlpReceiver is an OTLP/HTTP endpoint that remembers what reached
// /v1/traces.
type otlpReceiver struct {
	mu       sync.Mutex
	requests int
	bytes    int
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
		o.mu.Lock()
		o.requests++
		o.bytes += len(b)
		o.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// TestTracingExport: with OTEL_EXPORTER_OTLP_ENDPOINT set, serve exports
// spans over OTLP/HTTP (flushed at shutdown), continues an incoming
// traceparent, and its JSON request log line carries the trace id.
func TestTracingExport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)

	addr := freeAddr(t)
	dataDir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir)
	cmd.Env = cleanEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL, "OTEL_SERVICE_NAME=codingbrain-e2e")
	srv := launchCmd(t, cmd, "http://"+addr)

	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	code, _ := get(t, srv.url+"/health/live", "", "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if code != http.StatusOK {
		t.Fatalf("/health/live: %d", code)
	}
	if err := srv.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	recv.mu.Lock()
	n, size := recv.requests, recv.bytes
	recv.mu.Unlock()
	if n == 0 || size == 0 {
		t.Errorf("the collector received %d OTLP trace exports (%d bytes), want at least one", n, size)
	}
	var found bool
	for _, l := range strings.Split(srv.out.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "request" || m["route"] != "GET /health/live" {
			continue
		}
		found = true
		if m["trace_id"] != trace || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(m["span_id"].(string)) {
			t.Errorf("request line: trace_id %v span_id %v, want trace %s", m["trace_id"], m["span_id"], trace)
		}
	}
	if !found {
		t.Errorf("no JSON request line for GET /health/live:\n%s", srv.out.String())
	}
	if !strings.Contains(srv.out.String(), `"msg":"tracing"`) {
		t.Errorf("serve did not log that tracing is on:\n%s", srv.out.String())
	}
}

// launchCmd starts a prepared serve command and returns once
// /health/ready at url answers 200.
func launchCmd(t *testing.T, cmd *exec.Cmd, url string) *server {
	t.Helper()
	s := &server{url: url, out: &syncBuffer{}, exited: make(chan struct{}), cmd: cmd}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("server output:\n%s", s.out.String())
		}
	})
	probe := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(e2eTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := probe.Get(url + "/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was ready: %v\n%s", s.err, s.out.String())
		case <-deadline.C:
			t.Fatalf("server not ready after %s:\n%s", e2eTimeout, s.out.String())
		case <-tick.C:
		}
	}
}
