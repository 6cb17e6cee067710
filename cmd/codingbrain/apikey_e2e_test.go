package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

var adminTokenLine = regexp.MustCompile(`admin token:\s*(\S+)`)

// TestAPIKeysEndToEnd: the first start prints an admin API key, which works
// for REST, the apikey CLI and MCP over stdio; a key made with it works
// until it is revoked; a restart prints no new admin key and the first one
// keeps working.
func TestAPIKeysEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	srv := startServer(t, bin, dataDir)
	admin := srv.admin
	if !strings.HasPrefix(admin, "cb_localadmin_") || len(adminTokenLine.FindAllString(srv.out.String(), -1)) != 1 {
		t.Fatalf("first start printed admin token %q:\n%s", admin, srv.out.String())
	}
	ctx := t.Context()
	if _, err := client.New(srv.url, admin).Stats(ctx); err != nil {
		t.Fatalf("stats with the admin key: %v", err)
	}
	cli := func(args ...string) result {
		t.Helper()
		return runCLI(t, bin, []string{"CODINGBRAIN_SERVER=" + srv.url, "CODINGBRAIN_TOKEN=" + admin}, append([]string{"apikey"}, args...)...)
	}

	// A service account key, made through the CLI, printed alone.
	r := cli("create", "--subject", "svc:ci", "--scopes", "memories:read,memories:write search:read", "--grants", "org:local", "--app", "ci", "--ttl", "1h")
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(key, "cb_") || strings.ContainsAny(key, " \n") || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("apikey create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	id := strings.SplitN(key, "_", 3)[1]
	kc := client.New(srv.url, key)
	m, created, err := kc.Add(ctx, memory.Input{Content: "CI runs the PostgreSQL tests against a throwaway cluster.", Scope: "org"}, "")
	if err != nil || !created || m.CreatedBy != "svc:ci" || m.App != "ci" || m.AccessEntity != "org:local" {
		t.Fatalf("add with the service key: %+v, %v", m, err)
	}
	if _, err := client.New(srv.url, admin).Get(ctx, m.ID); err != nil {
		t.Errorf("the admin reading the service account's org memory: %v", err)
	}

	// Escalation is refused and names the field.
	r = cli("create", "--subject", "alice", "--scopes", "memories:read")
	if r.code != 1 || !strings.Contains(r.stderr, "subject") {
		t.Errorf("a key for another person: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, bin, []string{"CODINGBRAIN_SERVER=" + srv.url, "CODINGBRAIN_TOKEN=" + key}, "apikey", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "admin:read") {
		t.Errorf("list with a key lacking admin:read: exit %d, stderr %q", r.code, r.stderr)
	}

	// Listing shows both keys, never a secret.
	r = cli("list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^localadmin\s+admin\s+active\s`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^`+id+`\s+svc:ci\s+active\s`).MatchString(r.stdout) {
		t.Errorf("apikey list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli("list", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"id": "`+id+`"`) || strings.Contains(r.stdout, key[len("cb_")+len(id)+1:]) ||
		strings.Contains(r.stdout, admin[len("cb_localadmin_"):]) || strings.Contains(r.stdout, "hash") {
		t.Errorf("apikey list --json: exit %d\n%s", r.code, r.stdout)
	}

	// MCP over stdio takes API keys too.
	var stderr bytes.Buffer
	cmd := mcpCommand(t, bin, []string{"--data-dir", dataDir}, "CODINGBRAIN_TOKEN="+key)
	cmd.Stderr = &stderr
	var who mcpserver.WhoamiOutput
	withStdioSession(t, cmd, &stderr, func(cs *mcp.ClientSession) {
		callTool(t, cs, "whoami", map[string]any{}, &who)
	})
	if who.Sub != "svc:ci" || who.OrgID != "local" || who.App != "ci" {
		t.Errorf("whoami over stdio with the service key: %+v", who)
	}

	// Revoked, the key fails at once, over REST and stdio.
	r = cli("revoke", id)
	if r.code != 0 || !strings.Contains(r.stdout, "revoked "+id) {
		t.Errorf("apikey revoke: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	_, err = kc.List(ctx, client.ListParams{})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("a revoked key: %v, want 401", err)
	}
	r = runCLI(t, bin, nil, "mcp", "--data-dir", dataDir, "--token", key)
	if r.code != 1 || !strings.Contains(r.stderr, "invalid token") {
		t.Errorf("mcp with a revoked key: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli("list"); !regexp.MustCompile(`(?m)^` + id + `\s+svc:ci\s+revoked\s`).MatchString(r.stdout) {
		t.Errorf("apikey list after revoke:\n%s", r.stdout)
	}

	// A restart prints no admin key; the first one still works.
	if err := srv.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	again := launch(t, bin, dataDir)
	if strings.Contains(again.out.String(), "admin token:") {
		t.Errorf("a restart printed an admin token:\n%s", again.out.String())
	}
	if _, err := client.New(again.url, admin).Stats(ctx); err != nil {
		t.Errorf("the first admin key after a restart: %v", err)
	}
	if err := again.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
	// The admin key appears once, on its line; the service key never.
	secret := func(k string) string { return k[strings.LastIndex(k, "_")+1:] }
	out := srv.out.String() + again.out.String()
	if strings.Count(out, secret(admin)) != 1 || strings.Contains(out, secret(key)) {
		t.Error("the server logged an API key")
	}
}

// withStdioSession runs codingbrain mcp as cmd, connects, and calls use.
func withStdioSession(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, use func(cs *mcp.ClientSession)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), e2eTimeout)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "apikey-test", Version: "1"}, nil).
		Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to codingbrain mcp: %v\nstderr: %s", err, stderr.String())
	}
	use(cs)
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v\nstderr: %s", err, stderr.String())
	}
}

// TestAdminKeyOnceAcrossReplicas starts two replicas at the same moment on
// one new PostgreSQL database: the database decides which is first, so
// exactly one prints an admin key, and it works on both.
func TestAdminKeyOnceAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := pgtest.Database(t)
	bin := buildBinary(t)
	flags := []string{"--database-url", dbURL, "--migrate", "--public-url", "http://brain.test"}
	// Separate data directories: each replica makes its own signing key,
	// which used to mean an admin token each.
	a, b := spawn(t, bin, t.TempDir(), flags...), spawn(t, bin, t.TempDir(), flags...)
	a.waitReady(t)
	b.waitReady(t)
	var keys []string
	for _, s := range []*server{a, b} {
		for _, m := range adminTokenLine.FindAllStringSubmatch(s.out.String(), -1) {
			keys = append(keys, m[1])
		}
	}
	if len(keys) != 1 {
		t.Fatalf("two replicas starting together printed %d admin keys, want 1:\nA:\n%s\nB:\n%s", len(keys), a.out.String(), b.out.String())
	}
	for _, s := range []*server{a, b} {
		if _, err := client.New(s.url, keys[0]).Stats(t.Context()); err != nil {
			t.Errorf("the admin key on %s: %v", s.url, err)
		}
	}
}

// spawn starts serve without waiting for it; waitReady waits.
func spawn(t *testing.T, bin, dataDir string, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{url: "http://" + addr, out: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--data-dir", dataDir}, args...)...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("server %s output:\n%s", s.url, s.out.String())
		}
	})
	return s
}

func (s *server) waitReady(t *testing.T) {
	t.Helper()
	probe := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(e2eTimeout)
	for {
		resp, err := probe.Get(s.url + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was ready: %v\n%s", s.err, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after %s:\n%s", e2eTimeout, s.out.String())
		}
	}
}
