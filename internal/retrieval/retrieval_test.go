package retrieval_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/retrieval"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// store is what the tests need of a store: memories, and what Vectors
// reads.
type store interface {
	memory.Store
	retrieval.Source
}

// openers open two stores on one database, as two replicas (or processes)
// would.
var openers = map[string]func(t *testing.T) (store, store){
	"sqlite": func(t *testing.T) (store, store) {
		path := filepath.Join(t.TempDir(), "cb.db")
		return openSQLite(t, path), openSQLite(t, path)
	},
	"postgres": func(t *testing.T) (store, store) {
		url := pgtest.Database(t)
		a := openPostgres(t, url)
		if _, err := a.Migrate(t.Context()); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return a, openPostgres(t, url)
	},
}

// forEachStore runs fn on each kind of store, with two stores on one
// database as two replicas.
func forEachStore(t *testing.T, fn func(t *testing.T, a, b store)) {
	for name, open := range openers {
		t.Run(name, func(t *testing.T) {
			a, b := open(t)
			fn(t, a, b)
		})
	}
}

func openSQLite(t *testing.T, path string) *sqlite.Store {
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T, url string) *postgres.Store {
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, StatementTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newSQLite(t *testing.T) store {
	return openSQLite(t, filepath.Join(t.TempDir(), "cb.db"))
}

// vectors returns loaded Vectors over st, following the feed until the
// test ends.
func vectors(t *testing.T, emb embed.Embedder, st store) *retrieval.Vectors {
	t.Helper()
	v := retrieval.New(emb, st, retrieval.Options{Every: 20 * time.Millisecond, Recheck: 20 * time.Millisecond,
		StatusEvery: 50 * time.Millisecond})
	if err := v.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; v.Close() })
	return v
}

func as(org, sub string, grants ...string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Subject: sub, OrgID: org, Grants: grants, App: "test",
		Scopes: auth.AllScopes})
}

func add(t *testing.T, svc *memory.Service, ctx context.Context, in memory.Input) memory.Memory {
	t.Helper()
	if in.Scope == "" {
		in.Scope = "org"
	}
	m, _, err := svc.Add(ctx, in)
	if err != nil {
		t.Fatalf("add %q: %v", in.Content, err)
	}
	return m
}

func search(t *testing.T, svc *memory.Service, ctx context.Context, q memory.SearchQuery) memory.SearchResult {
	t.Helper()
	res, err := svc.Search(ctx, q, memory.ViaREST)
	if err != nil {
		t.Fatalf("search %q: %v", q.Text, err)
	}
	return res
}

func hitIDs(hs []memory.Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Memory.ID
	}
	return out
}

// TestHybridFindsWhatLexicalMisses: "postgres" shares no word with
// "PostgreSQL", so lexical search misses the memory; its vector shares
// character n-grams, so hybrid and vector search find it — and a keyword
// match stays first.
func TestHybridFindsWhatLexicalMisses(t *testing.T) {
	st := newSQLite(t)
	emb := embed.NewBuiltin()
	svc := memory.NewService(st, memory.Options{Vectors: vectors(t, emb, st)})
	alice := as("acme", "alice", "org:acme")
	pg := add(t, svc, alice, memory.Input{Content: "We run PostgreSQL 15 in production, upgraded every spring."})
	add(t, svc, alice, memory.Input{Content: "Frontend builds use Vite and pnpm workspaces."})
	key := add(t, svc, alice, memory.Input{Content: "Set PGX_POOL_MAX=40 on the billing workers."})

	if res := search(t, svc, alice, memory.SearchQuery{Text: "postgres", Mode: memory.ModeLexical}); len(res.Hits) != 0 {
		t.Fatalf("lexical found %v; the test needs a word lexical search misses", hitIDs(res.Hits))
	}
	for _, mode := range []memory.SearchMode{"", memory.ModeHybrid, memory.ModeVector} {
		res := search(t, svc, alice, memory.SearchQuery{Text: "postgres", Mode: mode, Limit: 3})
		if len(res.Hits) == 0 || res.Hits[0].Memory.ID != pg.ID || res.Degraded {
			t.Errorf("mode %q: got %v (degraded %v %s), want the PostgreSQL memory first", mode, hitIDs(res.Hits), res.Degraded, res.Reason)
		}
		if want := mode; want == "" && res.Mode != memory.ModeHybrid || want != "" && res.Mode != want {
			t.Errorf("mode %q ran %q", mode, res.Mode)
		}
	}
	res := search(t, svc, alice, memory.SearchQuery{Text: "PGX_POOL_MAX", Explain: true})
	if len(res.Hits) == 0 || res.Hits[0].Memory.ID != key.ID {
		t.Fatalf("keyword: got %v, want the memory naming it first", hitIDs(res.Hits))
	}
	if e := res.Hits[0].Explain; e == nil || len(e.Sources) == 0 || e.Sources[0].Source != memory.SourceLexical || e.Sources[0].Rank != 1 {
		t.Errorf("explain %+v, want lexical rank 1", res.Hits[0].Explain)
	}
}

// TestFilterBeforeTopK: a memory alice may see, behind 1000 closer and
// better lexical matches she may not, is still the answer in every mode;
// no invisible memory is.
func TestFilterBeforeTopK(t *testing.T) {
	st := newSQLite(t)
	svc := memory.NewService(st, memory.Options{Vectors: vectors(t, embed.NewBuiltin(), st)})
	bob, alice := as("acme", "bob"), as("acme", "alice")
	for i := range 1000 {
		add(t, svc, bob, memory.Input{Scope: "user", Content: fmt.Sprintf("Deploy the ledger service with blue green switching, step %d.", i)})
	}
	mine := add(t, svc, alice, memory.Input{Scope: "user", Content: "Ledger deploys: switch traffic only after the smoke tests pass."})
	for _, mode := range []memory.SearchMode{memory.ModeVector, memory.ModeLexical, memory.ModeHybrid} {
		res := search(t, svc, alice, memory.SearchQuery{Text: "deploy the ledger service with blue green switching", Mode: mode, Limit: 1})
		if fmt.Sprint(hitIDs(res.Hits)) != fmt.Sprint([]string{mine.ID}) {
			t.Errorf("%s: got %v, want alice's memory", mode, hitIDs(res.Hits))
		}
	}
}

// TestVectorTenantIsolation: the same text in two orgs; each org's search
// returns its own memory only, in every mode, also for a principal whose
// grants name the other org.
func TestVectorTenantIsolation(t *testing.T) {
	st := newSQLite(t)
	svc := memory.NewService(st, memory.Options{Vectors: vectors(t, embed.NewBuiltin(), st)})
	text := "Rotate the signing keys every 90 days with an overlap window."
	a := add(t, svc, as("acme", "alice", "org:acme"), memory.Input{Content: text})
	g := add(t, svc, as("globex", "gina", "org:globex"), memory.Input{Content: text})
	for _, mode := range memory.SearchModes {
		for _, c := range []struct {
			ctx  context.Context
			want string
		}{
			{as("acme", "alice", "org:acme", "org:globex"), a.ID},
			{as("globex", "gina", "org:globex", "org:acme"), g.ID},
		} {
			res := search(t, svc, c.ctx, memory.SearchQuery{Text: "rotate signing keys", Mode: mode, Limit: 10})
			if fmt.Sprint(hitIDs(res.Hits)) != fmt.Sprint([]string{c.want}) {
				t.Errorf("%s: got %v, want only %s", mode, hitIDs(res.Hits), c.want)
			}
		}
	}
	if res := search(t, svc, as("initech", "ian", "org:acme"), memory.SearchQuery{Text: "rotate signing keys", Mode: memory.ModeVector}); len(res.Hits) != 0 {
		t.Errorf("another org got %v", hitIDs(res.Hits))
	}
}

// TestDegradedWhenEmbedderDown: with the HTTP embedder pointed at a server
// that fails, writes still succeed and search says it is degraded and
// returns the lexical results.
func TestDegradedWhenEmbedderDown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "model is loading", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	emb, err := embed.NewHTTP(embed.HTTPConfig{URL: srv.URL, Model: "down", Dim: 8, MaxRetries: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := newSQLite(t)
	svc := memory.NewService(st, memory.Options{Vectors: vectors(t, emb, st)})
	alice := as("acme", "alice", "org:acme")
	m := add(t, svc, alice, memory.Input{Content: "Payments retries use exponential backoff."})

	res := search(t, svc, alice, memory.SearchQuery{Text: "payments backoff"})
	if !res.Degraded || !strings.Contains(res.Reason, "embedder") || res.Mode != memory.ModeHybrid {
		t.Errorf("hybrid: degraded %v, mode %q, reason %q; want degraded hybrid naming the embedder", res.Degraded, res.Mode, res.Reason)
	}
	if fmt.Sprint(hitIDs(res.Hits)) != fmt.Sprint([]string{m.ID}) {
		t.Errorf("hybrid: got %v, want the lexical hit", hitIDs(res.Hits))
	}
	res = search(t, svc, alice, memory.SearchQuery{Text: "payments backoff", Mode: memory.ModeVector})
	if !res.Degraded || res.Mode != memory.ModeLexical || len(res.Hits) != 1 {
		t.Errorf("vector: degraded %v, mode %q, %d hits; want lexical results, degraded", res.Degraded, res.Mode, len(res.Hits))
	}
	res = search(t, svc, alice, memory.SearchQuery{Text: "payments backoff", Mode: memory.ModeLexical})
	if res.Degraded {
		t.Errorf("lexical search is never degraded: %q", res.Reason)
	}
}

// TestDegradedWhileModelChanges: while the store holds embeddings of
// another model (a change of model not yet re-embedded), search says so.
func TestDegradedWhileModelChanges(t *testing.T) {
	st := newSQLite(t)
	alice := as("acme", "alice", "org:acme")
	m := add(t, memory.NewService(st, memory.Options{}), alice, memory.Input{Content: "Old vectors of an old model."})
	if _, err := st.PutEmbeddings(t.Context(), []memory.Embedding{{OrgID: m.OrgID, MemoryID: m.ID, Model: "old-model",
		ContentHash: m.ContentHash, Vector: []float32{1, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	v := vectors(t, embed.NewBuiltin(), st)
	if ok, why := v.Current(); ok || !strings.Contains(why, "model") {
		t.Fatalf("Current() = %v, %q; want not current, naming the model change", ok, why)
	}
	svc := memory.NewService(st, memory.Options{Vectors: v})
	res := search(t, svc, alice, memory.SearchQuery{Text: "old vectors"})
	if !res.Degraded || !strings.Contains(res.Reason, "model") || len(res.Hits) != 1 {
		t.Errorf("got degraded %v %q, %d hits", res.Degraded, res.Reason, len(res.Hits))
	}
	// Re-embedding (what the backfill or reindex does) makes it current.
	vec, err := v.Embed(t.Context(), m.Content)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutEmbeddings(t.Context(), []memory.Embedding{{OrgID: m.OrgID, MemoryID: m.ID, Model: v.Model(),
		ContentHash: m.ContentHash, Vector: vec}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "current after re-embedding", func() bool { ok, _ := v.Current(); return ok })
}

// TestNearDuplicates: a new memory very like an existing one of the same
// access entity is stored and linked to it; an exact duplicate is not
// stored twice; the same text elsewhere or a different text is not linked.
func TestNearDuplicates(t *testing.T) {
	st := newSQLite(t)
	svc := memory.NewService(st, memory.Options{Vectors: vectors(t, embed.NewBuiltin(), st)})
	alice := as("acme", "alice", "org:acme", "team:acme/api")
	first := add(t, svc, alice, memory.Input{Content: "The payments API retries webhooks five times with exponential backoff and jitter."})

	near, created, err := svc.Add(alice, memory.Input{Scope: "org",
		Content: "The payments API retries webhooks five times with exponential back-off and jitter!"})
	if err != nil || !created {
		t.Fatalf("near duplicate: created %v, %v", created, err)
	}
	id, sim, ok := memory.NearDuplicateOf(near)
	if !ok || id != first.ID || sim < memory.DefaultRanking().NearDuplicate || sim > 1 {
		t.Fatalf("near duplicate: metadata %v, want a link to %s", near.Metadata, first.ID)
	}
	got, err := svc.Get(alice, near.ID, memory.ViaREST)
	if err != nil || fmt.Sprint(got.Metadata) != fmt.Sprint(near.Metadata) {
		t.Fatalf("the link is not stored: %v, %v", got.Metadata, err)
	}

	dup, created, err := svc.Add(alice, memory.Input{Scope: "org", Content: "  the payments API retries webhooks five times with exponential backoff and jitter. "})
	if err != nil || created || dup.ID != first.ID {
		t.Fatalf("exact duplicate: created %v, id %s, %v; want the existing memory", created, dup.ID, err)
	}
	other := add(t, svc, alice, memory.Input{Content: "Frontend releases go out on Tuesdays after the design review."})
	if _, _, ok := memory.NearDuplicateOf(other); ok {
		t.Errorf("an unrelated memory was linked: %v", other.Metadata)
	}
	team := add(t, svc, alice, memory.Input{Scope: "team", AccessEntity: "team:acme/api",
		Content: "The payments API retries webhooks five times with exponential back-off and jitter."})
	if _, _, ok := memory.NearDuplicateOf(team); ok {
		t.Errorf("a memory of another access entity was linked: %v", team.Metadata)
	}
}

// TestFollowsAnotherReplica: two stores on one database as two replicas;
// what replica A writes — a new memory, a changed content, an archive, a
// delete — reaches replica B's index through the change feed.
func TestFollowsAnotherReplica(t *testing.T) {
	forEachStore(t, func(t *testing.T, sa, sb store) {
		emb := embed.NewBuiltin()
		va := vectors(t, emb, sa)
		vb := vectors(t, emb, sb)
		svcA := memory.NewService(sa, memory.Options{Vectors: va})
		svcB := memory.NewService(sb, memory.Options{Vectors: vb})
		alice := as("acme", "alice", "org:acme")

		m := add(t, svcA, alice, memory.Input{Content: "Kafka consumers commit offsets only after the write to the ledger."})
		found := func(text string, f memory.Filter) func() bool {
			return func() bool {
				res, err := svcB.Search(alice, memory.SearchQuery{Text: text, Mode: memory.ModeVector, Filter: f, Limit: 1}, memory.ViaREST)
				return err == nil && len(res.Hits) == 1 && res.Hits[0].Memory.ID == m.ID && res.Hits[0].Memory.Content == text
			}
		}
		eventually(t, "B finds A's new memory", found(m.Content, memory.Filter{}))

		changed := "Kafka consumers commit offsets before the ledger write, and dedupe on replay."
		if _, err := svcA.Update(alice, m.ID, memory.Patch{Content: &changed}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B has the changed content's vector", func() bool {
			hits, err := vb.Nearest(t.Context(), memory.AccessFor(auth.Principal{OrgID: "acme", Subject: "alice", Grants: []string{"org:acme"}}),
				memory.Filter{}, mustEmbed(t, vb, changed), 1)
			return err == nil && len(hits) == 1 && hits[0].ID == m.ID && hits[0].Score > 0.999
		})

		if _, err := svcA.Transition(alice, m.ID, memory.ActionArchive); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B sees the archive", found(changed, memory.Filter{States: []memory.State{memory.StateArchived}}))

		if _, err := svcA.Delete(alice, m.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B drops the deleted memory", func() bool { return vb.Len() == 0 })
	})
}

func mustEmbed(t *testing.T, v *retrieval.Vectors, text string) []float32 {
	t.Helper()
	vec, err := v.Embed(t.Context(), text)
	if err != nil {
		t.Fatal(err)
	}
	return vec
}

// eventually polls cond until it holds, failing after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoadAtStart: a replica starting on a store that already holds
// embedded memories loads them, and only the current ones.
func TestLoadAtStart(t *testing.T) {
	st := newSQLite(t)
	emb := embed.NewBuiltin()
	writer := memory.NewService(st, memory.Options{Vectors: vectors(t, emb, st)})
	alice := as("acme", "alice", "org:acme")
	var ids []string
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango")
	for _, w := range words {
		ids = append(ids, add(t, writer, alice, memory.Input{Content: "Runbook " + w + ": drain the node before patching."}).ID)
	}
	if _, err := writer.Delete(alice, ids[0]); err != nil {
		t.Fatal(err)
	}
	v := retrieval.New(emb, st, retrieval.Options{})
	defer v.Close()
	if err := v.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v.Len() != 19 {
		t.Fatalf("loaded %d vectors, want 19", v.Len())
	}
	hits, err := v.Nearest(t.Context(), memory.Access{OrgID: "acme", Entities: []string{"org:acme"}}, memory.Filter{},
		mustEmbed(t, v, "Runbook hotel: drain the node before patching."), 1)
	if err != nil || len(hits) != 1 || hits[0].ID != ids[7] {
		t.Fatalf("nearest: %v, %v", hits, err)
	}
	if slices.ContainsFunc(hits, func(h memory.VectorHit) bool { return h.ID == ids[0] }) {
		t.Fatal("a deleted memory was loaded")
	}
}

// TestRESTSaysDegraded: through POST /api/v1/search, a search while the
// embedder is down answers 200 with the lexical hits, mode hybrid,
// degraded and a reason; explain carries each source's rank; a vector
// search says it ran lexical; an unknown mode is a 400 naming the field.
func TestRESTSaysDegraded(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	emb, err := embed.NewHTTP(embed.HTTPConfig{URL: down.URL, Model: "down", Dim: 8, MaxRetries: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := newSQLite(t)
	svc := memory.NewService(st, memory.Options{Vectors: vectors(t, emb, st)})
	dev := auth.Principal{Subject: "dev", OrgID: "local", Scopes: auth.AllScopes, Grants: []string{"org:local"}, App: "dev"}
	m := add(t, svc, auth.WithPrincipal(context.Background(), dev), memory.Input{Content: "Payments retries use exponential backoff."})
	api := httptest.NewServer(httpapi.New(svc, httpapi.Options{DevPrincipal: &dev}))
	defer api.Close()

	post := func(body string) (int, map[string]any) {
		t.Helper()
		res, err := http.Post(api.URL+"/api/v1/search", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, out
	}
	code, out := post(`{"query": "payments backoff", "explain": true}`)
	hits, _ := out["hits"].([]any)
	if code != 200 || out["mode"] != "hybrid" || out["degraded"] != true || !strings.Contains(fmt.Sprint(out["reason"]), "embedder") || len(hits) != 1 {
		t.Fatalf("hybrid while the embedder is down: %d %v", code, out)
	}
	hit := hits[0].(map[string]any)
	if hit["memory"].(map[string]any)["id"] != m.ID {
		t.Errorf("hit %v", hit)
	}
	sources := hit["explain"].(map[string]any)["sources"].([]any)
	if s := sources[0].(map[string]any); s["source"] != "lexical" || s["rank"] != 1.0 {
		t.Errorf("explain sources %v", sources)
	}
	if code, out := post(`{"query": "payments backoff", "mode": "vector"}`); code != 200 || out["mode"] != "lexical" || out["degraded"] != true {
		t.Errorf("vector while the embedder is down: %d %v", code, out)
	}
	if code, out := post(`{"query": "payments backoff", "mode": "semantic"}`); code != 400 || !strings.Contains(fmt.Sprint(out), "mode") {
		t.Errorf("unknown mode: %d %v", code, out)
	}
}
