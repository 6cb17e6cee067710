package storetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// search runs q as p and fails the test on error.
func (e *env) search(p auth.Principal, q memory.SearchQuery) []memory.Hit {
	e.t.Helper()
	res, err := e.svc.Search(e.as(p), q, memory.ViaREST)
	hits := res.Hits
	if err != nil {
		e.t.Fatalf("search %q as %s: %v", q.Text, p.Subject, err)
	}
	return hits
}

func testSearchRanking(t *testing.T, e *env) {
	nm := names{}
	// scattered has every word many times, but never as the phrase.
	scattered := e.add(alice, memory.Input{Content: "Deployment checklist: green builds only, then deployment. " +
		"Blue labels mark the deployment owner; green means deployment approved; blue means deployment blocked."})
	phrase := e.add(alice, memory.Input{Content: "We ship the payments api with a blue green deployment and keep the old pool warm for an hour."})
	partial := e.add(alice, memory.Input{Content: "The green build badge is required before merging."})
	unrelated := e.add(alice, memory.Input{Content: "Prefer table-driven tests with t.Run subtests."})
	nm[scattered.ID], nm[phrase.ID], nm[partial.ID], nm[unrelated.ID] = "scattered", "phrase", "partial", "unrelated"

	hits := e.search(alice, memory.SearchQuery{Text: "blue green deployment"})
	got := hitIDs(hits)
	if len(got) < 3 || got[0] != phrase.ID {
		t.Fatalf("search \"blue green deployment\": got %v, want the exact phrase first", nm.of(got))
	}
	for _, id := range got {
		if id == unrelated.ID {
			t.Errorf("search matched a memory without any query word: %v", nm.of(got))
		}
	}
	for i, h := range hits {
		if h.Score <= 0 {
			t.Errorf("hit %d (%s) has score %v, want > 0", i, nm[h.Memory.ID], h.Score)
		}
		if i > 0 && h.Score > hits[i-1].Score {
			t.Errorf("scores not in descending order: %v then %v", hits[i-1].Score, h.Score)
		}
	}
	if hits[0].Score <= hits[1].Score {
		t.Errorf("phrase hit score %v does not exceed next hit's %v", hits[0].Score, hits[1].Score)
	}
	// The phrase wins whatever case and punctuation the query uses.
	if got := hitIDs(e.search(alice, memory.SearchQuery{Text: "Blue-Green   DEPLOYMENT"})); len(got) == 0 || got[0] != phrase.ID {
		t.Errorf("search \"Blue-Green DEPLOYMENT\": got %v, want the phrase first", nm.of(got))
	}
	// A memory with more of the query's words outranks one with fewer.
	two := e.add(alice, memory.Input{Content: "Integration tests that turn out flaky go to quarantine in the nightly job."})
	one := e.add(alice, memory.Input{Content: "Integration with the billing provider uses webhooks."})
	nm[two.ID], nm[one.ID] = "two words", "one word"
	got = hitIDs(e.search(alice, memory.SearchQuery{Text: "flaky integration"}))
	if len(got) < 2 || got[0] != two.ID || !contains(got, one.ID) {
		t.Errorf("search \"flaky integration\": got %v, want [two words, …, one word]", nm.of(got))
	}
	// Limit caps the hits.
	for i := range 12 {
		e.add(alice, memory.Input{Content: fmt.Sprintf("observability note %d: export traces over OTLP", i)})
	}
	if hits := e.search(alice, memory.SearchQuery{Text: "observability traces", Limit: 5}); len(hits) != 5 {
		t.Errorf("search with limit 5 returned %d hits", len(hits))
	}
	if hits := e.search(alice, memory.SearchQuery{Text: "observability"}); len(hits) != memory.DefaultHitLimit {
		t.Errorf("search with the default limit returned %d hits, want %d", len(hits), memory.DefaultHitLimit)
	}
	if hits := e.search(alice, memory.SearchQuery{Text: "kubernetes"}); len(hits) != 0 {
		t.Errorf("search for an absent word returned %d hits", len(hits))
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// testSearchFiltersBeforeLimit hides many strong matches from the caller
// (other users, another org, other categories, deleted) beside one weak
// visible match: the weak one must be returned, because access and filters
// apply before the limit.
func testSearchFiltersBeforeLimit(t *testing.T, e *env) {
	strong := "ingress timeout ingress timeout: the kubernetes ingress timeout is 60s, raise the ingress timeout for uploads"
	for i := range 50 {
		text := fmt.Sprintf("%s (case %d)", strong, i)
		switch i % 5 {
		case 0:
			e.add(bob, memory.Input{Content: text}) // bob's private memories
		case 1:
			e.add(eve, memory.Input{Content: text, Scope: "org"}) // another org, org-wide
		case 2:
			e.add(frank, memory.Input{Content: text, Scope: "team"}) // a team alice is not in
		case 3:
			e.add(alice, memory.Input{Content: text, Category: "runbook"}) // filtered out by category
		case 4:
			m := e.add(alice, memory.Input{Content: text, Category: "decision"})
			if _, err := e.svc.Delete(e.as(alice), m.ID); err != nil { // deleted
				t.Fatal(err)
			}
		}
	}
	weak := e.add(alice, memory.Input{Content: "Uploads through the ingress can hit a timeout.", Category: "decision"})
	hits := e.search(alice, memory.SearchQuery{Text: "kubernetes ingress timeout", Limit: 5,
		Filter: memory.Filter{Categories: []memory.Category{"decision"}}})
	if got := hitIDs(hits); len(got) != 1 || got[0] != weak.ID {
		t.Errorf("filtered search: got %d hits %v, want only the weak visible match %s", len(got), got, weak.ID)
	}
	// Without the category filter alice also sees her runbooks, but never
	// anything of bob, eve or frank.
	hits = e.search(alice, memory.SearchQuery{Text: "kubernetes ingress timeout", Limit: 100})
	for _, h := range hits {
		if h.Memory.CreatedBy != "alice" || h.Memory.OrgID != "acme" || h.Memory.State == memory.StateDeleted {
			t.Errorf("search returned a memory alice may not see: %s by %s in %s (%s)", h.Memory.ID, h.Memory.CreatedBy, h.Memory.OrgID, h.Memory.State)
		}
	}
	if len(hits) != 11 {
		t.Errorf("alice's unfiltered search: %d hits, want 11 (10 runbooks and the weak match)", len(hits))
	}
	// eve sees only her own org's.
	hits = e.search(eve, memory.SearchQuery{Text: "kubernetes ingress timeout", Limit: 100})
	if len(hits) != 10 {
		t.Errorf("eve's search: %d hits, want 10", len(hits))
	}
	for _, h := range hits {
		if h.Memory.OrgID != "globex" {
			t.Errorf("eve's search returned %s of org %s", h.Memory.ID, h.Memory.OrgID)
		}
	}
}

// testSearchSyntax feeds FTS and tsquery syntax as query text: no query may
// fail, and the words in it still match.
func testSearchSyntax(t *testing.T, e *env) {
	m := e.add(alice, memory.Input{Content: "Quote handling: the parser rejects unbalanced quotes and stray parentheses."})
	queries := []string{
		`"unbalanced`, `unbalanced"`, `parser AND`, `OR parser`, `NOT parser`, `parser NEAR quotes`,
		`NEAR(parser quotes)`, `parser*`, `^parser`, `content:parser`, `{content}: parser`, `parser - quotes`,
		`(((parser`, `parser)))`, `parser & quotes | !stray`, `'; DROP TABLE memories; --`, `parser:*`,
		`"" parser ""`, `parser + + quotes`, `\parser\`, `parser ~ 2`, `ünbalanced paréntheses`,
	}
	for _, q := range queries {
		res, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: q}, memory.ViaREST)
		hits := res.Hits
		if err != nil {
			t.Errorf("search %q: %v", q, err)
			continue
		}
		if strings.Contains(q, "parser") && (len(hits) != 1 || hits[0].Memory.ID != m.ID) {
			t.Errorf("search %q: %d hits, want the memory about the parser", q, len(hits))
		}
	}
	for _, q := range []string{"!!!", "* * *", `"`, "()"} {
		res, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: q}, memory.ViaREST)
		hits := res.Hits
		if err != nil || len(hits) != 0 {
			t.Errorf("search %q: %d hits, err %v; want none and no error", q, len(hits), err)
		}
	}
	// The store is intact afterwards.
	if got := e.get(alice, m.ID); got.Content != m.Content {
		t.Errorf("memory changed after hostile queries: %q", got.Content)
	}
}

// testSearchFollowsUpdates checks that the lexical index changes with the
// content in the same write.
func testSearchFollowsUpdates(t *testing.T, e *env) {
	m := e.add(alice, memory.Input{Content: "the cache uses memcached", Entity: "cache"})
	if _, err := e.svc.Update(e.as(alice), m.ID, memory.Patch{Content: ptr("the cache uses valkey"), Entity: ptr("kv")}); err != nil {
		t.Fatal(err)
	}
	if hits := e.search(alice, memory.SearchQuery{Text: "memcached"}); len(hits) != 0 {
		t.Errorf("search for the old word found %d hits", len(hits))
	}
	hits := e.search(alice, memory.SearchQuery{Text: "valkey"})
	if len(hits) != 1 || hits[0].Memory.ID != m.ID || hits[0].Memory.Content != "the cache uses valkey" {
		t.Errorf("search for the new word: %+v", hits)
	}
	// State changes keep the memory findable with a state filter.
	if _, err := e.svc.Transition(e.as(alice), m.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	if hits := e.search(alice, memory.SearchQuery{Text: "valkey"}); len(hits) != 1 {
		t.Errorf("archived memory: %d hits without a state filter, want 1 (only deleted is hidden)", len(hits))
	}
	archived := memory.Filter{States: []memory.State{memory.StateArchived}}
	if hits := e.search(alice, memory.SearchQuery{Text: "valkey", Filter: archived}); len(hits) != 1 {
		t.Errorf("archived memory: %d hits with state=archived, want 1", len(hits))
	}
}
