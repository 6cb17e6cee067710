package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// flakyKeys is a key store whose lookups can be made to fail as if the
// database were unreachable.
type flakyKeys struct {
	*sqlite.Store
	down atomic.Bool
}

func (f *flakyKeys) APIKeyByID(ctx context.Context, id string) (auth.APIKey, error) {
	if f.down.Load() {
		return auth.APIKey{}, fmt.Errorf("read api key %s: %w", id, memory.ErrUnavailable)
	}
	return f.Store.APIKeyByID(ctx, id)
}

// newKeyFixture is a server that accepts JWTs and the API keys it makes.
func newKeyFixture(t *testing.T) (*fixture, *flakyKeys) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys := &flakyKeys{Store: store}
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	api := httpapi.New(memory.NewService(store, memory.Options{Now: clk.Now}), httpapi.Options{
		Verifier: auth.Verifiers{APIKeys: auth.NewAPIKeys(keys, auth.APIKeysOptions{Now: clk.Now}), JWT: tokens},
		APIKeys:  keys, MaxBodyBytes: 4096, Version: "test", Now: clk.Now,
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, api: api, store: store, tokens: tokens}, keys
}

// jwt issues a token for sub in org with grants and scopes.
func (f *fixture) jwt(sub, org string, grants, scopes []string) string {
	f.t.Helper()
	tok, err := f.tokens.Issue(auth.Principal{Subject: sub, OrgID: org, Scopes: scopes, Grants: grants}, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

type createdKey struct {
	Key    string      `json:"key"`
	APIKey auth.APIKey `json:"api_key"`
}

// makeKey creates a key as token and fails the test unless it gets 201.
func (f *fixture) makeKey(token string, req map[string]any) createdKey {
	f.t.Helper()
	r := f.do("POST", "/api/v1/admin/api-keys", token, req)
	if r.status != http.StatusCreated {
		f.t.Fatalf("create api key %v: %d %s", req, r.status, r.body)
	}
	var c createdKey
	r.decode(f.t, &c)
	return c
}

var apiKeyShape = regexp.MustCompile(`^cb_([a-z2-7]{12})_([a-z2-7]{52})$`)

func TestAPIKeyLifecycle(t *testing.T) {
	f, _ := newKeyFixture(t)
	admin := f.jwt("carol", "acme", []string{"org:acme"}, auth.AllScopes)

	r := f.do("POST", "/api/v1/admin/api-keys", admin, map[string]any{
		"subject": "svc:ci", "scopes": []string{"memories:read", "memories:write", "search:read", "memories:read"},
		"grants": []string{"team:acme/backend"}, "app": "ci", "ttl": "30d",
	})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var c createdKey
	r.decode(t, &c)
	m := apiKeyShape.FindStringSubmatch(c.Key)
	if m == nil || m[1] != c.APIKey.ID {
		t.Fatalf("key %q (id %q) is not cb_<id>_<secret>", c.Key, c.APIKey.ID)
	}
	secret := m[2]
	k := c.APIKey
	if k.Subject != "svc:ci" || k.OrgID != "acme" || k.App != "ci" || k.CreatedBy != "carol" ||
		!slices.Equal(k.Scopes, []string{"memories:read", "memories:write", "search:read"}) || !slices.Equal(k.Grants, []string{"team:acme/backend"}) ||
		k.ExpiresAt == nil || !k.ExpiresAt.Equal(k.CreatedAt.Add(30*24*time.Hour)) || k.RevokedAt != nil {
		t.Errorf("created key record %+v", k)
	}
	if got := r.header.Get("Location"); got != "/api/v1/admin/api-keys/"+k.ID {
		t.Errorf("Location %q", got)
	}
	if strings.Contains(string(r.body), "secret_hash") {
		t.Errorf("the create answer shows the hash: %s", r.body)
	}

	// The key works, as the service account with its grants.
	mem := f.create(c.Key, map[string]any{"content": "CI caches Go modules between runs", "scope": "team"})
	if mem.CreatedBy != "svc:ci" || mem.OrgID != "acme" || mem.App != "ci" || mem.AccessEntity != "team:acme/backend" {
		t.Errorf("memory written with the key: %+v", mem)
	}
	if r := f.do("GET", "/api/v1/stats", c.Key, nil); r.status != http.StatusForbidden {
		t.Errorf("a scope the key lacks: %d %s, want 403", r.status, r.body)
	}
	// Another secret with the key's id is rejected like any bad token.
	tampered := []byte(c.Key)
	if i := len(tampered) - 20; tampered[i] == 'a' {
		tampered[i] = 'b'
	} else {
		tampered[i] = 'a'
	}
	if r := f.do("GET", "/api/v1/memories", string(tampered), nil); r.status != http.StatusUnauthorized {
		t.Errorf("a tampered key: %d %s, want 401", r.status, r.body)
	}

	// Listing shows it, used, and never its secret or hash.
	r = f.do("GET", "/api/v1/admin/api-keys", admin, nil)
	var list struct {
		APIKeys []map[string]any `json:"api_keys"`
	}
	r.decode(t, &list)
	if r.status != 200 || len(list.APIKeys) != 1 || list.APIKeys[0]["id"] != k.ID || list.APIKeys[0]["subject"] != "svc:ci" ||
		list.APIKeys[0]["last_used_at"] == nil {
		t.Errorf("list: %d %s", r.status, r.body)
	}
	for _, leak := range []string{secret, c.Key, "secret", "hash"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("the listing contains %q: %s", leak, r.body)
		}
	}

	// Revoked, it is rejected at once; revoking again is harmless.
	r = f.do("DELETE", "/api/v1/admin/api-keys/"+k.ID, admin, nil)
	var revoked auth.APIKey
	r.decode(t, &revoked)
	if r.status != 200 || revoked.ID != k.ID || revoked.RevokedAt == nil {
		t.Errorf("revoke: %d %s", r.status, r.body)
	}
	r = f.do("GET", "/api/v1/memories", c.Key, nil)
	if code, _, _ := r.errorOf(t); r.status != http.StatusUnauthorized || code != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("a revoked key: %d %s, want 401 with a challenge", r.status, r.body)
	}
	if r := f.do("DELETE", "/api/v1/admin/api-keys/"+k.ID, admin, nil); r.status != 200 {
		t.Errorf("revoking again: %d %s", r.status, r.body)
	}
	if r := f.do("DELETE", "/api/v1/admin/api-keys/nosuchkey", admin, nil); r.status != http.StatusNotFound {
		t.Errorf("revoking an unknown key: %d %s, want 404", r.status, r.body)
	}
	r = f.do("GET", "/api/v1/admin/api-keys", admin, nil)
	r.decode(t, &list)
	if len(list.APIKeys) != 1 || list.APIKeys[0]["revoked_at"] == nil {
		t.Errorf("list after revoke: %s", r.body)
	}

}

func TestAPIKeyNoEscalation(t *testing.T) {
	f, _ := newKeyFixture(t)
	// dave administers keys but holds only some scopes and one team.
	dave := f.jwt("dave", "acme", []string{"team:acme/backend"}, []string{"admin:write", "admin:read", "memories:read", "search:read"})
	ok := map[string]any{"subject": "svc:bot", "scopes": []string{"memories:read"}}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range ok {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name   string
		req    any
		status int
		field  string
	}{
		{"a scope the caller lacks", with("scopes", []string{"memories:read", "memories:write"}), 403, "scopes"},
		{"admin scope the caller lacks", with("scopes", []string{"gdpr:delete"}), 403, "scopes"},
		{"an unknown scope", with("scopes", []string{"memories:everything"}), 400, "scopes"},
		{"no scopes", with("scopes", []string{}), 400, "scopes"},
		{"a wider grant", with("grants", []string{"org:acme"}), 403, "grants"},
		{"another team", with("grants", []string{"team:acme/frontend"}), 403, "grants"},
		{"another org's grant", with("grants", []string{"team:globex/backend"}), 403, "grants"},
		{"another person's entity", with("grants", []string{"user:alice"}), 403, "grants"},
		{"a malformed grant", with("grants", []string{"everything"}), 400, "grants"},
		{"another org", with("org_id", "globex"), 403, "org_id"},
		{"another person", with("subject", "alice"), 403, "subject"},
		{"no subject", with("subject", ""), 400, "subject"},
		{"a malformed service account", with("subject", "svc:bad_name"), 400, "subject"},
		{"a negative ttl", with("ttl", "-1h"), 400, "ttl"},
		{"a ttl that is not a duration", with("ttl", "soon"), 400, "ttl"},
		{"an unknown field", with("admin", true), 400, "admin"},
		{"an app with a newline", with("app", "a\nb"), 400, "app"},
	} {
		r := f.do("POST", "/api/v1/admin/api-keys", dave, tc.req)
		code, field, msg := r.errorOf(t)
		if r.status != tc.status || field != tc.field {
			t.Errorf("%s: %d %s field %q (%s); want %d naming %q", tc.name, r.status, code, field, msg, tc.status, tc.field)
		}
	}

	// What dave holds, he can hand on: his team, his own private
	// memories, a personal key for himself.
	f.makeKey(dave, with("grants", []string{"team:acme/backend", "user:dave"}))
	f.makeKey(dave, with("subject", "dave"))

	// A key is bounded by the key that made it.
	keyAdmin := f.makeKey(dave, map[string]any{"subject": "svc:keys", "scopes": []string{"admin:write", "memories:read"}})
	r := f.do("POST", "/api/v1/admin/api-keys", keyAdmin.Key, map[string]any{"subject": "svc:more", "scopes": []string{"search:read"}})
	if _, field, _ := r.errorOf(t); r.status != 403 || field != "scopes" {
		t.Errorf("a key making a key with a scope it lacks: %d %s", r.status, r.body)
	}
	r = f.do("POST", "/api/v1/admin/api-keys", keyAdmin.Key, map[string]any{"subject": "svc:more", "scopes": []string{"memories:read"}, "grants": []string{"team:acme/backend"}})
	if _, field, _ := r.errorOf(t); r.status != 403 || field != "grants" {
		t.Errorf("a key making a key with a grant it lacks: %d %s", r.status, r.body)
	}

	// Without admin scopes there is no key management at all.
	alice := f.jwt("alice", "acme", []string{"org:acme"}, []string{"memories:read", "memories:write", "admin:read"})
	if r := f.do("POST", "/api/v1/admin/api-keys", alice, ok); r.status != 403 || !strings.Contains(string(r.body), "admin:write") {
		t.Errorf("create without admin:write: %d %s", r.status, r.body)
	}
	if r := f.do("DELETE", "/api/v1/admin/api-keys/"+keyAdmin.APIKey.ID, alice, nil); r.status != 403 {
		t.Errorf("revoke without admin:write: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/api/v1/admin/api-keys", f.jwt("alice", "acme", nil, []string{"memories:read"}), nil); r.status != 403 {
		t.Errorf("list without admin:read: %d %s", r.status, r.body)
	}
}

func TestAPIKeyTenantIsolation(t *testing.T) {
	f, _ := newKeyFixture(t)
	acme := f.jwt("carol", "acme", []string{"org:acme"}, auth.AllScopes)
	globex := f.jwt("eve", "globex", []string{"org:globex"}, auth.AllScopes)
	k := f.makeKey(acme, map[string]any{"subject": "svc:ci", "scopes": []string{"memories:read"}})

	r := f.do("GET", "/api/v1/admin/api-keys", globex, nil)
	if r.status != 200 || strings.Contains(string(r.body), k.APIKey.ID) || !strings.Contains(string(r.body), `"api_keys":[]`) {
		t.Errorf("globex lists acme's keys: %d %s", r.status, r.body)
	}
	if r := f.do("DELETE", "/api/v1/admin/api-keys/"+k.APIKey.ID, globex, nil); r.status != http.StatusNotFound {
		t.Errorf("globex revoking acme's key: %d %s, want 404", r.status, r.body)
	}
	if r := f.do("GET", "/api/v1/memories", k.Key, nil); r.status != 200 {
		t.Errorf("acme's key after globex's attempt: %d %s", r.status, r.body)
	}
}

func TestAPIKeyStoreDown(t *testing.T) {
	f, keys := newKeyFixture(t)
	admin := f.jwt("carol", "acme", []string{"org:acme"}, auth.AllScopes)
	k := f.makeKey(admin, map[string]any{"subject": "svc:ci", "scopes": []string{"memories:read"}})
	keys.down.Store(true)
	r := f.do("GET", "/api/v1/memories", k.Key, nil)
	if code, _, _ := r.errorOf(t); r.status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Errorf("a key while the store is down: %d %s, want 503 (not 401)", r.status, r.body)
	}
	// JWTs do not need the key store.
	if r := f.do("GET", "/api/v1/memories", admin, nil); r.status != 200 {
		t.Errorf("a JWT while the key store is down: %d %s", r.status, r.body)
	}
}

func TestAPIKeysNotConfigured(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/api/v1/admin/api-keys", f.token("carol", "acme"), nil)
	if code, _, _ := r.errorOf(t); r.status != http.StatusNotImplemented || code != "not_implemented" {
		t.Errorf("without a key store: %d %s, want 501", r.status, r.body)
	}
}
