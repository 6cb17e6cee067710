package memory_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

func TestAccessForHierarchy(t *testing.T) {
	p := auth.Principal{Subject: "ann", OrgID: "acme", Grants: []string{
		"project:acme/api", "team:acme/web",
		// Outside ann's org or malformed: ignored.
		"org:globex", "team:globex/web", "project:globex/api", "team:acme", "nonsense", "org:",
	}}
	a := memory.AccessFor(p)
	if a.OrgID != "acme" {
		t.Fatalf("org = %q", a.OrgID)
	}
	for entity, want := range map[string]bool{
		"user:ann":               true,
		"user:bob":               false,
		"team:acme/web":          true,
		"team:acme/webshop":      false,
		"project:acme/api":       true,
		"team:acme/api/backend":  true, // project ⊇ its teams
		"project:acme/apiary":    false,
		"team:acme/apiary":       false,
		"org:acme":               false,
		"org:globex":             false,
		"team:globex/web":        false,
		"team:globex/web/x":      false,
		"project:globex/api":     false,
		"team:globex/api/mobile": false,
	} {
		if got := a.Allows(entity); got != want {
			t.Errorf("Allows(%q) = %v, want %v", entity, got, want)
		}
	}

	org := memory.AccessFor(auth.Principal{Subject: "root", OrgID: "acme", Grants: []string{"org:acme"}})
	for _, e := range []string{"org:acme", "project:acme/api", "team:acme/web", "team:acme/api/backend", "user:root"} {
		if !org.Allows(e) {
			t.Errorf("org:acme does not cover %q", e)
		}
	}
	for _, e := range []string{"org:acmecorp", "project:acmecorp/x", "team:acmecorp/x", "user:other"} {
		if org.Allows(e) {
			t.Errorf("org:acme covers %q", e)
		}
	}
}

func TestSharedScopeNeedsOneEntity(t *testing.T) {
	svc := newService(t)
	two := auth.Principal{Subject: "ann", OrgID: "acme", Scopes: auth.AllScopes,
		Grants: []string{"team:acme/web", "team:acme/ops", "team:globex/spy"}}
	_, _, err := svc.Add(ctxFor(two), memory.Input{Content: "Deploys freeze on Fridays.", Scope: "team"})
	var ve *memory.ValidationError
	if !errors.As(err, &ve) || ve.Field != "access_entity" {
		t.Fatalf("ambiguous team scope: err = %v, want a validation error on access_entity", err)
	}
	for _, want := range []string{"team:acme/web", "team:acme/ops"} {
		if !strings.Contains(ve.Reason, want) {
			t.Errorf("error %q does not list %s", ve.Reason, want)
		}
	}
	if strings.Contains(ve.Reason, "globex") {
		t.Errorf("error %q offers a grant outside the caller's org", ve.Reason)
	}

	m, _, err := svc.Add(ctxFor(two), memory.Input{Content: "Deploys freeze on Fridays.", Scope: "team", AccessEntity: "team:acme/ops"})
	if err != nil || m.AccessEntity != "team:acme/ops" {
		t.Fatalf("named team: %+v, %v", m, err)
	}
	_, _, err = svc.Add(ctxFor(two), memory.Input{Content: "Spy note.", Scope: "team", AccessEntity: "team:globex/spy"})
	if !errors.Is(err, memory.ErrForbidden) {
		t.Errorf("write to another org's team: err = %v, want ErrForbidden", err)
	}

	one := auth.Principal{Subject: "bob", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"team:acme/web"}}
	m, _, err = svc.Add(ctxFor(one), memory.Input{Content: "Web uses pnpm.", Scope: "team"})
	if err != nil || m.AccessEntity != "team:acme/web" {
		t.Errorf("single team grant: %+v, %v", m, err)
	}
	if _, _, err := svc.Add(ctxFor(one), memory.Input{Content: "Org-wide rule.", Scope: "org"}); !errors.Is(err, memory.ErrForbidden) {
		t.Errorf("org scope without org grant: err = %v, want ErrForbidden", err)
	}
}

func newService(t *testing.T) *memory.Service {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "codingbrain.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return memory.NewService(store, memory.Options{})
}

func ctxFor(p auth.Principal) context.Context { return auth.WithPrincipal(context.Background(), p) }
