package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestConformanceFixturesMode: serve --conformance-fixtures is refused off
// loopback; on loopback it warns, serves the suite's fixtures and MCP
// without a token, while REST still needs one. Without the flag there are
// no fixtures and MCP needs a token.
func TestConformanceFixturesMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)

	r := runCLI(t, bin, nil, "serve", "--conformance-fixtures", "--addr", "0.0.0.0:0", "--public-url", "https://brain.example.com",
		"--data-dir", t.TempDir())
	if r.code == 0 || !strings.Contains(r.stderr, "--conformance-fixtures: refused") || !strings.Contains(r.stderr, "loopback") {
		t.Errorf("--conformance-fixtures on 0.0.0.0: exit %d, stderr %q; want a refusal naming loopback", r.code, r.stderr)
	}

	call := func(url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", "test_simple_text")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	const callSimple = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`

	fixtures := launch(t, bin, t.TempDir(), "--conformance-fixtures")
	if !strings.Contains(fixtures.out.String(), "MCP WITHOUT a token (--conformance-fixtures)") {
		t.Errorf("no warning logged:\n%s", fixtures.out.String())
	}
	if code, body := call(fixtures.url+"/mcp", callSimple); code != http.StatusOK || !strings.Contains(body, "This is a simple text response for testing.") {
		t.Errorf("fixture tool without a token: %d %s", code, body)
	}
	resp, err := http.Get(fixtures.url + "/api/v1/memories")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("REST without a token in fixtures mode: %d, want 401", resp.StatusCode)
	}

	normal := launch(t, bin, t.TempDir())
	if code, _ := call(normal.url+"/mcp", callSimple); code != http.StatusUnauthorized {
		t.Errorf("MCP without a token, normal mode: %d, want 401", code)
	}
}
