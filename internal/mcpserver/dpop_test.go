package mcpserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
)

// newDPoPEnv is newEnv with a DPoP checker (nil: the server's default).
func newDPoPEnv(t *testing.T, d *auth.DPoP) *testEnv {
	t.Helper()
	svc, store := newStore(t)
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "test-issuer", "test-audience", nil)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	srv := mcpserver.New(svc, mcpserver.Options{
		Verifier: tokens, DPoP: d, Version: "test",
		Logger:              slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		ResourceMetadataURL: ts.URL + "/.well-known/oauth-protected-resource",
	})
	mux.Handle("/mcp", srv.Handler())
	mux.Handle("/sse", srv.SSEHandler())
	return &testEnv{url: ts.URL, tokens: tokens, store: store}
}

// dpopKey is a client's DPoP key and a token for p bound to it.
type dpopKey struct {
	t     *testing.T
	key   *ecdsa.PrivateKey
	token string
}

func newDPoPKey(t *testing.T, env *testEnv, p auth.Principal) *dpopKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyThumbprint, err = auth.JWKThumbprint(key.Public()); err != nil {
		t.Fatal(err)
	}
	return &dpopKey{t: t, key: key, token: env.token(t, p)}
}

func (k *dpopKey) proof(method, htu string) string {
	k.t.Helper()
	p, err := auth.NewDPoPProof(k.key, "ES256", method, htu, k.token, time.Now())
	if err != nil {
		k.t.Fatal(err)
	}
	return p
}

// RoundTrip sends every request as "Authorization: DPoP" with a fresh
// proof for its method and URI, as a DPoP client does.
type dpopTransport struct {
	k      *dpopKey
	proofs atomic.Int32
}

func (d *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	htu := req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath()
	proof, err := auth.NewDPoPProof(d.k.key, "ES256", req.Method, htu, d.k.token, time.Now())
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "DPoP "+d.k.token)
	req.Header.Set("DPoP", proof)
	d.proofs.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

func connectDPoP(t *testing.T, env *testEnv, kind string, k *dpopKey) (*mcp.ClientSession, *dpopTransport) {
	t.Helper()
	rt := &dpopTransport{k: k}
	hc := &http.Client{Transport: rt}
	var (
		tr   mcp.Transport
		opts *mcp.ClientSessionOptions
	)
	switch kind {
	case sessions:
		tr = &mcp.StreamableClientTransport{Endpoint: env.url + "/mcp", HTTPClient: hc, MaxRetries: -1}
		opts = &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}
	case stateless:
		tr = &mcp.StreamableClientTransport{Endpoint: env.url + "/mcp", HTTPClient: hc, MaxRetries: -1}
		opts = &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"}
	case legacySSE:
		tr = &mcp.SSEClientTransport{Endpoint: env.url + "/sse", HTTPClient: hc}
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "dpop-client", Version: "1.0"}, nil).Connect(t.Context(), tr, opts)
	if err != nil {
		t.Fatalf("connect over %s with DPoP: %v", kind, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, rt
}

// TestDPoPClients runs SDK clients that prove possession on every request
// over every transport.
func TestDPoPClients(t *testing.T) {
	for _, kind := range []string{sessions, stateless, legacySSE} {
		t.Run(kind, func(t *testing.T) {
			env := newDPoPEnv(t, nil)
			cs, rt := connectDPoP(t, env, kind, newDPoPKey(t, env, alice))
			for range 3 {
				var who struct {
					Sub string `json:"sub"`
				}
				mustOK(t, "whoami", call(t, cs, "whoami", nil, &who))
				if who.Sub != "alice" {
					t.Fatalf("whoami: %+v", who)
				}
			}
			if rt.proofs.Load() < 3 {
				t.Fatalf("%d proofs sent", rt.proofs.Load())
			}
		})
	}
}

// send posts body to url with the given Authorization and DPoP headers.
func send(t *testing.T, url, authz string, proofs []string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var stateless2026 = map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "whoami"}

func TestDPoPRejections(t *testing.T) {
	env := newDPoPEnv(t, nil)
	k := newDPoPKey(t, env, alice)
	mcpURL := env.url + "/mcp"
	plain := env.token(t, bob)
	used := k.proof("POST", mcpURL)
	if resp, body := send(t, mcpURL, "DPoP "+k.token, []string{used}, stateless2026, callWhoami2026); resp.StatusCode != 200 || !strings.Contains(body, `\"sub\":\"alice\"`) {
		t.Fatalf("valid proof: %d %s", resp.StatusCode, body)
	}
	other := newDPoPKey(t, env, alice)
	foreign, _ := auth.NewDPoPProof(other.key, "ES256", "POST", mcpURL, k.token, time.Now())
	otherATH, _ := auth.NewDPoPProof(k.key, "ES256", "POST", mcpURL, other.token, time.Now())

	for _, tc := range []struct {
		name      string
		authz     string
		proofs    []string
		dpopError string
	}{
		{"replayed proof", "DPoP " + k.token, []string{used}, "invalid_dpop_proof"},
		{"no proof", "DPoP " + k.token, nil, "invalid_dpop_proof"},
		{"two proofs", "DPoP " + k.token, []string{k.proof("POST", mcpURL), k.proof("POST", mcpURL)}, "invalid_dpop_proof"},
		{"proof for another path", "DPoP " + k.token, []string{k.proof("POST", env.url+"/sse")}, "invalid_dpop_proof"},
		{"proof for another host", "DPoP " + k.token, []string{k.proof("POST", "https://brain.example.com/mcp")}, "invalid_dpop_proof"},
		{"proof for another method", "DPoP " + k.token, []string{k.proof("GET", mcpURL)}, "invalid_dpop_proof"},
		{"proof for another token", "DPoP " + k.token, []string{otherATH}, "invalid_dpop_proof"},
		{"proof by another key", "DPoP " + k.token, []string{foreign}, "invalid_token"},
		{"bound token as Bearer", "Bearer " + k.token, []string{k.proof("POST", mcpURL)}, "invalid_token"},
		{"bound token as Bearer without proof", "Bearer " + k.token, nil, "invalid_token"},
		{"DPoP scheme, unbound token", "DPoP " + plain, []string{k.proof("POST", mcpURL)}, "invalid_token"},
		{"no token", "", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, mcpURL, tc.authz, tc.proofs, stateless2026, callWhoami2026)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d (%s), want 401", resp.StatusCode, body)
			}
			ch := resp.Header.Values("WWW-Authenticate")
			if len(ch) != 2 || ch[0] != `Bearer resource_metadata="`+env.url+`/.well-known/oauth-protected-resource"` || !strings.HasPrefix(ch[1], `DPoP algs="ES256 RS256 EdDSA"`) {
				t.Fatalf("WWW-Authenticate %q: want the Bearer challenge, then DPoP", ch)
			}
			if tc.dpopError == "" && strings.Contains(ch[1], "error=") || tc.dpopError != "" && !strings.Contains(ch[1], `error="`+tc.dpopError+`"`) {
				t.Errorf("DPoP challenge %q, want error %q", ch[1], tc.dpopError)
			}
			if strings.Contains(body, "htu") || strings.Contains(body, "jti") || strings.Contains(body, "signature") {
				t.Errorf("401 body %q tells why", body)
			}
		})
	}
}

// TestDPoPSessionBinding: a session opened with a DPoP-bound token stays
// bound to its principal, and its requests need proofs too.
func TestDPoPSessionBinding(t *testing.T) {
	env := newDPoPEnv(t, nil)
	k := newDPoPKey(t, env, alice)
	cs, _ := connectDPoP(t, env, sessions, k)
	mcpURL := env.url + "/mcp"
	hdr := map[string]string{"Mcp-Session-Id": cs.ID(), "Mcp-Protocol-Version": "2025-11-25"}

	if resp, body := send(t, mcpURL, "Bearer "+env.token(t, bob), nil, hdr, callWhoami); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob on alice's DPoP session: %d (%s), want 403", resp.StatusCode, body)
	}
	if resp, body := send(t, mcpURL, "Bearer "+k.token, nil, hdr, callWhoami); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("alice's bound token as Bearer on her session: %d (%s), want 401", resp.StatusCode, body)
	}
	if resp, body := send(t, mcpURL, "DPoP "+k.token, []string{k.proof("POST", mcpURL)}, hdr, callWhoami); resp.StatusCode != http.StatusOK || !strings.Contains(body, `\"sub\":\"alice\"`) {
		t.Fatalf("alice with a proof on her session: %d %s", resp.StatusCode, body)
	}
}

// failingStore is a replay cache that cannot be reached.
type failingStore struct{ kv.Store }

func (failingStore) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, errors.Join(kv.ErrUnavailable, errors.New("connection refused"))
}

// TestDPoPReplayCacheDown: a proof that cannot be recorded is not accepted
// (503), on /mcp and /sse; unbound bearer tokens go on.
func TestDPoPReplayCacheDown(t *testing.T) {
	d, err := auth.NewDPoP(auth.DPoPConfig{Replay: failingStore{kv.NewMemory(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	env := newDPoPEnv(t, d)
	k := newDPoPKey(t, env, alice)
	for _, path := range []string{"/mcp", "/sse?sessionid=x"} {
		htu := env.url + strings.Split(path, "?")[0]
		resp, body := send(t, env.url+path, "DPoP "+k.token, []string{k.proof("POST", htu)}, stateless2026, callWhoami2026)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("POST %s with the replay cache down: %d (Retry-After %q) %s, want 503", path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, body := send(t, env.url+"/mcp", "Bearer "+env.token(t, bob), nil, stateless2026, callWhoami2026); resp.StatusCode != http.StatusOK {
		t.Errorf("bearer token with the replay cache down: %d %s", resp.StatusCode, body)
	}
}
