package isolation

import (
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// TestIndexedSearch runs searches on a service that searches through the
// in-process indexes serve loads (lexical and vector, with their own
// access predicate, internal/retrieval/filter) instead of the store, over
// REST and MCP. Lexical searches find exactly what the oracle says (a
// hidden memory's unique word finds nothing); hybrid and vector searches,
// which rank by meaning and so always return neighbours, return only
// memories the caller may see, and reveal nothing else.
func TestIndexedSearch(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	ix := indexed(t, st)
	w := newWorldWith(t, st, ix)
	// The indexes hold what the service wrote: searches run on them.
	if live := len(w.filter(func(e *entry) bool { return e.m.State != "deleted" })); ix.LexicalLen() != live || ix.Len() == 0 {
		t.Fatalf("the in-process indexes hold %d lexical entries and %d vectors; want the %d memories not deleted", ix.LexicalLen(), ix.Len(), live)
	}
	cs := w.connectAll(t)
	for _, p := range w.principals {
		if !can(p, auth.ScopeSearchRead) {
			continue
		}
		mcpSearch := func(what string, args map[string]any) []string {
			t.Helper()
			return w.searchMCP(t, cs, p, what, args)
		}
		wantIDs(t, p, "lexical search", w.search(t, p, map[string]any{"query": "canary", "mode": "lexical", "limit": 100}), w.live(p))
		wantIDs(t, p, "lexical search of every state", w.search(t, p, map[string]any{"query": "isolation canary", "mode": "lexical", "limit": 100,
			"filters": map[string]any{"state": everyState}}), w.visible(p))
		wantIDs(t, p, "lexical search_memory", mcpSearch("lexical search_memory", map[string]any{"query": "canary", "mode": "lexical", "limit": 100, "detail": "full"}), w.live(p))
		for _, ent := range w.entities() {
			got := w.search(t, p, map[string]any{"query": "canary note", "mode": "lexical", "limit": 100, "filters": map[string]any{"access_entity": ent, "state": everyState}})
			wantIDs(t, p, "lexical search in "+ent, got, w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.AccessEntity == ent }))
		}
		for _, e := range w.hidden(p) {
			if got := w.search(t, p, map[string]any{"query": e.marker, "mode": "lexical", "filters": map[string]any{"state": everyState}}); len(got) != 0 {
				t.Errorf("%s: lexical search for the unique word of hidden memory %s found %v", p.name, e.m.ID, got)
			}
			for _, mode := range []string{"hybrid", "vector"} {
				// Each hit is checked against the oracle by search.
				w.search(t, p, map[string]any{"query": e.marker, "mode": mode, "limit": 100, "filters": map[string]any{"state": everyState}})
				mcpSearch(mode+" search_memory for "+e.marker, map[string]any{"query": e.marker, "mode": mode, "limit": 100, "detail": "full",
					"filters": map[string]any{"state": everyState}})
			}
		}
	}
	w.allUnchanged(t, "searches through the in-process indexes")
}
