package httpapi_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestGraphRoutes drives every graph route once through HTTP: the shapes
// of the answers, query parameters, status codes, and errors that name the
// field.
func TestGraphRoutes(t *testing.T) {
	f := newFixture(t)
	tok := f.token("ann", "acme")
	web := f.create(tok, map[string]any{"content": "web calls the api", "scope": "org", "entity": "Web",
		"tags": map[string]any{"relation:calls": "api", "lang": "ts"}})
	api := f.create(tok, map[string]any{"content": "the api stores in postgres", "scope": "org", "entity": "api",
		"artifact_ref": "github.com/acme/api", "tags": map[string]any{"relation:depends_on": "postgres", "lang": "go"}})

	// Related memories.
	r := f.do("GET", "/api/v1/memories/"+web.ID+"/related?limit=5", tok, nil)
	var rel struct {
		Related []memory.RelatedMemory `json:"related"`
	}
	r.decode(t, &rel)
	if r.status != http.StatusOK || len(rel.Related) != 1 || rel.Related[0].Memory.ID != api.ID || !slices.Contains(rel.Related[0].Shared, "api") {
		t.Errorf("related: %d %s", r.status, r.body)
	}

	// Relate: an entity relation is a memory (201, Location), again 200.
	body := map[string]any{"type": "uses", "from": "API", "to": "Redis", "scope": "org", "note": "for sessions"}
	r = f.do("POST", "/api/v1/relations", tok, body)
	var created memory.Relation
	r.decode(t, &created)
	if r.status != http.StatusCreated || !created.Created || created.MemoryID == "" || r.header.Get("Location") != "/api/v1/memories/"+created.MemoryID {
		t.Fatalf("relate: %d %s (Location %q)", r.status, r.body, r.header.Get("Location"))
	}
	if r := f.do("POST", "/api/v1/relations", tok, body); r.status != http.StatusOK {
		t.Errorf("relate again: %d %s, want 200", r.status, r.body)
	}
	r = f.do("POST", "/api/v1/relations", tok, map[string]any{"type": "depends_on", "from_memory": web.ID, "to_memory": api.ID})
	if r.status != http.StatusCreated {
		t.Errorf("link memories: %d %s", r.status, r.body)
	}

	// Entities.
	r = f.do("GET", "/api/v1/entities?prefix=A&limit=10", tok, nil)
	var ents struct {
		Entities []memory.Entity `json:"entities"`
	}
	r.decode(t, &ents)
	var names []string
	for _, e := range ents.Entities {
		names = append(names, e.Name)
	}
	if r.status != http.StatusOK || !slices.Equal(names, []string{"api"}) || ents.Entities[0].Memories != 3 {
		t.Errorf("entities with prefix A: %d %s", r.status, r.body)
	}

	// Network, with a name that needs escaping.
	r = f.do("GET", "/api/v1/entities/"+url.PathEscape("github.com/acme/api")+"/network?depth=2&type=co_mention", tok, nil)
	var n memory.Network
	r.decode(t, &n)
	if r.status != http.StatusOK || n.Center.Name != "github.com/acme/api" || len(n.Nodes) == 0 {
		t.Errorf("network: %d %s", r.status, r.body)
	}
	for _, e := range n.Edges {
		if e.Type != memory.EdgeCoMention {
			t.Errorf("network of co-mentions has edge %+v", e)
		}
	}

	// Path.
	r = f.do("GET", "/api/v1/graph/path?from=web&to=Postgres&type=relation", tok, nil)
	var p memory.Path
	r.decode(t, &p)
	if r.status != http.StatusOK || !p.Found || p.Hops != 2 || p.Nodes[1].Name != "api" || p.Edges[1].Type != "relation:depends_on" {
		t.Errorf("path: %d %s", r.status, r.body)
	}

	// Aggregate, with the list filters.
	r = f.do("GET", "/api/v1/aggregate?by=entity&tag=lang", tok, nil)
	var agg struct {
		By      string          `json:"by"`
		Buckets []memory.Bucket `json:"buckets"`
	}
	r.decode(t, &agg)
	if r.status != http.StatusOK || agg.By != "entity" || len(agg.Buckets) != 2 {
		t.Errorf("aggregate: %d %s", r.status, r.body)
	}

	// Tag co-occurrence.
	r = f.do("GET", "/api/v1/tags/cooccurrence?tag=lang=go", tok, nil)
	var pairs struct {
		Pairs []memory.TagPair `json:"pairs"`
	}
	r.decode(t, &pairs)
	if r.status != http.StatusOK || pairs.Pairs == nil {
		t.Errorf("tag co-occurrence: %d %s", r.status, r.body)
	}

	// Errors name the field; unknown entities and memories are 404.
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		field        string
	}{
		{"GET", "/api/v1/memories/" + web.ID + "/related?limit=x", nil, 400, "limit"},
		{"GET", "/api/v1/memories/" + web.ID + "/related?limt=2", nil, 400, "limt"},
		{"GET", "/api/v1/memories/01HZZZZZZZZZZZZZZZZZZZZZZZ/related", nil, 404, ""},
		{"GET", "/api/v1/entities?kind=person", nil, 400, "kind"},
		{"GET", "/api/v1/entities/nowhere/network", nil, 404, ""},
		{"GET", "/api/v1/entities/api/network?depth=9", nil, 400, "depth"},
		{"GET", "/api/v1/entities/api/network?type=likes", nil, 400, "types"},
		{"GET", "/api/v1/graph/path?to=api", nil, 400, "from"},
		{"GET", "/api/v1/graph/path?from=api&to=web&max_depth=5", nil, 400, "max_depth"},
		{"GET", "/api/v1/aggregate", nil, 400, "by"},
		{"GET", "/api/v1/aggregate?by=colour", nil, 400, "by"},
		{"GET", "/api/v1/aggregate?by=entity&sort=x", nil, 400, "sort"},
		{"GET", "/api/v1/aggregate?by=entity&category=nope", nil, 400, "category"},
		{"GET", "/api/v1/tags/cooccurrence?limit=0x", nil, 400, "limit"},
		{"POST", "/api/v1/relations", map[string]any{"type": "likes", "from": "a", "to": "b"}, 400, "type"},
		{"POST", "/api/v1/relations", map[string]any{"type": "uses", "from": "a", "to": "b", "colour": "red"}, 400, "colour"},
		{"POST", "/api/v1/relations", map[string]any{"type": "uses", "from_memory": web.ID, "to_memory": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}, 404, ""},
	} {
		r := f.do(c.method, c.path, tok, c.body)
		if r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.body, c.status)
			continue
		}
		if c.field != "" {
			if _, field, msg := r.errorOf(t); field != c.field {
				t.Errorf("%s %s: error names field %q (%s), want %q", c.method, c.path, field, msg, c.field)
			}
		}
	}
	// The type filter lists the allowed values.
	r = f.do("GET", "/api/v1/entities/api/network?type=likes", tok, nil)
	if _, _, msg := r.errorOf(t); !strings.Contains(msg, "relation:depends_on") {
		t.Errorf("unknown edge type: %q does not list the types", msg)
	}

	// Scopes: reads need graph:read, relate graph:write and memories:write.
	reader := f.token("ann", "acme", auth.ScopeMemoriesRead, auth.ScopeGraphRead)
	if r := f.do("GET", "/api/v1/graph/path?from=web&to=api", reader, nil); r.status != http.StatusOK {
		t.Errorf("path with graph:read: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ token, method, path, scope string }{
		{f.token("ann", "acme", auth.ScopeMemoriesRead), "GET", "/api/v1/graph/path?from=web&to=api", auth.ScopeGraphRead},
		{f.token("ann", "acme", auth.ScopeGraphRead), "GET", "/api/v1/entities", auth.ScopeEntitiesRead},
		{f.token("ann", "acme", auth.ScopeGraphWrite), "POST", "/api/v1/relations", auth.ScopeMemoriesWrite},
		{f.token("ann", "acme", auth.ScopeMemoriesWrite), "POST", "/api/v1/relations", auth.ScopeGraphWrite},
	} {
		r := f.do(c.method, c.path, c.token, map[string]any{"type": "uses", "from": "x", "to": "y"})
		if code, _, msg := r.errorOf(t); r.status != http.StatusForbidden || code != "insufficient_scope" || !strings.Contains(msg, c.scope) {
			t.Errorf("%s %s without %s: %d %s", c.method, c.path, c.scope, r.status, r.body)
		}
	}

	// Another org sees none of it.
	other := f.token("bob", "globex")
	if r := f.do("GET", "/api/v1/entities/api/network", other, nil); r.status != http.StatusNotFound {
		t.Errorf("another org's network: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/api/v1/memories/"+web.ID+"/related", other, nil); r.status != http.StatusNotFound {
		t.Errorf("another org's related: %d %s", r.status, r.body)
	}
	r = f.do("GET", "/api/v1/entities", other, nil)
	if r.decode(t, &ents); r.status != http.StatusOK || len(ents.Entities) != 0 {
		t.Errorf("another org's entities: %d %s", r.status, r.body)
	}
}
