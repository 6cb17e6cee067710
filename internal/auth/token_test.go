package auth_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
)

var (
	key   = bytes.Repeat([]byte("s"), 32)
	epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestIssueVerifyRoundTrip(t *testing.T) {
	h := auth.NewHS256(key, "iss", "aud", at(epoch))
	in := auth.Principal{Subject: "alice", OrgID: "acme", Scopes: []string{"memories:read", "search:read"}, Grants: []string{"team:acme/web"}, App: "cursor"}
	tok, err := h.Issue(in, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || got.OrgID != "acme" || strings.Join(got.Scopes, " ") != "memories:read search:read" ||
		got.Grants[0] != "team:acme/web" || got.App != "cursor" {
		t.Errorf("principal = %+v", got)
	}
}

// sign makes a token with arbitrary claims and method, for rejection tests.
func sign(t *testing.T, method jwt.SigningMethod, k any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	h := auth.NewHS256(key, "iss", "aud", at(epoch))
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "org_id": "acme", "iss": "iss", "aud": "aud",
			"iat": epoch.Unix(), "nbf": epoch.Unix(), "exp": epoch.Add(time.Hour).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := map[string]string{
		"expired":            sign(t, jwt.SigningMethodHS256, key, with("exp", epoch.Add(-time.Minute).Unix())),
		"not yet valid":      sign(t, jwt.SigningMethodHS256, key, with("nbf", epoch.Add(time.Minute).Unix())),
		"issued in future":   sign(t, jwt.SigningMethodHS256, key, with("iat", epoch.Add(time.Minute).Unix())),
		"no exp":             sign(t, jwt.SigningMethodHS256, key, with("exp", nil)),
		"wrong audience":     sign(t, jwt.SigningMethodHS256, key, with("aud", "other")),
		"wrong issuer":       sign(t, jwt.SigningMethodHS256, key, with("iss", "other")),
		"bad signature":      sign(t, jwt.SigningMethodHS256, bytes.Repeat([]byte("x"), 32), valid()),
		"missing sub":        sign(t, jwt.SigningMethodHS256, key, with("sub", nil)),
		"missing org_id":     sign(t, jwt.SigningMethodHS256, key, with("org_id", nil)),
		"alg none":           none,
		"alg HS512":          sign(t, jwt.SigningMethodHS512, key, valid()),
		"not a jwt":          "abc.def.ghi",
		"empty":              "",
		"skew beyond leeway": sign(t, jwt.SigningMethodHS256, key, with("exp", epoch.Add(-auth.Leeway-time.Second).Unix())),
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := h.Verify(context.Background(), tok)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
	// Within the leeway a just-expired token still passes.
	tok := sign(t, jwt.SigningMethodHS256, key, with("exp", epoch.Add(-auth.Leeway/2).Unix()))
	if _, err := h.Verify(context.Background(), tok); err != nil {
		t.Errorf("token within leeway rejected: %v", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, created, err := auth.LoadOrCreateKey(dir)
	if err != nil || !created || len(k1) != 32 {
		t.Fatalf("first: %v created=%v len=%d", err, created, len(k1))
	}
	fi, err := os.Stat(filepath.Join(dir, auth.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode().Perm(), err)
	}
	k2, created, err := auth.LoadOrCreateKey(dir)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second: %v created=%v same=%v", err, created, bytes.Equal(k1, k2))
	}
}
