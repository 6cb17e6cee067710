package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// dpopServer is a REST server with HS256 tokens and the given DPoP options.
func dpopServer(t *testing.T, opts httpapi.Options) (*httptest.Server, *auth.HS256) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	opts.Verifier = tokens
	opts.ResourceMetadataURL = "http://example.test/.well-known/oauth-protected-resource"
	srv := httptest.NewServer(httpapi.New(memory.NewService(store, memory.Options{}), opts))
	t.Cleanup(srv.Close)
	return srv, tokens
}

type dpopClient struct {
	t     *testing.T
	key   *ecdsa.PrivateKey
	token string
}

// newDPoPClient makes a key and a token bound to it (cnf.jkt).
func newDPoPClient(t *testing.T, tokens *auth.HS256) *dpopClient {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := auth.JWKThumbprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokens.Issue(auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, KeyThumbprint: jkt}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{t: t, key: key, token: tok}
}

func (c *dpopClient) proof(method, htu string) string {
	c.t.Helper()
	p, err := auth.NewDPoPProof(c.key, "ES256", method, htu, c.token, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// send makes a request with the given Authorization and DPoP headers.
func send(t *testing.T, method, url, authz string, proofs []string, body string) response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func TestRESTDPoP(t *testing.T) {
	srv, tokens := dpopServer(t, httpapi.Options{})
	c := newDPoPClient(t, tokens)
	list := srv.URL + "/api/v1/memories"
	plain, err := tokens.Issue(auth.Principal{Subject: "bob", OrgID: "acme", Scopes: auth.AllScopes}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	used := c.proof("GET", list)
	if r := send(t, "GET", list, "DPoP "+c.token, []string{used}, ""); r.status != 200 {
		t.Fatalf("first use of a proof: %d %s", r.status, r.body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign, _ := auth.NewDPoPProof(other, "ES256", "GET", list, c.token, time.Now())

	for _, tc := range []struct {
		name      string
		method    string
		url       string
		authz     string
		proofs    []string
		body      string
		status    int
		dpopError string // error in the DPoP challenge, "" for none
	}{
		{name: "valid proof", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{c.proof("GET", list)}, status: 200},
		{name: "valid proof, write", method: "POST", url: list, authz: "DPoP " + c.token, proofs: []string{c.proof("POST", list)},
			body: `{"content":"we use DPoP","category":"security"}`, status: 201},
		{name: "query ignored", method: "GET", url: list + "?limit=5", authz: "DPoP " + c.token, proofs: []string{c.proof("GET", list)}, status: 200},
		{name: "unbound bearer still works", method: "GET", url: list, authz: "Bearer " + plain, status: 200},
		{name: "replayed proof", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{used}, status: 401, dpopError: "invalid_dpop_proof"},
		{name: "no proof", method: "GET", url: list, authz: "DPoP " + c.token, status: 401, dpopError: "invalid_dpop_proof"},
		{name: "two proofs", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{c.proof("GET", list), c.proof("GET", list)}, status: 401, dpopError: "invalid_dpop_proof"},
		{name: "wrong method", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{c.proof("POST", list)}, status: 401, dpopError: "invalid_dpop_proof"},
		{name: "other path", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{c.proof("GET", srv.URL+"/api/v1/search")}, status: 401, dpopError: "invalid_dpop_proof"},
		{name: "other host", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{c.proof("GET", "https://brain.example.com/api/v1/memories")}, status: 401, dpopError: "invalid_dpop_proof"},
		{name: "proof by another key", method: "GET", url: list, authz: "DPoP " + c.token, proofs: []string{foreign}, status: 401, dpopError: "invalid_token"},
		{name: "bound token as Bearer", method: "GET", url: list, authz: "Bearer " + c.token, proofs: []string{c.proof("GET", list)}, status: 401, dpopError: "invalid_token"},
		{name: "bound token as Bearer without proof", method: "GET", url: list, authz: "Bearer " + c.token, status: 401, dpopError: "invalid_token"},
		{name: "DPoP scheme, unbound token", method: "GET", url: list, authz: "DPoP " + plain, proofs: []string{c.proof("GET", list)}, status: 401, dpopError: "invalid_token"},
		{name: "no token", method: "GET", url: list, status: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.method, tc.url, tc.authz, tc.proofs, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status != 401 {
				return
			}
			if code, _, msg := r.errorOf(t); code != "unauthorized" || strings.Contains(msg, "htu") || strings.Contains(msg, "jti") {
				t.Errorf("401 envelope %s", r.body)
			}
			ch := r.header.Values("WWW-Authenticate")
			if len(ch) != 2 || !strings.HasPrefix(ch[0], `Bearer resource_metadata="http://example.test/`) || !strings.HasPrefix(ch[1], `DPoP algs="ES256 RS256 EdDSA"`) {
				t.Fatalf("WWW-Authenticate %q: want the Bearer challenge, then DPoP", ch)
			}
			if tc.dpopError == "" && strings.Contains(ch[1], "error=") {
				t.Errorf("DPoP challenge %q has an error", ch[1])
			}
			if tc.dpopError != "" && !strings.Contains(ch[1], `error="`+tc.dpopError+`"`) {
				t.Errorf("DPoP challenge %q, want error %q", ch[1], tc.dpopError)
			}
		})
	}
}

func TestRESTDPoPPublicURL(t *testing.T) {
	srv, tokens := dpopServer(t, httpapi.Options{PublicURL: "https://brain.example.com/"})
	c := newDPoPClient(t, tokens)
	if r := send(t, "GET", srv.URL+"/api/v1/memories", "DPoP "+c.token, []string{c.proof("GET", "https://brain.example.com/api/v1/memories")}, ""); r.status != 200 {
		t.Fatalf("proof for the public URL: %d %s", r.status, r.body)
	}
	if r := send(t, "GET", srv.URL+"/api/v1/memories", "DPoP "+c.token, []string{c.proof("GET", srv.URL+"/api/v1/memories")}, ""); r.status != 401 {
		t.Fatalf("proof for the internal URL: %d %s", r.status, r.body)
	}
}

// downStore is a replay cache that cannot be reached.
type downStore struct{ kv.Store }

func (downStore) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, errors.Join(kv.ErrUnavailable, errors.New("connection refused"))
}

func TestRESTDPoPReplayCacheDown(t *testing.T) {
	d, err := auth.NewDPoP(auth.DPoPConfig{Replay: downStore{kv.NewMemory(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	srv, tokens := dpopServer(t, httpapi.Options{DPoP: d})
	c := newDPoPClient(t, tokens)
	list := srv.URL + "/api/v1/memories"
	r := send(t, "GET", list, "DPoP "+c.token, []string{c.proof("GET", list)}, "")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("replay cache down: %d (Retry-After %q) %s, want 503", r.status, r.header.Get("Retry-After"), r.body)
	}
	if code, _, _ := r.errorOf(t); code != "unavailable" {
		t.Errorf("code %q, want unavailable", code)
	}
	// Unbound bearer tokens need no replay cache.
	plain, _ := tokens.Issue(auth.Principal{Subject: "bob", OrgID: "acme", Scopes: auth.AllScopes}, time.Hour)
	if r := send(t, "GET", list, "Bearer "+plain, nil, ""); r.status != 200 {
		t.Fatalf("bearer token with the replay cache down: %d %s", r.status, r.body)
	}
}
