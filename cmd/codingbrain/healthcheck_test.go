package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadinessURL(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:8765":   "http://127.0.0.1:8765/health/ready",
		":9000":          "http://127.0.0.1:9000/health/ready",
		"[::]:8765":      "http://127.0.0.1:8765/health/ready",
		"127.0.0.1:8765": "http://127.0.0.1:8765/health/ready",
		"10.1.2.3:80":    "http://10.1.2.3:80/health/ready",
		"[::1]:8765":     "http://[::1]:8765/health/ready",
	} {
		if got, err := readinessURL(addr); err != nil || got != want {
			t.Errorf("readinessURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	for _, bad := range []string{"8765", "localhost", "host:"} {
		if _, err := readinessURL(bad); err == nil || !strings.Contains(err.Error(), "CODINGBRAIN_ADDR") {
			t.Errorf("readinessURL(%q) err = %v, want one naming CODINGBRAIN_ADDR", bad, err)
		}
	}
}

// TestHealthcheck asks a real HTTP server: 200 is healthy, anything else
// (503 while draining, a refused connection) is not.
func TestHealthcheck(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/ready" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, `{"status":"unavailable","reason":"shutting down"}`)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	getenv := func(k string) string {
		if k == "CODINGBRAIN_ADDR" {
			return addr
		}
		return ""
	}
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"healthcheck"}, getenv, nil, &out, &errOut); err != nil || out.String() != "ready\n" {
		t.Fatalf("healthy server: err %v, stdout %q", err, out.String())
	}
	status.Store(http.StatusServiceUnavailable)
	err := run(t.Context(), []string{"healthcheck", "--url", srv.URL + "/health/ready"}, getenv, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("draining server: err %v, want a 503 naming the reason", err)
	}
	srv.Close()
	if err := run(t.Context(), []string{"healthcheck"}, getenv, nil, &out, &errOut); err == nil {
		t.Error("a stopped server passed the health check")
	}
	if err := run(t.Context(), []string{"healthcheck", "--timeout", "0s"}, getenv, nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Errorf("--timeout 0s: err %v, want one naming the flag", err)
	}
}
