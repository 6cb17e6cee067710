package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// testAPIKeys is the contract of auth.KeyStore, for stores that implement
// it: a key reads back as stored (times in UTC, the hash intact); an id is
// taken once, also by racing creators; listing and revoking stay inside the
// org named; revoking twice keeps the first time; last_used_at only moves
// forward; the first-start admin key is created once.
func testAPIKeys(t *testing.T, e *env) {
	ks, ok := e.store.(auth.KeyStore)
	if !ok {
		t.Skip("the store does not keep API keys")
	}
	ctx := t.Context()
	newKey := func(p auth.Principal, ttl time.Duration) auth.APIKey {
		t.Helper()
		_, k, err := auth.NewAPIKey(p, e.clock.Advance(time.Millisecond), ttl)
		if err != nil {
			t.Fatal(err)
		}
		k.CreatedBy = "carol"
		if err := ks.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("create api key %s: %v", k.ID, err)
		}
		return k
	}
	byID := func(id string) auth.APIKey {
		t.Helper()
		k, err := ks.APIKeyByID(ctx, id)
		if err != nil {
			t.Fatalf("api key %s: %v", id, err)
		}
		return k
	}

	ci := newKey(auth.Principal{Subject: "svc:ci", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesRead, auth.ScopeSearchRead},
		Grants: []string{"team:acme/backend", "project:acme/api"}, App: "ci"}, 24*time.Hour)
	bot := newKey(auth.Principal{Subject: "svc:bot", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesWrite}}, 0)
	foreign := newKey(auth.Principal{Subject: "svc:ci", OrgID: "globex", Scopes: auth.AllScopes, Grants: []string{"org:globex"}}, 0)

	t.Run("RoundTrip", func(t *testing.T) {
		for _, want := range []auth.APIKey{ci, bot, foreign} {
			if d := diffAPIKey(want, byID(want.ID)); len(d) > 0 {
				t.Errorf("api key %s reads back differently:\n  %s", want.ID, strings.Join(d, "\n  "))
			}
		}
		if _, err := ks.APIKeyByID(ctx, "nosuchkey"); !errors.Is(err, auth.ErrAPIKeyNotFound) {
			t.Errorf("unknown id: %v, want ErrAPIKeyNotFound", err)
		}
	})

	t.Run("IDTakenOnce", func(t *testing.T) {
		_, dup, _ := auth.NewAPIKey(auth.Principal{Subject: "mallory", OrgID: "globex", Scopes: auth.AllScopes}, e.clock.Now(), 0)
		dup.ID = ci.ID
		if err := ks.CreateAPIKey(ctx, dup); !errors.Is(err, auth.ErrAPIKeyExists) {
			t.Errorf("a second key with id %s: %v, want ErrAPIKeyExists", ci.ID, err)
		}
		if d := diffAPIKey(ci, byID(ci.ID)); len(d) > 0 {
			t.Errorf("the failed create changed the key: %v", d)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		const racers = 8
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, k, _ := auth.NewAPIKey(auth.Principal{Subject: fmt.Sprintf("svc:racer%d", i), OrgID: "acme"}, e.clock.Now(), 0)
				k.ID, k.CreatedBy = "racedid", "carol"
				errs[i] = ks.CreateAPIKey(ctx, k)
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, auth.ErrAPIKeyExists):
				t.Errorf("racer %d: %v, want nil or ErrAPIKeyExists", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d racing creates of one id succeeded, want 1", won, racers)
		}
	})

	t.Run("ListWithinOrg", func(t *testing.T) {
		got, err := ks.ListAPIKeys(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range got {
			if k.OrgID != "acme" {
				t.Errorf("listing acme returned key %s of %s", k.ID, k.OrgID)
			}
			if k.ID != "racedid" {
				ids = append(ids, k.ID)
			}
		}
		if want := []string{ci.ID, bot.ID}; !slices.Equal(ids, want) {
			t.Errorf("acme's keys %v, want %v (oldest first)", ids, want)
		}
		if len(got) > 0 && got[0].ID == ci.ID {
			if d := diffAPIKey(ci, got[0]); len(d) > 0 {
				t.Errorf("listed key differs: %v", d)
			}
		}
		if got, err := ks.ListAPIKeys(ctx, "initech"); err != nil || len(got) != 0 {
			t.Errorf("keys of an org without keys: %+v, %v", got, err)
		}
	})

	t.Run("RevokeWithinOrg", func(t *testing.T) {
		at := e.clock.Advance(time.Second)
		if err := ks.RevokeAPIKey(ctx, "globex", ci.ID, at); !errors.Is(err, auth.ErrAPIKeyNotFound) {
			t.Errorf("globex revoking acme's key: %v, want ErrAPIKeyNotFound", err)
		}
		if k := byID(ci.ID); k.RevokedAt != nil {
			t.Errorf("another org's revoke took effect: revoked at %v", k.RevokedAt)
		}
		if err := ks.RevokeAPIKey(ctx, "acme", "nosuchkey", at); !errors.Is(err, auth.ErrAPIKeyNotFound) {
			t.Errorf("revoking an unknown id: %v, want ErrAPIKeyNotFound", err)
		}
		if err := ks.RevokeAPIKey(ctx, "acme", ci.ID, at); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if err := ks.RevokeAPIKey(ctx, "acme", ci.ID, at.Add(time.Hour)); err != nil {
			t.Errorf("revoking again: %v, want nil", err)
		}
		k := byID(ci.ID)
		if k.RevokedAt == nil || !k.RevokedAt.Equal(at) || k.RevokedAt.Location() != time.UTC {
			t.Errorf("revoked at %v, want the first revocation %v in UTC", k.RevokedAt, at)
		}
		if k.Active(at) || !byID(bot.ID).Active(at) || byID(bot.ID).RevokedAt != nil {
			t.Error("revoking one key changed another, or left it active")
		}
	})

	t.Run("TouchMovesForward", func(t *testing.T) {
		at := e.clock.Advance(time.Minute)
		if err := ks.TouchAPIKey(ctx, bot.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := ks.TouchAPIKey(ctx, bot.ID, at.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if k := byID(bot.ID); k.LastUsedAt == nil || !k.LastUsedAt.Equal(at) || k.LastUsedAt.Location() != time.UTC {
			t.Errorf("last used %v, want %v (an earlier touch does not move it back)", k.LastUsedAt, at)
		}
		if err := ks.TouchAPIKey(ctx, "nosuchkey", at); err != nil {
			t.Errorf("touching an unknown id: %v, want nil", err)
		}
		if k := byID(foreign.ID); k.LastUsedAt != nil {
			t.Errorf("touching one key touched another: %v", k.LastUsedAt)
		}
	})

	t.Run("BootstrapAdminOnce", func(t *testing.T) {
		const starters = 4
		var wg sync.WaitGroup
		keys := make([]string, starters)
		errs := make([]error, starters)
		for i := range starters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys[i], _, errs[i] = auth.BootstrapAdminKey(ctx, ks, e.clock.Now())
			}()
		}
		wg.Wait()
		var printed []string
		for i := range starters {
			if errs[i] != nil {
				t.Errorf("starter %d: %v", i, errs[i])
			}
			if keys[i] != "" {
				printed = append(printed, keys[i])
			}
		}
		if len(printed) != 1 {
			t.Fatalf("%d of %d concurrent first starts made an admin key, want 1", len(printed), starters)
		}
		if plain, created, err := auth.BootstrapAdminKey(ctx, ks, e.clock.Now()); err != nil || created || plain != "" {
			t.Errorf("a restart: %v, %v; want no new key", created, err)
		}
		p, err := auth.NewAPIKeys(ks, auth.APIKeysOptions{Now: e.clock.Now}).Verify(ctx, printed[0])
		if err != nil || p.Subject != "admin" || p.OrgID != "local" || !slices.Equal(p.Scopes, auth.AllScopes) {
			t.Errorf("the admin key verifies as %+v, %v", p, err)
		}
	})
}

// diffAPIKey lists the fields in which got differs from want. Times must be
// equal instants and in UTC.
func diffAPIKey(want, got auth.APIKey) []string {
	var d []string
	check := func(field string, eq bool, w, g any) {
		if !eq {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("id", got.ID == want.ID, want.ID, got.ID)
	check("org_id", got.OrgID == want.OrgID, want.OrgID, got.OrgID)
	check("subject", got.Subject == want.Subject, want.Subject, got.Subject)
	check("scopes", slices.Equal(got.Scopes, want.Scopes), want.Scopes, got.Scopes)
	check("grants", slices.Equal(got.Grants, want.Grants), want.Grants, got.Grants)
	check("app", got.App == want.App, want.App, got.App)
	check("secret_hash", bytes.Equal(got.SecretHash, want.SecretHash), want.SecretHash, got.SecretHash)
	check("created_at", sameTime(&want.CreatedAt, &got.CreatedAt), want.CreatedAt, got.CreatedAt)
	check("created_by", got.CreatedBy == want.CreatedBy, want.CreatedBy, got.CreatedBy)
	check("expires_at", sameTime(want.ExpiresAt, got.ExpiresAt), want.ExpiresAt, got.ExpiresAt)
	check("revoked_at", sameTime(want.RevokedAt, got.RevokedAt), want.RevokedAt, got.RevokedAt)
	check("last_used_at", sameTime(want.LastUsedAt, got.LastUsedAt), want.LastUsedAt, got.LastUsedAt)
	return d
}
