package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// TestMCPConfigGolden checks what mcp-config prints for every client, over
// HTTP and stdio, against testdata/mcp-config/*.golden (refresh with
// -update). The key and the clock are fixed; the token is verified with
// the key (subject, org, scopes, audience, expiry) and then replaced by
// TOKEN, since its jti is random.
func TestMCPConfigGolden(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, auth.KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	getenv := func(k string) string {
		return map[string]string{"USER": "dana", "CODINGBRAIN_DATA_DIR": dir}[k]
	}

	for _, client := range mcpClients {
		for _, stdio := range []bool{false, true} {
			name := client
			args := []string{"--client", client, "--scopes", "memories:read memories:write search:read", "--org", "acme", "--ttl", "720h"}
			wantAud := "http://127.0.0.1:8765/mcp"
			if stdio {
				name += "-stdio"
				args = append(args, "--stdio", "--command", "/usr/local/bin/codingbrain")
			} else {
				args = append(args, "--url", "https://brain.example.com")
				wantAud = "https://brain.example.com/mcp"
			}
			t.Run(name, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if err := mcpConfig(args, env{getenv: getenv, stdout: &stdout, stderr: &stderr}, func() time.Time { return now }); err != nil {
					t.Fatalf("mcp-config %v: %v\n%s", args, err, stderr.String())
				}
				out := stdout.String()
				tokens := jwtPattern.FindAllString(out, -1)
				if len(tokens) != 1 {
					t.Fatalf("want one token in the output, found %d:\n%s", len(tokens), out)
				}
				p, err := auth.NewHS256(key, config.DefaultIssuer, wantAud, func() time.Time { return now }).Verify(context.Background(), tokens[0])
				if err != nil {
					t.Fatalf("the printed token does not verify for audience %s: %v", wantAud, err)
				}
				if p.Subject != "dana" || p.OrgID != "acme" || !slices.Equal(p.Scopes, []string{"memories:read", "memories:write", "search:read"}) || p.App != client {
					t.Errorf("token principal: got %+v", p)
				}
				if exp := tokenExpiry(t, tokens[0]); !exp.Equal(now.Add(720 * time.Hour)) {
					t.Errorf("token expires at %s, want %s", exp, now.Add(720*time.Hour))
				}
				got := strings.ReplaceAll(strings.ReplaceAll(out, tokens[0], "TOKEN"), dir, "/DATA_DIR")
				golden := filepath.Join("testdata", "mcp-config", name+".golden")
				if *updateGolden {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("mcp-config --client %s differs from %s (run with -update after review):\n--- got\n%s--- want\n%s", client, golden, got, want)
				}
				if !strings.Contains(stderr.String(), "Paste into") {
					t.Errorf("stderr does not say where the configuration goes: %q", stderr.String())
				}
			})
		}
	}
}

func tokenExpiry(t *testing.T, token string) time.Time {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return time.Unix(c.Exp, 0).UTC()
}

func TestMCPConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, auth.KeyFile), []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--client", "emacs", "--data-dir", dir}, `--client "emacs": use one of claude-code, cursor, vscode, codex, claude-desktop`},
		{[]string{"--client", "cursor", "--data-dir", dir, "--scopes", "memories:read memories:nuke"}, `unknown scope "memories:nuke"`},
		{[]string{"--client", "cursor", "--data-dir", dir, "--url", "ftp://x"}, `--url "ftp://x": use http://host:port or https://host`},
		{[]string{"--client", "cursor", "--data-dir", filepath.Join(dir, "missing")}, "signing key"},
	} {
		var stdout, stderr bytes.Buffer
		err := mcpConfig(tc.args, env{getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mcp-config %v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("mcp-config %v printed a configuration despite the error: %s", tc.args, stdout.String())
		}
	}
}
