//go:build unix

package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// TestServeReadReplica runs serve on a real primary with a streaming
// replica (--replica-url): a writer reads its writes at once over REST,
// another principal's reads are served by the replica (its metric rises),
// and /health/deps lists the replica.
func TestServeReadReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	primary := pgtest.New(t)
	replica := pgtest.Replica(t, primary)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	metricsAddr := freeAddr(t)
	srv := startServer(t, bin, dataDir, "--database-url", primary.URL("postgres"), "--replica-url", replica.URL("postgres"),
		"--migrate", "--metrics-addr", metricsAddr)
	if out := srv.out.String(); !strings.Contains(out, `"msg":"read replica","replica":"replica-1"`) {
		t.Errorf("serve did not log its replica:\n%s", out)
	}
	ctx := t.Context()
	writer := client.New(srv.url, srv.admin)
	for i := range 200 {
		m, _, err := writer.Add(ctx, memory.Input{Content: "replicated fact " + strconv.Itoa(i), Scope: "org"}, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := writer.Get(ctx, m.ID)
		if err != nil || got.Content != m.Content {
			t.Fatalf("round %d: the writer's read of its write: %+v %v", i, got, err)
		}
	}

	r := runCLI(t, bin, nil, "token", "issue", "--data-dir", dataDir, "--public-url", srv.url, "--sub", "bob", "--org", "local",
		"--scopes", "memories:read", "--grants", "org:local", "--ttl", "1h")
	if r.code != 0 {
		t.Fatalf("token issue: %s", r.stderr)
	}
	reader := client.New(srv.url, strings.TrimSpace(r.stdout))
	replicaReads := regexp.MustCompile(`(?m)^codingbrain_db_reads_total\{target="replica-1"\} (\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		page, err := reader.List(ctx, client.ListParams{Limit: 5})
		if err != nil {
			t.Fatalf("bob's list: %v", err)
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := replicaReads.FindSubmatch(body); m != nil && string(m[1]) != "0" && len(page.Memories) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read served by the replica within 60s; metrics:\n%s", grepLines(string(body), "codingbrain_db_"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	resp, err := http.Get(srv.url + "/health/deps")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"replica-1"`) {
		t.Errorf("/health/deps does not list the replica: %s", body)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("server exit after SIGTERM: %v", err)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
