package isolation

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// restCase covers one route of httpapi.Routes().
type restCase struct {
	// run checks the route's isolation for every fixture principal on a
	// fresh world.
	run func(t *testing.T, w *world)
	// sample is a request p would be entitled to make if it held the
	// route's scopes: TestRESTScopes sends it with a scope missing.
	sample func(w *world, p *principal) (path string, body any)
}

// restCases has one case per route. TestREST fails for a route that has
// none: a new route is not done until its isolation is tested here.
var restCases = map[string]restCase{
	"POST /api/v1/memories":             {restCreate, sampleFixed("/api/v1/memories", map[string]any{"content": "scope probe"})},
	"GET /api/v1/memories":              {restList, sampleFixed("/api/v1/memories", nil)},
	"GET /api/v1/memories/{id}":         {restGet, sampleOwn("", nil)},
	"PATCH /api/v1/memories/{id}":       {restUpdate, sampleOwn("", map[string]any{"content": "changed by a scope probe"})},
	"DELETE /api/v1/memories/{id}":      {restDelete, sampleOwn("", nil)},
	"POST /api/v1/memories/{id}/state":  {restState, sampleOwn("/state", map[string]any{"action": "archive"})},
	"GET /api/v1/memories/{id}/history": {restHistory, sampleOwn("/history", nil)},
	"POST /api/v1/search":               {restSearch, sampleFixed("/api/v1/search", map[string]any{"query": "canary"})},
	"GET /api/v1/apps":                  {restApps, sampleFixed("/api/v1/apps", nil)},
	"GET /api/v1/stats":                 {restStats, sampleFixed("/api/v1/stats", nil)},
	// graph_test.go
	"GET /api/v1/memories/{id}/related":   {restRelated, sampleOwn("/related", nil)},
	"GET /api/v1/entities":                {restEntities, sampleFixed("/api/v1/entities", nil)},
	"GET /api/v1/entities/{name}/network": {restNetwork, sampleFixed("/api/v1/entities/org=acme/network", nil)},
	"GET /api/v1/graph/path":              {restPath, sampleFixed("/api/v1/graph/path?from=org%3Dacme&to=svc-mk000q", nil)},
	"GET /api/v1/aggregate":               {restAggregate, sampleFixed("/api/v1/aggregate?by=entity", nil)},
	"GET /api/v1/tags/cooccurrence":       {restTagPairs, sampleFixed("/api/v1/tags/cooccurrence", nil)},
	"POST /api/v1/relations":              {restRelate, sampleFixed("/api/v1/relations", map[string]any{"type": "uses", "from": "scope probe", "to": "scope target"})},
	// admin_test.go
	"POST /api/v1/admin/api-keys": {restCreateAPIKey,
		sampleFixed("/api/v1/admin/api-keys", map[string]any{"subject": "svc:scope-probe", "scopes": []string{auth.ScopeMemoriesRead}})},
	"GET /api/v1/admin/api-keys":         {restListAPIKeys, sampleFixed("/api/v1/admin/api-keys", nil)},
	"DELETE /api/v1/admin/api-keys/{id}": {restRevokeAPIKey, sampleFixed("/api/v1/admin/api-keys/"+ghostKeyID, nil)},
	"GET /api/v1/audit":                  {restAudit, sampleFixed("/api/v1/audit", nil)},
	// transfer_test.go
	"GET /api/v1/export":  {restExport, sampleFixed("/api/v1/export", nil)},
	"POST /api/v1/import": {restImport, sampleFixed("/api/v1/import", "{}")},
	// privacy_test.go
	"GET /api/v1/gdpr/subjects/{sub}/export": {restGDPRExport, sampleFixed("/api/v1/gdpr/subjects/ada/export", nil)},
	"DELETE /api/v1/gdpr/subjects/{sub}":     {restGDPRErase, sampleFixed("/api/v1/gdpr/subjects/ada", map[string]any{"reason": "scope probe"})},
	"GET /api/v1/gdpr/subjects/{sub}/check":  {restGDPRCheck, sampleFixed("/api/v1/gdpr/subjects/ada/check", nil)},
	"GET /api/v1/admin/retention":            {restGetRetention, sampleFixed("/api/v1/admin/retention", nil)},
	"PUT /api/v1/admin/retention":            {restSetRetention, sampleFixed("/api/v1/admin/retention", map[string]any{"purge_deleted_days": 1})},
}

func sampleFixed(path string, body any) func(*world, *principal) (string, any) {
	return func(*world, *principal) (string, any) { return path, body }
}

// sampleOwn targets an active memory p may see (a ghost id when there is
// none).
func sampleOwn(suffix string, body any) func(*world, *principal) (string, any) {
	return func(w *world, p *principal) (string, any) {
		id := ghostID
		for _, e := range w.live(p) {
			if e.m.State == memory.StateActive {
				id = e.m.ID
				break
			}
		}
		return "/api/v1/memories/" + id + suffix, body
	}
}

// ghostID is a well-formed id that no memory has.
const ghostID = "01JZZZZZZZZZZZZZZZZZZZZZZZ"

// TestREST runs the case of every REST route.
func TestREST(t *testing.T) {
	t.Parallel()
	routes := map[string]bool{}
	for _, rt := range httpapi.Routes() {
		key := rt.Method + " " + rt.Path
		routes[key] = true
		c, ok := restCases[key]
		if !ok {
			t.Errorf("route %s has no case in the isolation suite: add one to restCases in internal/isolation/rest_test.go", key)
			continue
		}
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			c.run(t, w)
			w.allUnchanged(t, "after the case of "+key)
		})
	}
	for key := range restCases {
		if !routes[key] {
			t.Errorf("restCases has a case for %s, which httpapi.Routes() no longer has", key)
		}
	}
}

// TestRESTScopes sends every route, as every principal, a request it would
// be entitled to make but for one scope the route needs: each is 403
// insufficient_scope naming that scope, and nothing changes.
func TestRESTScopes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before, keysBefore := w.totals(t), w.keyCounts(t)
	n := 0
	for _, rt := range httpapi.Routes() {
		key := rt.Method + " " + rt.Path
		c, ok := restCases[key]
		if !ok {
			continue // TestREST names it
		}
		for _, p := range w.principals {
			for _, drop := range rt.Scopes {
				q := newPrincipal(p.Subject, p.OrgID, slices.DeleteFunc(slices.Clone(p.Scopes), func(s string) bool { return s == drop }), p.Grants)
				w.issue(t, q)
				missing := q.Missing(rt.Scopes...)
				path, body := c.sample(w, p)
				r := w.do(t, rt.Method, path, q.token, body)
				n++
				code, msg := r.errorOf()
				if r.status != http.StatusForbidden || code != "insufficient_scope" || !strings.Contains(msg, `"`+missing+`"`) {
					t.Errorf("%s %s without %s: %d %s, want 403 insufficient_scope naming %q", q.name, key, drop, r.status, r.body, missing)
				}
				w.noLeak(t, q, key+" without "+drop, r.body)
			}
		}
	}
	w.allUnchanged(t, "requests refused for a missing scope")
	if after := w.totals(t); !maps.Equal(before, after) {
		t.Errorf("requests refused for a missing scope created memories: %v → %v", before, after)
	}
	if after := w.keyCounts(t); !maps.Equal(keysBefore, after) {
		t.Errorf("requests refused for a missing scope made API keys: %v → %v", keysBefore, after)
	}
	t.Logf("%d requests with a missing scope refused", n)
}

// totals counts the memories of each org in the store, in every state.
func (w *world) totals(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, org := range []string{"acme", "globex"} {
		st, err := w.store.Stats(t.Context(), memory.Access{OrgID: org, Prefixes: []string{"user:", "team:", "project:", "org:"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range st.ByState {
			out[org] += n
		}
	}
	return out
}

// recorded counts the memories of each org the world recorded.
func (w *world) recorded() map[string]int {
	out := map[string]int{}
	for _, e := range w.entries {
		out[e.m.OrgID]++
	}
	for org, n := range w.uncounted {
		out[org] += n
	}
	return out
}

func can(p *principal, scope string) bool { return p.HasScope(scope) }

// want404 fails unless r is 404 not_found and reveals nothing; for a
// memory the caller may not see, the answer must also be the one for a
// memory that does not exist (ghostID), ids swapped. (A deleted memory the
// caller may see can say so: the caller lists it with state=deleted.)
func (w *world) want404(t *testing.T, p *principal, what string, r, ghost response, id string) {
	t.Helper()
	code, msg := r.errorOf()
	gcode, gmsg := ghost.errorOf()
	if r.status != http.StatusNotFound || code != "not_found" {
		t.Errorf("%s: %s: %d %.300s, want 404 not_found", p.name, what, r.status, r.body)
	} else if e := w.byID[id]; e != nil && !p.sees(e.m) && strings.ReplaceAll(msg, id, "ID") != strings.ReplaceAll(gmsg, ghostID, "ID") || r.status != ghost.status || code != gcode {
		t.Errorf("%s: %s: the answer %q differs from the one for a memory that does not exist (%q)", p.name, what, msg, gmsg)
	}
	w.noLeak(t, p, what, r.body, id)
}

// readable are the memories p may not read by id: hidden ones, and deleted
// ones it may see.
func (w *world) unreadable(p *principal) []*entry {
	return w.filter(func(e *entry) bool { return !p.sees(e.m) || e.m.State == memory.StateDeleted })
}

func restCreate(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		// Into every entity of both orgs: only those inside the caller's
		// access are written, in the caller's org.
		for _, ent := range w.entities() {
			r := w.do(t, "POST", "/api/v1/memories", p.token, map[string]any{
				"content": fmt.Sprintf("create probe by %s into %s", p.name, ent), "scope": entityScope(ent), "access_entity": ent,
			})
			if writable(p, ent) {
				var m memory.Memory
				r.decode(t, &m)
				if r.status != http.StatusCreated || m.OrgID != p.OrgID || m.AccessEntity != ent {
					t.Errorf("%s: create into %s: %d %s, want 201 in org %s", p.name, ent, r.status, r.body, p.OrgID)
					continue
				}
				w.add(t, m.ID, "")
				continue
			}
			if code, _ := r.errorOf(); r.status != http.StatusForbidden || code != "forbidden" {
				t.Errorf("%s: create into %s, outside its grants: %d %s, want 403 forbidden", p.name, ent, r.status, r.body)
			}
			w.noLeak(t, p, "create into "+ent, r.body)
		}
		// There is no way to name another org.
		other := map[string]string{"acme": "globex", "globex": "acme"}[p.OrgID]
		r := w.do(t, "POST", "/api/v1/memories", p.token, map[string]any{"content": "smuggled by " + p.name, "org_id": other, "scope": "org", "access_entity": "org:" + other})
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"org_id"`) {
			t.Errorf("%s: create with org_id %s: %d %s, want 400 naming org_id", p.name, other, r.status, r.body)
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted creates account for %v", got, want)
	}

	// An idempotency key used elsewhere never returns that memory: in
	// another org the key is free, in the same org it is a conflict that
	// shows nothing of the memory.
	used := map[string]bool{} // org + " " + key
	for i, s := range seeds {
		if i%3 == 0 {
			used[s.org+" "+idemKey(i)] = true
		}
	}
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		for i, s := range seeds {
			if i%3 != 0 {
				continue
			}
			e := w.entries[i]
			if p.sees(e.m) {
				continue
			}
			key := idemKey(i)
			r := w.do(t, "POST", "/api/v1/memories", p.token, map[string]any{"content": "idempotency probe by " + p.name + " " + key}, "Idempotency-Key", key)
			w.noLeak(t, p, "create with the idempotency key of "+e.m.ID, r.body)
			taken := used[p.OrgID+" "+key]
			switch {
			case r.status == http.StatusCreated && !taken:
				var m memory.Memory
				r.decode(t, &m)
				w.add(t, m.ID, "")
				used[p.OrgID+" "+key] = true
			case r.status == http.StatusConflict && taken:
			default:
				t.Errorf("%s: create with the idempotency key of %s's memory %s in %s: %d %s, want 201 when the key is free in %s, 409 when it is taken",
					p.name, s.author, e.m.ID, s.org, r.status, r.body, p.OrgID)
			}
		}
	}

	// Content identical to a memory the caller may not see is a new
	// memory, never a "duplicate" answered with the other one. (Last: the
	// new memories hold the others' unique words.)
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		for _, e := range w.hidden(p) {
			if e.marker == "" {
				continue
			}
			r := w.do(t, "POST", "/api/v1/memories", p.token, map[string]any{"content": e.m.Content})
			var m memory.Memory
			r.decode(t, &m)
			if r.status != http.StatusCreated || m.ID == e.m.ID || strings.Contains(string(r.body), e.m.ID) || m.AccessEntity != p.UserEntity() || m.OrgID != p.OrgID {
				t.Errorf("%s: create with the content of hidden memory %s: %d %s, want 201 with a new memory of its own", p.name, e.m.ID, r.status, r.body)
				continue
			}
			w.add(t, m.ID, "")
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted creates account for %v", got, want)
	}
}

// listAll pages through GET /api/v1/memories with query q as p and returns
// the ids, checking every page for leaks and every memory against the
// record.
func (w *world) listAll(t *testing.T, p *principal, q url.Values, limit int) []string {
	t.Helper()
	q.Set("limit", fmt.Sprint(limit))
	var ids []string
	for range 1000 {
		r := w.do(t, "GET", "/api/v1/memories?"+q.Encode(), p.token, nil)
		if r.status != http.StatusOK {
			t.Fatalf("%s: list %s: %d %s", p.name, q.Encode(), r.status, r.body)
		}
		w.noLeak(t, p, "list "+q.Encode(), r.body)
		var page memory.Page
		r.decode(t, &page)
		for _, m := range page.Memories {
			ids = append(ids, m.ID)
			w.sameAsRecord(t, p, "list", m)
		}
		if page.NextCursor == "" {
			slices.Sort(ids)
			return ids
		}
		q.Set("cursor", page.NextCursor)
	}
	t.Fatalf("%s: list %s does not end", p.name, q.Encode())
	return nil
}

// sameAsRecord checks a memory an answer returned against the record: it
// exists, p may see it, and it says what the store holds.
func (w *world) sameAsRecord(t *testing.T, p *principal, what string, m memory.Memory) {
	t.Helper()
	e, ok := w.byID[m.ID]
	switch {
	case !ok:
		t.Errorf("%s: %s returned memory %s, which the world does not know", p.name, what, m.ID)
	case !p.sees(e.m):
		t.Errorf("%s: %s returned memory %s of %s/%s, outside the caller's access", p.name, what, m.ID, e.m.OrgID, e.m.AccessEntity)
	case m.Content != e.m.Content || m.OrgID != e.m.OrgID || m.AccessEntity != e.m.AccessEntity || m.State != e.m.State:
		t.Errorf("%s: %s returned memory %s as %s/%s/%s %q; the store holds %s/%s/%s %q", p.name, what, m.ID,
			m.OrgID, m.AccessEntity, m.State, m.Content, e.m.OrgID, e.m.AccessEntity, e.m.State, e.m.Content)
	}
}

var everyState = []string{"active", "paused", "archived", "deleted"}

func wantIDs(t *testing.T, p *principal, what string, got []string, want []*entry) {
	t.Helper()
	if w := idsOf(want); !slices.Equal(got, w) {
		t.Errorf("%s: %s returned %d memories %v, the oracle says %d %v", p.name, what, len(got), got, len(w), w)
	}
}

func restList(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		wantIDs(t, p, "list", w.listAll(t, p, url.Values{}, 200), w.live(p))
		wantIDs(t, p, "list of every state, 7 a page", w.listAll(t, p, url.Values{"state": everyState}, 7), w.visible(p))
		for _, ent := range w.entities() {
			got := w.listAll(t, p, url.Values{"state": everyState, "access_entity": {ent}}, 200)
			wantIDs(t, p, "list of access_entity "+ent, got, w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.AccessEntity == ent }))
		}
		apps := map[string]bool{}
		for _, e := range w.entries {
			apps[e.m.App] = true
		}
		for app := range apps {
			if app == "" {
				continue
			}
			got := w.listAll(t, p, url.Values{"state": everyState, "app": {app}}, 200)
			wantIDs(t, p, "list of app "+app, got, w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.App == app }))
		}
		for _, e := range w.hidden(p) {
			if e.m.Entity == "" {
				continue
			}
			got := w.listAll(t, p, url.Values{"state": everyState, "entity": {e.m.Entity}}, 200)
			if len(got) != 0 {
				t.Errorf("%s: list of the entity of hidden memory %s returned %v", p.name, e.m.ID, got)
			}
		}
	}
	// A cursor is a position, not a permission: another caller's cursor
	// pages through the replayer's own memories.
	ada := w.principal("ada@acme")
	r := w.do(t, "GET", "/api/v1/memories?limit=2&state=active&state=paused&state=archived&state=deleted", ada.token, nil)
	var page memory.Page
	r.decode(t, &page)
	if page.NextCursor == "" {
		t.Fatalf("ada@acme has one page only: %s", r.body)
	}
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		got := w.listAll(t, p, url.Values{"state": everyState, "cursor": {page.NextCursor}}, 200)
		for _, id := range got {
			if !p.sees(w.byID[id].m) {
				t.Errorf("%s: list with ada@acme's cursor returned hidden memory %s", p.name, id)
			}
		}
	}
}

func restGet(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		ghost := w.do(t, "GET", "/api/v1/memories/"+ghostID, p.token, nil)
		for _, e := range w.entries {
			r := w.do(t, "GET", "/api/v1/memories/"+e.m.ID, p.token, nil)
			if p.sees(e.m) && e.m.State != memory.StateDeleted {
				var m memory.Memory
				r.decode(t, &m)
				if r.status != http.StatusOK {
					t.Errorf("%s: get visible memory %s: %d %s", p.name, e.m.ID, r.status, r.body)
				}
				w.sameAsRecord(t, p, "get", m)
				continue
			}
			w.want404(t, p, "get "+e.m.ID, r, ghost, e.m.ID)
		}
		junks := []string{"x' OR '1'='1", "%", "*", "_", "01JZZZZZZZZZZZZZZZZZZZZZZ_"}
		if h := w.hidden(p); len(h) > 0 {
			junks = append(junks, strings.ToLower(h[0].m.ID), " "+h[0].m.ID)
		}
		for _, junk := range junks {
			r := w.do(t, "GET", "/api/v1/memories/"+url.PathEscape(junk), p.token, nil)
			if r.status != http.StatusNotFound {
				t.Errorf("%s: get %q: %d %s, want 404", p.name, junk, r.status, r.body)
			}
			w.noLeak(t, p, "get "+junk, r.body, strings.TrimSpace(junk))
		}
	}
}

func restUpdate(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		patches := []map[string]any{
			{"content": "overwritten by " + p.name},
			{"scope": "user", "access_entity": p.UserEntity()}, // take it
			{"tags": map[string]any{"owned_by": p.name}},
		}
		ghost := w.do(t, "PATCH", "/api/v1/memories/"+ghostID, p.token, patches[0])
		for _, e := range w.unreadable(p) {
			for _, body := range patches {
				r := w.do(t, "PATCH", "/api/v1/memories/"+e.m.ID, p.token, body)
				if r.status == http.StatusForbidden {
					w.noLeak(t, p, "patch "+e.m.ID, r.body, e.m.ID)
				} else if _, ok := body["content"]; ok {
					w.want404(t, p, "patch "+e.m.ID, r, ghost, e.m.ID)
				} else if r.status != http.StatusNotFound {
					t.Errorf("%s: patch %s %v: %d %s, want 404 or 403", p.name, e.m.ID, body, r.status, r.body)
				}
				w.unchanged(t, e, p.name+" patching "+e.m.ID)
			}
		}
		// A memory the caller may change cannot be moved out of its reach.
		var target *entry
		for _, e := range w.live(p) {
			if e.m.State != memory.StateArchived {
				target = e
				break
			}
		}
		if target == nil {
			continue
		}
		for _, ent := range w.entities() {
			if writable(p, ent) {
				continue
			}
			r := w.do(t, "PATCH", "/api/v1/memories/"+target.m.ID, p.token, map[string]any{"scope": entityScope(ent), "access_entity": ent})
			if code, _ := r.errorOf(); r.status != http.StatusForbidden || code != "forbidden" {
				t.Errorf("%s: move %s into %s: %d %s, want 403 forbidden", p.name, target.m.ID, ent, r.status, r.body)
			}
			w.noLeak(t, p, "move into "+ent, r.body)
			w.unchanged(t, target, p.name+" moving "+target.m.ID+" into "+ent)
		}
		// And it can change it: the refusals above are not a broken route.
		r := w.do(t, "PATCH", "/api/v1/memories/"+target.m.ID, p.token, map[string]any{"tags": map[string]any{"touched_by": p.name}})
		if r.status != http.StatusOK {
			t.Errorf("%s: patch its own %s: %d %s", p.name, target.m.ID, r.status, r.body)
			continue
		}
		w.refresh(t, target, 1)
	}
}

func restDelete(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesDelete) {
			continue
		}
		ghost := w.do(t, "DELETE", "/api/v1/memories/"+ghostID, p.token, nil)
		for _, e := range w.unreadable(p) {
			r := w.do(t, "DELETE", "/api/v1/memories/"+e.m.ID, p.token, nil)
			w.want404(t, p, "delete "+e.m.ID, r, ghost, e.m.ID)
			w.unchanged(t, e, p.name+" deleting "+e.m.ID)
		}
	}
	// Each caller can delete a memory it may see.
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesDelete) {
			continue
		}
		live := w.live(p)
		if len(live) == 0 {
			continue
		}
		e := live[len(live)-1]
		if r := w.do(t, "DELETE", "/api/v1/memories/"+e.m.ID, p.token, nil); r.status != http.StatusOK {
			t.Errorf("%s: delete visible %s: %d %s", p.name, e.m.ID, r.status, r.body)
			continue
		}
		w.refresh(t, e, 1)
	}
}

func restState(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		for _, action := range memory.Actions {
			body := map[string]any{"action": action}
			ghost := w.do(t, "POST", "/api/v1/memories/"+ghostID+"/state", p.token, body)
			for _, e := range w.unreadable(p) {
				r := w.do(t, "POST", "/api/v1/memories/"+e.m.ID+"/state", p.token, body)
				w.want404(t, p, fmt.Sprintf("%s %s", action, e.m.ID), r, ghost, e.m.ID)
				w.unchanged(t, e, fmt.Sprintf("%s: %s %s", p.name, action, e.m.ID))
			}
		}
		for _, e := range w.live(p) {
			if e.m.State != memory.StateActive {
				continue
			}
			for _, action := range []string{"pause", "restore"} {
				if r := w.do(t, "POST", "/api/v1/memories/"+e.m.ID+"/state", p.token, map[string]any{"action": action}); r.status != http.StatusOK {
					t.Errorf("%s: %s visible %s: %d %s", p.name, action, e.m.ID, r.status, r.body)
				}
			}
			w.refresh(t, e, 2)
			break
		}
	}
}

func restHistory(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		ghost := w.do(t, "GET", "/api/v1/memories/"+ghostID+"/history", p.token, nil)
		for _, e := range w.entries {
			r := w.do(t, "GET", "/api/v1/memories/"+e.m.ID+"/history", p.token, nil)
			if !p.sees(e.m) {
				w.want404(t, p, "history of "+e.m.ID, r, ghost, e.m.ID)
				continue
			}
			var h struct {
				History []memory.HistoryEntry `json:"history"`
			}
			r.decode(t, &h)
			if r.status != http.StatusOK || len(h.History) != e.history {
				t.Errorf("%s: history of visible %s: %d with %d entries, want 200 with %d", p.name, e.m.ID, r.status, len(h.History), e.history)
			}
			for _, x := range h.History {
				if x.OrgID != p.OrgID || x.MemoryID != e.m.ID {
					t.Errorf("%s: history of %s holds an entry of %s/%s", p.name, e.m.ID, x.OrgID, x.MemoryID)
				}
			}
			w.noLeak(t, p, "history of "+e.m.ID, r.body)
		}
	}
}

func (w *world) search(t *testing.T, p *principal, body map[string]any) []string {
	t.Helper()
	r := w.do(t, "POST", "/api/v1/search", p.token, body)
	if r.status != http.StatusOK {
		t.Fatalf("%s: search %v: %d %s", p.name, body, r.status, r.body)
	}
	w.noLeak(t, p, fmt.Sprintf("search %v", body), r.body)
	var res struct {
		Hits []memory.Hit `json:"hits"`
	}
	r.decode(t, &res)
	ids := []string{}
	for _, h := range res.Hits {
		ids = append(ids, h.Memory.ID)
		w.sameAsRecord(t, p, "search", h.Memory)
	}
	slices.Sort(ids)
	return ids
}

func restSearch(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeSearchRead) {
			continue
		}
		wantIDs(t, p, "search", w.search(t, p, map[string]any{"query": "canary", "limit": 100}), w.live(p))
		wantIDs(t, p, "search of every state", w.search(t, p, map[string]any{"query": "isolation canary", "limit": 100,
			"filters": map[string]any{"state": everyState}}), w.visible(p))
		for _, ent := range w.entities() {
			got := w.search(t, p, map[string]any{"query": "canary note", "limit": 100, "filters": map[string]any{"access_entity": ent, "state": everyState}})
			wantIDs(t, p, "search in "+ent, got, w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.AccessEntity == ent }))
		}
		for _, e := range w.hidden(p) {
			if got := w.search(t, p, map[string]any{"query": e.marker, "filters": map[string]any{"state": everyState}}); len(got) != 0 {
				t.Errorf("%s: search for the unique word of hidden memory %s found %v", p.name, e.m.ID, got)
			}
		}
	}
}

func restApps(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeAppsRead) {
			continue
		}
		r := w.do(t, "GET", "/api/v1/apps", p.token, nil)
		var res struct {
			Apps []memory.AppCount `json:"apps"`
		}
		r.decode(t, &res)
		got := map[string]int{}
		for _, a := range res.Apps {
			got[a.App] = a.Memories
		}
		want := map[string]int{}
		for _, e := range w.live(p) {
			if e.m.App != "" {
				want[e.m.App]++
			}
		}
		if r.status != http.StatusOK || !maps.Equal(got, want) {
			t.Errorf("%s: apps: %d %v, the oracle says %v", p.name, r.status, got, want)
		}
	}
}

func restStats(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeStatsRead) {
			continue
		}
		r := w.do(t, "GET", "/api/v1/stats", p.token, nil)
		var got memory.Stats
		r.decode(t, &got)
		want := memory.Stats{ByState: map[string]int{}, ByCategory: map[string]int{}, ByScope: map[string]int{}}
		for _, e := range w.visible(p) {
			want.ByState[string(e.m.State)]++
			if e.m.State == memory.StateDeleted {
				continue
			}
			want.Total++
			want.ByScope[string(e.m.Scope)]++
			if e.m.Category != "" {
				want.ByCategory[string(e.m.Category)]++
			}
		}
		if r.status != http.StatusOK || got.Total != want.Total || !maps.Equal(got.ByState, want.ByState) ||
			!maps.Equal(got.ByScope, want.ByScope) || !maps.Equal(got.ByCategory, want.ByCategory) {
			t.Errorf("%s: stats: %d %+v, the oracle says %+v", p.name, r.status, got, want)
		}
	}
}
