package isolation

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/retrieval"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

var (
	seedFlag = flag.Int64("isolation.seed", 20260501, "seed of the randomized property test")
	opsFlag  = flag.Int("isolation.ops", 20000, "operations of the property test on SQLite; PostgreSQL runs a quarter as many")
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openSQLite opens a fresh embedded store.
func openSQLite(t *testing.T) memory.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "isolation.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgres opens a fresh, migrated PostgreSQL database; the test skips
// when PostgreSQL is not installed (pgtest says why).
func openPostgres(t *testing.T) memory.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: pgtest.Database(t), StatementTimeout: time.Minute})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate postgres: %v", err)
	}
	return s
}

// clock is a deterministic clock that advances a millisecond on every read,
// so every write stamps a new updated_at.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// principal is a caller of the suites: who it is, what it may see and its
// bearer token.
type principal struct {
	auth.Principal
	name   string // sub@org, for messages
	access memory.Access
	token  string
}

func newPrincipal(sub, org string, scopes, grants []string) *principal {
	p := auth.Principal{Subject: sub, OrgID: org, Scopes: slices.Clone(scopes), Grants: slices.Clone(grants)}
	return &principal{Principal: p, name: sub + "@" + org, access: memory.AccessFor(p)}
}

// sees is the oracle: p may see m when m is in p's org and its access
// entity is inside p's access (memory.AccessFor).
func (p *principal) sees(m memory.Memory) bool {
	return m.OrgID == p.OrgID && p.access.Allows(m.AccessEntity)
}

func (p *principal) ctx(ctx context.Context) context.Context {
	return auth.WithPrincipal(ctx, p.Principal)
}

// server is the whole API on a real store, wired as serve wires it: memory
// service, REST with the MCP handlers mounted at /mcp and /sse, HS256
// tokens and API keys, the privacy service (subject export, erasure,
// retention) over the same store and shared state, metrics at /metrics,
// one audit recorder for all of them.
type server struct {
	store  memory.Store
	keys   auth.KeyStore
	chain  audit.Store
	svc    *memory.Service
	tokens *auth.HS256
	shared *kv.Memory // MCP session bindings, searched by erasure
	url    string
	client *http.Client
}

var testKey = []byte("isolation-suite-signing-key-0123")

func newServer(t *testing.T, store memory.Store) *server {
	t.Helper()
	return newServerWith(t, store, nil)
}

// indexed loads the in-process indexes of hybrid search (the builtin
// embedder; lexical and vector) over store, as serve does, for a service
// to keep current as it writes.
func indexed(t *testing.T, store memory.Store) *retrieval.Vectors {
	t.Helper()
	src, ok := store.(retrieval.Source)
	if !ok {
		t.Fatalf("%T cannot feed the in-process indexes", store)
	}
	v := retrieval.New(embed.NewBuiltin(), src, retrieval.Options{})
	t.Cleanup(v.Close)
	if err := v.Load(t.Context()); err != nil {
		t.Fatalf("load the in-process indexes: %v", err)
	}
	return v
}

// newServerWith is newServer whose service searches through vectors (nil:
// the store's search).
func newServerWith(t *testing.T, store memory.Store, vectors memory.Vectors) *server {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	keys, ok := store.(auth.KeyStore)
	if !ok {
		t.Fatalf("%T keeps no API keys", store)
	}
	chain, ok := store.(audit.Store)
	if !ok {
		t.Fatalf("%T keeps no audit log", store)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	rec := audit.NewRecorder(chain, audit.RecorderOptions{Logger: log, Now: clk.Now})
	svc := memory.NewService(store, memory.Options{Now: clk.Now, Audit: rec, Vectors: vectors})
	tokens := auth.NewHS256(testKey, "isolation-issuer", "isolation-audience", nil)
	verifier := auth.Verifiers{APIKeys: auth.NewAPIKeys(keys, auth.APIKeysOptions{}), JWT: tokens}
	shared := kv.NewMemory(clk.Now)
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg, telemetry.Build{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	mcp := mcpserver.New(svc, mcpserver.Options{Verifier: verifier, Version: "test", Logger: log, Audit: rec, Sessions: shared, Metrics: metrics})
	gs, ok := store.(gdpr.Store)
	if !ok {
		t.Fatalf("%T supports no subject export and erasure", store)
	}
	retention, ok := store.(gdpr.RetentionStore)
	if !ok {
		t.Fatalf("%T keeps no retention policies", store)
	}
	privacy := gdpr.New(gs, gdpr.Options{Shared: shared, Audit: rec, Logger: log, Now: clk.Now})
	api := httpapi.New(svc, httpapi.Options{
		Verifier: verifier, Logger: log, Version: "test", APIKeys: keys, Audit: rec,
		MCP: mcp.Handler(), SSE: mcp.SSEHandler(), GDPR: privacy, Retention: retention,
		Metrics: metrics, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	})
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	return &server{store: store, keys: keys, chain: chain, svc: svc, tokens: tokens, shared: shared, url: ts.URL, client: ts.Client()}
}

// issue gives p a token of this server.
func (s *server) issue(t *testing.T, p *principal) {
	t.Helper()
	tok, err := s.tokens.Issue(p.Principal, time.Hour)
	if err != nil {
		t.Fatalf("issue token for %s: %v", p.name, err)
	}
	p.token = tok
}

// Streamable HTTP protocol eras: sessions, and stateless.
var eras = []string{"2025-11-25", "2026-07-28"}

// bearer adds a token to every request of an MCP client.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens an MCP client session as p over Streamable HTTP.
func (s *server) connect(t *testing.T, p *principal, era string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: s.url + "/mcp", HTTPClient: &http.Client{Transport: bearer(p.token)}, MaxRetries: -1}
	client := mcp.NewClient(&mcp.Implementation{Name: "isolation-suite", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), tr, &mcp.ClientSessionOptions{ProtocolVersion: era})
	if err != nil {
		t.Fatalf("%s: connect over %s: %v", p.name, era, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

type response struct {
	status int
	body   []byte
}

// errorOf returns the error envelope's code and message.
func (r response) errorOf() (code, msg string) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code, e.Error.Message
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends one REST request. body is nil, a raw string, or marshalled.
func (s *server) do(t *testing.T, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: res.StatusCode, body: b}
}

// The fixture: two orgs, acme and globex. Grants naming another org are
// given on purpose (pat, wendy, mallory): they must be ignored.
var (
	allScopes = auth.AllScopes
	readOnly  = []string{auth.ScopeMemoriesRead, auth.ScopeSearchRead, auth.ScopeAppsRead, auth.ScopeStatsRead}
	noDelete  = slices.DeleteFunc(slices.Clone(auth.AllScopes), func(s string) bool { return s == auth.ScopeMemoriesDelete })
)

// fixturePrincipals are the callers of the REST and MCP suites.
func fixturePrincipals() []*principal {
	return []*principal{
		newPrincipal("ada", "acme", allScopes, []string{"org:acme"}),                                                                                  // org admin
		newPrincipal("pat", "acme", allScopes, []string{"project:acme/api", "project:globex/api"}),                                                    // project member
		newPrincipal("wendy", "acme", allScopes, []string{"team:acme/web", "team:globex/web"}),                                                        // web team
		newPrincipal("oscar", "acme", allScopes, []string{"team:acme/ops"}),                                                                           // ops team
		newPrincipal("luke", "acme", allScopes, nil),                                                                                                  // only user:luke
		newPrincipal("nina", "acme", allScopes, nil),                                                                                                  // every scope, no grants, nothing of her own
		newPrincipal("rita", "acme", readOnly, []string{"org:acme"}),                                                                                  // read-only token
		newPrincipal("nora", "acme", noDelete, []string{"org:acme"}),                                                                                  // may not delete
		newPrincipal("ada", "globex", allScopes, []string{"org:globex"}),                                                                              // same sub, other org
		newPrincipal("mallory", "globex", allScopes, []string{"org:acme", "project:acme/api", "team:acme/web", "team:acme/ops", "org:", "team:acme"}), // grants naming acme only
	}
}

// seed is one memory of the fixture, stored through the service as author
// and then brought to state.
type seed struct {
	org, author, entity string
	scope               memory.Scope
	app                 string
	category            memory.Category
	state               memory.State
}

var seeds = []seed{
	{"acme", "ada", "user:ada", "user", "claude-code", "decision", "active"},
	{"acme", "ada", "user:ada", "session", "claude-code", "", "active"},
	{"acme", "pat", "user:pat", "user", "cursor", "convention", "active"},
	{"acme", "wendy", "user:wendy", "user", "cursor", "", "paused"},
	{"acme", "oscar", "user:oscar", "user", "ops-bot", "runbook", "active"},
	{"acme", "luke", "user:luke", "user", "cursor", "glossary", "active"},
	{"acme", "luke", "user:luke", "user", "", "", "deleted"},
	{"acme", "rita", "user:rita", "user", "claude-code", "", "active"},
	{"acme", "nora", "user:nora", "user", "codex", "testing", "active"},
	{"acme", "ada", "org:acme", "org", "claude-code", "security", "active"},
	{"acme", "ada", "org:acme", "enterprise", "acme-portal", "convention", "active"},
	{"acme", "ada", "org:acme", "org", "claude-code", "decision", "archived"},
	{"acme", "ada", "project:acme/api", "project", "cursor", "architecture", "active"},
	{"acme", "ada", "project:acme/api", "project", "cursor", "", "paused"},
	{"acme", "ada", "project:acme/web", "project", "codex", "dependency", "active"},
	{"acme", "ada", "project:acme/apix", "project", "codex", "", "active"},
	{"acme", "ada", "team:acme/web", "team", "cursor", "workflow", "active"},
	{"acme", "ada", "team:acme/web", "team", "cursor", "", "paused"},
	{"acme", "ada", "team:acme/web/frontend", "team", "cursor", "", "active"},
	{"acme", "ada", "team:acme/ops", "team", "ops-bot", "runbook", "active"},
	{"acme", "ada", "team:acme/ops", "team", "ops-bot", "", "deleted"},
	{"acme", "ada", "team:acme/api/payments", "team", "claude-code", "performance", "active"},
	{"acme", "ada", "team:acme/api/payments", "team", "claude-code", "", "archived"},
	{"acme", "ada", "team:acme/apix", "team", "codex", "", "active"},
	{"globex", "ada", "user:ada", "user", "claude-code", "decision", "active"},
	{"globex", "gus", "user:gus", "user", "globex-bot", "", "active"},
	{"globex", "mallory", "user:mallory", "user", "globex-bot", "", "active"},
	{"globex", "ada", "org:globex", "org", "globex-bot", "security", "active"},
	{"globex", "ada", "project:globex/api", "project", "cursor", "architecture", "active"},
	{"globex", "ada", "team:globex/web", "team", "globex-bot", "workflow", "active"},
	{"globex", "ada", "team:globex/api/payments", "team", "globex-bot", "", "paused"},
	{"globex", "ada", "team:globex/ops", "team", "globex-bot", "", "deleted"},
}

// idemKey is the idempotency key of seed i (every third seed has one).
func idemKey(i int) string { return fmt.Sprintf("idem-key-%02d", i) }

// entry is a memory the world knows about: its state as last read back from
// the store, the unique word in its content, and its history length.
type entry struct {
	m       memory.Memory
	marker  string
	history int
}

// world is a server with the fixture principals and seeded memories, and
// the record of what is stored that the oracle is applied to.
type world struct {
	*server
	t          *testing.T
	principals []*principal
	entries    []*entry
	byID       map[string]*entry
	// uncounted are memories per org stored outside the record (imports
	// under ids of the other org's memories); sameIDs are those stored
	// under such an id, as "<principal> <id>" (PostgreSQL keeps ids per
	// org).
	uncounted map[string]int
	sameIDs   map[string]bool
}

// newWorld builds a server on a fresh SQLite store and seeds the fixture.
func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOn(t, openSQLite(t))
}

// newWorldOn builds a server on store and seeds the fixture.
func newWorldOn(t *testing.T, store memory.Store) *world {
	t.Helper()
	return newWorldWith(t, store, nil)
}

// newWorldWith is newWorldOn whose service searches through vectors.
func newWorldWith(t *testing.T, store memory.Store, vectors memory.Vectors) *world {
	t.Helper()
	w := &world{server: newServerWith(t, store, vectors), t: t, principals: fixturePrincipals(), byID: map[string]*entry{},
		uncounted: map[string]int{}, sameIDs: map[string]bool{}}
	for _, p := range w.principals {
		w.issue(t, p)
	}
	ctx := t.Context()
	for i, s := range seeds {
		author := auth.Principal{Subject: s.author, OrgID: s.org, Grants: []string{"org:" + s.org}}
		marker := fmt.Sprintf("mk%03dq", i)
		in := memory.Input{
			Content: fmt.Sprintf("isolation canary %s: a %s note shared with %s in %s", marker, s.scope, s.entity, s.org),
			Scope:   s.scope, AccessEntity: s.entity, App: s.app, Category: s.category,
			Entity: "svc-" + marker, Tags: map[string]any{"seed": marker, "org": s.org},
		}
		if i%3 == 0 {
			in.IdempotencyKey = idemKey(i)
		}
		actx := auth.WithPrincipal(ctx, author)
		m, created, err := w.svc.Add(actx, in)
		if err != nil || !created {
			t.Fatalf("seed %d (%+v): created=%v err=%v", i, s, created, err)
		}
		switch s.state {
		case memory.StatePaused:
			_, err = w.svc.Transition(actx, m.ID, memory.ActionPause)
		case memory.StateArchived:
			_, err = w.svc.Transition(actx, m.ID, memory.ActionArchive)
		case memory.StateDeleted:
			_, err = w.svc.Delete(actx, m.ID)
		}
		if err != nil {
			t.Fatalf("seed %d: to %s: %v", i, s.state, err)
		}
		w.add(t, m.ID, marker)
	}
	return w
}

// add records a memory the store holds, reading it back.
func (w *world) add(t *testing.T, id, marker string) *entry {
	t.Helper()
	e := &entry{m: memory.Memory{ID: id}, marker: marker}
	for _, o := range w.entries {
		if o.m.ID == id {
			t.Fatalf("memory %s recorded twice", id)
		}
	}
	w.byID[id] = e
	w.entries = append(w.entries, e)
	// Read it back across every entity of its org: the record is new.
	for _, org := range []string{"acme", "globex"} {
		m, err := w.store.Get(t.Context(), memory.Access{OrgID: org, Prefixes: []string{"user:", "team:", "project:", "org:"}}, id)
		if err == nil {
			e.m = m
			break
		}
	}
	if e.m.OrgID == "" {
		t.Fatalf("memory %s is not in the store", id)
	}
	_, e.history = w.readBack(t, e)
	return e
}

func (w *world) principal(name string) *principal {
	for _, p := range w.principals {
		if p.name == name {
			return p
		}
	}
	w.t.Fatalf("no principal %s", name)
	return nil
}

// entities lists every access entity the fixture uses, of both orgs, and the
// user entity of every principal.
func (w *world) entities() []string {
	var out []string
	for _, s := range seeds {
		out = append(out, s.entity)
	}
	for _, p := range w.principals {
		out = append(out, p.UserEntity())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// entityScope is the scope a memory shared through entity e has.
func entityScope(e string) memory.Scope {
	kind, _, _ := strings.Cut(e, ":")
	if kind == "user" {
		return "user"
	}
	return memory.Scope(kind)
}

// writable is whether p may write into entity: what the oracle allows, and,
// whatever it says, never an entity that names another org.
func writable(p *principal, entity string) bool {
	return p.access.Allows(entity) && !foreign(p, entity)
}

// foreign reports whether entity (team:, project: or org:) names an org
// other than p's.
func foreign(p *principal, entity string) bool {
	kind, name, _ := strings.Cut(entity, ":")
	org, _, _ := strings.Cut(name, "/")
	return kind != "user" && org != p.OrgID
}

// visible returns the entries p may see, in any state; live leaves out the
// deleted ones; hidden returns the rest.
func (w *world) visible(p *principal) []*entry {
	return w.filter(func(e *entry) bool { return p.sees(e.m) })
}

func (w *world) live(p *principal) []*entry {
	return w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.State != memory.StateDeleted })
}

func (w *world) hidden(p *principal) []*entry {
	return w.filter(func(e *entry) bool { return !p.sees(e.m) })
}

func (w *world) filter(keep func(*entry) bool) []*entry {
	var out []*entry
	for _, e := range w.entries {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func idsOf(es []*entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.m.ID
	}
	slices.Sort(out)
	return out
}

// leaks returns what body reveals of memories p may not see: their ids and
// the unique words of their content. exempt are ids the caller itself sent.
func (w *world) leaks(p *principal, body []byte, exempt ...string) []string {
	var out []string
	for _, e := range w.entries {
		if p.sees(e.m) {
			continue
		}
		if bytes.Contains(body, []byte(e.m.ID)) && !slices.Contains(exempt, e.m.ID) {
			out = append(out, "id "+e.m.ID)
		}
		if e.marker != "" && bytes.Contains(body, []byte(e.marker)) {
			out = append(out, "content of "+e.m.ID+" ("+e.marker+")")
		}
	}
	return out
}

// noLeak fails the test when body reveals anything p may not see.
func (w *world) noLeak(t *testing.T, p *principal, what string, body []byte, exempt ...string) {
	t.Helper()
	if l := w.leaks(p, body, exempt...); len(l) > 0 {
		t.Errorf("%s: %s: the answer reveals %s of memories outside the caller's access: %.400s", p.name, what, strings.Join(l, ", "), body)
	}
}

// ownerAccess is the access of the memory's owner: exactly its entity.
func ownerAccess(m memory.Memory) memory.Access {
	return memory.Access{OrgID: m.OrgID, Entities: []string{m.AccessEntity}}
}

// readBack reads e's row and history length from the store as its owner.
func (w *world) readBack(t *testing.T, e *entry) (memory.Memory, int) {
	t.Helper()
	m, err := w.store.Get(t.Context(), ownerAccess(e.m), e.m.ID)
	if err != nil {
		t.Fatalf("read back %s as its owner (%s): %v", e.m.ID, e.m.AccessEntity, err)
	}
	h, err := w.store.History(t.Context(), ownerAccess(e.m), e.m.ID)
	if err != nil {
		t.Fatalf("read history of %s as its owner: %v", e.m.ID, err)
	}
	return m, len(h)
}

// unchanged fails the test when e's row or history changed since it was
// last recorded.
func (w *world) unchanged(t *testing.T, e *entry, what string) {
	t.Helper()
	m, err := w.store.Get(t.Context(), ownerAccess(e.m), e.m.ID)
	if err != nil {
		t.Errorf("%s: memory %s is no longer where its owner left it (%s): %v", what, e.m.ID, e.m.AccessEntity, err)
		return
	}
	h, err := w.store.History(t.Context(), ownerAccess(e.m), e.m.ID)
	if err != nil {
		t.Fatalf("read history of %s: %v", e.m.ID, err)
	}
	if !reflect.DeepEqual(m, e.m) || len(h) != e.history {
		t.Errorf("%s: memory %s changed: state %s→%s, entity %s→%s, content %q→%q, history %d→%d",
			what, e.m.ID, e.m.State, m.State, e.m.AccessEntity, m.AccessEntity, e.m.Content, m.Content, e.history, len(h))
	}
}

// allUnchanged checks every recorded memory.
func (w *world) allUnchanged(t *testing.T, what string) {
	t.Helper()
	for _, e := range w.entries {
		w.unchanged(t, e, what)
	}
}

// refresh records e as the store holds it now, after a legitimate write,
// and checks the history grew by want entries.
func (w *world) refresh(t *testing.T, e *entry, want int) {
	t.Helper()
	m, err := w.store.Get(t.Context(), memory.Access{OrgID: e.m.OrgID, Prefixes: []string{"user:", "team:", "project:", "org:"}}, e.m.ID)
	if err != nil {
		t.Fatalf("refresh %s: %v", e.m.ID, err)
	}
	before := e.history
	e.m = m
	_, e.history = w.readBack(t, e)
	if e.history != before+want {
		t.Errorf("memory %s: history grew from %d to %d, want +%d", e.m.ID, before, e.history, want)
	}
}
