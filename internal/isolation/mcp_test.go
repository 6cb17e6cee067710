package isolation

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// mcpCase covers one tool of mcpserver.ToolScopes().
type mcpCase struct {
	// run checks the tool's isolation for every fixture principal, each
	// connected through its own client, on a fresh world.
	run func(t *testing.T, w *world, cs clients)
	// sample is a call p would be entitled to make if it held the tool's
	// scopes: TestMCPScopes makes it with a scope missing.
	sample func(w *world, p *principal) map[string]any
}

// mcpCases has one case per tool. TestMCP fails for a tool that has none.
var mcpCases = map[string]mcpCase{
	"add_memories":    {mcpAdd, func(*world, *principal) map[string]any { return addArgs(map[string]any{"content": "scope probe"}) }},
	"search_memory":   {mcpSearch, func(*world, *principal) map[string]any { return map[string]any{"query": "canary"} }},
	"list_memories":   {mcpList, func(*world, *principal) map[string]any { return map[string]any{} }},
	"get_memory":      {mcpGet, sampleID(nil)},
	"update_memory":   {mcpUpdate, sampleID(map[string]any{"content": "changed by a scope probe"})},
	"delete_memories": {mcpDelete, func(w *world, p *principal) map[string]any { return map[string]any{"ids": []string{sampleOwnID(w, p)}} }},
	"memory_history":  {mcpHistory, sampleID(nil)},
	"whoami":          {mcpWhoami, func(*world, *principal) map[string]any { return map[string]any{} }},
	// graph_test.go
	"related_memories":      {mcpRelated, sampleID(nil)},
	"entity_network":        {mcpNetwork, func(*world, *principal) map[string]any { return map[string]any{"entity": "org=acme"} }},
	"path_between_entities": {mcpPath, func(*world, *principal) map[string]any { return map[string]any{"from": "org=acme", "to": "svc-mk000q"} }},
	"aggregate":             {mcpAggregate, func(*world, *principal) map[string]any { return map[string]any{"by": "entity"} }},
	"tag_cooccurrence":      {mcpTagPairs, func(*world, *principal) map[string]any { return map[string]any{} }},
	"relate": {mcpRelate, func(*world, *principal) map[string]any {
		return map[string]any{"type": "uses", "from": "scope probe", "to": "scope target"}
	}},
}

func sampleOwnID(w *world, p *principal) string {
	for _, e := range w.live(p) {
		if e.m.State == memory.StateActive {
			return e.m.ID
		}
	}
	return ghostID
}

func sampleID(extra map[string]any) func(*world, *principal) map[string]any {
	return func(w *world, p *principal) map[string]any {
		args := map[string]any{"id": sampleOwnID(w, p)}
		maps.Copy(args, extra)
		return args
	}
}

func addArgs(items ...map[string]any) map[string]any {
	list := make([]any, len(items))
	for i, it := range items {
		list[i] = it
	}
	return map[string]any{"memories": list}
}

// clients holds each principal's client session.
type clients map[*principal]*mcp.ClientSession

// result is the outcome of one tool call: a tool result, or a protocol
// error (as for a missing scope over Streamable HTTP), and its whole
// answer as text for leak checks.
type result struct {
	res  *mcp.CallToolResult
	err  error
	text string // the text contents
	raw  []byte // everything the caller got
}

func (r result) failed() bool { return r.err != nil || r.res.IsError }

func (r result) message() string {
	if r.err != nil {
		return r.err.Error()
	}
	return r.text
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return result{err: err, raw: []byte(err.Error())}
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	raw, _ := json.Marshal(res)
	return result{res: res, text: strings.Join(parts, "\n"), raw: raw}
}

// decodeOK decodes a successful result's structured content into out.
func (r result) decodeOK(t *testing.T, who, tool string, out any) bool {
	t.Helper()
	if r.failed() {
		t.Errorf("%s: %s failed: %s", who, tool, r.message())
		return false
	}
	b, _ := json.Marshal(r.res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Errorf("%s: %s: decode %s: %v", who, tool, b, err)
		return false
	}
	return true
}

// TestMCP runs the case of every MCP tool; the principals' clients speak
// both Streamable HTTP protocol eras.
func TestMCP(t *testing.T) {
	t.Parallel()
	tools := mcpserver.ToolScopes()
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		if _, ok := mcpCases[name]; !ok {
			t.Errorf("tool %s has no case in the isolation suite: add one to mcpCases in internal/isolation/mcp_test.go", name)
		}
	}
	for name := range mcpCases {
		if _, ok := tools[name]; !ok {
			t.Errorf("mcpCases has a case for %s, which mcpserver.ToolScopes() no longer has", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		c, ok := mcpCases[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			c.run(t, w, w.connectAll(t))
			w.allUnchanged(t, "after the case of "+name)
		})
	}
}

// connectAll connects every principal, alternating the Streamable HTTP
// protocol eras (sessions for one, stateless for the next).
func (w *world) connectAll(t *testing.T) clients {
	t.Helper()
	cs := clients{}
	for i, p := range w.principals {
		cs[p] = w.connect(t, p, eras[i%len(eras)])
	}
	return cs
}

// TestMCPScopes calls every tool, as every principal, as it would be
// entitled to but for one scope the tool needs: each call is refused
// naming the scope, and nothing changes.
func TestMCPScopes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before := w.totals(t)
	n := 0
	for i, p := range w.principals {
		era := eras[i%len(eras)]
		for tool, scopes := range mcpserver.ToolScopes() {
			c, ok := mcpCases[tool]
			if !ok {
				continue // TestMCP names it
			}
			for _, drop := range scopes {
				q := newPrincipal(p.Subject, p.OrgID, slices.DeleteFunc(slices.Clone(p.Scopes), func(s string) bool { return s == drop }), p.Grants)
				w.issue(t, q)
				missing := q.Missing(scopes...)
				r := call(t, w.connect(t, q, era), tool, c.sample(w, p))
				n++
				if !r.failed() || !strings.Contains(r.message(), "missing scope "+missing) {
					t.Errorf("%s over %s: %s without %s: %s, want a refusal naming %s", q.name, era, tool, drop, r.raw, missing)
				}
				w.noLeak(t, q, tool+" without "+drop, r.raw)
			}
		}
	}
	w.allUnchanged(t, "tool calls refused for a missing scope")
	if after := w.totals(t); !maps.Equal(before, after) {
		t.Errorf("tool calls refused for a missing scope created memories: %v → %v", before, after)
	}
	t.Logf("%d tool calls with a missing scope refused", n)
}

// wantNotFound fails unless r is a tool error saying the memory was not
// found, worded as for ghostID (ids swapped) when p may not see it, and
// revealing nothing.
func (w *world) wantNotFound(t *testing.T, p *principal, what string, r, ghost result, id string) {
	t.Helper()
	switch {
	case !r.failed() || !strings.Contains(r.message(), "not found"):
		t.Errorf("%s: %s: %s, want a not-found tool error", p.name, what, r.raw)
	case r.err != nil:
		t.Errorf("%s: %s: protocol error %v, want a tool result with isError", p.name, what, r.err)
	case !p.sees(w.byID[id].m) && strings.ReplaceAll(r.message(), id, "ID") != strings.ReplaceAll(ghost.message(), ghostID, "ID"):
		t.Errorf("%s: %s: %q differs from the answer for a memory that does not exist (%q)", p.name, what, r.message(), ghost.message())
	}
	w.noLeak(t, p, what, r.raw, id)
}

// viewSameAsRecord checks a view (compact or full) a tool returned against the record.
func (w *world) viewSameAsRecord(t *testing.T, p *principal, what string, v mcpserver.MemoryView) {
	t.Helper()
	e, ok := w.byID[v.ID]
	switch {
	case !ok:
		t.Errorf("%s: %s returned memory %s, which the world does not know", p.name, what, v.ID)
	case !p.sees(e.m):
		t.Errorf("%s: %s returned memory %s of %s/%s, outside the caller's access", p.name, what, v.ID, e.m.OrgID, e.m.AccessEntity)
	case v.Content != e.m.Content || (v.AccessEntity != "" && v.AccessEntity != e.m.AccessEntity) || (v.State != "" && v.State != string(e.m.State)):
		t.Errorf("%s: %s returned memory %s as %s/%s %q; the store holds %s/%s %q", p.name, what, v.ID,
			v.AccessEntity, v.State, v.Content, e.m.AccessEntity, e.m.State, e.m.Content)
	}
}

func viewIDs(vs []mcpserver.MemoryView) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.ID)
	}
	slices.Sort(out)
	return out
}

func mcpAdd(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		ents := w.entities()
		var items []map[string]any
		for _, ent := range ents {
			items = append(items, map[string]any{"content": fmt.Sprintf("mcp probe by %s into %s", p.name, ent), "scope": entityScope(ent), "access_entity": ent})
		}
		r := call(t, cs[p], "add_memories", addArgs(items...))
		w.noLeak(t, p, "add_memories into every entity", r.raw)
		var out mcpserver.AddMemoriesOutput
		if r.err != nil || json.Unmarshal(mustJSON(r.res.StructuredContent), &out) != nil || len(out.Results) != len(ents) {
			t.Errorf("%s: add_memories into every entity: %s", p.name, r.raw)
			continue
		}
		for i, ent := range ents {
			res := out.Results[i]
			if writable(p, ent) {
				if res.Status != "created" {
					t.Errorf("%s: add_memories into %s: %+v, want created", p.name, ent, res)
					continue
				}
				e := w.add(t, res.ID, "")
				if e.m.OrgID != p.OrgID || e.m.AccessEntity != ent {
					t.Errorf("%s: add_memories into %s stored it in %s/%s", p.name, ent, e.m.OrgID, e.m.AccessEntity)
				}
				continue
			}
			if res.Status != "failed" || res.ID != "" || !strings.Contains(res.Error, "forbidden") {
				t.Errorf("%s: add_memories into %s, outside its grants: %+v, want failed as forbidden", p.name, ent, res)
			}
		}
		if !r.res.IsError {
			t.Errorf("%s: add_memories with refused items is not an error result", p.name)
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted adds account for %v", got, want)
	}
	// Content identical to memories the caller may not see makes new
	// memories, never "duplicates" of those.
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		hidden := w.filter(func(e *entry) bool { return !p.sees(e.m) && e.marker != "" })
		var items []map[string]any
		for _, e := range hidden {
			items = append(items, map[string]any{"content": e.m.Content})
		}
		r := call(t, cs[p], "add_memories", addArgs(items...))
		var out mcpserver.AddMemoriesOutput
		if !r.decodeOK(t, p.name, "add_memories with hidden memories' content", &out) {
			continue
		}
		for i, res := range out.Results {
			if res.Status != "created" || res.ID == hidden[i].m.ID {
				t.Errorf("%s: add_memories with the content of hidden %s: %+v, want a new memory", p.name, hidden[i].m.ID, res)
				continue
			}
			w.add(t, res.ID, "")
		}
		for _, e := range hidden {
			if strings.Contains(string(r.raw), e.m.ID) {
				t.Errorf("%s: add_memories with hidden memories' content reveals id %s", p.name, e.m.ID)
			}
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted adds account for %v", got, want)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// searchMCP calls search_memory as p and returns the results' ids, having
// checked that the answer leaks nothing and that every result is the
// record as p may see it (and passes each, when given).
func (w *world) searchMCP(t *testing.T, cs clients, p *principal, what string, args map[string]any, each ...func(mcpserver.MemoryView)) []string {
	t.Helper()
	r := call(t, cs[p], "search_memory", args)
	w.noLeak(t, p, what, r.raw)
	var out mcpserver.SearchOutput
	if !r.decodeOK(t, p.name, what, &out) {
		return nil
	}
	for _, v := range out.Results {
		w.viewSameAsRecord(t, p, what, v)
		for _, f := range each {
			f(v)
		}
	}
	return viewIDs(out.Results)
}

func mcpSearch(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeSearchRead) {
			continue
		}
		search := func(what string, args map[string]any) []string {
			t.Helper()
			return w.searchMCP(t, cs, p, what, args)
		}
		wantIDs(t, p, "search_memory", search("search_memory", map[string]any{"query": "canary", "limit": 100, "detail": "full"}), w.live(p))
		wantIDs(t, p, "search_memory of every state", search("search_memory of every state",
			map[string]any{"query": "isolation canary", "limit": 100, "detail": "full", "filters": map[string]any{"state": everyState}}), w.visible(p))
		for _, e := range w.hidden(p) {
			if got := search("search_memory for "+e.marker, map[string]any{"query": e.marker, "filters": map[string]any{"state": everyState}}); len(got) != 0 {
				t.Errorf("%s: search_memory for the unique word of hidden memory %s found %v", p.name, e.m.ID, got)
			}
		}
	}
}

func mcpList(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		list := func(what string, args map[string]any) []string {
			t.Helper()
			var ids []string
			for range 100 {
				r := call(t, cs[p], "list_memories", args)
				w.noLeak(t, p, what, r.raw)
				var out mcpserver.ListOutput
				if !r.decodeOK(t, p.name, what, &out) {
					return nil
				}
				for _, v := range out.Memories {
					w.viewSameAsRecord(t, p, what, v)
					ids = append(ids, v.ID)
				}
				if out.NextCursor == "" {
					slices.Sort(ids)
					return ids
				}
				args["cursor"] = out.NextCursor
			}
			t.Fatalf("%s: %s does not end", p.name, what)
			return nil
		}
		wantIDs(t, p, "list_memories", list("list_memories", map[string]any{"limit": 200, "detail": "full"}), w.live(p))
		wantIDs(t, p, "list_memories of every state, 7 a page", list("list_memories of every state",
			map[string]any{"limit": 7, "detail": "full", "filters": map[string]any{"state": everyState}}), w.visible(p))
		for _, e := range w.hidden(p) {
			if got := list("list_memories of entity "+e.m.Entity, map[string]any{"filters": map[string]any{"entity": e.m.Entity, "state": everyState}}); len(got) != 0 {
				t.Errorf("%s: list_memories of the entity of hidden memory %s returned %v", p.name, e.m.ID, got)
			}
		}
		for _, app := range []string{"globex-bot", "acme-portal", "ops-bot"} {
			got := list("list_memories of app "+app, map[string]any{"filters": map[string]any{"app": app, "state": everyState}})
			wantIDs(t, p, "list_memories of app "+app, got, w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.App == app }))
		}
	}
}

func mcpGet(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		ghost := call(t, cs[p], "get_memory", map[string]any{"id": ghostID})
		for _, e := range w.entries {
			r := call(t, cs[p], "get_memory", map[string]any{"id": e.m.ID})
			if p.sees(e.m) && e.m.State != memory.StateDeleted {
				var v mcpserver.MemoryView
				if r.decodeOK(t, p.name, "get_memory "+e.m.ID, &v) {
					w.viewSameAsRecord(t, p, "get_memory", v)
				}
				continue
			}
			w.wantNotFound(t, p, "get_memory "+e.m.ID, r, ghost, e.m.ID)
		}
	}
}

func mcpUpdate(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		patches := []map[string]any{
			{"content": "overwritten by " + p.name},
			{"scope": "user", "access_entity": p.UserEntity()},
			{"tags": map[string]any{"owned_by": p.name}},
		}
		withID := func(id string, patch map[string]any) map[string]any {
			args := maps.Clone(patch)
			args["id"] = id
			return args
		}
		ghost := call(t, cs[p], "update_memory", withID(ghostID, patches[0]))
		for _, e := range w.unreadable(p) {
			for i, patch := range patches {
				r := call(t, cs[p], "update_memory", withID(e.m.ID, patch))
				if i == 0 {
					w.wantNotFound(t, p, "update_memory "+e.m.ID, r, ghost, e.m.ID)
				} else if !r.failed() || !strings.Contains(r.message(), "not found") {
					t.Errorf("%s: update_memory %s %v: %s, want not found", p.name, e.m.ID, patch, r.raw)
				}
				w.noLeak(t, p, "update_memory "+e.m.ID, r.raw, e.m.ID)
				w.unchanged(t, e, p.name+" updating "+e.m.ID)
			}
		}
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
			r := call(t, cs[p], "update_memory", map[string]any{"id": target.m.ID, "scope": entityScope(ent), "access_entity": ent})
			if !r.failed() || !strings.Contains(r.message(), "forbidden") {
				t.Errorf("%s: update_memory moving %s into %s: %s, want a forbidden tool error", p.name, target.m.ID, ent, r.raw)
			}
			w.noLeak(t, p, "update_memory into "+ent, r.raw)
			w.unchanged(t, target, p.name+" moving "+target.m.ID+" into "+ent)
		}
		r := call(t, cs[p], "update_memory", map[string]any{"id": target.m.ID, "tags": map[string]any{"touched_by": p.name}})
		var v mcpserver.MemoryView
		if r.decodeOK(t, p.name, "update_memory of its own "+target.m.ID, &v) {
			w.refresh(t, target, 1)
		}
	}
}

func mcpDelete(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesDelete) {
			continue
		}
		targets := idsOf(w.unreadable(p))
		r := call(t, cs[p], "delete_memories", map[string]any{"ids": append(slices.Clone(targets), ghostID)})
		w.noLeak(t, p, "delete_memories", r.raw, targets...)
		var out mcpserver.DeleteOutput
		if r.err != nil || json.Unmarshal(mustJSON(r.res.StructuredContent), &out) != nil || len(out.Results) != len(targets)+1 || !r.res.IsError {
			t.Errorf("%s: delete_memories of memories it may not see: %s, want an error result item by item", p.name, r.raw)
		} else {
			ghost := out.Results[len(targets)]
			for i, res := range out.Results[:len(targets)] {
				hidden := !p.sees(w.byID[targets[i]].m)
				if res.ID != targets[i] || res.Status != "not_found" ||
					(hidden && strings.ReplaceAll(res.Error, res.ID, "ID") != strings.ReplaceAll(ghost.Error, ghostID, "ID")) {
					t.Errorf("%s: delete_memories %s: %+v, want not_found as for a memory that does not exist (%+v)", p.name, targets[i], res, ghost)
				}
			}
		}
		for _, id := range targets {
			w.unchanged(t, w.byID[id], p.name+" deleting "+id)
		}
	}
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesDelete) {
			continue
		}
		live := w.live(p)
		if len(live) == 0 {
			continue
		}
		e := live[len(live)-1]
		r := call(t, cs[p], "delete_memories", map[string]any{"ids": []string{e.m.ID}})
		var out mcpserver.DeleteOutput
		if r.decodeOK(t, p.name, "delete_memories of visible "+e.m.ID, &out) {
			w.refresh(t, e, 1)
		}
	}
}

func mcpHistory(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		ghost := call(t, cs[p], "memory_history", map[string]any{"id": ghostID, "detail": "full"})
		for _, e := range w.entries {
			r := call(t, cs[p], "memory_history", map[string]any{"id": e.m.ID, "detail": "full"})
			if !p.sees(e.m) {
				w.wantNotFound(t, p, "memory_history of "+e.m.ID, r, ghost, e.m.ID)
				continue
			}
			var out mcpserver.HistoryOutput
			if r.decodeOK(t, p.name, "memory_history of "+e.m.ID, &out) && len(out.Entries) != e.history {
				t.Errorf("%s: memory_history of visible %s: %d entries, want %d", p.name, e.m.ID, len(out.Entries), e.history)
			}
			w.noLeak(t, p, "memory_history of "+e.m.ID, r.raw)
		}
	}
}

func mcpWhoami(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		r := call(t, cs[p], "whoami", nil)
		var me mcpserver.WhoamiOutput
		if !r.decodeOK(t, p.name, "whoami", &me) {
			continue
		}
		if me.Sub != p.Subject || me.OrgID != p.OrgID || !slices.Equal(me.Scopes, p.Scopes) || !slices.Equal(me.Grants, p.Grants) {
			t.Errorf("%s: whoami says %+v", p.name, me)
		}
		w.noLeak(t, p, "whoami", r.raw)
	}
}

// TestMCPSessionBinding: an MCP session serves only the principal that
// opened it. Another principal naming it — of another org, or with the same
// subject in another org — is refused (403) on Streamable HTTP and on the
// legacy SSE transport, and learns nothing; the owner goes on.
func TestMCPSessionBinding(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ps := []*principal{w.principal("ada@acme"), w.principal("wendy@acme"), w.principal("ada@globex"), w.principal("mallory@globex")}
	for _, owner := range ps {
		for _, caller := range ps {
			want := http.StatusForbidden
			if caller == owner {
				want = http.StatusOK
			}
			if got := w.useSession(t, owner, caller); got != want {
				t.Errorf("Streamable HTTP: %s calling a tool on %s's session: %d, want %d", caller.name, owner.name, got, want)
			}
			if got := w.useSSESession(t, owner, caller); (got == http.StatusForbidden) != (want == http.StatusForbidden) || got/100 == 5 {
				t.Errorf("SSE: %s posting to %s's session: %d, want 403 only for another principal", caller.name, owner.name, got)
			}
		}
	}
	w.allUnchanged(t, "calls on other principals' sessions")
}

// useSSESession opens a legacy SSE stream as owner and posts a tool call to
// its session as caller, returning the status of the post.
func (w *world) useSSESession(t *testing.T, owner, caller *principal) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.url+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+owner.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatalf("%s: open SSE stream: %v", owner.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: open SSE stream: %d", owner.name, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	endpoint := ""
	for endpoint == "" && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(data, "sessionid=") {
			endpoint = data
		}
	}
	if endpoint == "" {
		t.Fatalf("%s: the SSE stream named no endpoint", owner.name)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	r := w.do(t, "POST", u.RequestURI(), caller.token,
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"isolation","version":"1"}}}`)
	w.noLeak(t, caller, "a post to "+owner.name+"'s SSE session", r.body)
	return r.status
}
