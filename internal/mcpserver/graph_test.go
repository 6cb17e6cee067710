package mcpserver_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestGraphTools calls every graph tool through a real client: results,
// enums in the schemas, errors a model can act on, and another org's view.
func TestGraphTools(t *testing.T) {
	env := newEnv(t, nil)
	cs, _ := env.connect(t, sessions, env.token(t, alice))
	var added mcpserver.AddMemoriesOutput
	mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{
		map[string]any{"content": "the checkout page calls the cart api", "scope": "team", "entity": "checkout", "tags": map[string]any{"relation:calls": "cart-api", "area": "web"}},
		map[string]any{"content": "the cart api keeps carts in redis", "scope": "team", "entity": "cart api", "tags": map[string]any{"relation:depends_on": "redis", "area": "web"}},
	}}, &added))
	checkout, cart := added.Results[0].ID, added.Results[1].ID

	var rel mcpserver.RelatedOutput
	mustOK(t, "related_memories", call(t, cs, "related_memories", map[string]any{"id": checkout}, &rel))
	if len(rel.Results) != 1 || rel.Results[0].ID != cart || rel.Results[0].Score <= 0 || !slices.Contains(rel.Results[0].Shared, "cart api") {
		t.Errorf("related_memories: %+v", rel)
	}

	var net memory.Network
	mustOK(t, "entity_network", call(t, cs, "entity_network", map[string]any{"entity": "Cart API", "depth": 2, "types": []string{"relation"}}, &net))
	var nodes []string
	for _, n := range net.Nodes {
		nodes = append(nodes, n.Name)
	}
	slices.Sort(nodes)
	if net.Center.Name != "cart-api" || !slices.Equal(nodes, []string{"checkout", "redis"}) || len(net.Edges) != 2 {
		t.Errorf("entity_network: %+v", net)
	}

	var path memory.Path
	mustOK(t, "path_between_entities", call(t, cs, "path_between_entities", map[string]any{"from": "checkout", "to": "redis"}, &path))
	if !path.Found || path.Hops != 2 {
		t.Errorf("path_between_entities: %+v", path)
	}

	var agg mcpserver.AggregateOutput
	mustOK(t, "aggregate", call(t, cs, "aggregate", map[string]any{"by": "tag", "filters": map[string]any{"tags": []string{"area=web"}}}, &agg))
	if agg.By != "tag" || len(agg.Buckets) == 0 || agg.Buckets[0] != (memory.Bucket{Key: "area", Memories: 2}) {
		t.Errorf("aggregate: %+v", agg)
	}

	var pairs mcpserver.TagPairsOutput
	mustOK(t, "tag_cooccurrence", call(t, cs, "tag_cooccurrence", map[string]any{}, &pairs))
	if pairs.Pairs == nil {
		t.Errorf("tag_cooccurrence: %+v", pairs)
	}

	var r memory.Relation
	mustOK(t, "relate", call(t, cs, "relate", map[string]any{"type": "owned_by", "from": "cart api", "to": "team shop", "scope": "team"}, &r))
	if !r.Created || r.MemoryID == "" {
		t.Errorf("relate: %+v", r)
	}
	mustOK(t, "relate", call(t, cs, "relate", map[string]any{"type": "owned_by", "from": "cart api", "to": "team shop", "scope": "team"}, &r))
	if r.Created {
		t.Errorf("relate again: %+v, want the existing one", r)
	}
	mustOK(t, "relate", call(t, cs, "relate", map[string]any{"type": "related_to", "from_memory": checkout, "to_memory": cart}, &r))

	// Errors say what to do.
	mustFail(t, "entity_network", call(t, cs, "entity_network", map[string]any{"entity": "nowhere"}, nil), "not found", "aggregate")
	mustFail(t, "path_between_entities", call(t, cs, "path_between_entities", map[string]any{"from": "checkout", "to": "redis", "max_depth": 9}, nil), "max_depth", "1 and 4")
	mustFail(t, "aggregate", call(t, cs, "aggregate", map[string]any{"by": "colour"}, nil), "by")
	mustFail(t, "relate", call(t, cs, "relate", map[string]any{"type": "likes", "from": "a", "to": "b"}, nil), "type")
	mustFail(t, "relate", call(t, cs, "relate", map[string]any{"type": "uses", "from_memory": checkout, "to_memory": "01JZZZZZZZZZZZZZZZZZZZZZZZ"}, nil),
		"memory 01JZZZZZZZZZZZZZZZZZZZZZZZ", "not found")
	mustFail(t, "related_memories", call(t, cs, "related_memories", map[string]any{"id": ""}, nil), "id")

	// The schemas list the allowed values.
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range res.Tools {
		b, _ := json.Marshal(tool.InputSchema)
		for name, want := range map[string]string{"relate": `"depends_on"`, "aggregate": `"artifact"`, "entity_network": `"tag_cooccurrence"`} {
			if tool.Name == name && !strings.Contains(string(b), want) {
				t.Errorf("%s input schema lacks %s: %s", name, want, b)
			}
		}
	}

	// Another org sees none of it; an invisible memory is not found.
	other, _ := env.connect(t, stateless, env.token(t, eve))
	mustFail(t, "entity_network", call(t, other, "entity_network", map[string]any{"entity": "cart api"}, nil), "not found")
	mustFail(t, "related_memories", call(t, other, "related_memories", map[string]any{"id": cart}, nil), "not found")
	var none mcpserver.AggregateOutput
	mustOK(t, "aggregate", call(t, other, "aggregate", map[string]any{"by": "entity"}, &none))
	if len(none.Buckets) != 0 {
		t.Errorf("another org's aggregate: %+v", none)
	}
}
