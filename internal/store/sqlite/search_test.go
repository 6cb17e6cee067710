package sqlite

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

func TestQueryTokens(t *testing.T) {
	cases := []struct {
		text, any, phrase string
	}{
		{`Blue-Green "deployment"`, `"blue" OR "green" OR "deployment"`, `content : "blue green deployment"`},
		{`how do we deploy the API?`, `"deploy" OR "api"`, `content : "how do we deploy the api"`},
		{`the of and`, `"the" OR "of" OR "and"`, `content : "the of and"`},
		{`NEAR(a b) OR x*`, `"near" OR "b" OR "x"`, `content : "near a b or x"`},
		{`café Ünïcode 42`, `"café" OR "ünïcode" OR "42"`, `content : "café ünïcode 42"`},
	}
	for _, c := range cases {
		tokens := queryTokens(c.text)
		if got := matchAny(tokens); got != c.any {
			t.Errorf("matchAny(%q) = %s, want %s", c.text, got, c.any)
		}
		if got := matchPhrase(tokens); got != c.phrase {
			t.Errorf("matchPhrase(%q) = %s, want %s", c.text, got, c.phrase)
		}
	}
	if got := queryTokens(`"*^():{}`); len(got) != 0 {
		t.Errorf("tokens of punctuation: %q", got)
	}
}

func TestScore(t *testing.T) {
	ranks := []float64{-12, -3.5, -0.2, -1e-7, 0}
	for _, phrase := range []bool{true, false} {
		prev := 3.0
		for _, r := range ranks {
			s := score(r, phrase)
			if s <= 0 || s >= prev {
				t.Errorf("score(%v, %v) = %v after %v; want positive and decreasing", r, phrase, s, prev)
			}
			prev = s
		}
	}
	if score(0, true) <= score(-1000, false) {
		t.Error("a weak phrase match does not outrank a strong word match")
	}
}

func TestPrefixEnd(t *testing.T) {
	cases := map[string]string{"team:acme/": "team:acme0", "a\xff": "b", "": "", "\xff\xff": ""}
	for p, want := range cases {
		got, ok := prefixEnd(p)
		if got != want || ok != (want != "") {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
}

func TestACL(t *testing.T) {
	tokens := strings.Fields(aclTokens("acme", "team:acme/api/payments"))
	want := []string{aclToken("o", "acme", ""), aclToken("e", "acme", "team:acme/api/payments"),
		aclToken("p", "acme", "team:acme/"), aclToken("p", "acme", "team:acme/api/")}
	if !slices.Equal(tokens, want) {
		t.Errorf("aclTokens = %v, want %v", tokens, want)
	}
	for _, tok := range tokens {
		if !allDigits(tok) {
			t.Errorf("token %q is not all digits", tok)
		}
	}
	if aclToken("e", "acme", "x") == aclToken("e", "globex", "x") {
		t.Error("entity tokens do not depend on the org")
	}
	a := memory.AccessFor(auth.Principal{Subject: "carol", OrgID: "acme", Grants: []string{"org:acme", "team:acme/backend"}})
	m, exact := aclMatch(a)
	if !exact || strings.Contains(m, aclToken("e", "acme", "team:acme/backend")) {
		t.Errorf("aclMatch = %s, %v; want exact, without the team covered by team:acme/", m, exact)
	}
	if m, exact := aclMatch(memory.Access{OrgID: "acme", Prefixes: []string{"team:ac"}}); exact || m != `acl : "`+aclToken("o", "acme", "")+`"` {
		t.Errorf("aclMatch of a bare prefix = %s, %v; want the org token, inexact", m, exact)
	}
}

// TestSearchAccessShapes searches with Access values memory.AccessFor never
// makes: a prefix without a trailing slash still matches by bytes, and a
// query naming an access token finds nothing through it.
func TestSearchAccessShapes(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := auth.Principal{Subject: "carol", OrgID: "acme", Grants: []string{"org:acme"}}
	svc := memory.NewService(s, memory.Options{})
	ctx := auth.WithPrincipal(t.Context(), p)
	m, _, err := svc.Add(ctx, memory.Input{Content: "widgets are cached for an hour", Scope: "team", AccessEntity: "team:acme/web"})
	if err != nil {
		t.Fatal(err)
	}
	hits, err := s.Search(t.Context(), memory.Access{OrgID: "acme", Prefixes: []string{"team:ac"}}, memory.SearchQuery{Text: "widgets"})
	if err != nil || len(hits) != 1 || hits[0].Memory.ID != m.ID {
		t.Errorf("search with a bare prefix: %v, %v", hits, err)
	}
	hits, err = s.Search(t.Context(), memory.Access{OrgID: "acme", Prefixes: []string{"team:ab"}}, memory.SearchQuery{Text: "widgets"})
	if err != nil || len(hits) != 0 {
		t.Errorf("search with a non-matching prefix: %v, %v", hits, err)
	}
	for _, tok := range strings.Fields(aclTokens("acme", "team:acme/web")) {
		res, err := svc.Search(ctx, memory.SearchQuery{Text: tok}, memory.ViaREST)
		hits := res.Hits
		if err != nil || len(hits) != 0 {
			t.Errorf("search for access token %s: %d hits, %v", tok, len(hits), err)
		}
	}
}

// TestSearchCandidateLimit checks that ranking only the best candidates
// gives the same answer as ranking every match, with filters that reject
// most candidates.
func TestSearchCandidateLimit(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := newGenerator(3)
	svc := memory.NewService(s, memory.Options{})
	for range 1500 {
		p := g.principal()
		if _, _, err := svc.Add(auth.WithPrincipal(ctx, p), g.input(p)); err != nil {
			t.Fatal(err)
		}
	}
	filters := []memory.Filter{
		{},
		{Categories: []memory.Category{"runbook"}},
		{Tags: []string{"lang=rust"}, Scopes: []memory.Scope{"team"}},
		{CreatedAfter: ptr(time.Now().Add(-time.Hour))},
	}
	for i := range 60 {
		p := g.principal()
		a := memory.AccessFor(p)
		tokens := queryTokens(g.query())
		acl, _ := aclMatch(a)
		f := filters[i%len(filters)]
		fast, err := s.search(ctx, a, f, false, tokens, acl, 10, 50)
		if err != nil {
			t.Fatal(err)
		}
		full, err := s.search(ctx, a, f, false, tokens, acl, 10, -1)
		if err != nil {
			t.Fatal(err)
		}
		if len(fast) == 10 && !slices.Equal(hitIDs(fast), hitIDs(full)) {
			t.Errorf("query %v filter %+v: best candidates give %v, all candidates %v", tokens, f, hitIDs(fast), hitIDs(full))
		}
		got, err := s.Search(ctx, a, memory.SearchQuery{Text: strings.Join(tokens, " "), Filter: f, Limit: 10})
		if err != nil || !slices.Equal(hitIDs(got), hitIDs(full)) {
			t.Errorf("query %v filter %+v: Search gives %v, want %v (%v)", tokens, f, hitIDs(got), hitIDs(full), err)
		}
	}
}

func hitIDs(hs []memory.Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = fmt.Sprintf("%s %.6f", h.Memory.ID, h.Score)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
