package auth_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// jwksServer serves a JSON Web Key Set that a test can change.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []auth.SigningKey
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...auth.SigningKey) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, err := auth.JWKS(s.keys...)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...auth.SigningKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func genKey(t *testing.T, alg string) auth.SigningKey {
	t.Helper()
	k, err := auth.GenerateSigningKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	issuer   = "https://id.example"
	resource = "https://brain.example/mcp"
)

var alice = auth.Principal{Subject: "alice", OrgID: "acme", Scopes: []string{"memories:read"}, Grants: []string{"team:acme/web"}}

func newVerifier(t *testing.T, cfg auth.VerifierConfig) *auth.JWT {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = issuer
	}
	if cfg.Audience == "" {
		cfg.Audience = resource
	}
	v, err := auth.NewJWT(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWKSAlgorithms(t *testing.T) {
	keys := []auth.SigningKey{genKey(t, "RS256"), genKey(t, "ES256"), genKey(t, "EdDSA")}
	js := newJWKSServer(t, keys...)
	v := newVerifier(t, auth.VerifierConfig{JWKSURL: js.URL, HMACKey: key})
	for _, k := range keys {
		t.Run(k.Alg, func(t *testing.T) {
			tok, err := k.Issue(alice, issuer, resource, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("valid %s token rejected: %v", k.Alg, err)
			}
			if p.Subject != "alice" || p.OrgID != "acme" || p.Grants[0] != "team:acme/web" || p.TokenID == "" {
				t.Errorf("principal = %+v", p)
			}
		})
	}
	// The local key works beside the JWKS.
	local, err := auth.NewHS256(key, issuer, resource, nil).Issue(alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), local); err != nil {
		t.Errorf("local HS256 token rejected: %v", err)
	}
}

func TestJWKSRejects(t *testing.T) {
	rs := genKey(t, "RS256")
	es := genKey(t, "ES256")
	js := newJWKSServer(t, rs, es)
	v := newVerifier(t, auth.VerifierConfig{JWKSURL: js.URL, HMACKey: key})
	now := time.Now()
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "org_id": "acme", "iss": issuer, "aud": resource,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	with := func(k string, val any) jwt.MapClaims {
		c := valid()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	signWith := func(k auth.SigningKey, kid string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(k.Private)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	impostor := genKey(t, "RS256")
	pubDER, err := x509.MarshalPKIXPublicKey(rs.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, valid())
	confused.Header["kid"] = rs.KID
	confusedTok, err := confused.SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, valid())
	none.Header["kid"] = rs.KID
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	rs384 := jwt.NewWithClaims(jwt.SigningMethodRS384, valid())
	rs384.Header["kid"] = rs.KID
	rs384Tok, err := rs384.SignedString(rs.Private)
	if err != nil {
		t.Fatal(err)
	}

	tests := map[string]string{
		"expired":                    signWith(rs, rs.KID, with("exp", now.Add(-time.Hour).Unix())),
		"not yet valid":              signWith(rs, rs.KID, with("nbf", now.Add(time.Hour).Unix())),
		"issued in the future":       signWith(rs, rs.KID, with("iat", now.Add(time.Hour).Unix())),
		"no exp":                     signWith(rs, rs.KID, with("exp", nil)),
		"no iat":                     signWith(rs, rs.KID, with("iat", nil)),
		"wrong audience":             signWith(rs, rs.KID, with("aud", "https://other.example/mcp")),
		"wrong issuer":               signWith(rs, rs.KID, with("iss", "https://evil.example")),
		"missing sub":                signWith(es, es.KID, with("sub", nil)),
		"missing org_id":             signWith(es, es.KID, with("org_id", nil)),
		"bad signature":              signWith(impostor, rs.KID, valid()),
		"unknown kid":                signWith(impostor, impostor.KID, valid()),
		"no kid":                     signWith(rs, "", valid()),
		"kid of another algorithm":   signWith(rs, es.KID, valid()),
		"alg none":                   noneTok,
		"alg confusion (HS256, pub)": confusedTok,
		"alg RS384":                  rs384Tok,
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

// TestJWKSRotation rotates keys at a live JWKS: during the overlap tokens of
// the old and the new key pass; once the old key is withdrawn its tokens
// fail — all without a new verifier.
func TestJWKSRotation(t *testing.T) {
	old, next := genKey(t, "ES256"), genKey(t, "ES256")
	js := newJWKSServer(t, old)
	v := newVerifier(t, auth.VerifierConfig{JWKSURL: js.URL, JWKSRefresh: 50 * time.Millisecond})
	oldTok, _ := old.Issue(alice, issuer, resource, time.Hour)
	nextTok, _ := next.Issue(alice, issuer, resource, time.Hour)
	if _, err := v.Verify(context.Background(), oldTok); err != nil {
		t.Fatalf("old key before rotation: %v", err)
	}

	js.set(old, next) // overlap: the new kid is fetched on first sight
	for name, tok := range map[string]string{"new": nextTok, "old": oldTok} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s key during overlap: %v", name, err)
		}
	}

	js.set(next) // the old key is withdrawn
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(context.Background(), oldTok)
		if errors.Is(err, auth.ErrInvalidToken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old key still accepted 5s after it left the JWKS (err %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := v.Verify(context.Background(), nextTok); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
}

func TestJWKSUnreachableAtStart(t *testing.T) {
	js := newJWKSServer(t)
	js.Close()
	_, err := auth.NewJWT(t.Context(), auth.VerifierConfig{Issuer: issuer, Audience: resource, JWKSURL: js.URL})
	if err == nil || !strings.Contains(err.Error(), "JWKS") {
		t.Fatalf("err = %v, want a JWKS fetch error", err)
	}
}

func TestVerifierConfigErrors(t *testing.T) {
	for name, cfg := range map[string]auth.VerifierConfig{
		"no keys":        {Issuer: issuer, Audience: resource},
		"no audience":    {Issuer: issuer, HMACKey: key},
		"short key":      {Issuer: issuer, Audience: resource, HMACKey: []byte("short")},
		"leeway too big": {Issuer: issuer, Audience: resource, HMACKey: key, Leeway: time.Hour},
	} {
		if _, err := auth.NewJWT(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSigningKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		k := genKey(t, alg)
		b, err := k.PrivatePEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := auth.ParseSigningKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.KID != k.KID || back.Alg != alg {
			t.Errorf("%s: round trip gave kid %q alg %q", alg, back.KID, back.Alg)
		}
		jwks, err := auth.JWKS(back)
		if err != nil || !bytes.Contains(jwks, []byte(k.KID)) || bytes.Contains(jwks, []byte(`"d"`)) {
			t.Errorf("%s: JWKS %s (%v): want the public key only", alg, jwks, err)
		}
	}
}
