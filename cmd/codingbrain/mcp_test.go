package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
)

// mcpDataDir makes a data directory with a signing key and returns it with a
// token for p signed by that key.
func mcpDataDir(t *testing.T, p auth.Principal) (dir, token string) {
	t.Helper()
	dir = t.TempDir()
	key, _, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, err = auth.NewHS256(key, config.DefaultIssuer, config.Default().TokenAudience(config.Default().BaseURL()), nil).Issue(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return dir, token
}

// mcpCommand runs `codingbrain mcp` with a clean CODINGBRAIN_* environment
// plus extra.
func mcpCommand(t *testing.T, bin string, args []string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"mcp"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CODINGBRAIN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extra...)
	return cmd
}

func callTool(t *testing.T, cs *mcp.ClientSession, tool string, args, out any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	if res.IsError && out != nil {
		t.Fatalf("%s: tool error: %v", tool, res.Content)
	}
	if out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("decode %s result %s: %v", tool, b, err)
		}
	}
	return res
}

func TestMCPStdio(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	p := auth.Principal{Subject: "carol", OrgID: "acme", Scopes: auth.AllScopes}
	dir, token := mcpDataDir(t, p)
	var stderr bytes.Buffer
	cmd := mcpCommand(t, bin, []string{"--data-dir", dir}, "CODINGBRAIN_TOKEN="+token)
	cmd.Stderr = &stderr

	client := mcp.NewClient(&mcp.Implementation{Name: "stdio-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to codingbrain mcp: %v\nstderr: %s", err, stderr.String())
	}

	content := "The payments API rejects requests without an Idempotency-Key header."
	var added mcpserver.AddMemoriesOutput
	callTool(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": content, "category": "convention", "entity": "payments-api"}}}, &added)
	if len(added.Results) != 1 || added.Results[0].Status != "created" {
		t.Fatalf("add_memories: %+v", added)
	}
	id := added.Results[0].ID

	var found mcpserver.SearchOutput
	callTool(t, cs, "search_memory", map[string]any{"query": "idempotency key payments"}, &found)
	if len(found.Results) == 0 || found.Results[0].ID != id || found.Results[0].Content != content {
		t.Fatalf("search_memory: got %+v, want %s", found.Results, id)
	}

	var got mcpserver.MemoryView
	callTool(t, cs, "get_memory", map[string]any{"id": id}, &got)
	if got.Content != content || got.CreatedBy != "carol" || got.Entity != "payments-api" || got.App != "stdio-test" {
		t.Errorf("get_memory: got %+v", got)
	}

	var deleted mcpserver.DeleteOutput
	callTool(t, cs, "delete_memories", map[string]any{"ids": []string{id}}, &deleted)
	if len(deleted.Results) != 1 || deleted.Results[0].Status != "deleted" {
		t.Errorf("delete_memories: got %+v", deleted)
	}
	if res := callTool(t, cs, "get_memory", map[string]any{"id": id}, nil); !res.IsError {
		t.Errorf("get_memory after delete: want a not-found tool error, got %v", res.Content)
	}

	if err := cs.Close(); err != nil {
		t.Errorf("close: %v\nstderr: %s", err, stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("codingbrain mcp exited with %d after stdin closed; stderr: %s", code, stderr.String())
	}
}

func TestMCPStdioRejectsBadToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir, token := mcpDataDir(t, auth.Principal{Subject: "carol", OrgID: "acme", Scopes: auth.AllScopes})
	_, foreign := mcpDataDir(t, auth.Principal{Subject: "mallory", OrgID: "acme", Scopes: auth.AllScopes})
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no token", []string{"--data-dir", dir}, nil, "no token"},
		{"token from another key", []string{"--data-dir", dir, "--token", foreign}, nil, "invalid token"},
		{"garbage in env", []string{"--data-dir", dir}, []string{"CODINGBRAIN_TOKEN=garbage"}, "invalid token"},
		{"no key in data dir", []string{"--data-dir", t.TempDir(), "--token", token}, nil, "signing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := mcpCommand(t, bin, tc.args, tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("want exit status 1, got %v", err)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout must carry only the protocol, got %q", stdout.String())
			}
		})
	}
}
