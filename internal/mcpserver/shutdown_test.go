package mcpserver_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
)

// TestCloseSessionsEndsStreams: CloseSessions ends the long-lived GET
// streams of both HTTP transports — the legacy SSE stream and the
// standalone stream of a Streamable HTTP session — cleanly (the response
// is finished, not cut), which http.Server.Shutdown would not do.
func TestCloseSessionsEndsStreams(t *testing.T) {
	svc := newService(t)
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "test-issuer", "test-audience", nil)
	srv := mcpserver.New(svc, mcpserver.Options{Verifier: tokens, Version: "test"})
	mux := http.NewServeMux()
	mux.Handle("/mcp", srv.Handler())
	mux.Handle("/sse", srv.SSEHandler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	tok, err := tokens.Issue(auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"org:acme"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp
	}

	// readUntil reads a stream's lines until one contains want.
	readUntil := func(r *bufio.Reader, what, want string) string {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v before %q", what, err, want)
			}
			if strings.Contains(line, want) {
				return line
			}
		}
	}

	// A legacy SSE stream, read up to its endpoint event; a ping answered
	// on the stream shows the session is connected (the endpoint event is
	// written while it connects).
	sse := do("GET", "/sse", "")
	defer sse.Body.Close()
	events := bufio.NewReader(sse.Body)
	readUntil(events, "SSE stream", "event: endpoint")
	endpoint := strings.TrimSpace(strings.TrimPrefix(readUntil(events, "SSE stream", "data: "), "data: "))
	ping := do("POST", endpoint, `{"jsonrpc":"2.0","id":7,"method":"ping"}`)
	ping.Body.Close()
	readUntil(events, "SSE stream", `"id":7`)

	// A Streamable HTTP session with its standalone GET stream.
	init := do("POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		"Mcp-Protocol-Version", "2025-11-25")
	io.Copy(io.Discard, init.Body)
	init.Body.Close()
	sid := init.Header.Get("Mcp-Session-Id")
	if init.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", init.StatusCode, sid)
	}
	hdr := []string{"Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-11-25"}
	note := do("POST", "/mcp", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr...)
	note.Body.Close()
	get := do("GET", "/mcp", "", append(hdr, "Accept", "text/event-stream")...)
	defer get.Body.Close()
	if get.StatusCode != http.StatusOK {
		t.Fatalf("standalone GET: %d", get.StatusCode)
	}

	ended := func(r io.Reader) chan error {
		c := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, r); c <- err }()
		return c
	}
	sseEnded, getEnded := ended(events), ended(get.Body)
	select {
	case err := <-sseEnded:
		t.Fatalf("SSE stream ended before CloseSessions: %v", err)
	case err := <-getEnded:
		t.Fatalf("GET stream ended before CloseSessions: %v", err)
	default:
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.CloseSessions(ctx)
	for name, c := range map[string]chan error{"SSE": sseEnded, "Streamable HTTP GET": getEnded} {
		select {
		case err := <-c:
			if err != nil {
				t.Errorf("%s stream did not end cleanly: %v", name, err)
			}
		case <-ctx.Done():
			t.Errorf("%s stream still open after CloseSessions", name)
		}
	}
}
