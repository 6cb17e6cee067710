package storetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// wantHidden fails unless every read and write of id as p is ErrNotFound and
// id is in none of p's listings and searches.
func wantHidden(t *testing.T, e *env, p auth.Principal, id, word string) {
	t.Helper()
	ctx := e.as(p)
	who := fmt.Sprintf("%s of %s", p.Subject, p.OrgID)
	_, err := e.svc.Get(ctx, id, memory.ViaREST)
	wantErr(t, who+": get", err, memory.ErrNotFound)
	_, err = e.svc.Update(ctx, id, memory.Patch{Content: ptr("overwritten by " + p.Subject)})
	wantErr(t, who+": update", err, memory.ErrNotFound)
	_, err = e.svc.Transition(ctx, id, memory.ActionArchive)
	wantErr(t, who+": archive", err, memory.ErrNotFound)
	_, err = e.svc.Delete(ctx, id)
	wantErr(t, who+": delete", err, memory.ErrNotFound)
	_, err = e.svc.History(ctx, id)
	wantErr(t, who+": history", err, memory.ErrNotFound)
	if contains(ids(e.listAll(p, memory.ListQuery{Filter: memory.Filter{States: memory.States}})), id) {
		t.Errorf("%s: list shows %s", who, id)
	}
	if contains(hitIDs(e.search(p, memory.SearchQuery{Text: word, Limit: 100})), id) {
		t.Errorf("%s: search shows %s", who, id)
	}
}

func testTenantIsolation(t *testing.T, e *env) {
	orgWide := e.add(carol, memory.Input{Content: "secret rotation happens monthly", Scope: "org", App: "claude-code"})
	team := e.add(alice, memory.Input{Content: "secret rotation for the backend uses vault", Scope: "team"})
	private := e.add(alice, memory.Input{Content: "secret rotation scratch notes of alice"})
	theirs := e.add(eve, memory.Input{Content: "secret rotation happens weekly", Scope: "org", App: "cursor"})

	for _, id := range []string{orgWide.ID, team.ID, private.ID} {
		wantHidden(t, e, eve, id, "rotation")
	}
	// A grant naming another org does not reach across the org boundary,
	// and the same subject in another org is another person.
	mallory := principal("mallory", "globex", "org:acme", "team:acme/backend")
	otherAlice := principal("alice", "globex")
	for _, p := range []auth.Principal{mallory, otherAlice} {
		for _, id := range []string{orgWide.ID, team.ID, private.ID} {
			wantHidden(t, e, p, id, "rotation")
		}
	}
	// Inside the org, a private memory is its owner's alone.
	for _, p := range []auth.Principal{bob, carol, dave} {
		wantHidden(t, e, p, private.ID, "rotation")
	}
	wantHidden(t, e, carol, theirs.ID, "rotation")

	if got := ids(e.listAll(eve, memory.ListQuery{})); !slices.Equal(got, []string{theirs.ID}) {
		t.Errorf("eve lists %v, want only her own %s", got, theirs.ID)
	}
	st, err := e.svc.Stats(e.as(eve))
	if err != nil || st.Total != 1 {
		t.Errorf("eve's stats: %+v, %v; want total 1", st, err)
	}
	apps, err := e.svc.Apps(e.as(eve))
	if err != nil || !slices.Equal(apps, []memory.AppCount{{App: "cursor", Memories: 1}}) {
		t.Errorf("eve's apps: %+v, %v", apps, err)
	}
	// Nothing the others tried changed anything.
	for _, m := range []memory.Memory{orgWide, team, private} {
		owner := alice
		if m.ID == orgWide.ID {
			owner = carol
		}
		if got := e.get(owner, m.ID); got.Content != m.Content || got.State != memory.StateActive {
			t.Errorf("memory %s changed to %q (%s)", m.ID, got.Content, got.State)
		}
		if hs := e.history(owner, m.ID); len(hs) != 1 {
			t.Errorf("memory %s has %d history rows, want 1", m.ID, len(hs))
		}
	}
}

// testGrants checks how grants widen visibility: org:X covers team:X/* and
// project:X/*, project:P covers team:P/*, team grants are exact, matching is
// case-sensitive and grant names are not patterns.
func testGrants(t *testing.T, e *env) {
	henry := principal("henry", "acme", "team:acme/backend2")
	ivan := principal("ivan", "acme", "team:acme/Backend")
	underscore := principal("uma", "acme", "org:ac_e")
	percent := principal("pat", "acme", "org:%")
	nm := names{}
	mk := func(name string, p auth.Principal, scope memory.Scope, entity string) string {
		m := e.add(p, memory.Input{Content: "grant probe " + name, Scope: scope, AccessEntity: entity})
		nm[m.ID] = name
		return m.ID
	}
	backend := mk("backend", alice, "team", "team:acme/backend")
	backend2 := mk("backend2", henry, "team", "team:acme/backend2")
	frontend := mk("frontend", frank, "team", "team:acme/frontend")
	upper := mk("acme-Backend", ivan, "team", "team:acme/Backend")
	orgWide := mk("org", carol, "org", "org:acme")
	apiProject := mk("api-project", carol, "project", "project:acme/api")
	webProject := mk("web-project", carol, "project", "project:acme/web")
	apiTeam := mk("api-team", carol, "team", "team:acme/api/payments")
	apixTeam := mk("apix-team", carol, "team", "team:acme/apix/payments")

	cases := []struct {
		p    auth.Principal
		want []string
	}{
		{alice, []string{backend}},
		{dave, []string{backend}},
		{henry, []string{backend2}},
		{frank, []string{frontend}},
		{ivan, []string{upper}},
		{grace, []string{apiProject, apiTeam}},
		{carol, []string{backend, backend2, frontend, upper, orgWide, apiProject, webProject, apiTeam, apixTeam}},
		{bob, nil},
		{underscore, nil},
		{percent, nil},
	}
	for _, c := range cases {
		got := ids(e.listAll(c.p, memory.ListQuery{}))
		if !sameSet(got, c.want) {
			t.Errorf("%s (grants %v) lists %v, want %v", c.p.Subject, c.p.Grants, nm.of(got), nm.of(c.want))
		}
		hits := hitIDs(e.search(c.p, memory.SearchQuery{Text: "grant probe", Limit: 100}))
		if !sameSet(hits, c.want) {
			t.Errorf("%s (grants %v) finds %v, want %v", c.p.Subject, c.p.Grants, nm.of(hits), nm.of(c.want))
		}
		st, err := e.svc.Stats(e.as(c.p))
		if err != nil || st.Total != len(c.want) {
			t.Errorf("%s: stats total %d (%v), want %d", c.p.Subject, st.Total, err, len(c.want))
		}
	}
	// A grant lets its holder change what it covers.
	if _, err := e.svc.Update(e.as(carol), backend, memory.Patch{Entity: ptr("touched by carol")}); err != nil {
		t.Errorf("org admin update of a team memory: %v", err)
	}
	_, err := e.svc.Update(e.as(frank), backend, memory.Patch{Entity: ptr("touched by frank")})
	wantErr(t, "update of another team's memory", err, memory.ErrNotFound)
	_, err = e.svc.Transition(e.as(grace), apixTeam, memory.ActionPause)
	wantErr(t, "pause outside the project's teams", err, memory.ErrNotFound)
}

func testAccessLog(t *testing.T, e *env) {
	counter, ok := e.store.(AccessLogCounter)
	if !ok {
		t.Skip("store does not implement storetest.AccessLogCounter")
	}
	count := func(org string) int {
		t.Helper()
		n, err := counter.CountAccessLog(t.Context(), org)
		if err != nil {
			t.Fatalf("count access log: %v", err)
		}
		return n
	}
	var ms []memory.Memory
	for i := range 3 {
		ms = append(ms, e.add(alice, memory.Input{Content: fmt.Sprintf("audit trail note %d", i)}))
	}
	if n := count("acme"); n != 0 {
		t.Fatalf("access log has %d rows before any read", n)
	}
	steps := []struct {
		what string
		read func() error
		want int
	}{
		{"search with 3 hits", func() error {
			_, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: "audit trail"}, memory.ViaREST)
			return err
		}, 3},
		{"search with limit 2", func() error {
			_, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: "audit", Limit: 2}, memory.ViaMCP)
			return err
		}, 5},
		{"get over REST", func() error { _, err := e.svc.Get(e.as(alice), ms[0].ID, memory.ViaREST); return err }, 5},
		{"get over MCP", func() error { _, err := e.svc.Get(e.as(alice), ms[0].ID, memory.ViaMCP); return err }, 6},
		{"list over MCP", func() error {
			_, err := e.svc.List(e.as(alice), memory.ListQuery{}, memory.ViaMCP)
			return err
		}, 9},
		{"list over REST", func() error { _, err := e.svc.List(e.as(alice), memory.ListQuery{}, memory.ViaREST); return err }, 9},
		{"search without hits", func() error {
			_, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: "nothing matches this"}, memory.ViaREST)
			return err
		}, 9},
		{"another org's search", func() error {
			_, err := e.svc.Search(e.as(eve), memory.SearchQuery{Text: "audit"}, memory.ViaREST)
			return err
		}, 9},
	}
	for _, s := range steps {
		if err := s.read(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if n := count("acme"); n != s.want {
			t.Errorf("after %s: %d access-log rows, want %d", s.what, n, s.want)
		}
	}
	if n := count("globex"); n != 0 {
		t.Errorf("globex has %d access-log rows, want 0", n)
	}
}

func testAppsAndStats(t *testing.T, e *env) {
	add := func(p auth.Principal, content string, cat memory.Category, scope memory.Scope, app string) memory.Memory {
		return e.add(p, memory.Input{Content: content, Category: cat, Scope: scope, App: app})
	}
	add(carol, "org decision", "decision", "org", "claude-code")
	e.add(carol, memory.Input{Content: "team decision", Category: "decision", Scope: "team", AccessEntity: "team:acme/backend", App: "claude-code"})
	add(carol, "user runbook", "runbook", "user", "claude-code")
	add(carol, "user convention one", "convention", "user", "cursor")
	paused := add(carol, "user convention two", "convention", "user", "cursor")
	add(carol, "no app, no category", "", "user", "")
	deleted := add(carol, "deleted security note", "security", "user", "claude-code")
	add(alice, "alice private", "decision", "user", "cursor")
	add(eve, "globex note", "decision", "org", "claude-code")
	if _, err := e.svc.Transition(e.as(carol), paused.ID, memory.ActionPause); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Delete(e.as(carol), deleted.ID); err != nil {
		t.Fatal(err)
	}

	apps, err := e.svc.Apps(e.as(carol))
	if err != nil {
		t.Fatal(err)
	}
	if want := []memory.AppCount{{App: "claude-code", Memories: 3}, {App: "cursor", Memories: 2}}; !slices.Equal(apps, want) {
		t.Errorf("carol's apps: %+v, want %+v", apps, want)
	}
	apps, err = e.svc.Apps(e.as(alice))
	if err != nil {
		t.Fatal(err)
	}
	// alice sees her own note and the backend team's; ties order by name.
	if want := []memory.AppCount{{App: "claude-code", Memories: 1}, {App: "cursor", Memories: 1}}; !slices.Equal(apps, want) {
		t.Errorf("alice's apps: %+v, want %+v", apps, want)
	}

	st, err := e.svc.Stats(e.as(carol))
	if err != nil {
		t.Fatal(err)
	}
	want := memory.Stats{
		Total:      6,
		ByState:    map[string]int{"active": 5, "paused": 1, "deleted": 1},
		ByCategory: map[string]int{"decision": 2, "runbook": 1, "convention": 2},
		ByScope:    map[string]int{"org": 1, "team": 1, "user": 4},
	}
	if st.Total != want.Total || !maps.Equal(st.ByState, want.ByState) ||
		!maps.Equal(st.ByCategory, want.ByCategory) || !maps.Equal(st.ByScope, want.ByScope) {
		t.Errorf("carol's stats:\n got %+v\nwant %+v", st, want)
	}
	st, err = e.svc.Stats(e.as(bob))
	if err != nil || st.Total != 0 || len(st.ByState) != 0 {
		t.Errorf("bob's stats: %+v, %v; want nothing", st, err)
	}
}

func testConcurrentWrites(t *testing.T, e *env) {
	const writers, each = 8, 10
	target := e.add(alice, memory.Input{Content: "concurrently tagged memory", Scope: "team"})
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*3)
	for w := range writers {
		wg.Go(func() {
			p := alice
			if w%2 == 1 {
				p = dave
			}
			for i := range each {
				e.clock.Advance(time.Microsecond)
				if _, _, err := e.svc.Add(e.as(p), memory.Input{Content: fmt.Sprintf("writer %d note %d", w, i), Scope: "team"}); err != nil {
					errs <- fmt.Errorf("add: %w", err)
				}
				if i%2 == 0 {
					tags := map[string]any{fmt.Sprintf("w%d", w): float64(i)}
					if _, err := e.svc.Update(e.as(p), target.ID, memory.Patch{Tags: &tags}); err != nil {
						errs <- fmt.Errorf("update: %w", err)
					}
				}
				if _, err := e.svc.Search(e.as(p), memory.SearchQuery{Text: "writer note"}, memory.ViaREST); err != nil {
					errs <- fmt.Errorf("search: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all := e.listAll(carol, memory.ListQuery{Limit: memory.MaxListLimit})
	if len(all) != writers*each+1 {
		t.Errorf("listed %d memories after concurrent adds, want %d", len(all), writers*each+1)
	}
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.ID] {
			t.Errorf("id %s listed twice", m.ID)
		}
		seen[m.ID] = true
	}
	if hs := e.history(alice, target.ID); len(hs) != 1+writers*each/2 {
		t.Errorf("concurrently updated memory has %d history rows, want %d", len(hs), 1+writers*each/2)
	}
}

func testPing(t *testing.T, e *env) {
	if err := e.svc.Ping(t.Context()); err != nil {
		t.Errorf("ping: %v", err)
	}
}
