package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// gdprStore is one store the privacy end-to-end test runs on.
type gdprStore struct {
	serve []string // serve flags naming the store
	cli   []string // the same for the store commands (gdpr, backup)
	// count runs a counting query (written for SQLite; pg rewrites the
	// few differences) on the database directly.
	count func(t *testing.T, query string) int
	// lose throws the database away, as a disk failure would.
	lose func(t *testing.T)
}

func TestGDPREndToEndSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, dbFile)
	runGDPREndToEnd(t, dataDir, gdprStore{
		cli: []string{"--data-dir", dataDir},
		count: func(t *testing.T, query string) int {
			db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var n int
			if err := db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		},
		lose: func(t *testing.T) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		},
	})
}

func TestGDPREndToEndPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := pgtest.Database(t)
	pg := strings.NewReplacer("coalesce(before, '')", "coalesce(before::text, '')", "coalesce(after, '')", "coalesce(after::text, '')",
		"coalesce(tags, '')", "coalesce(tags::text, '')")
	runGDPREndToEnd(t, t.TempDir(), gdprStore{
		serve: []string{"--database-url", dbURL, "--migrate"},
		cli:   []string{"--database-url", dbURL},
		count: func(t *testing.T, query string) int {
			conn, err := pgx.Connect(t.Context(), dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			var n int
			if err := conn.QueryRow(t.Context(), pg.Replace(query)).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		},
		lose: func(t *testing.T) {
			conn, err := pgx.Connect(t.Context(), dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			if _, err := conn.Exec(t.Context(), `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// wordAlice finds the subject as a word (not inside "malice").
var wordAlice = regexp.MustCompile(`(?i)\balice\b`)

// runGDPREndToEnd seeds two orgs with several subjects and shared memories
// through REST and MCP, takes a backup, exports alice of acme (complete,
// nothing of anyone else), checks scopes and tenants, erases her, and then
// proves through the check, REST and MCP searches, direct queries and a
// restore of the older backup into a lost database that nothing of her
// remains — while everyone else's data is as it was.
func runGDPREndToEnd(t *testing.T, dataDir string, st gdprStore) {
	ctx := t.Context()
	bin := buildBinary(t)
	backups := t.TempDir()
	ledger := filepath.Join(backups, gdpr.LedgerFileName)
	// One public URL across the restart after the restore: it is the
	// audience of the tokens.
	const public = "http://brain.test"
	serveArgs := append(slices.Clone(st.serve), "--public-url", public)
	srv := startServer(t, bin, dataDir, append(slices.Clone(serveArgs), "--gdpr-ledger-file", ledger)...)
	tokens := map[*client.Client]string{}
	issue := func(sub, org, scopes, grants string) string {
		t.Helper()
		r := runCLI(t, bin, nil, "token", "issue", "--data-dir", dataDir, "--public-url", public, "--sub", sub, "--org", org,
			"--scopes", scopes, "--grants", grants, "--ttl", "1h")
		if r.code != 0 {
			t.Fatalf("token issue %s: %s", sub, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	token := func(sub, org, scopes, grants string) *client.Client {
		t.Helper()
		tok := issue(sub, org, scopes, grants)
		c := client.New(srv.url, tok)
		tokens[c] = tok
		return c
	}
	const rw = "memories:read memories:write search:read"
	alice := token("alice", "acme", rw, "team:acme/backend")
	dave := token("dave", "acme", rw, "team:acme/backend")
	bob := token("bob", "acme", rw, "")
	globexAlice := token("alice", "globex", rw, "org:globex")
	carol := token("carol", "globex", rw, "org:globex")
	acmeAdmin := token("dpo", "acme", "gdpr:read gdpr:delete memories:read search:read", "org:acme")
	acmeReader := token("auditor", "acme", "memories:read search:read", "org:acme")
	globexAdmin := token("dpo", "globex", "gdpr:read gdpr:delete memories:read", "org:globex")

	add := func(c *client.Client, in memory.Input) memory.Memory {
		t.Helper()
		m, _, err := c.Add(ctx, in, "")
		if err != nil {
			t.Fatalf("add %q: %v", in.Content, err)
		}
		return m
	}
	private := add(alice, memory.Input{Content: "my own note: rotate the staging password on Fridays", Scope: "user"})
	team := add(alice, memory.Input{Content: "Deploys go through the blue-green pipeline", Scope: "team", AccessEntity: "team:acme/backend",
		Tags: map[string]any{"area": "deploy"}, App: "cursor"})
	naming := add(dave, memory.Input{Content: "Ask Alice before touching the ledger schema", Scope: "team", AccessEntity: "team:acme/backend", Entity: "alice"})
	decoy := add(dave, memory.Input{Content: "the malice detector flags odd payloads", Scope: "team", AccessEntity: "team:acme/backend"})
	add(dave, memory.Input{Content: "ledger writes are idempotent by request id", Scope: "team", AccessEntity: "team:acme/backend"})
	add(bob, memory.Input{Content: "bob keeps his scratch notes here", Scope: "user"})
	globexMem := add(globexAlice, memory.Input{Content: "globex alice keeps her notes", Scope: "org", AccessEntity: "org:globex"})
	add(carol, memory.Input{Content: "globex runs kafka for events", Scope: "org", AccessEntity: "org:globex"})
	if _, err := dave.Update(ctx, team.ID, memory.Patch{Content: ptrTo("Deploys go through the blue-green pipeline, canary first")}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Search(ctx, client.SearchRequest{Query: "ledger"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Search(ctx, client.SearchRequest{Query: "alice"}); err != nil {
		t.Fatal(err)
	}
	// alice over MCP, in a session (its binding names her).
	aliceMCP := mcpSession(t, srv.url, tokens[alice])
	if _, err := aliceMCP.CallTool(ctx, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "deploys"}}); err != nil {
		t.Fatal(err)
	}

	// Everyone's view before, to compare after.
	views := map[string]*client.Client{"dave": dave, "bob": bob, "globex alice": globexAlice, "carol": carol}
	before := map[string][]string{}
	for name, c := range views {
		before[name] = visibleIDs(t, c)
	}

	if r := runCLI(t, bin, nil, append([]string{"backup", "create", "--to", backups}, st.cli...)...); r.code != 0 {
		t.Fatalf("backup create: %s\n%s", r.stdout, r.stderr)
	}

	t.Run("RetentionMetrics", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.url+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+issue("prom", "acme", "metrics:read", ""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, kind := range []string{gdpr.PurgeAccessLog, gdpr.PurgeArchived, gdpr.PurgeDeletedMemories} {
			if want := `codingbrain_retention_purged_rows_total{kind="` + kind + `"} 0`; !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s (status %d)", want, resp.StatusCode)
			}
		}
	})

	t.Run("ScopesAndTenants", func(t *testing.T) {
		for what, call := range map[string]func() error{
			"export":  func() error { _, err := acmeReader.ExportSubject(ctx, "alice"); return err },
			"erase":   func() error { _, err := acmeReader.EraseSubject(ctx, "alice", "x"); return err },
			"check":   func() error { _, err := acmeReader.CheckSubject(ctx, "alice"); return err },
			"setting": func() error { _, err := acmeReader.SetRetention(ctx, client.RetentionChange{}); return err },
		} {
			var ce *client.Error
			if err := call(); !errors.As(err, &ce) || ce.Status != http.StatusForbidden {
				t.Errorf("%s without the scope: %v, want 403", what, err)
			}
		}
		var ce *client.Error
		if _, err := acmeAdmin.EraseSubject(ctx, "alice", ""); !errors.As(err, &ce) || ce.Status != 400 || ce.Field != "reason" {
			t.Errorf("erase without a reason: %v, want 400 naming reason", err)
		}
		// globex's DPO erases globex's alice: acme's alice is another
		// person, out of reach.
		res, err := globexAdmin.EraseSubject(ctx, "alice", "globex request 7")
		if err != nil || !res.Check.Clean || res.Receipt.OrgID != "globex" {
			t.Fatalf("globex erases its alice: %+v, %v", res, err)
		}
		// Her org-wide memory is shared: kept, by the pseudonymize policy,
		// with its author replaced.
		if got, err := carol.Get(ctx, globexMem.ID); err != nil || got.CreatedBy != res.Receipt.Pseudonym || got.CreatedBy == "alice" {
			t.Errorf("globex alice's shared memory after her erasure: %+v, %v", got, err)
		}
		if got, err := alice.Get(ctx, private.ID); err != nil || got.Content != private.Content {
			t.Errorf("acme alice's private memory after globex's erasure: %+v, %v", got, err)
		}
	})

	x, err := acmeAdmin.ExportSubject(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var authored, namingIDs []string
	for _, m := range x.MemoriesAuthored {
		authored = append(authored, m.ID)
	}
	for _, m := range x.MemoriesNaming {
		namingIDs = append(namingIDs, m.ID)
	}
	slices.Sort(authored)
	wantAuthored := []string{private.ID, team.ID}
	slices.Sort(wantAuthored)
	if !slices.Equal(authored, wantAuthored) || !slices.Equal(namingIDs, []string{naming.ID}) {
		t.Errorf("export: authored %v (want %v), naming %v (want %s)", authored, wantAuthored, namingIDs, naming.ID)
	}
	if len(x.AccessLog) < 2 || len(x.History) < 2 || len(x.Sessions) != 1 || len(x.Entities) != 1 {
		t.Errorf("export: %d access rows, %d history rows, %d sessions, %d entities", len(x.AccessLog), len(x.History), len(x.Sessions), len(x.Entities))
	}
	raw, _ := json.Marshal(x)
	for _, other := range []string{"bob keeps", "globex", "malice", "idempotent by request"} {
		if strings.Contains(string(raw), other) {
			t.Errorf("the export of acme's alice contains %q", other)
		}
	}
	for _, m := range x.Manifest {
		if m.Searched == "" {
			t.Errorf("manifest entry %s says nothing of what was searched", m.Source)
		}
	}

	res, err := acmeAdmin.EraseSubject(ctx, "alice", "request DSR-42 from alice")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Check.Clean || res.Receipt.Reason != "request DSR-42 from "+res.Receipt.Pseudonym || !gdpr.VerifyReceipt(res.Receipt) ||
		res.Receipt.Removed[gdpr.SourceSessions] != 1 {
		t.Errorf("erasure: %+v", res)
	}

	// What proves her gone.
	noTrace := func(t *testing.T, stage string) {
		t.Helper()
		if r := runCLI(t, bin, nil, append([]string{"gdpr", "check", "--org", "acme", "--subject", "alice"}, st.cli...)...); r.code != 0 ||
			!strings.Contains(r.stdout, "no trace: clean") {
			t.Errorf("%s: gdpr check: exit %d\n%s%s", stage, r.code, r.stdout, r.stderr)
		}
		for what, q := range map[string]string{
			"memories": `SELECT count(*) FROM memories WHERE org_id = 'acme' AND id <> '` + decoy.ID + `' AND (created_by = 'alice'
				OR access_entity = 'user:alice' OR lower(content || entity || coalesce(tags, '')) LIKE '%alice%')`,
			"history": `SELECT count(*) FROM history WHERE org_id = 'acme' AND memory_id <> '` + decoy.ID + `' AND (actor = 'alice'
				OR lower(coalesce(before, '') || coalesce(after, '')) LIKE '%alice%')`,
			"access log": `SELECT count(*) FROM access_log WHERE org_id = 'acme' AND (actor = 'alice' OR lower(query) LIKE '%alice%')`,
			"entities":   `SELECT count(*) FROM entities WHERE org_id = 'acme' AND name LIKE '%alice%'`,
			"keys":       `SELECT count(*) FROM api_keys WHERE org_id = 'acme' AND (subject = 'alice' OR created_by = 'alice')`,
		} {
			if n := st.count(t, q); n != 0 {
				t.Errorf("%s: %d %s rows of alice in the database", stage, n, what)
			}
		}
	}
	noTrace(t, "after erasure")
	for _, q := range []string{"alice", "staging password", "deploys pipeline", "ledger schema"} {
		for name, c := range map[string]*client.Client{"dave": dave, "admin": acmeAdmin} {
			r, err := c.Search(ctx, client.SearchRequest{Query: q})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range r.Hits {
				if wordAlice.MatchString(h.Memory.Content+" "+h.Memory.Entity+" "+h.Memory.CreatedBy) || h.Memory.ID == private.ID {
					t.Errorf("REST search %q as %s after erasure: %+v", q, name, h.Memory)
				}
			}
		}
	}
	daveMCP := mcpSession(t, srv.url, tokens[dave])
	for _, q := range []string{"alice", "ledger schema"} {
		r, err := daveMCP.CallTool(ctx, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": q, "detail": "full"}})
		if err != nil || r.IsError {
			t.Fatalf("MCP search %q: %+v, %v", q, r, err)
		}
		b, _ := json.Marshal(r.StructuredContent)
		if wordAlice.Match(b) {
			t.Errorf("MCP search %q after erasure names alice: %s", q, b)
		}
	}
	if _, err := aliceMCP.CallTool(ctx, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "deploys"}}); err == nil {
		t.Error("alice's MCP session still works after her erasure")
	}
	got, err := dave.Get(ctx, team.ID)
	if err != nil || got.CreatedBy != res.Receipt.Pseudonym {
		t.Errorf("alice's team memory (pseudonymize policy): %+v, %v", got, err)
	}
	wantAfter := func() map[string][]string {
		out := map[string][]string{}
		for name, ids := range before {
			out[name] = ids
		}
		return out
	}()
	for name, c := range views {
		if got := visibleIDs(t, c); !slices.Equal(got, wantAfter[name]) {
			t.Errorf("%s sees %v after the erasure, want %v", name, got, wantAfter[name])
		}
	}

	// The database is lost; the backup from before the erasure is
	// restored. The ledger beside it erases alice again.
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	st.lose(t)
	r := runCLI(t, bin, nil, append([]string{"backup", "restore", "--from", backups, "--skip-embeddings"}, st.cli...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "2 subjects erased again") || !strings.Contains(r.stdout, "left out by the erasure filter") {
		t.Fatalf("backup restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	noTrace(t, "after restoring the older backup")
	srv = launch(t, bin, dataDir, serveArgs...)
	for name, c := range views {
		c2 := client.New(srv.url, tokens[c])
		if got := visibleIDs(t, c2); !slices.Equal(got, wantAfter[name]) {
			t.Errorf("%s sees %v after the restore, want %v", name, got, wantAfter[name])
		}
	}
	r2, err := client.New(srv.url, tokens[dave]).Search(ctx, client.SearchRequest{Query: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range r2.Hits {
		if wordAlice.MatchString(h.Memory.Content + " " + h.Memory.CreatedBy + " " + h.Memory.Entity) {
			t.Errorf("search after the restore names alice: %+v", h.Memory)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// visibleIDs lists the ids of every memory c sees, in every state.
func visibleIDs(t *testing.T, c *client.Client) []string {
	t.Helper()
	var ids []string
	p := client.ListParams{Filter: memory.Filter{States: memory.States}, Limit: 200}
	for {
		page, err := c.List(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Memories {
			ids = append(ids, m.ID)
		}
		if page.NextCursor == "" {
			break
		}
		p.Cursor = page.NextCursor
	}
	slices.Sort(ids)
	return ids
}

// mcpSession opens a Streamable HTTP session (protocol 2025-11-25) as the
// bearer of tok, closed when the test ends.
func mcpSession(t *testing.T, url, tok string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport(tok)}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "gdpr-test", Version: "1"}, nil).Connect(context.WithoutCancel(t.Context()), tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}
