package auth_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// keyStore is an in-memory auth.KeyStore that can be made to fail.
type keyStore struct {
	mu      sync.Mutex
	keys    map[string]auth.APIKey
	down    error // returned by every call when set
	touches int
}

func newKeyStore() *keyStore { return &keyStore{keys: map[string]auth.APIKey{}} }

func (s *keyStore) CreateAPIKey(_ context.Context, k auth.APIKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return s.down
	}
	if _, ok := s.keys[k.ID]; ok {
		return auth.ErrAPIKeyExists
	}
	s.keys[k.ID] = k
	return nil
}

func (s *keyStore) APIKeyByID(_ context.Context, id string) (auth.APIKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return auth.APIKey{}, s.down
	}
	k, ok := s.keys[id]
	if !ok {
		return auth.APIKey{}, auth.ErrAPIKeyNotFound
	}
	return k, nil
}

func (s *keyStore) ListAPIKeys(_ context.Context, org string) ([]auth.APIKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auth.APIKey
	for _, k := range s.keys {
		if k.OrgID == org {
			out = append(out, k)
		}
	}
	return out, s.down
}

func (s *keyStore) RevokeAPIKey(_ context.Context, org, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok || k.OrgID != org {
		return auth.ErrAPIKeyNotFound
	}
	if k.RevokedAt == nil {
		k.RevokedAt = &at
		s.keys[id] = k
	}
	return nil
}

func (s *keyStore) TouchAPIKey(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touches++
	k, ok := s.keys[id]
	if ok && (k.LastUsedAt == nil || at.After(*k.LastUsedAt)) {
		k.LastUsedAt = &at
		s.keys[id] = k
	}
	return nil
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

var keyShape = regexp.MustCompile(`^cb_([a-z2-7]{12})_([a-z2-7]{52})$`)

func TestNewAPIKey(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	p := auth.Principal{Subject: "svc:ci", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesRead}, Grants: []string{"team:acme/web"}, App: "ci"}
	plain, k, err := auth.NewAPIKey(p, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := keyShape.FindStringSubmatch(plain)
	if m == nil {
		t.Fatalf("key %q does not look like cb_<12 base32>_<52 base32>", plain)
	}
	if k.ID != m[1] {
		t.Errorf("record id %q, key id %q", k.ID, m[1])
	}
	if h := sha256.Sum256([]byte(m[2])); string(k.SecretHash) != string(h[:]) {
		t.Error("the record does not hold SHA-256 of the secret")
	}
	if strings.Contains(string(k.SecretHash), m[2]) {
		t.Error("the record holds the secret")
	}
	if k.Subject != "svc:ci" || k.OrgID != "acme" || !slices.Equal(k.Scopes, p.Scopes) || !slices.Equal(k.Grants, p.Grants) || k.App != "ci" {
		t.Errorf("record %+v does not describe %+v", k, p)
	}
	if k.CreatedAt.Location() != time.UTC || k.CreatedAt.Nanosecond()%1000 != 0 || k.ExpiresAt == nil || !k.ExpiresAt.Equal(k.CreatedAt.Add(time.Hour)) {
		t.Errorf("created %v expires %v; want UTC, whole microseconds, an hour apart", k.CreatedAt, k.ExpiresAt)
	}
	other, k2, _ := auth.NewAPIKey(p, now, 0)
	if other == plain || k2.ID == k.ID || k2.ExpiresAt != nil {
		t.Errorf("a second key: %q (id %s, expires %v); want a new key that does not expire", other, k2.ID, k2.ExpiresAt)
	}
	for _, bad := range []auth.Principal{{OrgID: "acme"}, {Subject: "x"}} {
		if _, _, err := auth.NewAPIKey(bad, now, 0); err == nil {
			t.Errorf("NewAPIKey(%+v): no error", bad)
		}
	}
	if _, _, err := auth.NewAPIKey(p, now, -time.Second); err == nil {
		t.Error("NewAPIKey with a negative ttl: no error")
	}
}

func TestAPIKeysVerify(t *testing.T) {
	ctx := context.Background()
	st := newKeyStore()
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	v := auth.NewAPIKeys(st, auth.APIKeysOptions{Now: clk.Now})
	mk := func(sub string, ttl time.Duration) (string, auth.APIKey) {
		t.Helper()
		plain, k, err := auth.NewAPIKey(auth.Principal{Subject: sub, OrgID: "acme", Scopes: []string{auth.ScopeSearchRead}, Grants: []string{"org:acme"}, App: "bot"}, clk.Now(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		k.CreatedBy = "carol"
		if err := st.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		return plain, k
	}
	valid, vk := mk("svc:valid", 0)
	revoked, rk := mk("svc:revoked", 0)
	expiring, _ := mk("svc:expiring", time.Hour)
	if err := st.RevokeAPIKey(ctx, "acme", rk.ID, clk.Now()); err != nil {
		t.Fatal(err)
	}

	p, err := v.Verify(ctx, valid)
	want := auth.Principal{Subject: "svc:valid", OrgID: "acme", Scopes: []string{auth.ScopeSearchRead}, Grants: []string{"org:acme"}, App: "bot", TokenID: vk.ID}
	if err != nil || p.Subject != want.Subject || p.OrgID != want.OrgID || !slices.Equal(p.Scopes, want.Scopes) ||
		!slices.Equal(p.Grants, want.Grants) || p.App != want.App || p.TokenID != want.TokenID || p.KeyThumbprint != "" {
		t.Errorf("valid key: %+v, %v; want %+v", p, err, want)
	}
	if _, err := v.Verify(ctx, expiring); err != nil {
		t.Errorf("a key before its expiry: %v", err)
	}

	ws := []byte(valid)
	if i := len(ws) - 10; ws[i] == 'a' {
		ws[i] = 'b'
	} else {
		ws[i] = 'a'
	}
	wrongSecret := string(ws)
	unknown := "cb_zzzzzzzzzzzz" + valid[len("cb_")+12:]
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"wrong secret", wrongSecret, "wrong secret"},
		{"unknown id", unknown, "unknown api key id"},
		{"revoked", revoked, "revoked"},
		{"malformed: no secret", "cb_" + vk.ID, "malformed"},
		{"malformed: short secret", valid[:len(valid)-2], "malformed"},
		{"malformed: upper case", strings.ToUpper(valid[:3]) + valid[3:], "malformed"},
		{"malformed: not base32", valid[:len(valid)-1] + "1", "malformed"},
		{"malformed: bad id", "cb_UPPER_" + valid[len("cb_")+13:], "malformed"},
		{"malformed: empty", "", "malformed"},
		{"a JWT", "eyJhbGciOiJIUzI1NiJ9.e30.x", "malformed"},
	} {
		_, err := v.Verify(ctx, tc.token)
		if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: %v; want ErrInvalidToken saying %q", tc.name, err, tc.reason)
		}
		if err != nil && strings.Contains(err.Error(), valid[len("cb_")+13:]) {
			t.Errorf("%s: the error quotes the secret: %v", tc.name, err)
		}
	}

	clk.t = clk.t.Add(time.Hour)
	if _, err := v.Verify(ctx, expiring); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a key at its expiry: %v; want ErrInvalidToken (expired)", err)
	}

	// A store that cannot be read is not a bad token.
	down := errors.New("database unreachable")
	st.down = down
	_, err = v.Verify(ctx, valid)
	if err == nil || errors.Is(err, auth.ErrInvalidToken) || !errors.Is(err, down) {
		t.Errorf("store down: %v; want the store's error, not ErrInvalidToken", err)
	}
}

func TestAPIKeysTouchOncePerMinute(t *testing.T) {
	ctx := context.Background()
	st := newKeyStore()
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: start}
	v := auth.NewAPIKeys(st, auth.APIKeysOptions{Now: clk.Now})
	plain, k, _ := auth.NewAPIKey(auth.Principal{Subject: "svc:a", OrgID: "acme"}, start, 0)
	if err := st.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // ten uses within 45 s: one write
		clk.t = start.Add(time.Duration(i) * 5 * time.Second)
		if _, err := v.Verify(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	if st.touches != 1 {
		t.Errorf("%d writes of last_used_at within a minute, want 1", st.touches)
	}
	clk.t = start.Add(time.Minute)
	if _, err := v.Verify(ctx, plain); err != nil {
		t.Fatal(err)
	}
	got, _ := st.APIKeyByID(ctx, k.ID)
	if st.touches != 2 || got.LastUsedAt == nil || !got.LastUsedAt.Equal(start.Add(time.Minute)) {
		t.Errorf("a minute later: %d writes, last used %v; want 2 and %v", st.touches, got.LastUsedAt, start.Add(time.Minute))
	}
}

// recordingVerifier remembers the tokens it was given.
type recordingVerifier struct{ got []string }

func (r *recordingVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	r.got = append(r.got, token)
	return auth.Principal{Subject: "x", OrgID: "y"}, nil
}

func TestVerifiersRouteByKind(t *testing.T) {
	ctx := context.Background()
	keys, jwts := &recordingVerifier{}, &recordingVerifier{}
	v := auth.Verifiers{APIKeys: keys, JWT: jwts}
	for _, tok := range []string{"cb_abc_def", "eyJhbGciOi.x.y", "garbage"} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(keys.got, []string{"cb_abc_def"}) || !slices.Equal(jwts.got, []string{"eyJhbGciOi.x.y", "garbage"}) {
		t.Errorf("api keys got %v, jwt got %v", keys.got, jwts.got)
	}
	if _, err := (auth.Verifiers{JWT: jwts}).Verify(ctx, "cb_abc_def"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("an API key without an API-key verifier: %v, want ErrInvalidToken", err)
	}
	if _, err := (auth.Verifiers{APIKeys: keys}).Verify(ctx, "eyJ.x.y"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("a JWT without a JWT verifier: %v, want ErrInvalidToken", err)
	}
}

func TestBootstrapAdminKey(t *testing.T) {
	ctx := context.Background()
	st := newKeyStore()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	plain, created, err := auth.BootstrapAdminKey(ctx, st, now)
	if err != nil || !created || !strings.HasPrefix(plain, "cb_"+auth.LocalAdminKeyID+"_") {
		t.Fatalf("first: %q, %v, %v", plain, created, err)
	}
	p, err := auth.NewAPIKeys(st, auth.APIKeysOptions{Now: func() time.Time { return now }}).Verify(ctx, plain)
	if err != nil || p.Subject != "admin" || p.OrgID != "local" || !slices.Equal(p.Scopes, auth.AllScopes) || !slices.Equal(p.Grants, []string{"org:local"}) {
		t.Errorf("the admin key verifies as %+v, %v", p, err)
	}
	if k, _ := st.APIKeyByID(ctx, auth.LocalAdminKeyID); k.ExpiresAt != nil || k.CreatedBy == "" {
		t.Errorf("admin key record %+v; want no expiry and a creator", k)
	}
	again, created, err := auth.BootstrapAdminKey(ctx, st, now)
	if err != nil || created || again != "" {
		t.Errorf("second: %q, %v, %v; want nothing created", again, created, err)
	}
	down := newKeyStore()
	down.down = errors.New("database unreachable")
	if _, _, err := auth.BootstrapAdminKey(ctx, down, now); err == nil {
		t.Error("store down: no error")
	}
}
