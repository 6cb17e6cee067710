package main

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/client"
)

// TestLogsHoldNoSecrets drives REST and MCP with good, forged and malformed
// credentials (in the header and, wrongly, in the query string) and then
// searches everything the server printed after its first-start banner for
// any of those credentials and for the signing key.
func TestLogsHoldNoSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	srv := startServer(t, bin, dataDir, "--log-level", "debug")
	banner := len(srv.out.String()) // the admin token is shown once, on purpose

	const forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc"
	const garbage = "cb_notakey_0123456789abcdefghijklmnopqrstuv"
	ctx := t.Context()
	if _, err := client.New(srv.url, srv.admin).Search(ctx, client.SearchRequest{Query: "anything"}); err != nil {
		t.Fatalf("search with the admin token: %v", err)
	}
	for _, tok := range []string{forged, garbage} {
		if _, err := client.New(srv.url, tok).Search(ctx, client.SearchRequest{Query: "anything"}); err == nil {
			t.Fatalf("token %q accepted", tok)
		}
	}
	for _, path := range []string{"/api/v1/stats?access_token=" + srv.admin, "/mcp?token=" + forged} {
		resp, err := http.Get(srv.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token in the query string of %s: %d, want 401 (tokens only in the header)", strings.Split(path, "?")[0], resp.StatusCode)
		}
	}
	for _, tok := range []string{srv.admin, forged} {
		tr := &mcp.StreamableClientTransport{Endpoint: srv.url + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport(tok)}, MaxRetries: -1}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "secrets-test", Version: "1"}, nil).Connect(ctx, tr, nil)
		if err == nil {
			_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
			cs.Close()
		}
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}

	key, err := os.ReadFile(filepath.Join(dataDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	logs := srv.out.String()[banner:]
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no request log lines to search:\n%s", logs)
	}
	for name, secret := range map[string]string{
		"admin token":        srv.admin,
		"forged token":       forged,
		"malformed key":      garbage,
		"signing key (hex)":  hex.EncodeToString(key),
		"signing key (b64)":  base64.StdEncoding.EncodeToString(key),
		"signing key (b64u)": base64.RawURLEncoding.EncodeToString(key),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}

// bearerTransport adds a bearer token to every request.
type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
