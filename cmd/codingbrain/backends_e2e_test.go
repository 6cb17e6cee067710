package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/redistest"
)

// eventually calls check until it returns nil, failing the test with the
// last error once e2eTimeout has passed.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(e2eTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, e2eTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call sends one request with a JSON body (nil for none) and decodes the
// JSON answer.
func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: e2eTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not JSON: %q", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// dep returns the entry called name in a /health/deps answer.
func dep(body map[string]any, name string) map[string]any {
	deps, _ := body["deps"].([]any)
	for _, d := range deps {
		if d, ok := d.(map[string]any); ok && d["name"] == name {
			return d
		}
	}
	return nil
}

// depStatus checks that /health/deps reports dependency name as status.
func depStatus(t *testing.T, srv *server, name, status string) error {
	t.Helper()
	code, body := call(t, "GET", srv.url+"/health/deps", "", nil)
	d := dep(body, name)
	if d == nil || d["status"] != status {
		return fmt.Errorf("/health/deps answered %d: %s is %v", code, name, d)
	}
	return nil
}

func TestServeValkeyOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rs := redistest.New(t)
	bin := buildBinary(t)
	srv := startServer(t, bin, t.TempDir(), "--valkey-url", rs.URL())
	if out := srv.out.String(); !strings.Contains(out, `"shared_state":"valkey"`) || !strings.Contains(out, `"store":"sqlite"`) {
		t.Errorf("serve did not log its backends:\n%s", out)
	}
	code, body := call(t, "GET", srv.url+"/health/deps", "", nil)
	if v := dep(body, "valkey"); code != 200 || v == nil || v["status"] != "ok" || v["critical"] != false {
		t.Fatalf("/health/deps with valkey up: %d %v", code, body)
	}

	c := client.New(srv.url, srv.admin)
	before, _, err := c.Add(t.Context(), memory.Input{Content: "Valkey holds MCP session bindings, not memories."}, "")
	if err != nil {
		t.Fatalf("add: %v", err)
	}

	rs.Stop()
	// REST does not need Valkey.
	during, _, err := c.Add(t.Context(), memory.Input{Content: "Memories are written while Valkey is down."}, "")
	if err != nil {
		t.Errorf("add during the outage: %v", err)
	}
	if res, err := c.Search(t.Context(), client.SearchRequest{Query: "valkey session bindings"}); err != nil || len(res.Hits) == 0 || res.Hits[0].Memory.ID != before.ID {
		t.Errorf("search during the outage: %+v, %v", res.Hits, err)
	}
	if page, err := c.List(t.Context(), client.ListParams{}); err != nil || len(page.Memories) != 2 {
		t.Errorf("list during the outage: %+v, %v", page, err)
	}
	eventually(t, "/health/deps reports valkey unavailable", func() error { return depStatus(t, srv, "valkey", "unavailable") })
	code, body = call(t, "GET", srv.url+"/health/deps", "", nil)
	if code != http.StatusServiceUnavailable || dep(body, "store")["status"] != "ok" {
		t.Errorf("/health/deps during the outage: %d %v; want 503 with the store ok", code, body)
	}
	// Valkey is not critical: the server stays ready.
	if code, body := call(t, "GET", srv.url+"/health/ready", "", nil); code != http.StatusOK {
		t.Errorf("/health/ready during the valkey outage: %d %v", code, body)
	}

	if err := rs.Start(); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	eventually(t, "/health/deps reports valkey ok again", func() error { return depStatus(t, srv, "valkey", "ok") })
	if code, body := call(t, "GET", srv.url+"/health/deps", "", nil); code != http.StatusOK {
		t.Errorf("/health/deps after recovery: %d %v", code, body)
	}
	if got, err := c.Get(t.Context(), during.ID); err != nil || got.ID != during.ID {
		t.Errorf("get after recovery: %+v, %v", got, err)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}
