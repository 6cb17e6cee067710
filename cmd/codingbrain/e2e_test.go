package main

// The end-to-end test drives the built binary: it starts "codingbrain serve"
// on a free port with a fresh data directory, mints a token with
// "codingbrain token issue", exercises the REST API through the client
// package and the "codingbrain memory" CLI, and stops the server with
// SIGTERM.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// e2eTimeout bounds each wait in the test: server readiness, each CLI run,
// shutdown.
const e2eTimeout = 30 * time.Second

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a running "codingbrain serve".
type server struct {
	url    string
	admin  string // the admin token printed on first start
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, set before exited is closed
}

// cleanEnv is the test process's environment without CODINGBRAIN_*
// variables, plus extra.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CODINGBRAIN_") })
	return append(env, extra...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs serve on a fresh data directory, with extra flags, and
// returns once /health/ready answers 200 and the admin token of the first
// start has been printed.
func startServer(t *testing.T, bin, dataDir string, args ...string) *server {
	t.Helper()
	s := launch(t, bin, dataDir, args...)
	m := regexp.MustCompile(`admin token:\s*(\S+)`).FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("first start printed no admin token:\n%s", s.out.String())
	}
	s.admin = m[1]
	return s
}

// launch runs serve with extra flags and returns once /health/ready
// answers 200. The process is killed when the test ends.
func launch(t *testing.T, bin, dataDir string, args ...string) *server {
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
		_ = s.cmd.Process.Kill() // fails harmlessly when it has exited
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
		resp, err := probe.Get(s.url + "/health/ready")
		if err == nil {
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

// stop sends SIGTERM and returns the exit error.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal server: %v", err)
	}
	select {
	case <-s.exited:
		return s.err
	case <-time.After(e2eTimeout):
		t.Fatalf("server did not exit %s after SIGTERM:\n%s", e2eTimeout, s.out.String())
		return nil
	}
}

// result is the outcome of one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary with args and the given extra environment.
func runCLI(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), e2eTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)

	r := runCLI(t, bin, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "codingbrain ") {
		t.Errorf("version: exit %d, stdout %q", r.code, r.stdout)
	}

	dataDir := t.TempDir()
	srv := startServer(t, bin, dataDir)

	r = runCLI(t, bin, nil, "token", "issue", "--data-dir", dataDir, "--public-url", srv.url, "--sub", "alice", "--org", "acme",
		"--scopes", "memories:read memories:write memories:delete search:read", "--ttl", "1h")
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || token == "" || strings.ContainsAny(token, " \n") {
		t.Fatalf("token issue: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	t.Run("health", func(t *testing.T) { testHealth(t, srv) })
	t.Run("auth", func(t *testing.T) { testAuth(t, srv, token) })
	t.Run("rest", func(t *testing.T) { testREST(t, srv, token) })
	t.Run("cli", func(t *testing.T) { testCLI(t, bin, srv, token) })

	if err := srv.stop(t); err != nil {
		t.Errorf("server exit after SIGTERM: %v (want status 0)\n%s", err, srv.out.String())
	}
	if strings.Contains(srv.out.String(), token) {
		t.Error("the server logged alice's token")
	}
}

func testHealth(t *testing.T, srv *server) {
	c := client.New(srv.url, "")
	for _, probe := range []string{"live", "ready", "deps"} {
		h, err := c.Health(t.Context(), probe)
		if err != nil || h.Status != "ok" {
			t.Errorf("health %s: %+v, %v", probe, h, err)
		}
	}
}

func testAuth(t *testing.T, srv *server, token string) {
	ctx := t.Context()
	for name, tok := range map[string]string{"no token": "", "bad token": token + "x"} {
		_, err := client.New(srv.url, tok).List(ctx, client.ListParams{})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized || !errors.Is(err, memory.ErrUnauthorized) {
			t.Errorf("%s: List error %v, want a 401", name, err)
		}
	}
	// alice's token lacks stats:read; the admin token has every scope.
	_, err := client.New(srv.url, token).Stats(ctx)
	if !errors.Is(err, memory.ErrForbidden) {
		t.Errorf("Stats without stats:read: %v, want forbidden", err)
	}
	if _, err := client.New(srv.url, srv.admin).Stats(ctx); err != nil {
		t.Errorf("Stats with the admin token: %v", err)
	}
}

func testREST(t *testing.T, srv *server, token string) {
	ctx := t.Context()
	c := client.New(srv.url, token)
	content := "We use pgx, not database/sql, for PostgreSQL access in the orders service."
	in := memory.Input{Content: content, Category: "decision", ArtifactType: "service", ArtifactRef: "orders",
		Evidence: []string{"ADR-12"}, Tags: map[string]any{"db": true, "lang": "go"}, App: "e2e"}

	m, created, err := c.Add(ctx, in, "")
	if err != nil || !created {
		t.Fatalf("Add: created %v, err %v", created, err)
	}
	if m.Content != content || m.State != memory.StateActive || m.AccessEntity != "user:alice" || m.OrgID != "acme" {
		t.Errorf("Add returned %+v", m)
	}
	again, created, err := c.Add(ctx, memory.Input{Content: "  we use PGX, not database/sql, for postgresql access in the orders service. "}, "")
	if err != nil || created || again.ID != m.ID {
		t.Errorf("Add duplicate: id %q created %v err %v; want existing %q", again.ID, created, err, m.ID)
	}
	first, created1, err1 := c.Add(ctx, memory.Input{Content: "Retries use exponential backoff."}, "key-e2e-1")
	replay, created2, err2 := c.Add(ctx, memory.Input{Content: "Retries use exponential backoff."}, "key-e2e-1")
	if err1 != nil || err2 != nil || !created1 || created2 || replay.ID != first.ID {
		t.Errorf("idempotent replay: %v/%v %v/%v ids %s/%s", created1, created2, err1, err2, first.ID, replay.ID)
	}
	_, _, err = c.Add(ctx, memory.Input{Content: "x", Category: "nope"}, "")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 400 || ce.Code != "invalid_argument" || ce.Field != "category" {
		t.Errorf("Add with a bad category: %#v", err)
	}

	got, err := c.Get(ctx, m.ID)
	if err != nil || got.Content != content || got.Tags["lang"] != "go" {
		t.Errorf("Get: %+v, %v", got, err)
	}
	page, err := c.List(ctx, client.ListParams{Filter: memory.Filter{Categories: []memory.Category{"decision"}}})
	if err != nil || len(page.Memories) != 1 || page.Memories[0].ID != m.ID {
		t.Errorf("List category=decision: %+v, %v", page, err)
	}
	res, err := c.Search(ctx, client.SearchRequest{Query: "pgx postgresql", Limit: 5})
	hits := res.Hits
	if err != nil || len(hits) == 0 || hits[0].Memory.ID != m.ID || hits[0].Memory.Content != content {
		t.Errorf("Search: %+v, %v", hits, err)
	}
	res, err = c.Search(ctx, client.SearchRequest{Query: "pgx", Filters: memory.Filter{Categories: []memory.Category{"runbook"}}})
	hits = res.Hits
	if err != nil || len(hits) != 0 {
		t.Errorf("Search filtered to runbooks: %+v, %v", hits, err)
	}

	newContent := content + " See ADR-12."
	up, err := c.Update(ctx, m.ID, memory.Patch{Content: &newContent})
	if err != nil || up.Content != newContent {
		t.Errorf("Update: %+v, %v", up, err)
	}
	for _, step := range []struct {
		action memory.Action
		want   memory.State
	}{{memory.ActionPause, memory.StatePaused}, {memory.ActionRestore, memory.StateActive}} {
		got, err := c.SetState(ctx, m.ID, step.action)
		if err != nil || got.State != step.want {
			t.Errorf("SetState %s: %s, %v", step.action, got.State, err)
		}
	}
	if _, err := c.SetState(ctx, m.ID, memory.ActionRestore); !errors.Is(err, memory.ErrConflict) {
		t.Errorf("restore of an active memory: %v, want conflict", err)
	}
	hist, err := c.History(ctx, m.ID)
	var actions []string
	for _, h := range hist {
		actions = append(actions, h.Action)
	}
	if err != nil || !slices.Equal(actions, []string{"create", "update", "pause", "restore"}) {
		t.Errorf("History actions %v, %v", actions, err)
	}

	del, err := c.Delete(ctx, m.ID)
	if err != nil || del.State != memory.StateDeleted {
		t.Errorf("Delete: %+v, %v", del, err)
	}
	if _, err := c.Get(ctx, m.ID); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("Get after delete: %v, want not found", err)
	}
	// Another org never sees alice's memories.
	if _, err := client.New(srv.url, srv.admin).Get(ctx, first.ID); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("admin of org local reading acme's memory: %v, want not found", err)
	}
}

func testCLI(t *testing.T, bin string, srv *server, token string) {
	common := []string{"--server", srv.url, "--token", token}
	mem := func(args ...string) result {
		t.Helper()
		// Common flags after the positional arguments, as a user would type.
		return runCLI(t, bin, nil, append(append([]string{"memory"}, args...), common...)...)
	}
	ok := func(r result, what string) string {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	idOf := func(out, verb string) string {
		t.Helper()
		f := strings.Fields(out)
		if len(f) != 2 || f[0] != verb {
			t.Fatalf("want %q ID, got %q", verb, out)
		}
		return f[1]
	}

	content := "Integration tests run against a real SQLite store, never mocks."
	id := idOf(ok(mem("add", content, "--category", "convention", "--tag", "testing", "--tag", "lang=go",
		"--evidence", "PR-31", "--app", "cli-e2e"), "add"), "created")
	if again := idOf(ok(mem("add", content), "add again"), "exists"); again != id {
		t.Errorf("add again: id %s, want %s", again, id)
	}

	out := ok(mem("get", id), "get")
	for _, want := range []string{id, content, "convention", "lang=go", "PR-31", "[active]"} {
		if !strings.Contains(out, want) {
			t.Errorf("get output lacks %q:\n%s", want, out)
		}
	}
	var m memory.Memory
	if err := json.Unmarshal([]byte(ok(mem("get", id, "--json"), "get --json")), &m); err != nil || m.ID != id || m.Content != content {
		t.Errorf("get --json: %+v, %v", m, err)
	}

	out = ok(mem("list", "--category", "convention"), "list")
	if !strings.Contains(out, id) || !strings.Contains(out, "active") {
		t.Errorf("list output lacks %s:\n%s", id, out)
	}
	var page memory.Page
	if err := json.Unmarshal([]byte(ok(mem("list", "--json"), "list --json")), &page); err != nil || len(page.Memories) == 0 {
		t.Errorf("list --json: %+v, %v", page, err)
	}

	// Pagination: three more memories, two per page.
	for i := range 3 {
		ok(mem("add", fmt.Sprintf("Page test memory number %d.", i), "--category", "glossary"), "add page memory")
	}
	out = ok(mem("list", "--category", "glossary", "--limit", "2"), "list page 1")
	cursor := regexp.MustCompile(`(?m)^next: (\S+)$`).FindStringSubmatch(out)
	if strings.Count(out, "glossary") != 2 || cursor == nil {
		t.Fatalf("list page 1 should have 2 memories and a next cursor:\n%s", out)
	}
	out = ok(mem("list", "--category", "glossary", "--limit", "2", "--cursor", cursor[1]), "list page 2")
	if strings.Count(out, "glossary") != 1 || strings.Contains(out, "next:") {
		t.Errorf("list page 2 should have 1 memory and no cursor:\n%s", out)
	}

	out = ok(mem("search", "real SQLite store mocks", "--limit", "3"), "search")
	if first, _, _ := strings.Cut(out, "\n"); !strings.Contains(first, id) || !strings.HasPrefix(strings.TrimSpace(first), "1 ") {
		t.Errorf("search: first line %q should rank %s first\n%s", first, id, out)
	}
	var sr struct {
		Hits []memory.Hit `json:"hits"`
	}
	if err := json.Unmarshal([]byte(ok(mem("search", "SQLite", "--json", "--category", "convention"), "search --json")), &sr); err != nil ||
		len(sr.Hits) == 0 || sr.Hits[0].Memory.Content != content {
		t.Errorf("search --json: %+v, %v", sr, err)
	}

	if got := idOf(ok(mem("update", id, "--content", content+" (Decided 2026.)"), "update"), "updated"); got != id {
		t.Errorf("update printed id %s, want %s", got, id)
	}
	if out := ok(mem("state", id, "pause"), "pause"); strings.TrimSpace(out) != id+" paused" {
		t.Errorf("state pause: %q", out)
	}
	if out := ok(mem("state", id, "restore"), "restore"); strings.TrimSpace(out) != id+" active" {
		t.Errorf("state restore: %q", out)
	}
	out = ok(mem("history", id), "history")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 ||
		!strings.Contains(lines[0], "create") || !strings.Contains(lines[1], "update") || !strings.Contains(lines[1], "content") {
		t.Errorf("history should show create, update (content), pause, restore:\n%s", out)
	}

	// The environment works as well as flags.
	r := runCLI(t, bin, []string{"CODINGBRAIN_SERVER=" + srv.url, "CODINGBRAIN_TOKEN=" + token}, "memory", "delete", id)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "deleted "+id {
		t.Errorf("delete via environment: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = mem("get", id)
	if r.code == 0 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("get after delete: exit %d, stderr %q; want a failure naming not_found", r.code, r.stderr)
	}

	r = runCLI(t, bin, []string{"CODINGBRAIN_SERVER=" + srv.url}, "memory", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "CODINGBRAIN_TOKEN") {
		t.Errorf("list without a token: exit %d, stderr %q", r.code, r.stderr)
	}
	r = mem("get")
	if r.code == 0 || !strings.Contains(r.stderr, "Usage: codingbrain memory get") {
		t.Errorf("get without an id: exit %d, stderr %q", r.code, r.stderr)
	}
	r = mem("state", id, "explode")
	if r.code == 0 || !strings.Contains(r.stderr, "pause, archive, restore") {
		t.Errorf("state with a bad action: exit %d, stderr %q", r.code, r.stderr)
	}
	r = mem("add", "x", "--category", "nope")
	if r.code == 0 || !strings.Contains(r.stderr, "invalid_argument") || !strings.Contains(r.stderr, "category") {
		t.Errorf("add with a bad category: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, r := range []result{mem("list"), mem("get", id)} {
		if strings.Contains(r.stdout+r.stderr, token) {
			t.Error("the CLI printed the token")
		}
	}
}
