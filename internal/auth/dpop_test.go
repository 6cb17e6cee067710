package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/redistest"
)

var (
	dpopNow    = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	dpopTarget = "https://api.example.com/mcp"
	dpopToken  = "header.payload.signature"
)

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func thumb(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	jkt, err := auth.JWKThumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return jkt
}

func jwkOf(t *testing.T, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func ath(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// craft signs a proof for POST dpopTarget with dpopToken, ES256 by key,
// after edit has changed its header and claims. edit may return another
// method and signing key.
func craft(t *testing.T, key *ecdsa.PrivateKey, edit func(h map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any)) string {
	t.Helper()
	c := jwt.MapClaims{"jti": rand.Text(), "htm": "POST", "htu": dpopTarget, "iat": dpopNow.Unix(), "ath": ath(dpopToken)}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["typ"] = "dpop+jwt"
	tok.Header["jwk"] = jwkOf(t, key.Public())
	var signWith any = key
	if edit != nil {
		if m, k := edit(tok.Header, c); m != nil {
			tok.Method, signWith = m, k
			tok.Header["alg"] = m.Alg()
		}
	}
	s, err := tok.SignedString(signWith)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newDPoP(t *testing.T, replay kv.Store) *auth.DPoP {
	t.Helper()
	d, err := auth.NewDPoP(auth.DPoPConfig{Replay: replay, Now: func() time.Time { return dpopNow }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDPoPCheckAccepts(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec := mustEC(t)
	for _, tc := range []struct {
		name, alg string
		key       crypto.Signer
		method    string
		htu       string // in the proof
		request   string // the request's URI
		iat       time.Time
	}{
		{"ES256", "ES256", ec, "POST", dpopTarget, dpopTarget, dpopNow},
		{"RS256", "RS256", rsaKey, "POST", dpopTarget, dpopTarget, dpopNow},
		{"EdDSA", "EdDSA", edKey, "GET", dpopTarget, dpopTarget, dpopNow},
		{"query and fragment ignored", "ES256", ec, "POST", dpopTarget + "?a=1#frag", dpopTarget, dpopNow},
		{"scheme and host case, default port", "ES256", ec, "POST", "HTTPS://API.Example.COM:443/mcp", dpopTarget, dpopNow},
		{"http default port", "ES256", ec, "POST", "http://127.0.0.1:80/x", "http://127.0.0.1/x", dpopNow},
		{"percent-encoding normalized", "ES256", ec, "POST", "https://api.example.com/a%7eb/%2f", "https://api.example.com/a~b/%2F", dpopNow},
		{"iat at the edge of the window", "ES256", ec, "POST", dpopTarget, dpopTarget, dpopNow.Add(-time.Minute)},
		{"iat a little ahead, within leeway", "ES256", ec, "POST", dpopTarget, dpopTarget, dpopNow.Add(4 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDPoP(t, kv.NewMemory(nil))
			proof, err := auth.NewDPoPProof(tc.key, tc.alg, tc.method, tc.htu, dpopToken, tc.iat)
			if err != nil {
				t.Fatal(err)
			}
			p := auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, tc.key.Public())}
			if err := d.Check(context.Background(), proof, tc.method, tc.request, dpopToken, p); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}

func TestDPoPCheckRejects(t *testing.T) {
	key, other := mustEC(t), mustEC(t)
	bound := auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, key.Public())}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		proof   string
		method  string // default POST
		request string // default dpopTarget
		token   string // default dpopToken
		p       *auth.Principal
		want    error
	}{
		{name: "empty proof", proof: "", want: auth.ErrInvalidDPoPProof},
		{name: "not a JWT", proof: "not.a.jwt", want: auth.ErrInvalidDPoPProof},
		{name: "typ JWT", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			h["typ"] = "JWT"
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "typ missing", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			delete(h, "typ")
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "alg none", proof: craft(t, key, func(map[string]any, jwt.MapClaims) (jwt.SigningMethod, any) {
			return jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType
		}), want: auth.ErrInvalidDPoPProof},
		{name: "HS256", proof: craft(t, key, func(map[string]any, jwt.MapClaims) (jwt.SigningMethod, any) {
			return jwt.SigningMethodHS256, []byte("a shared secret a shared secret!")
		}), want: auth.ErrInvalidDPoPProof},
		{name: "ES384 not accepted", proof: craft(t, key, func(map[string]any, jwt.MapClaims) (jwt.SigningMethod, any) {
			k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			return jwt.SigningMethodES384, k
		}), want: auth.ErrInvalidDPoPProof},
		{name: "jwk with private key", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			h["jwk"] = jwkOf(t, key)
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "jwk symmetric", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			h["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "jwk missing", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			delete(h, "jwk")
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "jwk alg differs", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			h["jwk"].(map[string]any)["alg"] = "ES384"
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "alg does not fit jwk", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			h["jwk"] = jwkOf(t, edPub)
			return nil, nil
		}), p: &auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, edPub)}, want: auth.ErrInvalidDPoPProof},
		{name: "EdDSA with EC jwk", proof: craft(t, key, func(map[string]any, jwt.MapClaims) (jwt.SigningMethod, any) {
			return jwt.SigningMethodEdDSA, edPriv
		}), want: auth.ErrInvalidDPoPProof},
		{name: "RSA key too small", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			h["jwk"] = jwkOf(t, &weakRSA.PublicKey)
			return jwt.SigningMethodRS256, weakRSA
		}), p: &auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, &weakRSA.PublicKey)}, want: auth.ErrInvalidDPoPProof},
		{name: "bad signature", proof: craft(t, key, func(h map[string]any, _ jwt.MapClaims) (jwt.SigningMethod, any) {
			return jwt.SigningMethodES256, other // jwk says key, signed by other
		}), want: auth.ErrInvalidDPoPProof},
		{name: "tampered claims", proof: func() string {
			parts := strings.Split(craft(t, key, nil), ".")
			c, _ := json.Marshal(jwt.MapClaims{"jti": "x", "htm": "POST", "htu": dpopTarget, "iat": dpopNow.Unix(), "ath": ath(dpopToken)})
			parts[1] = base64.RawURLEncoding.EncodeToString(c)
			return strings.Join(parts, ".")
		}(), want: auth.ErrInvalidDPoPProof},
		{name: "missing jti", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			delete(c, "jti")
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "wrong htm", proof: craft(t, key, nil), method: "GET", want: auth.ErrInvalidDPoPProof},
		{name: "htm lower case", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			c["htm"] = "post"
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "htu other path", proof: craft(t, key, nil), request: "https://api.example.com/api/v1/memories", want: auth.ErrInvalidDPoPProof},
		{name: "htu other host", proof: craft(t, key, nil), request: "https://evil.example.com/mcp", want: auth.ErrInvalidDPoPProof},
		{name: "htu other scheme", proof: craft(t, key, nil), request: "http://api.example.com/mcp", want: auth.ErrInvalidDPoPProof},
		{name: "htu other port", proof: craft(t, key, nil), request: "https://api.example.com:8443/mcp", want: auth.ErrInvalidDPoPProof},
		{name: "htu relative", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			c["htu"] = "/mcp"
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "htu missing", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			delete(c, "htu")
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "iat too old", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			c["iat"] = dpopNow.Add(-61 * time.Second).Unix()
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "iat in the future", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			c["iat"] = dpopNow.Add(6 * time.Second).Unix()
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "iat missing", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			delete(c, "iat")
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "missing ath", proof: craft(t, key, func(_ map[string]any, c jwt.MapClaims) (jwt.SigningMethod, any) {
			delete(c, "ath")
			return nil, nil
		}), want: auth.ErrInvalidDPoPProof},
		{name: "wrong ath", proof: craft(t, key, nil), token: "another.access.token", want: auth.ErrInvalidDPoPProof},
		{name: "thumbprint is not cnf.jkt", proof: craft(t, key, nil),
			p: &auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, other.Public())}, want: auth.ErrDPoPBinding},
		{name: "token not bound", proof: craft(t, key, nil), p: &auth.Principal{Subject: "alice", OrgID: "acme"}, want: auth.ErrDPoPBinding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, request, token, p := "POST", dpopTarget, dpopToken, bound
			if tc.method != "" {
				method = tc.method
			}
			if tc.request != "" {
				request = tc.request
			}
			if tc.token != "" {
				token = tc.token
			}
			if tc.p != nil {
				p = *tc.p
			}
			err := newDPoP(t, kv.NewMemory(nil)).Check(context.Background(), tc.proof, method, request, token, p)
			t.Log(err)
			if !errors.Is(err, tc.want) || !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Check: %v, want %v (and ErrInvalidToken)", err, tc.want)
			}
		})
	}
}

func TestDPoPReplay(t *testing.T) {
	key := mustEC(t)
	p := auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, key.Public())}
	clock := dpopNow
	d, err := auth.NewDPoP(auth.DPoPConfig{Replay: kv.NewMemory(func() time.Time { return clock }), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := auth.NewDPoPProof(key, "ES256", "POST", dpopTarget, dpopToken, dpopNow)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Check(ctx, proof, "POST", dpopTarget, dpopToken, p); err != nil {
		t.Fatalf("first use: %v", err)
	}
	clock = clock.Add(59 * time.Second)
	if err := d.Check(ctx, proof, "POST", dpopTarget, dpopToken, p); !errors.Is(err, auth.ErrInvalidDPoPProof) {
		t.Fatalf("second use within the window: %v, want ErrInvalidDPoPProof", err)
	}
	// A fresh proof (new jti) from the same key is fine.
	next, _ := auth.NewDPoPProof(key, "ES256", "POST", dpopTarget, dpopToken, clock)
	if err := d.Check(ctx, next, "POST", dpopTarget, dpopToken, p); err != nil {
		t.Fatalf("new proof: %v", err)
	}
	// After the window the old proof is too old, whatever the cache says.
	clock = dpopNow.Add(2 * time.Minute)
	if err := d.Check(ctx, proof, "POST", dpopTarget, dpopToken, p); !errors.Is(err, auth.ErrInvalidDPoPProof) {
		t.Fatalf("use after the window: %v, want ErrInvalidDPoPProof", err)
	}
}

// downStore is a replay cache that cannot be reached.
type downStore struct{ kv.Store }

func (downStore) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, fmt.Errorf("valkey setnx: %w: connection refused", kv.ErrUnavailable)
}

// brokenStore fails with an error that is not ErrUnavailable.
type brokenStore struct{ kv.Store }

func (brokenStore) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, errors.New("something odd")
}

func TestDPoPReplayCacheDownFailsClosed(t *testing.T) {
	key := mustEC(t)
	p := auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, key.Public())}
	for name, store := range map[string]kv.Store{"unavailable": downStore{kv.NewMemory(nil)}, "other error": brokenStore{kv.NewMemory(nil)}} {
		t.Run(name, func(t *testing.T) {
			proof, _ := auth.NewDPoPProof(key, "ES256", "POST", dpopTarget, dpopToken, dpopNow)
			err := newDPoP(t, store).Check(context.Background(), proof, "POST", dpopTarget, dpopToken, p)
			if !errors.Is(err, kv.ErrUnavailable) || errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Check with the replay cache down: %v, want kv.ErrUnavailable and not ErrInvalidToken", err)
			}
		})
	}
}

func TestDPoPReplayOnValkey(t *testing.T) {
	srv := redistest.New(t)
	store, err := kv.NewValkey(srv.URL(), "test:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key := mustEC(t)
	p := auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, key.Public())}
	// Two checkers sharing Valkey are two replicas: a proof accepted by
	// one is a replay on the other.
	a, b := newDPoP(t, store), newDPoP(t, store)
	ctx := context.Background()
	proof, _ := auth.NewDPoPProof(key, "ES256", "POST", dpopTarget, dpopToken, dpopNow)
	if err := a.Check(ctx, proof, "POST", dpopTarget, dpopToken, p); err != nil {
		t.Fatalf("replica a: %v", err)
	}
	if err := b.Check(ctx, proof, "POST", dpopTarget, dpopToken, p); !errors.Is(err, auth.ErrInvalidDPoPProof) {
		t.Fatalf("replay on replica b: %v, want ErrInvalidDPoPProof", err)
	}
	srv.Stop()
	fresh, _ := auth.NewDPoPProof(key, "ES256", "POST", dpopTarget, dpopToken, dpopNow)
	if err := a.Check(ctx, fresh, "POST", dpopTarget, dpopToken, p); !errors.Is(err, kv.ErrUnavailable) || errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Valkey stopped: %v, want kv.ErrUnavailable (fail closed)", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx, fresh, "POST", dpopTarget, dpopToken, p); err != nil {
		t.Fatalf("Valkey back: %v", err)
	}
}

func TestNewDPoPConfig(t *testing.T) {
	m := kv.NewMemory(nil)
	for _, cfg := range []auth.DPoPConfig{
		{},
		{Replay: m, Window: 6 * time.Minute},
		{Replay: m, Window: -time.Second},
		{Replay: m, Leeway: -time.Second},
		{Replay: m, Leeway: time.Hour},
	} {
		if _, err := auth.NewDPoP(cfg); err == nil {
			t.Errorf("NewDPoP(%+v) accepted", cfg)
		}
	}
	if _, err := auth.NewDPoP(auth.DPoPConfig{Replay: m, Window: 5 * time.Minute}); err != nil {
		t.Errorf("5 minute window: %v", err)
	}
}

func TestJWKThumbprint(t *testing.T) {
	// RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 key.
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := thumb(t, ed25519.PublicKey(x)); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("Ed25519 thumbprint %s", got)
	}
	// An EC key: SHA-256 of the required members in lexicographic order
	// without whitespace (RFC 7638 §3.2).
	k := mustEC(t)
	j := jwkOf(t, k.Public())
	h := sha256.Sum256(fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, j["x"], j["y"]))
	if got, want := thumb(t, k.Public()), base64.RawURLEncoding.EncodeToString(h[:]); got != want {
		t.Errorf("EC thumbprint %s, want %s", got, want)
	}
	if _, err := auth.JWKThumbprint([]byte("secret")); err == nil {
		t.Error("thumbprint of a symmetric key")
	}
	if _, err := auth.JWKThumbprint(k); err == nil {
		t.Error("thumbprint of a private key")
	}
}

// stubVerifier accepts one token as one principal.
type stubVerifier struct {
	token string
	p     auth.Principal
}

func (v stubVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	if token != v.token {
		return auth.Principal{}, fmt.Errorf("%w: unknown token", auth.ErrInvalidToken)
	}
	return v.p, nil
}

func TestAuthenticate(t *testing.T) {
	key := mustEC(t)
	boundP := auth.Principal{Subject: "alice", OrgID: "acme", KeyThumbprint: thumb(t, key.Public())}
	plainP := auth.Principal{Subject: "bob", OrgID: "acme"}
	proof := func(method, htu, token string) string {
		s, err := auth.NewDPoPProof(key, "ES256", method, htu, token, dpopNow)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		p         auth.Principal
		authz     string
		proofs    []string
		publicURL string
		url       string // default https://api.example.com/mcp
		want      error  // nil: accepted
	}{
		{name: "bearer, unbound", p: plainP, authz: "Bearer tok"},
		{name: "bearer, unbound, stray proof ignored", p: plainP, authz: "Bearer tok", proofs: []string{"garbage"}},
		{name: "no header", p: plainP, want: auth.ErrNoCredentials},
		{name: "basic", p: plainP, authz: "Basic dXNlcjpwYXNz", want: auth.ErrNoCredentials},
		{name: "scheme without token", p: plainP, authz: "Bearer ", want: auth.ErrNoCredentials},
		{name: "bad token", p: plainP, authz: "Bearer nope", want: auth.ErrInvalidToken},
		{name: "dpop, bound", p: boundP, authz: "DPoP tok", proofs: []string{proof("POST", dpopTarget, "tok")}},
		{name: "dpop scheme case-insensitive", p: boundP, authz: "dpop tok", proofs: []string{proof("POST", dpopTarget, "tok")}},
		{name: "dpop, query ignored", p: boundP, authz: "DPoP tok", url: dpopTarget + "?x=1", proofs: []string{proof("POST", dpopTarget, "tok")}},
		{name: "dpop, public URL with prefix", p: boundP, authz: "DPoP tok", publicURL: "https://public.example/brain/", url: "http://10.0.0.7:8765/mcp",
			proofs: []string{proof("POST", "https://public.example/brain/mcp", "tok")}},
		{name: "dpop, request host when no public URL", p: boundP, authz: "DPoP tok", url: "http://127.0.0.1:8765/mcp",
			proofs: []string{proof("POST", "http://127.0.0.1:8765/mcp", "tok")}},
		{name: "bound token as Bearer", p: boundP, authz: "Bearer tok", proofs: []string{proof("POST", dpopTarget, "tok")}, want: auth.ErrDPoPBinding},
		{name: "DPoP scheme, unbound token", p: plainP, authz: "DPoP tok", proofs: []string{proof("POST", dpopTarget, "tok")}, want: auth.ErrDPoPBinding},
		{name: "dpop, no proof", p: boundP, authz: "DPoP tok", want: auth.ErrInvalidDPoPProof},
		{name: "dpop, two proofs", p: boundP, authz: "DPoP tok", proofs: []string{proof("POST", dpopTarget, "tok"), proof("POST", dpopTarget, "tok")}, want: auth.ErrInvalidDPoPProof},
		{name: "dpop, proof for another URL", p: boundP, authz: "DPoP tok", proofs: []string{proof("POST", "https://api.example.com/sse", "tok")}, want: auth.ErrInvalidDPoPProof},
		{name: "dpop, proof behind a proxy without public URL", p: boundP, authz: "DPoP tok", url: "http://10.0.0.7:8765/mcp",
			proofs: []string{proof("POST", "https://public.example/mcp", "tok")}, want: auth.ErrInvalidDPoPProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url
			if u == "" {
				u = dpopTarget
			}
			r := httptest.NewRequest(http.MethodPost, u, nil) // https: sets r.TLS
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			for _, p := range tc.proofs {
				r.Header.Add("DPoP", p)
			}
			got, token, err := newDPoP(t, kv.NewMemory(nil)).Authenticate(r, stubVerifier{"tok", tc.p}, tc.publicURL)
			if tc.want == nil {
				if err != nil || got.Subject != tc.p.Subject || token != "tok" {
					t.Fatalf("Authenticate: %+v %q %v", got, token, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authenticate: %v, want %v", err, tc.want)
			}
			if got.Subject != "" {
				t.Fatalf("rejected request returned principal %+v", got)
			}
		})
	}
}

func TestDPoPChallenge(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{auth.ErrNoCredentials, `DPoP algs="ES256 RS256 EdDSA"`},
		{fmt.Errorf("%w: x", auth.ErrInvalidDPoPProof), `DPoP algs="ES256 RS256 EdDSA", error="invalid_dpop_proof"`},
		{fmt.Errorf("%w: x", auth.ErrDPoPBinding), `DPoP algs="ES256 RS256 EdDSA", error="invalid_token"`},
	} {
		if got := auth.DPoPChallenge(tc.err); got != tc.want {
			t.Errorf("DPoPChallenge(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestNewDPoPProofRejectsMismatchedAlg(t *testing.T) {
	if _, err := auth.NewDPoPProof(mustEC(t), "RS256", "GET", dpopTarget, "", dpopNow); err == nil {
		t.Error("RS256 with an EC key")
	}
	if _, err := auth.NewDPoPProof(mustEC(t), "HS256", "GET", dpopTarget, "", dpopNow); err == nil {
		t.Error("HS256")
	}
}
