package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// seedReindex makes a SQLite database in dir with n live memories and one
// deleted, every live one embedded by "old-model", and returns their ids.
func seedReindex(t *testing.T, dir string, n int) []string {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"org:acme"}}
	ctx := auth.WithPrincipal(t.Context(), p)
	svc := memory.NewService(s, memory.Options{})
	var ids []string
	var es []memory.Embedding
	for i := range n + 1 {
		m, _, err := svc.Add(ctx, memory.Input{Content: fmt.Sprintf("reindex memory %d about webhooks", i), Scope: "org"})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, memory.Embedding{OrgID: m.OrgID, MemoryID: m.ID, Model: "old-model", ContentHash: m.ContentHash,
			Vector: []float32{1, 0, 0}})
		if i == n {
			if _, err := svc.Delete(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ids = append(ids, m.ID)
	}
	if stored, err := s.PutEmbeddings(t.Context(), es); err != nil || stored != n { // not the deleted one
		t.Fatalf("seed embeddings: %d, %v", stored, err)
	}
	return ids
}

// embeddingModels opens the database in dir and counts its embeddings by
// model, and the memories missing one of model.
func embeddingModels(t *testing.T, dir, model string) (map[string]int, int) {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile), sqlite.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	models, err := s.EmbeddingModels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	missing, err := s.CountMissingEmbeddings(t.Context(), model)
	if err != nil {
		t.Fatal(err)
	}
	return models, missing
}

func runCmd(t *testing.T, ctx context.Context, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestReindexAfterModelChange(t *testing.T) {
	dir := t.TempDir()
	seedReindex(t, dir, 150)
	model := embed.NewBuiltin().Model()

	out, errOut, err := runCmd(t, t.Context(), nil, "reindex", "--data-dir", dir, "--embedder-batch", "32")
	if err != nil {
		t.Fatalf("reindex: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"embedder: " + model, "stored embeddings of other models, to replace: old-model (150)",
		"150 memories to embed", "embedded 150 memories"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// stderr is not a terminal: plain progress lines, the last one whole.
	if !strings.Contains(errOut, "reindex: 150/150 memories (100%)") {
		t.Errorf("progress on stderr:\n%s", errOut)
	}
	models, missing := embeddingModels(t, dir, model)
	if missing != 0 || models[model] != 150 || len(models) != 1 {
		t.Errorf("after reindex: models %v, %d missing; want every live memory on %s", models, missing, model)
	}

	out, _, err = runCmd(t, t.Context(), nil, "reindex", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("second run: %v\n%s", err, out)
	}
}

func TestReindexErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd(t, t.Context(), nil, "reindex", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("without a database: %v", err)
	}
	seedReindex(t, dir, 1)
	_, _, err := runCmd(t, t.Context(), nil, "reindex", "--data-dir", dir, "--embedder", "openai")
	if err == nil || !strings.Contains(err.Error(), "embedder_url") {
		t.Errorf("openai without a URL: %v", err)
	}
	out, _, err := runCmd(t, t.Context(), nil, "reindex", "-h")
	if err != nil || !strings.Contains(out, "resumable") {
		t.Errorf("reindex -h: %v\n%s", err, out)
	}
}

// blockingAPI answers embedding requests until release is closed... after
// the first `free` requests, each one waits for release.
type blockingAPI struct {
	free     int32
	calls    atomic.Int32
	release  chan struct{}
	arrived  chan struct{} // a request beyond the free ones arrived
	once     sync.Once
	mu       sync.Mutex
	auth     []string
	unlocked atomic.Bool
}

func (a *blockingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.auth = append(a.auth, r.Header.Get("Authorization"))
	a.mu.Unlock()
	if a.calls.Add(1) > a.free && !a.unlocked.Load() {
		a.once.Do(func() { close(a.arrived) })
		select {
		case <-a.release:
		case <-r.Context().Done():
			return
		}
	}
	type item struct {
		Embedding []float64 `json:"embedding"`
		Index     int       `json:"index"`
	}
	var data []item
	for i, in := range req.Input {
		data = append(data, item{[]float64{float64(len(in)), 1, 2, 3}, i})
	}
	json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func TestReindexBinaryInterruptedResumes(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	seedReindex(t, dir, 10)
	api := &blockingAPI{free: 2, release: make(chan struct{}), arrived: make(chan struct{})}
	srv := httptest.NewServer(api)
	defer srv.Close()
	const key = "sk-reindex-secret-42"
	args := []string{"reindex", "--data-dir", dir, "--embedder", "openai", "--embedder-url", srv.URL + "/v1",
		"--embedder-model", "tiny-embed", "--embedder-batch", "2"}
	command := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CODINGBRAIN_EMBEDDER_API_KEY="+key, "CODINGBRAIN_DATABASE_URL=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd, &out
	}

	// Two batches go through, the third hangs: interrupt the run there.
	cmd, out := command()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-api.arrived:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the third request never came:\n%s", out)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Errorf("an interrupted reindex exited 0:\n%s", out)
	}
	if !strings.Contains(out.String(), "stopped after embedding 4 memories") ||
		!strings.Contains(out.String(), "run reindex again to continue") {
		t.Errorf("interrupted output:\n%s", out)
	}
	models, missing := embeddingModels(t, dir, "openai:tiny-embed")
	if models["openai:tiny-embed"] != 4 || missing != 6 {
		t.Errorf("after the interruption: %v, %d missing; want 4 embedded and 6 missing", models, missing)
	}

	// The second run does only the six left.
	api.unlocked.Store(true)
	close(api.release)
	before := api.calls.Load()
	cmd, out = command()
	if err := cmd.Run(); err != nil {
		t.Fatalf("resumed reindex: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "embedded 6 memories") || api.calls.Load()-before != 3 {
		t.Errorf("resumed run sent %d requests:\n%s", api.calls.Load()-before, out)
	}
	models, missing = embeddingModels(t, dir, "openai:tiny-embed")
	if models["openai:tiny-embed"] != 10 || missing != 0 || len(models) != 1 {
		t.Errorf("after the resumed run: %v, %d missing", models, missing)
	}

	// A third run has nothing to do and sends nothing.
	before = api.calls.Load()
	cmd, out = command()
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "nothing to do") || api.calls.Load() != before {
		t.Errorf("third run: %v, %d requests:\n%s", err, api.calls.Load()-before, out)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	for _, h := range api.auth {
		if h != "Bearer "+key {
			t.Errorf("Authorization %q, want the key from CODINGBRAIN_EMBEDDER_API_KEY", h)
			break
		}
	}
	if strings.Contains(out.String(), key) {
		t.Error("the API key appears in the output")
	}
}
