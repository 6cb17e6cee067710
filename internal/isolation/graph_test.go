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
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// The entity graph's routes and tools. Every seeded memory names its own
// entity, svc-<marker>, and carries the tags seed=<marker> and org=<org>:
// a live (active or paused) memory puts those names into its org's graph,
// and the tag org=<org> joins every memory of an org to every other.
// A name holding a marker is a leak wherever the caller may not see its
// memory (noLeak checks every answer for markers), so these cases check
// that entities, edges, weights, paths, related memories, aggregates and
// tag pairs come only from memories the caller may see.

// ghostEntity is an entity no memory names; answers about it are what
// answers about an invisible entity must look like.
const ghostEntity = "svc-zz999q"

func entityOf(e *entry) string { return "svc-" + e.marker }

// graphLive are the seeded memories p may see that are in the graph.
func (w *world) graphLive(p *principal) []*entry {
	return w.filter(func(e *entry) bool { return e.marker != "" && p.sees(e.m) && memory.Live(e.m.State) })
}

// graphNames are the entity names p's graph holds.
func (w *world) graphNames(p *principal) map[string]int {
	names := map[string]int{}
	for _, e := range w.graphLive(p) {
		names[entityOf(e)]++
		names["seed="+e.marker]++
		names["org="+e.m.OrgID]++
	}
	return names
}

// sameAnswer fails unless r and ghost are the same 404, with name and
// ghostName swapped.
func sameAnswer(t *testing.T, p *principal, what string, r, ghost response, name, ghostName string) {
	t.Helper()
	code, msg := r.errorOf()
	gcode, gmsg := ghost.errorOf()
	swap := strings.NewReplacer(name, "NAME", ghostName, "NAME")
	if r.status != http.StatusNotFound || code != "not_found" || r.status != ghost.status || code != gcode ||
		swap.Replace(msg) != swap.Replace(gmsg) {
		t.Errorf("%s: %s: %d %q, want the answer for an entity that does not exist: %d %q", p.name, what, r.status, msg, ghost.status, gmsg)
	}
}

func restRelated(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		ghost := w.do(t, "GET", "/api/v1/memories/"+ghostID+"/related", p.token, nil)
		live := w.graphLive(p)
		for _, e := range w.entries {
			r := w.do(t, "GET", "/api/v1/memories/"+e.m.ID+"/related?limit=100", p.token, nil)
			if !p.sees(e.m) || e.m.State == memory.StateDeleted {
				w.want404(t, p, "related to "+e.m.ID, r, ghost, e.m.ID)
				continue
			}
			w.noLeak(t, p, "related to "+e.m.ID, r.body)
			var res struct {
				Related []memory.RelatedMemory `json:"related"`
			}
			r.decode(t, &res)
			var got []string
			for _, x := range res.Related {
				got = append(got, x.Memory.ID)
				w.sameAsRecord(t, p, "related", x.Memory)
			}
			// A live memory shares the tag org=<org> with every other live
			// one it may see; an archived one is in no graph.
			var want []*entry
			if memory.Live(e.m.State) {
				want = slices.DeleteFunc(slices.Clone(live), func(x *entry) bool { return x == e })
			}
			slices.Sort(got)
			if r.status != http.StatusOK || !slices.Equal(got, idsOf(want)) {
				t.Errorf("%s: related to %s (%s): %d %v, the oracle says %v", p.name, e.m.ID, e.m.State, r.status, got, idsOf(want))
			}
		}
	}
}

func restEntities(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeEntitiesRead) {
			continue
		}
		for _, q := range []string{"limit=500", "prefix=svc-&limit=500", "kind=tag&limit=500"} {
			r := w.do(t, "GET", "/api/v1/entities?"+q, p.token, nil)
			w.noLeak(t, p, "entities "+q, r.body)
			var res struct {
				Entities []memory.Entity `json:"entities"`
			}
			r.decode(t, &res)
			got := map[string]int{}
			for _, e := range res.Entities {
				got[e.Name] = e.Memories
			}
			want := w.graphNames(p)
			maps.DeleteFunc(want, func(name string, _ int) bool {
				isTag := !strings.HasPrefix(name, "svc-")
				return (q == "prefix=svc-&limit=500" && isTag) || (q == "kind=tag&limit=500" && !isTag)
			})
			if r.status != http.StatusOK || !maps.Equal(got, want) {
				t.Errorf("%s: entities %s: %d %v, the oracle says %v", p.name, q, r.status, got, want)
			}
		}
	}
}

func restNetwork(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		ghost := w.do(t, "GET", "/api/v1/entities/"+ghostEntity+"/network", p.token, nil)
		names := w.graphNames(p)
		for _, e := range w.filter(func(e *entry) bool { return e.marker != "" }) {
			name := entityOf(e)
			r := w.do(t, "GET", "/api/v1/entities/"+name+"/network?depth=3&limit=200", p.token, nil)
			w.noLeak(t, p, "network of "+name, r.body)
			if names[name] == 0 {
				sameAnswer(t, p, "network of "+name, r, ghost, name, ghostEntity)
				continue
			}
			var n memory.Network
			r.decode(t, &n)
			got := []string{}
			for _, x := range n.Nodes {
				got = append(got, x.Name)
			}
			// Within 3 hops (svc- → org=<org> → svc-): everything p's graph
			// holds.
			want := slices.DeleteFunc(slices.Sorted(maps.Keys(names)), func(s string) bool { return s == name })
			slices.Sort(got)
			if r.status != http.StatusOK || n.Center.Name != name || !slices.Equal(got, want) {
				t.Errorf("%s: network of %s: %d nodes %v, the oracle says %v", p.name, name, r.status, got, want)
			}
			for _, edge := range n.Edges {
				if names[edge.From] == 0 || names[edge.To] == 0 || edge.Weight > float64(len(w.graphLive(p))) {
					t.Errorf("%s: network of %s has edge %+v outside its graph", p.name, name, edge)
				}
			}
		}
	}
}

func restPath(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		names := w.graphNames(p)
		live := w.graphLive(p)
		anchor := ghostEntity
		if len(live) > 0 {
			anchor = entityOf(live[0])
		}
		for _, e := range w.filter(func(e *entry) bool { return e.marker != "" }) {
			name := entityOf(e)
			for _, q := range []struct{ from, to, ghostFrom, ghostTo string }{
				{anchor, name, anchor, ghostEntity},
				{name, anchor, ghostEntity, anchor},
			} {
				path := "/api/v1/graph/path?" + url.Values{"from": {q.from}, "to": {q.to}}.Encode()
				r := w.do(t, "GET", path, p.token, nil)
				w.noLeak(t, p, "path "+q.from+" → "+q.to, r.body)
				if names[name] == 0 || names[anchor] == 0 {
					ghost := w.do(t, "GET", "/api/v1/graph/path?"+url.Values{"from": {q.ghostFrom}, "to": {q.ghostTo}}.Encode(), p.token, nil)
					sameAnswer(t, p, "path "+q.from+" → "+q.to, r, ghost, name, ghostEntity)
					continue
				}
				var res memory.Path
				r.decode(t, &res)
				wantHops := 2 // through org=<org>
				if name == anchor {
					wantHops = 0
				}
				if r.status != http.StatusOK || !res.Found || res.Hops != wantHops {
					t.Errorf("%s: path %s → %s: %d %s, want %d hops", p.name, q.from, q.to, r.status, r.body, wantHops)
				}
				for _, n := range res.Nodes {
					if names[n.Name] == 0 {
						t.Errorf("%s: path %s → %s goes through %s, outside its graph", p.name, q.from, q.to, n.Name)
					}
				}
			}
		}
	}
}

func restAggregate(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		for _, c := range []struct {
			query string
			key   func(e *entry) []string
			keep  func(e *entry) bool
		}{
			{"by=entity", func(e *entry) []string { return []string{e.m.Entity} }, nil},
			{"by=app", func(e *entry) []string { return []string{e.m.App} }, nil},
			{"by=tag", func(e *entry) []string {
				var ks []string
				for k, v := range e.m.Tags {
					ks = append(ks, k)
					if s, ok := v.(string); ok {
						ks = append(ks, k+"="+s)
					}
				}
				return ks
			}, nil},
			{"by=state&state=active,paused,archived,deleted", func(e *entry) []string { return []string{string(e.m.State)} },
				func(e *entry) bool { return true }},
			{"by=category&scope=team", func(e *entry) []string { return []string{string(e.m.Category)} },
				func(e *entry) bool { return e.m.State != memory.StateDeleted && e.m.Scope == "team" }},
		} {
			r := w.do(t, "GET", "/api/v1/aggregate?"+c.query+"&limit=1000", p.token, nil)
			w.noLeak(t, p, "aggregate "+c.query, r.body)
			var res struct {
				Buckets []memory.Bucket `json:"buckets"`
			}
			r.decode(t, &res)
			got := map[string]int{}
			for _, b := range res.Buckets {
				got[b.Key] = b.Memories
			}
			keep := c.keep
			if keep == nil {
				keep = func(e *entry) bool { return e.m.State != memory.StateDeleted }
			}
			want := map[string]int{}
			for _, e := range w.visible(p) {
				if keep(e) {
					for _, k := range c.key(e) {
						if k != "" {
							want[k]++
						}
					}
				}
			}
			if r.status != http.StatusOK || !maps.Equal(got, want) {
				t.Errorf("%s: aggregate %s: %d %v, the oracle says %v", p.name, c.query, r.status, got, want)
			}
		}
	}
}

func restTagPairs(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		live := w.graphLive(p)
		r := w.do(t, "GET", "/api/v1/tags/cooccurrence?limit=200", p.token, nil)
		w.noLeak(t, p, "every tag pair", r.body)
		var res struct {
			Pairs []memory.TagPair `json:"pairs"`
		}
		r.decode(t, &res)
		got := map[string]int{}
		for _, x := range res.Pairs {
			got[x.Tag+" "+x.Other] = x.Memories
		}
		// Per live memory: org=<org> with seed=<marker>.
		want := map[string]int{}
		for _, e := range live {
			want["org="+e.m.OrgID+" seed="+e.marker]++
		}
		if r.status != http.StatusOK || !maps.Equal(got, want) {
			t.Errorf("%s: every tag pair: %d %v, the oracle says %v", p.name, r.status, got, want)
		}
		for _, e := range w.filter(func(e *entry) bool { return e.marker != "" }) {
			r := w.do(t, "GET", "/api/v1/tags/cooccurrence?tag=seed="+e.marker, p.token, nil)
			w.noLeak(t, p, "tag pairs of seed="+e.marker, r.body)
			r.decode(t, &res)
			n := 1 // org=<org>
			if !slices.Contains(live, e) {
				n = 0
			}
			if r.status != http.StatusOK || len(res.Pairs) != n {
				t.Errorf("%s: tag pairs of seed=%s: %d %s, want %d pairs", p.name, e.marker, r.status, r.body, n)
			}
		}
	}
}

func restRelate(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphWrite) || !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		// An entity relation is a memory: written only where an add would be.
		for _, ent := range w.entities() {
			r := w.do(t, "POST", "/api/v1/relations", p.token, map[string]any{
				"type": "depends_on", "from": "probe-" + p.Subject, "to": "target of " + ent, "scope": entityScope(ent), "access_entity": ent,
			})
			w.noLeak(t, p, "relate into "+ent, r.body)
			if writable(p, ent) {
				var rel memory.Relation
				r.decode(t, &rel)
				if r.status != http.StatusCreated || !rel.Created {
					t.Errorf("%s: relate into %s: %d %s, want 201", p.name, ent, r.status, r.body)
					continue
				}
				e := w.add(t, rel.MemoryID, "")
				if e.m.OrgID != p.OrgID || e.m.AccessEntity != ent {
					t.Errorf("%s: relate into %s stored it in %s/%s", p.name, ent, e.m.OrgID, e.m.AccessEntity)
				}
				continue
			}
			if code, _ := r.errorOf(); r.status != http.StatusForbidden || code != "forbidden" {
				t.Errorf("%s: relate into %s, outside its grants: %d %s, want 403 forbidden", p.name, ent, r.status, r.body)
			}
		}
		// A link needs both memories visible; a hidden one is a memory that
		// does not exist.
		own := sampleOwnID(w, p)
		if own == ghostID {
			continue
		}
		ghost := w.do(t, "POST", "/api/v1/relations", p.token, map[string]any{"type": "related_to", "from_memory": own, "to_memory": ghostID})
		for _, e := range w.entries {
			r := w.do(t, "POST", "/api/v1/relations", p.token, map[string]any{"type": "related_to", "from_memory": own, "to_memory": e.m.ID})
			switch {
			case e.m.ID == own:
				if r.status != http.StatusBadRequest {
					t.Errorf("%s: link %s to itself: %d %s", p.name, own, r.status, r.body)
				}
			case !p.sees(e.m) || e.m.State == memory.StateDeleted:
				w.want404(t, p, "link to "+e.m.ID, r, ghost, e.m.ID)
			case e.m.State == memory.StateArchived:
				if r.status != http.StatusConflict {
					t.Errorf("%s: link to archived %s: %d %s, want 409", p.name, e.m.ID, r.status, r.body)
				}
			default:
				if r.status != http.StatusCreated {
					t.Errorf("%s: link to visible %s: %d %s, want 201", p.name, e.m.ID, r.status, r.body)
				}
			}
			w.noLeak(t, p, "link to "+e.m.ID, r.body, e.m.ID)
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted relations account for %v", got, want)
	}
	// Links show only to those who see both ends.
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		for _, e := range w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.State != memory.StateDeleted }) {
			r := w.do(t, "GET", "/api/v1/memories/"+e.m.ID+"/related?limit=100", p.token, nil)
			w.noLeak(t, p, fmt.Sprintf("related to %s after links", e.m.ID), r.body)
			var res struct {
				Related []memory.RelatedMemory `json:"related"`
			}
			r.decode(t, &res)
			for _, x := range res.Related {
				w.sameAsRecord(t, p, "related after links", x.Memory)
			}
		}
	}
}

// mcpSameAsGhost fails unless r failed with the message the call about
// the ghost got, names swapped, and reveals nothing.
func (w *world) mcpSameAsGhost(t *testing.T, p *principal, what string, r, ghost result, name, ghostName string) {
	t.Helper()
	swap := strings.NewReplacer(name, "NAME", ghostName, "NAME")
	if !r.failed() || r.err != nil || swap.Replace(r.message()) != swap.Replace(ghost.message()) {
		t.Errorf("%s: %s: %s, want the answer for one that does not exist: %q", p.name, what, r.raw, ghost.message())
	}
	w.noLeak(t, p, what, r.raw, name)
}

func mcpRelated(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		ghost := call(t, cs[p], "related_memories", map[string]any{"id": ghostID})
		live := w.graphLive(p)
		for _, e := range w.entries {
			r := call(t, cs[p], "related_memories", map[string]any{"id": e.m.ID, "limit": 100, "detail": "full"})
			if !p.sees(e.m) || e.m.State == memory.StateDeleted {
				w.wantNotFound(t, p, "related_memories of "+e.m.ID, r, ghost, e.m.ID)
				continue
			}
			w.noLeak(t, p, "related_memories of "+e.m.ID, r.raw)
			var out struct {
				Results []mcpserver.MemoryView `json:"results"`
			}
			if !r.decodeOK(t, p.name, "related_memories", &out) {
				continue
			}
			for _, v := range out.Results {
				w.viewSameAsRecord(t, p, "related_memories", v)
			}
			var want []*entry
			if memory.Live(e.m.State) {
				want = slices.DeleteFunc(slices.Clone(live), func(x *entry) bool { return x == e })
			}
			if got := viewIDs(out.Results); !slices.Equal(got, idsOf(want)) {
				t.Errorf("%s: related_memories of %s (%s): %v, the oracle says %v", p.name, e.m.ID, e.m.State, got, idsOf(want))
			}
		}
	}
}

func mcpNetwork(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		ghost := call(t, cs[p], "entity_network", map[string]any{"entity": ghostEntity})
		names := w.graphNames(p)
		for _, e := range w.filter(func(e *entry) bool { return e.marker != "" }) {
			name := entityOf(e)
			r := call(t, cs[p], "entity_network", map[string]any{"entity": name, "depth": 3, "limit": 200})
			if names[name] == 0 {
				w.mcpSameAsGhost(t, p, "entity_network of "+name, r, ghost, name, ghostEntity)
				continue
			}
			w.noLeak(t, p, "entity_network of "+name, r.raw)
			var n memory.Network
			if !r.decodeOK(t, p.name, "entity_network", &n) {
				continue
			}
			got := []string{}
			for _, x := range n.Nodes {
				got = append(got, x.Name)
			}
			slices.Sort(got)
			want := slices.DeleteFunc(slices.Sorted(maps.Keys(names)), func(s string) bool { return s == name })
			if !slices.Equal(got, want) {
				t.Errorf("%s: entity_network of %s: %v, the oracle says %v", p.name, name, got, want)
			}
		}
	}
}

func mcpPath(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		names := w.graphNames(p)
		anchor := ghostEntity
		if live := w.graphLive(p); len(live) > 0 {
			anchor = entityOf(live[0])
		}
		for _, e := range w.filter(func(e *entry) bool { return e.marker != "" }) {
			name := entityOf(e)
			r := call(t, cs[p], "path_between_entities", map[string]any{"from": name, "to": anchor})
			if names[name] == 0 || names[anchor] == 0 {
				ghost := call(t, cs[p], "path_between_entities", map[string]any{"from": ghostEntity, "to": anchor})
				w.mcpSameAsGhost(t, p, "path_between_entities from "+name, r, ghost, name, ghostEntity)
				continue
			}
			w.noLeak(t, p, "path_between_entities from "+name, r.raw)
			var path memory.Path
			if !r.decodeOK(t, p.name, "path_between_entities", &path) {
				continue
			}
			if want := map[bool]int{true: 0, false: 2}[name == anchor]; !path.Found || path.Hops != want {
				t.Errorf("%s: path_between_entities %s → %s: %+v, want %d hops", p.name, name, anchor, path, want)
			}
			for _, n := range path.Nodes {
				if names[n.Name] == 0 {
					t.Errorf("%s: path_between_entities %s → %s goes through %s, outside its graph", p.name, name, anchor, n.Name)
				}
			}
		}
	}
}

func mcpAggregate(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		r := call(t, cs[p], "aggregate", map[string]any{"by": "entity", "limit": 1000})
		w.noLeak(t, p, "aggregate by entity", r.raw)
		var out mcpserver.AggregateOutput
		if !r.decodeOK(t, p.name, "aggregate", &out) {
			continue
		}
		got := map[string]int{}
		for _, b := range out.Buckets {
			got[b.Key] = b.Memories
		}
		want := map[string]int{}
		for _, e := range w.live(p) {
			want[e.m.Entity]++
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: aggregate by entity: %v, the oracle says %v", p.name, got, want)
		}
	}
}

func mcpTagPairs(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphRead) {
			continue
		}
		live := w.graphLive(p)
		for _, e := range w.filter(func(e *entry) bool { return e.marker != "" }) {
			r := call(t, cs[p], "tag_cooccurrence", map[string]any{"tag": "seed=" + e.marker})
			w.noLeak(t, p, "tag_cooccurrence of seed="+e.marker, r.raw)
			var out mcpserver.TagPairsOutput
			if !r.decodeOK(t, p.name, "tag_cooccurrence", &out) {
				continue
			}
			n := 1 // org=<org>
			if !slices.Contains(live, e) {
				n = 0
			}
			if len(out.Pairs) != n {
				t.Errorf("%s: tag_cooccurrence of seed=%s: %+v, want %d pairs", p.name, e.marker, out.Pairs, n)
			}
		}
	}
}

func mcpRelate(t *testing.T, w *world, cs clients) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeGraphWrite) || !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		for _, ent := range w.entities() {
			r := call(t, cs[p], "relate", map[string]any{"type": "uses", "from": "mcp-probe-" + p.Subject, "to": "target of " + ent,
				"scope": entityScope(ent), "access_entity": ent})
			w.noLeak(t, p, "relate into "+ent, r.raw)
			if !writable(p, ent) {
				if !r.failed() || !strings.Contains(r.message(), "forbidden") {
					t.Errorf("%s: relate into %s, outside its grants: %s, want a forbidden tool error", p.name, ent, r.raw)
				}
				continue
			}
			var rel memory.Relation
			if !r.decodeOK(t, p.name, "relate into "+ent, &rel) || !rel.Created {
				t.Errorf("%s: relate into %s: %s", p.name, ent, r.raw)
				continue
			}
			if e := w.add(t, rel.MemoryID, ""); e.m.OrgID != p.OrgID || e.m.AccessEntity != ent {
				t.Errorf("%s: relate into %s stored it in %s/%s", p.name, ent, e.m.OrgID, e.m.AccessEntity)
			}
		}
		own := sampleOwnID(w, p)
		if own == ghostID {
			continue
		}
		ghost := call(t, cs[p], "relate", map[string]any{"type": "related_to", "from_memory": own, "to_memory": ghostID})
		for _, e := range w.entries {
			if p.sees(e.m) && e.m.State != memory.StateDeleted {
				continue
			}
			r := call(t, cs[p], "relate", map[string]any{"type": "related_to", "from_memory": own, "to_memory": e.m.ID})
			w.wantNotFound(t, p, "relate to "+e.m.ID, r, ghost, e.m.ID)
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted relations account for %v", got, want)
	}
}
