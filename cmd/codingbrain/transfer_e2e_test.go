package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestExportImportEndToEnd moves alice's memories from one server to
// another with the built binary: export to a file, import it, export
// again (the same memory lines); a re-run fails by default and skips with
// --on-conflict skip; bob, without alice's grants, is refused; an
// OpenMemory export zip imports with --openmemory.
func TestExportImportEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	ctx := t.Context()
	dirA, dirB := t.TempDir(), t.TempDir()
	srvA, srvB := startServer(t, bin, dirA), startServer(t, bin, dirB)
	issue := func(srv *server, dataDir, sub, grants string) string {
		t.Helper()
		r := runCLI(t, bin, nil, "token", "issue", "--data-dir", dataDir, "--public-url", srv.url, "--sub", sub, "--org", "acme",
			"--scopes", "memories:read memories:write", "--grants", grants, "--ttl", "1h")
		if r.code != 0 {
			t.Fatalf("token issue: exit %d, %s", r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	aliceA := issue(srvA, dirA, "alice", "team:acme/web")
	aliceB := issue(srvB, dirB, "alice", "team:acme/web")
	bobB := issue(srvB, dirB, "bob", "team:acme/ops")

	ca := client.New(srvA.url, aliceA)
	var ids []string
	for _, in := range []memory.Input{
		{Content: "The web team deploys on Tuesdays", Category: "workflow", Scope: "team", AccessEntity: "team:acme/web", Tags: map[string]any{"lang": "go"}},
		{Content: "alice reviews PRs before noon", Scope: "user", Metadata: map[string]any{"k": "v"}},
		{Content: "Retired convention", Category: "convention", Scope: "team", AccessEntity: "team:acme/web"},
	} {
		m, _, err := ca.Add(ctx, in, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if _, err := ca.SetState(ctx, ids[2], memory.ActionArchive); err != nil {
		t.Fatal(err)
	}

	cli := func(srv *server, token string, args ...string) result {
		t.Helper()
		return runCLI(t, bin, []string{"CODINGBRAIN_SERVER=" + srv.url, "CODINGBRAIN_TOKEN=" + token}, args...)
	}
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	if r := cli(srvA, aliceA, "export", "--state", "all", "-o", first); r.code != 0 || !strings.Contains(r.stderr, "exported") {
		t.Fatalf("export: exit %d, %s", r.code, r.stderr)
	}
	exported := readLines(t, first)
	if len(exported) != 4 || !strings.Contains(exported[0], `"format":"codingbrain-export","version":1`) ||
		!strings.Contains(exported[0], `"counts":{"memories":3}`) {
		t.Fatalf("export file:\n%s", strings.Join(exported, "\n"))
	}

	r := cli(srvB, aliceB, "import", first)
	if r.code != 0 || !strings.Contains(r.stdout, "imported 3 of 3 memories; 0 skipped, 0 remapped") {
		t.Fatalf("import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(srvB, aliceB, "export", "--state=all", "-o", second); r.code != 0 {
		t.Fatalf("export from B: exit %d, %s", r.code, r.stderr)
	}
	again := readLines(t, second)
	if len(again) != len(exported) {
		t.Fatalf("B's export has %d lines, A's %d", len(again), len(exported))
	}
	for i := 1; i < len(exported); i++ { // the header differs in its time
		if again[i] != exported[i] {
			t.Errorf("line %d differs after the round trip:\nA: %s\nB: %s", i+1, exported[i], again[i])
		}
	}
	got, err := client.New(srvB.url, aliceB).Get(ctx, ids[0])
	if err != nil || got.Content != "The web team deploys on Tuesdays" || got.CreatedBy != "alice" {
		t.Errorf("the memory on B: %+v %v", got, err)
	}

	// A re-run: refused by default, naming line and field; skipped with skip.
	r = cli(srvB, aliceB, "import", first)
	if r.code != 1 || !strings.Contains(r.stderr, "line 2 id: id "+firstID(exported)+" is already taken") || !strings.Contains(r.stderr, "nothing imported") {
		t.Errorf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(srvB, aliceB, "import", "--on-conflict", "skip", first)
	if r.code != 0 || !strings.Contains(r.stdout, "imported 0 of 3 memories; 3 skipped") {
		t.Errorf("re-run with skip: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(srvB, aliceB, "import", "--on-conflict", "skip", "--json", first)
	if r.code != 0 || !strings.Contains(r.stdout, `"committed": true`) {
		t.Errorf("import --json: exit %d\n%s", r.code, r.stdout)
	}

	// bob may not write team:acme/web or user:alice: refused, line by line.
	r = cli(srvB, bobB, "import", "--on-conflict", "skip", first)
	if r.code != 1 || !strings.Contains(r.stderr, "line 2 access_entity:") || !strings.Contains(r.stderr, "do not cover") {
		t.Errorf("bob's import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if page, err := client.New(srvB.url, bobB).List(ctx, client.ListParams{}); err != nil || len(page.Memories) != 0 {
		t.Errorf("bob sees %d memories after his refused import (%v)", len(page.Memories), err)
	}

	// A malformed file: the line and field are named.
	bad := filepath.Join(dir, "bad.jsonl")
	broken := exported[0] + "\n" + strings.Replace(exported[1], `"state":"active"`, `"state":"frozen"`, 1) + "\n" + exported[2] + "\n" + exported[3] + "\n"
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(srvA, aliceA, "import", "--on-conflict", "skip", bad)
	if r.code != 1 || !strings.Contains(r.stderr, "line 2 state:") {
		t.Errorf("malformed import: exit %d\n%s", r.code, r.stderr)
	}

	// OpenMemory, through the CLI and through REST with application/zip.
	zipFile := filepath.Join("..", "..", "internal", "transfer", "testdata", "openmemory-export.zip")
	r = cli(srvB, aliceB, "import", "--openmemory", zipFile)
	if r.code != 0 || !strings.Contains(r.stdout, "imported 4 of 4 memories") {
		t.Errorf("import --openmemory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	om, err := client.New(srvB.url, aliceB).Get(ctx, "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b01")
	if err != nil || om.App != "cursor" || om.Category != "testing" || om.AccessEntity != "user:alice" {
		t.Errorf("OpenMemory memory on B: %+v %v", om, err)
	}
	data, err := os.ReadFile(zipFile)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := client.New(srvA.url, aliceA).Import(ctx, bytes.NewReader(data), client.OpenMemoryContentType, "skip")
	if err != nil || rep.Imported != 4 {
		t.Errorf("REST import of the zip: %+v %v", rep, err)
	}

	// Another media type is refused.
	req, _ := http.NewRequestWithContext(ctx, "POST", srvA.url+"/api/v1/import", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+aliceA)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("import of application/json: %d, want 415", resp.StatusCode)
	}
}

func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// firstID is the id of the first memory line of an export.
func firstID(lines []string) string {
	_, rest, _ := strings.Cut(lines[1], `"id":"`)
	id, _, _ := strings.Cut(rest, `"`)
	return id
}
