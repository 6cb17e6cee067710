package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
)

// TestAPIKeysStoreDown: when the database cannot be reached, an API key is
// not reported as invalid (401) but as unavailable (503): the key may be
// fine.
func TestAPIKeysStoreDown(t *testing.T) {
	s := openStore(t, pgtest.Database(t))
	plain, k, err := auth.NewAPIKey(auth.Principal{Subject: "svc:ci", OrgID: "acme", Scopes: []string{auth.ScopeSearchRead}}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	v := auth.NewAPIKeys(s, auth.APIKeysOptions{})
	if _, err := v.Verify(t.Context(), plain); err != nil {
		t.Fatalf("verify while up: %v", err)
	}
	s.Close()
	_, err = v.Verify(t.Context(), plain)
	if errors.Is(err, auth.ErrInvalidToken) || !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("verify on a closed store: %v; want ErrUnavailable, not ErrInvalidToken", err)
	}
	for name, err := range map[string]error{
		"create": s.CreateAPIKey(t.Context(), k),
		"revoke": s.RevokeAPIKey(t.Context(), "acme", k.ID, time.Now()),
		"touch":  s.TouchAPIKey(t.Context(), k.ID, time.Now()),
	} {
		if !errors.Is(err, memory.ErrUnavailable) {
			t.Errorf("%s on a closed store: %v, want ErrUnavailable", name, err)
		}
	}
	if _, err := s.ListAPIKeys(t.Context(), "acme"); !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("list on a closed store: %v, want ErrUnavailable", err)
	}
}
