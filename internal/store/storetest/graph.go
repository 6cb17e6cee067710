package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// testGraph is the contract of memory.GraphStore (the entity graph), for
// stores that implement it: extraction and normalization, co-mention and
// tag co-occurrence weights, deletes and archives taking mentions away,
// relations stated by tags and made by Relate, memory links, related
// memories, path finding, networks, aggregation, tag co-occurrence, the
// graph as a retrieval source — and isolation: nothing of a memory the
// caller may not see reaches it through any of them.
func testGraph(t *testing.T, e *env) {
	g, ok := e.store.(memory.GraphStore)
	if !ok {
		t.Skipf("%T keeps no entity graph", e.store)
	}
	ge := &graphEnv{env: e, g: g}
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, ge *graphEnv)
	}{
		{"Extraction", testGraphExtraction},
		{"CoMentionWeights", testGraphWeights},
		{"DeletesRemoveMentions", testGraphDeletes},
		{"Relations", testGraphRelations},
		{"MemoryLinks", testGraphLinks},
		{"Related", testGraphRelated},
		{"PathAndNetwork", testGraphPaths},
		{"Aggregate", testGraphAggregate},
		{"TagCooccurrence", testGraphTags},
		{"Neighbours", testGraphNeighbours},
		{"NeighboursSkipCommonEntities", testGraphCommon},
		{"Isolation", testGraphIsolation},
	} {
		// One store for all: each part uses names of its own.
		t.Run(tt.name, func(t *testing.T) {
			ge.env.t = t
			tt.fn(t, ge)
		})
	}
}

type graphEnv struct {
	*env
	g memory.GraphStore
}

// entity returns the entity as p sees it, or ok false.
func (ge *graphEnv) entity(p auth.Principal, name string) (memory.Entity, bool) {
	ge.t.Helper()
	es, err := ge.svc.Entities(ge.as(p), memory.EntityQuery{Names: []string{name}})
	if err != nil {
		ge.t.Fatalf("entities %q as %s: %v", name, p.Subject, err)
	}
	if len(es) == 0 {
		return memory.Entity{}, false
	}
	return es[0], true
}

// edges returns p's visible edges of name as "other type weight" strings.
func (ge *graphEnv) edges(p auth.Principal, name string, types ...string) []string {
	ge.t.Helper()
	es, err := ge.g.Edges(ge.as(p), memory.AccessFor(p), memory.EdgeQuery{From: []string{name}, Types: types})
	if err != nil {
		ge.t.Fatalf("edges of %q as %s: %v", name, p.Subject, err)
	}
	var out []string
	for _, e := range es {
		dir := e.From + "->" + e.To
		if e.From == name && !strings.HasPrefix(e.Type, "relation:") {
			dir = e.To
		}
		out = append(out, fmt.Sprintf("%s %s %g", dir, e.Type, e.Weight))
	}
	slices.Sort(out)
	return out
}

func wantList(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s:\n  got  %q\n  want %q", what, g, w)
	}
}

func testGraphExtraction(t *testing.T, ge *graphEnv) {
	m := ge.add(alice, memory.Input{
		Content: "payments service retries card charges", Scope: "team",
		Entity: "  Payments   Service ", ArtifactRef: "github.com/Acme/Payments",
		Tags: map[string]any{"Lang": "Go", "team_name": "Core  Payments", "flaky": true, "prio": 2.0, "note": strings.Repeat("long ", 40)},
	})
	p, ok := ge.entity(alice, "payments-service")
	if !ok || p.Display != "Payments   Service" || !slices.Equal(p.Kinds, []string{memory.KindEntity}) || p.Memories != 1 {
		t.Errorf("entity payments-service: %+v, %v; want display %q, kind entity, 1 memory", p, ok, "Payments   Service")
	}
	// Every spelling of the name finds it.
	for _, spelling := range []string{"PAYMENTS_SERVICE", "payments-service", "Payments\u00a0Service", "ｐａｙｍｅｎｔｓ service"} {
		if _, ok := ge.entity(alice, spelling); !ok {
			t.Errorf("entity %q (a spelling of payments-service) not found", spelling)
		}
	}
	art, ok := ge.entity(alice, "GitHub.com/acme/payments")
	if !ok || art.Display != "github.com/Acme/Payments" || !slices.Equal(art.Kinds, []string{memory.KindArtifact}) {
		t.Errorf("artifact entity: %+v, %v", art, ok)
	}
	all, err := ge.svc.Entities(ge.as(alice), memory.EntityQuery{Kind: memory.KindTag, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, e := range all {
		tags = append(tags, e.Name+"|"+e.Display)
	}
	// key=value of short string values, else the key: not the long text,
	// not booleans' or numbers' values.
	wantList(t, "tag entities", tags, []string{"flaky|flaky", "lang=go|Lang=Go", "note|note", "prio|prio",
		"team-name=core-payments|team_name=Core  Payments"})
	if got, err := ge.svc.Entities(ge.as(alice), memory.EntityQuery{Prefix: "Payments S"}); err != nil || len(got) != 1 || got[0].Name != "payments-service" {
		t.Errorf("entities with prefix payments-s: %+v, %v", got, err)
	}
	_, err = ge.svc.Entities(ge.as(alice), memory.EntityQuery{Kind: "person"})
	wantField(t, "entities of an unknown kind", err, "kind")
	// A content-only update keeps the graph.
	if _, err := ge.svc.Update(ge.as(alice), m.ID, memory.Patch{Content: ptr("payments service retries charges twice")}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ge.entity(alice, "payments-service"); !ok {
		t.Error("a content update lost the memory's entity")
	}
}

func testGraphWeights(t *testing.T, ge *graphEnv) {
	ge.add(alice, memory.Input{Content: "ledger posts entries", Scope: "team", Entity: "ledger", ArtifactRef: "svc/ledger", Tags: map[string]any{"stack": "go", "ring": "core"}})
	ge.add(dave, memory.Input{Content: "ledger bills nightly", Scope: "team", Entity: "Ledger", ArtifactRef: "svc/billing", Tags: map[string]any{"stack": "go", "ring": "core"}})
	ge.add(alice, memory.Input{Content: "billing owns invoices", Scope: "team", Entity: "billing", ArtifactRef: "svc/billing"})
	wantList(t, "edges of ledger", ge.edges(alice, "ledger"), []string{
		"stack=go co_mention 2", "svc/billing co_mention 1", "svc/ledger co_mention 1", "ring=core co_mention 2"})
	wantList(t, "edges of svc/billing", ge.edges(alice, "svc/billing"), []string{
		"billing co_mention 1", "ledger co_mention 1", "stack=go co_mention 1", "ring=core co_mention 1"})
	wantList(t, "tag edges of stack=go", ge.edges(alice, "stack=go", memory.EdgeTagCooccurrence), []string{"ring=core tag_cooccurrence 2"})
	if e, _ := ge.entity(alice, "ledger"); e.Memories != 2 || e.Display != "Ledger" {
		t.Errorf("ledger: %+v, want 2 memories, display the first spelling in byte order (Ledger)", e)
	}
}

func testGraphDeletes(t *testing.T, ge *graphEnv) {
	a := ge.add(alice, memory.Input{Content: "queue drains at night", Scope: "team", Entity: "queue", Tags: map[string]any{"area": "ops"}})
	b := ge.add(alice, memory.Input{Content: "queue uses redis streams", Scope: "team", Entity: "queue", ArtifactRef: "redis"})
	wantList(t, "edges of queue", ge.edges(alice, "queue"), []string{"area=ops co_mention 1", "redis co_mention 1"})
	if _, err := ge.svc.Delete(ge.as(alice), b.ID); err != nil {
		t.Fatal(err)
	}
	wantList(t, "edges of queue after a delete", ge.edges(alice, "queue"), []string{"area=ops co_mention 1"})
	if _, ok := ge.entity(alice, "redis"); ok {
		t.Error("redis, named only by a deleted memory, is still an entity")
	}
	if _, err := ge.svc.Transition(ge.as(alice), a.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	if _, ok := ge.entity(alice, "queue"); ok {
		t.Error("queue, named only by deleted and archived memories, is still an entity")
	}
	if _, err := ge.svc.Transition(ge.as(alice), a.ID, memory.ActionRestore); err != nil {
		t.Fatal(err)
	}
	if e, ok := ge.entity(alice, "queue"); !ok || e.Memories != 1 {
		t.Errorf("queue after a restore: %+v, %v; want it back with 1 memory", e, ok)
	}
	// Paused memories stay in the graph.
	if _, err := ge.svc.Transition(ge.as(alice), a.ID, memory.ActionPause); err != nil {
		t.Fatal(err)
	}
	if _, ok := ge.entity(alice, "queue"); !ok {
		t.Error("a paused memory left the graph")
	}
	// An update moves the mentions to the new fields.
	if _, err := ge.svc.Transition(ge.as(alice), a.ID, memory.ActionRestore); err != nil {
		t.Fatal(err)
	}
	if _, err := ge.svc.Update(ge.as(alice), a.ID, memory.Patch{Entity: ptr("work queue"), Tags: &map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ge.entity(alice, "queue"); ok {
		t.Error("queue is still an entity after the memory changed its entity")
	}
	if _, ok := ge.entity(alice, "area=ops"); ok {
		t.Error("a removed tag is still an entity")
	}
	if _, ok := ge.entity(alice, "work-queue"); !ok {
		t.Error("the new entity is not in the graph")
	}
}

func testGraphRelations(t *testing.T, ge *graphEnv) {
	ge.add(alice, memory.Input{Content: "checkout calls payments and fx", Scope: "team", Entity: "Checkout",
		Tags: map[string]any{"relation:depends_on": "payments, FX Rates", "relation:uses": "stripe"}})
	wantList(t, "relations of checkout", ge.edges(alice, "checkout", memory.EdgeRelation), []string{
		"checkout->fx-rates relation:depends_on 1", "checkout->payments relation:depends_on 1", "checkout->stripe relation:uses 1"})
	wantList(t, "relations of payments", ge.edges(alice, "payments", "relation:depends_on"), []string{"checkout->payments relation:depends_on 1"})
	if e, _ := ge.entity(alice, "fx-rates"); !slices.Equal(e.Kinds, []string{memory.KindExplicit}) || e.Display != "FX Rates" {
		t.Errorf("relation target: %+v, want kind explicit, display FX Rates", e)
	}
	// Relation tags are no tags of the graph.
	if _, ok := ge.entity(alice, "relation:uses"); ok {
		t.Error("a relation tag's key is an entity")
	}

	bad := []struct {
		in    memory.Input
		field string
	}{
		{memory.Input{Content: "rel probe 1", Entity: "a", Tags: map[string]any{"relation:likes": "b"}}, "tags.relation:likes"},
		{memory.Input{Content: "rel probe 2", Tags: map[string]any{"relation:uses": "b"}}, "tags.relation:uses"},
		{memory.Input{Content: "rel probe 3", Entity: "a", Tags: map[string]any{"relation:uses": 3.0}}, "tags.relation:uses"},
		{memory.Input{Content: "rel probe 4", Entity: "a", Tags: map[string]any{"relation:uses": " , "}}, "tags.relation:uses"},
	}
	for _, b := range bad {
		_, _, err := ge.svc.Add(ge.as(alice), b.in)
		wantField(t, "add "+b.in.Content, err, b.field)
	}
	var ve *memory.ValidationError
	if _, _, err := ge.svc.Add(ge.as(alice), bad[0].in); !errors.As(err, &ve) || !strings.Contains(ve.Reason, "depends_on") {
		t.Errorf("unknown relation type: %v; want the allowed types listed", err)
	}

	// Relate states a relation as a memory of its own.
	ge.clock.Advance(1)
	r, err := ge.svc.Relate(ge.as(alice), memory.RelateInput{Type: "owned_by", From: "Payments", To: "Team Money", Scope: "team"})
	if err != nil || !r.Created || r.MemoryID == "" || r.CreatedBy != "alice" {
		t.Fatalf("relate: %+v, %v", r, err)
	}
	m := ge.get(alice, r.MemoryID)
	if m.Entity != "Payments" || m.Tags["relation:owned_by"] != "Team Money" || m.AccessEntity != "team:acme/backend" || m.Content != "Payments owned by Team Money" {
		t.Errorf("the relation's memory: %+v", m)
	}
	wantList(t, "relations of payments after relate", ge.edges(alice, "payments", memory.EdgeRelation), []string{
		"checkout->payments relation:depends_on 1", "payments->team-money relation:owned_by 1"})
	again, err := ge.svc.Relate(ge.as(dave), memory.RelateInput{Type: "owned_by", From: "Payments", To: "Team Money", Scope: "team"})
	if err != nil || again.Created || again.MemoryID != r.MemoryID {
		t.Errorf("the same relation again: %+v, %v; want the existing memory", again, err)
	}
	for _, c := range []struct {
		in    memory.RelateInput
		field string
	}{
		{memory.RelateInput{From: "a", To: "b"}, "type"},
		{memory.RelateInput{Type: "likes", From: "a", To: "b"}, "type"},
		{memory.RelateInput{Type: "uses", To: "b"}, "from"},
		{memory.RelateInput{Type: "uses", From: "a"}, "to"},
		{memory.RelateInput{Type: "uses", From: "a", To: "A"}, "to"},
		{memory.RelateInput{Type: "uses", From: "a", To: "b,c"}, "to"},
		{memory.RelateInput{Type: "uses", From: "a", To: "b", FromMemory: "x", ToMemory: "y"}, "from_memory"},
		{memory.RelateInput{Type: "uses", FromMemory: "x"}, "to_memory"},
		{memory.RelateInput{Type: "uses", From: "a", To: "b", Scope: "galaxy"}, "scope"},
	} {
		_, err := ge.svc.Relate(ge.as(alice), c.in)
		wantField(t, fmt.Sprintf("relate %+v", c.in), err, c.field)
	}
	// A relation into an entity outside the caller's grants is forbidden,
	// as an add would be.
	_, err = ge.svc.Relate(ge.as(alice), memory.RelateInput{Type: "uses", From: "a", To: "b", Scope: "team", AccessEntity: "team:acme/frontend"})
	wantErr(t, "relate into another team", err, memory.ErrForbidden)
	// Deleting the relation's memory deletes the relation.
	if _, err := ge.svc.Delete(ge.as(alice), r.MemoryID); err != nil {
		t.Fatal(err)
	}
	wantList(t, "relations of payments after the relation's memory was deleted", ge.edges(alice, "payments", memory.EdgeRelation), []string{
		"checkout->payments relation:depends_on 1"})
}

func testGraphLinks(t *testing.T, ge *graphEnv) {
	a := ge.add(alice, memory.Input{Content: "ADR 7: use postgres", Scope: "team"})
	b := ge.add(alice, memory.Input{Content: "ADR 3: use mysql", Scope: "team"})
	r, err := ge.svc.Relate(ge.as(alice), memory.RelateInput{Type: "replaces", FromMemory: a.ID, ToMemory: b.ID})
	if err != nil || !r.Created || r.FromMemory != a.ID || r.ToMemory != b.ID || r.CreatedBy != "alice" {
		t.Fatalf("link: %+v, %v", r, err)
	}
	again, err := ge.svc.Relate(ge.as(dave), memory.RelateInput{Type: "replaces", FromMemory: a.ID, ToMemory: b.ID})
	if err != nil || again.Created || again.CreatedBy != "alice" || !again.CreatedAt.Equal(r.CreatedAt) {
		t.Errorf("the same link again: %+v, %v; want the existing one", again, err)
	}
	rel, err := ge.svc.RelatedMemories(ge.as(dave), b.ID, 0, memory.ViaREST)
	if err != nil || len(rel) != 1 || rel[0].Memory.ID != a.ID || !slices.Equal(rel[0].Links, []memory.LinkType{{Type: "replaces", Outgoing: false}}) {
		t.Errorf("related to the replaced ADR: %+v, %v", rel, err)
	}
	_, err = ge.svc.Relate(ge.as(alice), memory.RelateInput{Type: "replaces", FromMemory: a.ID, ToMemory: a.ID})
	wantField(t, "a memory linked to itself", err, "to_memory")
	_, err = ge.svc.Relate(ge.as(alice), memory.RelateInput{Type: "replaces", FromMemory: a.ID, ToMemory: "01JZZZZZZZZZZZZZZZZZZZZZZZ"})
	wantErr(t, "a link to a memory that does not exist", err, memory.ErrNotFound)
	if _, err := ge.svc.Transition(ge.as(alice), b.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	_, err = ge.svc.Relate(ge.as(alice), memory.RelateInput{Type: "related_to", FromMemory: a.ID, ToMemory: b.ID})
	wantErr(t, "a link to an archived memory", err, memory.ErrConflict)
	if rel, err := ge.svc.RelatedMemories(ge.as(alice), a.ID, 0, memory.ViaREST); err != nil || len(rel) != 0 {
		t.Errorf("related to a memory whose only link goes to an archived one: %+v, %v", rel, err)
	}
}

func testGraphRelated(t *testing.T, ge *graphEnv) {
	nm := names{}
	mk := func(name string, in memory.Input) memory.Memory {
		in.Scope = "team"
		m := ge.add(alice, in)
		nm[m.ID] = name
		return m
	}
	base := mk("base", memory.Input{Content: "search uses bm25 in sqlite", Entity: "search", ArtifactRef: "store/sqlite", Tags: map[string]any{"topic": "ranking"}})
	mk("both", memory.Input{Content: "search ranking in sqlite fts5", Entity: "search", ArtifactRef: "store/sqlite"})
	mk("entity", memory.Input{Content: "search has filters", Entity: "search"})
	mk("tag", memory.Input{Content: "ranking needs a test set", Entity: "eval", Tags: map[string]any{"topic": "ranking"}})
	mk("none", memory.Input{Content: "unrelated note on logging", Entity: "logging"})
	gone := mk("deleted", memory.Input{Content: "search was once lucene", Entity: "search"})
	if _, err := ge.svc.Delete(ge.as(alice), gone.ID); err != nil {
		t.Fatal(err)
	}
	rel, err := ge.svc.RelatedMemories(ge.as(alice), base.ID, 0, memory.ViaREST)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, r := range rel {
		got = append(got, nm[r.Memory.ID])
		if i > 0 && r.Score > rel[i-1].Score {
			t.Errorf("related memories not in score order: %+v", rel)
		}
	}
	// both shares search (1/3: two others mention it) and store/sqlite
	// (1/2); entity shares search alone (1/3); tag shares topic=ranking
	// (0.5/2).
	if want := []string{"both", "entity", "tag"}; !slices.Equal(got, want) {
		t.Errorf("related to base: %v, want %v", got, want)
	}
	if len(rel) > 0 && !slices.Equal(rel[0].Shared, []string{"search", "store/sqlite"}) {
		t.Errorf("shared with the best: %q", rel[0].Shared)
	}
	if rel, err := ge.svc.RelatedMemories(ge.as(alice), base.ID, 1, memory.ViaREST); err != nil || len(rel) != 1 {
		t.Errorf("related with limit 1: %d, %v", len(rel), err)
	}
	_, err = ge.svc.RelatedMemories(ge.as(alice), base.ID, 1000, memory.ViaREST)
	wantField(t, "related with limit 1000", err, "limit")
	_, err = ge.svc.RelatedMemories(ge.as(alice), gone.ID, 0, memory.ViaREST)
	wantErr(t, "related to a deleted memory", err, memory.ErrNotFound)
}

func testGraphPaths(t *testing.T, ge *graphEnv) {
	add := func(entity string, tags map[string]any) {
		ge.add(alice, memory.Input{Content: "path probe " + entity + fmt.Sprint(tags), Scope: "team", Entity: entity, Tags: tags})
	}
	add("web", map[string]any{"relation:calls": "api"})
	add("api", map[string]any{"relation:depends_on": "db"})
	add("db", map[string]any{"relation:part_of": "platform"})
	add("island", nil)
	ctx := ge.as(alice)
	p, err := ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "WEB", To: "platform"})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, n := range p.Nodes {
		nodes = append(nodes, n.Name)
	}
	if !p.Found || p.Hops != 3 || !slices.Equal(nodes, []string{"web", "api", "db", "platform"}) || len(p.Edges) != 3 ||
		p.Edges[1] != (memory.Edge{From: "api", To: "db", Type: "relation:depends_on", Weight: 1}) {
		t.Errorf("path web→platform: %+v", p)
	}
	// Backwards along the relations, too.
	if p, err := ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "platform", To: "web"}); err != nil || !p.Found || p.Hops != 3 {
		t.Errorf("path platform→web: %+v, %v", p, err)
	}
	if p, err := ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "platform", MaxDepth: 2}); err != nil || p.Found || len(p.Nodes) != 0 {
		t.Errorf("path web→platform within 2 hops: %+v, %v; want none", p, err)
	}
	if p, err := ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "island"}); err != nil || p.Found {
		t.Errorf("path to an island: %+v, %v; want none", p, err)
	}
	if p, err := ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "platform", Types: []string{"tag_cooccurrence"}}); err != nil || p.Found {
		t.Errorf("path over tag co-occurrences only: %+v, %v; want none", p, err)
	}
	// Each memory also co-mentions its entity and the relation's target.
	if p, err := ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "platform", Types: []string{"co_mention"}}); err != nil || !p.Found || p.Edges[0].Type != "co_mention" {
		t.Errorf("path over co-mentions only: %+v, %v", p, err)
	}
	_, err = ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "nowhere"})
	wantErr(t, "path to an unknown entity", err, memory.ErrNotFound)
	_, err = ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "db", MaxDepth: 5})
	wantField(t, "path with max_depth 5", err, "max_depth")
	_, err = ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "web", To: "db", Types: []string{"friend_of"}})
	wantField(t, "path with an unknown edge type", err, "types")
	_, err = ge.svc.PathBetweenEntities(ctx, memory.PathQuery{To: "db"})
	wantField(t, "path without from", err, "from")

	n, err := ge.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: "api", Depth: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, x := range n.Nodes {
		got[x.Name] = x.Depth
	}
	if want := map[string]int{"web": 1, "db": 1, "platform": 2}; n.Center.Name != "api" || !maps.Equal(got, want) {
		t.Errorf("network of api: center %q, nodes %v, want %v", n.Center.Name, got, want)
	}
	if len(n.Edges) != 6 {
		t.Errorf("network of api: edges %+v, want 3 relations and 3 co-mentions", n.Edges)
	}
	if n, err := ge.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: "api", Depth: 2, Limit: 1}); err != nil || len(n.Nodes) != 1 {
		t.Errorf("network of api with limit 1: %+v, %v", n, err)
	}
	_, err = ge.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: "api", Depth: 4})
	wantField(t, "network of depth 4", err, "depth")
	_, err = ge.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: "nowhere"})
	wantErr(t, "network of an unknown entity", err, memory.ErrNotFound)
}

func testGraphAggregate(t *testing.T, ge *graphEnv) {
	in := []memory.Input{
		{Content: "agg 1", Category: "decision", Entity: "alpha", ArtifactRef: "repo/a", Tags: map[string]any{"k": "v", "x": true}},
		{Content: "agg 2", Category: "decision", Entity: "alpha", Tags: map[string]any{"k": "w"}},
		{Content: "agg 3", Category: "runbook", Entity: "beta", ArtifactRef: "repo/a"},
		{Content: "agg 4", Scope: "team", Entity: "beta"},
	}
	var ms []memory.Memory
	for _, x := range in {
		x.App = "agg-probe"
		ms = append(ms, ge.add(alice, x))
	}
	if _, err := ge.svc.Delete(ge.as(alice), ms[3].ID); err != nil {
		t.Fatal(err)
	}
	f := memory.Filter{App: "agg-probe"}
	agg := func(by string, f memory.Filter) map[string]int {
		t.Helper()
		bs, err := ge.svc.Aggregate(ge.as(alice), memory.AggregateQuery{By: by, Filter: f})
		if err != nil {
			t.Fatalf("aggregate by %s: %v", by, err)
		}
		out := map[string]int{}
		for i, b := range bs {
			out[b.Key] = b.Memories
			if i > 0 && b.Memories > bs[i-1].Memories {
				t.Errorf("aggregate by %s not most first: %+v", by, bs)
			}
		}
		return out
	}
	for _, c := range []struct {
		by   string
		f    memory.Filter
		want map[string]int
	}{
		{"category", f, map[string]int{"decision": 2, "runbook": 1}},
		{"entity", f, map[string]int{"alpha": 2, "beta": 1}},
		{"artifact", f, map[string]int{"repo/a": 2}},
		{"tag", f, map[string]int{"k": 2, "k=v": 1, "k=w": 1, "x": 1}},
		{"scope", f, map[string]int{"user": 3}},
		{"app", f, map[string]int{"agg-probe": 3}},
		{"state", memory.Filter{App: "agg-probe", States: memory.States}, map[string]int{"active": 3, "deleted": 1}},
		{"entity", memory.Filter{App: "agg-probe", Categories: []memory.Category{"decision"}}, map[string]int{"alpha": 2}},
	} {
		if got := agg(c.by, c.f); !maps.Equal(got, c.want) {
			t.Errorf("aggregate by %s (%+v): %v, want %v", c.by, c.f, got, c.want)
		}
	}
	// Others see only what they may: dave shares alice's team, not her
	// private memories.
	bs, err := ge.svc.Aggregate(ge.as(dave), memory.AggregateQuery{By: "entity", Filter: f})
	if err != nil || len(bs) != 0 {
		t.Errorf("dave's aggregate of alice's private memories: %+v, %v", bs, err)
	}
	_, err = ge.svc.Aggregate(ge.as(alice), memory.AggregateQuery{By: "colour"})
	wantField(t, "aggregate by colour", err, "by")
	_, err = ge.svc.Aggregate(ge.as(alice), memory.AggregateQuery{})
	wantField(t, "aggregate without by", err, "by")
	_, err = ge.svc.Aggregate(ge.as(alice), memory.AggregateQuery{By: "entity", Filter: memory.Filter{States: []memory.State{"gone"}}})
	wantField(t, "aggregate with a bad state filter", err, "state")
}

func testGraphTags(t *testing.T, ge *graphEnv) {
	for i, tags := range []map[string]any{
		{"env": "prod", "tier": "gold", "oncall": true},
		{"env": "prod", "tier": "gold"},
		{"env": "prod", "tier": "silver"},
		{"env": "dev"},
	} {
		ge.add(carol, memory.Input{Content: fmt.Sprintf("tag probe %d", i), Scope: "org", Tags: tags})
	}
	pairs, err := ge.svc.TagCooccurrence(ge.as(carol), "ENV=prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pairs {
		if p.Tag != "env=prod" {
			t.Errorf("pair %+v does not start with the tag asked about", p)
		}
		got = append(got, fmt.Sprintf("%s %d", p.Other, p.Memories))
	}
	if want := []string{"tier=gold 2", "oncall 1", "tier=silver 1"}; !slices.Equal(got, want) {
		t.Errorf("co-occurring with env=prod: %v, want %v", got, want)
	}
	// A key stands for all its values.
	pairs, err = ge.svc.TagCooccurrence(ge.as(carol), "Tier", 0)
	got = nil
	for _, p := range pairs {
		got = append(got, fmt.Sprintf("%s+%s %d", p.Tag, p.Other, p.Memories))
	}
	if want := []string{"tier+env=prod 3", "tier+oncall 1"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("co-occurring with the key tier: %v, %v; want %v", got, err, want)
	}
	all, err := ge.svc.TagCooccurrence(ge.as(carol), "", 200)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, p := range all {
		counts[p.Tag+"+"+p.Other] = p.Memories
	}
	if counts["env=prod+tier=gold"] != 2 || counts["env=prod+tier=silver"] != 1 || counts["oncall+tier=gold"] != 1 || len(counts) == 0 {
		t.Errorf("all pairs: %v", counts)
	}
	if pairs, err := ge.svc.TagCooccurrence(ge.as(eve), "env=prod", 0); err != nil || len(pairs) != 0 {
		t.Errorf("another org's tag pairs: %+v, %v", pairs, err)
	}
	_, err = ge.svc.TagCooccurrence(ge.as(carol), "env", 500)
	wantField(t, "tag pairs with limit 500", err, "limit")
}

func testGraphNeighbours(t *testing.T, ge *graphEnv) {
	nm := names{}
	mk := func(name string, in memory.Input) {
		in.Scope = "team"
		nm[ge.add(alice, in).ID] = name
	}
	mk("direct", memory.Input{Content: "rate limiter uses token buckets", Entity: "rate limiter", ArtifactRef: "pkg/limits"})
	mk("neighbour", memory.Input{Content: "buckets live in valkey", Entity: "pkg/limits"})
	mk("unrelated", memory.Input{Content: "rate of deploys is weekly", Entity: "deploys"})
	a := memory.AccessFor(alice)
	hits, err := ge.svc.GraphNeighbours(ge.as(alice), a, "how does the Rate Limiter refill?", memory.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hits {
		got = append(got, nm[h.Memory.ID])
	}
	if want := []string{"direct", "neighbour"}; !slices.Equal(got, want) {
		t.Errorf("graph neighbours of %q: %v, want %v", "rate limiter", got, want)
	}
	if len(hits) == 2 && !(hits[0].Score > hits[1].Score && hits[1].Score > 0) {
		t.Errorf("scores %g, %g: want the direct mention first, both positive", hits[0].Score, hits[1].Score)
	}
	if hits, err := ge.svc.GraphNeighbours(ge.as(alice), a, "rate limiter", memory.Filter{Entity: "pkg/limits"}, 10); err != nil || len(hits) != 1 {
		t.Errorf("graph neighbours with a filter: %d hits, %v; want the one matching the filter", len(hits), err)
	}
	if hits, err := ge.svc.GraphNeighbours(ge.as(frank), memory.AccessFor(frank), "rate limiter", memory.Filter{}, 10); err != nil || len(hits) != 0 {
		t.Errorf("graph neighbours for another team: %d hits, %v", len(hits), err)
	}
}

// testGraphCommon: an entity more than memory.GraphCommonMentions memories
// mention is neither a seed nor a neighbour of the graph source; at the
// limit it is both.
func testGraphCommon(t *testing.T, ge *graphEnv) {
	var filler []memory.Memory
	for i := range memory.GraphCommonMentions {
		filler = append(filler, ge.add(alice, memory.Input{Content: fmt.Sprintf("filler note %d", i), Scope: "team", Entity: "hub"}))
	}
	rare := ge.add(alice, memory.Input{Content: "the rare one", Scope: "team", Entity: "rarity", ArtifactRef: "hub"})
	a := memory.AccessFor(alice)
	neighbours := func(query string) []string {
		t.Helper()
		hits, err := ge.svc.GraphNeighbours(ge.as(alice), a, query, memory.Filter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range hits {
			ids = append(ids, h.Memory.ID)
		}
		return ids
	}
	// hub: GraphCommonMentions + 1 memories.
	if got := neighbours("what about hub"); len(got) != 0 {
		t.Errorf("graph neighbours of a common entity: %d hits, want none", len(got))
	}
	if got := neighbours("what about rarity"); !slices.Equal(got, []string{rare.ID}) {
		t.Errorf("graph neighbours of rarity, whose only neighbour is common: %v, want only %s", got, rare.ID)
	}
	if _, err := ge.svc.Delete(ge.as(alice), filler[0].ID); err != nil {
		t.Fatal(err)
	}
	// hub: GraphCommonMentions memories.
	if got := neighbours("what about hub"); len(got) != 10 {
		t.Errorf("graph neighbours of an entity at the limit: %d hits, want 10", len(got))
	}
	if got := neighbours("what about rarity"); len(got) != 10 || got[0] != rare.ID {
		t.Errorf("graph neighbours of rarity, whose neighbour is at the limit: %v, want 10 with %s first", got, rare.ID)
	}
}

// testGraphIsolation: entities, edges, weights, paths, networks, related
// memories, tag pairs and aggregates that exist only through memories a
// caller may not see never reach it.
func testGraphIsolation(t *testing.T, ge *graphEnv) {
	// Five memories name "gateway": frontend's (frank, carol), backend's
	// with its secrets (alice, dave, carol), alice's own, the org's
	// (carol) and another org's (eve).
	front := ge.add(frank, memory.Input{Content: "frontend calls gateway", Scope: "team", Entity: "frontend",
		Tags: map[string]any{"layer": "edge", "relation:calls": "gateway"}})
	team := ge.add(alice, memory.Input{Content: "gateway forwards to vault", Scope: "team", Entity: "Gateway",
		ArtifactRef: "secret/vault-proxy", Tags: map[string]any{"layer": "edge", "codename": "nightjar", "relation:depends_on": "Vault Cluster"}})
	priv := ge.add(alice, memory.Input{Content: "my gateway notes", Entity: "gateway", Tags: map[string]any{"mood": "grumpy"}})
	org := ge.add(carol, memory.Input{Content: "gateway terminates tls", Scope: "org", Entity: "gateway", Tags: map[string]any{"layer": "edge"}})
	other := ge.add(eve, memory.Input{Content: "globex gateway", Scope: "org", Entity: "GATEWAY", Tags: map[string]any{"layer": "core"}})
	link, err := ge.svc.Relate(ge.as(carol), memory.RelateInput{Type: "related_to", FromMemory: org.ID, ToMemory: team.ID})
	if err != nil || !link.Created {
		t.Fatalf("link: %+v, %v", link, err)
	}
	backend := []string{"secret/vault-proxy", "codename=nightjar", "vault-cluster"}
	secrets := append(slices.Clone(backend), "mood=grumpy")

	for _, v := range []struct {
		p        auth.Principal
		memories int    // naming gateway
		display  string // of gateway
		edge     int    // memories naming gateway and layer=edge
		sees     []string
		hidden   []memory.Memory
	}{
		{frank, 1, "gateway", 1, nil, []memory.Memory{team, priv, org, other}},
		{bob, 0, "", 0, nil, []memory.Memory{front, team, priv, org, other}},
		{dave, 1, "Gateway", 1, backend, []memory.Memory{front, priv, org, other}},
		{carol, 3, "Gateway", 3, backend, []memory.Memory{priv, other}},
		{alice, 2, "Gateway", 1, secrets, []memory.Memory{front, org, other}},
		{eve, 1, "GATEWAY", 0, nil, []memory.Memory{front, team, priv, org}},
	} {
		who := v.p.Subject
		ctx := ge.as(v.p)
		gw, ok := ge.entity(v.p, "gateway")
		if ok != (v.memories > 0) || gw.Memories != v.memories || gw.Display != v.display {
			t.Errorf("%s: gateway is %+v (found %v); want %d memories, display %q", who, gw, ok, v.memories, v.display)
		}
		for _, s := range secrets {
			_, ok := ge.entity(v.p, s)
			if want := slices.Contains(v.sees, s); ok != want {
				t.Errorf("%s: entity %q found=%v, want %v", who, s, ok, want)
			}
			if slices.Contains(v.sees, s) {
				continue
			}
			_, err := ge.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: s})
			wantErr(t, who+": network of hidden "+s, err, memory.ErrNotFound)
			_, err = ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: "gateway", To: s})
			wantErr(t, who+": path to hidden "+s, err, memory.ErrNotFound)
			_, err = ge.svc.PathBetweenEntities(ctx, memory.PathQuery{From: s, To: "gateway"})
			wantErr(t, who+": path from hidden "+s, err, memory.ErrNotFound)
			if pairs, err := ge.svc.TagCooccurrence(ctx, s, 0); err != nil || len(pairs) != 0 {
				t.Errorf("%s: tag pairs of hidden %s: %+v, %v", who, s, pairs, err)
			}
		}
		// Every name any answer gives is one the caller may see.
		var names []string
		if ok {
			n, err := ge.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: "gateway", Depth: 3, Limit: 200})
			if err != nil {
				t.Fatalf("%s: network of gateway: %v", who, err)
			}
			for _, x := range n.Nodes {
				names = append(names, x.Name, x.Display)
			}
			weight := 0.0
			for _, e := range n.Edges {
				names = append(names, e.From, e.To)
				if e.From == "gateway" && e.To == "layer=edge" && e.Type == memory.EdgeCoMention {
					weight = e.Weight
				}
			}
			if weight != float64(v.edge) {
				t.Errorf("%s: gateway–layer=edge weighs %g, want %d", who, weight, v.edge)
			}
		}
		pairs, err := ge.svc.TagCooccurrence(ctx, "", 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pairs {
			names = append(names, p.Tag, p.Other)
		}
		for _, by := range []string{"entity", "artifact", "tag"} {
			bs, err := ge.svc.Aggregate(ctx, memory.AggregateQuery{By: by})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				names = append(names, b.Key)
			}
		}
		all, err := ge.svc.Entities(ctx, memory.EntityQuery{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			names = append(names, e.Name, e.Display)
		}
		for _, n := range names {
			for _, s := range secrets {
				n := strings.ReplaceAll(strings.ToLower(n), " ", "-")
				if strings.Contains(n, s) && !slices.Contains(v.sees, s) {
					t.Errorf("%s: an answer names %q (of hidden %s)", who, n, s)
				}
			}
		}
		// Neighbours for retrieval return no hidden memory, also not one
		// found through a hidden entity.
		hits, err := ge.svc.GraphNeighbours(ctx, memory.AccessFor(v.p), "nightjar vault cluster gateway grumpy", memory.Filter{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			for _, m := range v.hidden {
				if h.Memory.ID == m.ID {
					t.Errorf("%s: graph neighbours return hidden memory %s", who, h.Memory.ID)
				}
			}
		}
		// Related memories: only visible ones, and a link only when the
		// caller sees both ends.
		for _, m := range v.hidden {
			_, err := ge.svc.RelatedMemories(ctx, m.ID, 0, memory.ViaREST)
			wantErr(t, who+": related to hidden "+m.Content, err, memory.ErrNotFound)
			to := priv.ID
			if m.ID == to {
				to = front.ID
			}
			_, err = ge.svc.Relate(ctx, memory.RelateInput{Type: "related_to", FromMemory: to, ToMemory: m.ID})
			wantErr(t, who+": link from hidden "+m.Content, err, memory.ErrNotFound)
		}
	}
	// Weights count visible memories only.
	for _, c := range []struct {
		p    auth.Principal
		want []string
	}{
		{frank, []string{"frontend->gateway relation:calls 1"}},
		{alice, []string{"gateway->vault-cluster relation:depends_on 1"}},
		{carol, []string{"frontend->gateway relation:calls 1", "gateway->vault-cluster relation:depends_on 1"}},
		{eve, nil},
	} {
		wantList(t, c.p.Subject+": relations of gateway", ge.edges(c.p, "gateway", memory.EdgeRelation), c.want)
	}
	wantList(t, "carol: gateway's layer edges", filterPrefix(ge.edges(carol, "gateway"), "layer"), []string{"layer=edge co_mention 3"})
	wantList(t, "frank: gateway's layer edges", filterPrefix(ge.edges(frank, "gateway"), "layer"), []string{"layer=edge co_mention 1"})
	wantList(t, "eve: gateway's layer edges", filterPrefix(ge.edges(eve, "gateway"), "layer"), []string{"layer=core co_mention 1"})

	related := func(p auth.Principal, id string, links bool) []string {
		t.Helper()
		rel, err := ge.svc.RelatedMemories(ge.as(p), id, 100, memory.ViaREST)
		if err != nil {
			t.Fatalf("%s: related to %s: %v", p.Subject, id, err)
		}
		var out []string
		for _, r := range rel {
			out = append(out, r.Memory.ID)
			if len(r.Links) > 0 != (links && r.Memory.ID == team.ID) {
				t.Errorf("%s: related %s carries links %+v", p.Subject, r.Memory.ID, r.Links)
			}
		}
		return out
	}
	wantList(t, "carol: related to the org memory", related(carol, org.ID, true), []string{team.ID, front.ID})
	wantList(t, "alice: related to backend's memory", related(alice, team.ID, false), []string{priv.ID})
	wantList(t, "dave: related to backend's memory", related(dave, team.ID, false), nil)
	wantList(t, "frank: related to frontend's memory", related(frank, front.ID, false), nil)
	wantList(t, "eve: related to her own", related(eve, other.ID, false), nil)

	// Paths run only over visible edges: carol reaches vault-cluster from
	// frontend through backend's memory; frank does not know it.
	if p, err := ge.svc.PathBetweenEntities(ge.as(carol), memory.PathQuery{From: "frontend", To: "vault cluster"}); err != nil || !p.Found || p.Hops != 2 {
		t.Errorf("carol: path frontend→vault-cluster: %+v, %v", p, err)
	}
	if p, err := ge.svc.PathBetweenEntities(ge.as(dave), memory.PathQuery{From: "gateway", To: "layer=edge"}); err != nil || !p.Found || p.Hops != 1 {
		t.Errorf("dave: path gateway→layer=edge: %+v, %v", p, err)
	}
}

func filterPrefix(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
