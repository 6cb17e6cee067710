package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The entity graph. Every live (active or paused) memory mentions the
// entities ExtractGraph finds in it; the stores keep those mentions, and
// the typed relations its relation:<type> tags state, in the memory's write
// transaction. Everything else is derived when a query runs, from the
// mentions of memories the caller may see:
//
//   - an entity exists for a caller when a visible memory mentions it; its
//     display name and kinds are those of the visible mentions;
//   - a co_mention edge joins two entities one visible memory names (not
//     both as tags), a tag_cooccurrence edge two tags of one visible memory;
//     its weight is the number of such memories;
//   - a relation edge is stored with the memory that states it and has the
//     weight of the visible memories that state it.
//
// So no read can reach an entity, an edge or a weight through a memory
// outside the caller's access: visibility is a condition of every graph
// query, as it is of every memory query.

// Limits of graph queries.
const (
	MaxNetworkDepth     = 3
	MaxPathDepth        = 4
	MaxNetworkLimit     = 200
	DefaultNetworkLimit = 50
	MaxRelatedLimit     = 100
	DefaultRelatedLimit = 10
	MaxAggregateLimit   = 1000
	DefaultAggregate    = 100
	MaxPairsLimit       = 200
	DefaultPairsLimit   = 20
	MaxEntitiesLimit    = 500
	DefaultEntityLimit  = 50
	// maxFrontier bounds the entities one level of a path search expands,
	// so that a hub (a tag on every memory) cannot make a level unbounded.
	maxFrontier = 2000
)

// Entity is a node of the graph as one caller sees it.
type Entity struct {
	Name     string   `json:"name" jsonschema:"the normalized name, used to match"`
	Display  string   `json:"display" jsonschema:"the name as a visible memory wrote it"`
	Kinds    []string `json:"kinds" jsonschema:"how visible memories name it: entity, artifact, tag, explicit"`
	Memories int      `json:"memories" jsonschema:"visible memories that mention it"`
}

// Edge is an edge between two entities (normalized names). Derived edges
// (co_mention, tag_cooccurrence) have no direction; a relation goes From
// To. Weight is the number of visible memories behind it.
type Edge struct {
	From   string  `json:"from"`
	To     string  `json:"to"`
	Type   string  `json:"type" jsonschema:"co_mention, tag_cooccurrence, relation:<type> or similar"`
	Weight float64 `json:"weight"`
}

// EntityQuery selects entities: by exact normalized names, or by a name
// prefix and kind, most mentioned first.
type EntityQuery struct {
	Names  []string `json:"names,omitempty"`
	Prefix string   `json:"prefix,omitempty"`
	Kind   string   `json:"kind,omitempty"`
	Limit  int      `json:"limit,omitempty"`
}

// EdgeQuery asks for the visible edges with one end in From (normalized
// names) and, when To is given, the other end in To; of the given types
// (EdgeTypes; none means every type).
type EdgeQuery struct {
	From  []string
	To    []string
	Types []string
}

// RelatedMemory is a memory related to another through the graph.
type RelatedMemory struct {
	Memory Memory `json:"memory"`
	// Score ranks related memories: each shared entity adds its weight
	// (1, or 0.5 for a tag) divided by the number of visible memories that
	// mention it, so rare entities count for more; an explicit link adds 2.
	Score  float64    `json:"score"`
	Shared []string   `json:"shared,omitempty" jsonschema:"the entities both memories mention"`
	Links  []LinkType `json:"links,omitempty" jsonschema:"explicit relations between the two memories"`
}

// LinkType is an explicit relation between two memories as seen from one
// of them: Outgoing when that memory is the relation's source.
type LinkType struct {
	Type     string `json:"type"`
	Outgoing bool   `json:"outgoing"`
}

// MemoryLink is an explicit typed relation from one memory to another. It
// is visible only while the caller may see both memories and both are live.
type MemoryLink struct {
	From      string    `json:"from_memory"`
	To        string    `json:"to_memory"`
	Type      string    `json:"type"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Aggregations.
var AggregateBy = []string{"category", "scope", "artifact", "entity", "tag", "app", "state"}

// AggregateQuery counts visible memories matching Filter, grouped By one
// of AggregateBy. Memories without a value (no category, …) are not
// counted; tag counts every tag key and every key=value of a string value.
// Each bucket's key works as the matching filter of a listing.
type AggregateQuery struct {
	By     string `json:"by"`
	Filter Filter `json:"filter"`
	Limit  int    `json:"limit,omitempty"`
}

// Bucket is one group of an aggregation.
type Bucket struct {
	Key      string `json:"key"`
	Memories int    `json:"memories"`
}

// TagPair is two tags (display names: key=value for a string value, else
// the key) and the number of visible memories that carry both.
type TagPair struct {
	Tag      string `json:"tag"`
	Other    string `json:"other"`
	Memories int    `json:"memories"`
}

// GraphStore is implemented by stores that keep the entity graph (both
// stores do; it is not part of Store so that a Store can be written without
// it). Like Store, every method enforces Access inside its queries: an
// entity, edge, weight or count is computed only from memories a may see,
// and names that no visible memory mentions are not found.
type GraphStore interface {
	// Entities returns visible entities: those named in q.Names (in any
	// order), or else those whose name starts with q.Prefix and that
	// visible memories mention as q.Kind (both optional), most mentioned
	// first, then by name, at most q.Limit.
	Entities(ctx context.Context, a Access, q EntityQuery) ([]Entity, error)

	// Edges returns the visible edges touching q.From, one per pair and
	// type, with their weights. A derived edge has From in q.From; a
	// relation keeps its direction.
	Edges(ctx context.Context, a Access, q EdgeQuery) ([]Edge, error)

	// RelatedMemories ranks the live visible memories that share entities
	// with, or are linked to, the visible memory id (see RelatedMemory),
	// best first, at most limit.
	RelatedMemories(ctx context.Context, a Access, id string, limit int) ([]RelatedMemory, error)

	// Aggregate counts visible memories (see AggregateQuery), most first,
	// then by key.
	Aggregate(ctx context.Context, a Access, q AggregateQuery) ([]Bucket, error)

	// TagCooccurrence counts pairs of tags on visible memories: pairs with
	// the tag (normalized; a key without a value stands for the key and
	// all its values) when it is given, else every pair; most first.
	TagCooccurrence(ctx context.Context, a Access, tag string, limit int) ([]TagPair, error)

	// LinkMemories stores l unless it exists; both memories must be
	// visible and live (else ErrNotFound). created is false, and the
	// stored link is returned, when it existed.
	LinkMemories(ctx context.Context, a Access, l MemoryLink) (stored MemoryLink, created bool, err error)

	// GraphNeighbours is the graph neighbourhood as a retrieval source:
	// the live visible memories matching f that mention one of the seed
	// entities (normalized names) or one of the seeds' 20 strongest
	// non-tag neighbours, best first, at most limit. Entities more than
	// GraphCommonMentions memories mention are neither seeds nor
	// neighbours (the neighbours are the 20 strongest others of the 60
	// strongest). A memory scores 1 for each seed it mentions and
	// 0.5·w/(1+w) for each neighbour, w being the neighbour's co-mention
	// and relation weight with the seeds.
	GraphNeighbours(ctx context.Context, a Access, seeds []string, f Filter, limit int) ([]Hit, error)
}

// GraphCommonMentions is how many of an org's memories may mention an
// entity for it to take part in the graph source of search (as a seed or
// a neighbour; GraphStore.GraphNeighbours). An entity named by more is
// too common to say what a query is about — its neighbourhood is a large
// part of the org, tied at one score — and walking it is what made the
// source slow at 100k memories (docs/design.md, "The entity graph").
const GraphCommonMentions = 100

func (s *Service) graph() (GraphStore, error) {
	g, ok := s.store.(GraphStore)
	if !ok {
		return nil, fmt.Errorf("%w: this store keeps no entity graph", ErrUnavailable)
	}
	return g, nil
}

// graphAccess returns the graph store and the caller's access.
func (s *Service) graphAccess(ctx context.Context) (GraphStore, Access, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, Access{}, err
	}
	g, err := s.graph()
	return g, AccessFor(p), err
}

// limitField defaults a limit and checks its range.
func limitField(field string, n, def, max int) (int, error) {
	if n == 0 {
		return def, nil
	}
	if n < 1 || n > max {
		return 0, invalid(field, "must be between 1 and %d", max)
	}
	return n, nil
}

// edgeTypes checks an edge-type filter.
func edgeTypes(field string, types []string) error {
	allowed := EdgeTypes()
	for _, t := range types {
		if !slices.Contains(allowed, t) {
			return invalid(field, "%q is not an edge type; use one of: %s", t, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// Entities lists the entities visible memories mention (see
// GraphStore.Entities); names and prefix are normalized first.
func (s *Service) Entities(ctx context.Context, q EntityQuery) ([]Entity, error) {
	g, a, err := s.graphAccess(ctx)
	if err != nil {
		return nil, err
	}
	if q.Limit, err = limitField("limit", q.Limit, DefaultEntityLimit, MaxEntitiesLimit); err != nil {
		return nil, err
	}
	if q.Kind != "" {
		if err := oneOf("kind", q.Kind, EntityKinds); err != nil {
			return nil, err
		}
	}
	if q.Prefix != "" {
		if q.Prefix = NormalizeEntity(q.Prefix); q.Prefix == "" {
			return nil, invalid("prefix", "is longer than %d bytes", MaxEntityName)
		}
	}
	for i, n := range q.Names {
		if q.Names[i], err = entityField("names", n); err != nil {
			return nil, err
		}
	}
	return g.Entities(ctx, a, q)
}

// RelatedMemories ranks the memories related to the visible memory id
// through shared entities and explicit links (see RelatedMemory). A
// deleted memory is not found. Reads through MCP leave access-log rows.
func (s *Service) RelatedMemories(ctx context.Context, id string, limit int, via Via) ([]RelatedMemory, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	g, err := s.graph()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(id) == "" {
		return nil, invalid("id", "is required")
	}
	if limit, err = limitField("limit", limit, DefaultRelatedLimit, MaxRelatedLimit); err != nil {
		return nil, err
	}
	a := AccessFor(p)
	m, err := s.store.Get(ctx, a, id)
	if err != nil {
		return nil, err
	}
	if m.State == StateDeleted {
		return nil, fmt.Errorf("memory %s: %w", id, ErrNotFound)
	}
	rel, err := g.RelatedMemories(ctx, a, id, limit)
	if err != nil {
		return nil, err
	}
	if via == ViaMCP {
		ms := make([]Memory, len(rel))
		for i, r := range rel {
			ms[i] = r.Memory
		}
		s.logAccess(ctx, p, via, "", ms)
	}
	return rel, nil
}

// NetworkQuery asks for the graph around one entity.
type NetworkQuery struct {
	Entity string   `json:"entity"`
	Depth  int      `json:"depth,omitempty"` // hops, 1-3 (default 1)
	Limit  int      `json:"limit,omitempty"` // nodes besides the center, 1-200 (default 50)
	Types  []string `json:"types,omitempty"` // edge types (default every type)
}

// NetworkNode is an entity of a network and its distance from the center.
type NetworkNode struct {
	Entity
	Depth int `json:"depth"`
}

// Network is the neighbourhood of an entity: its nodes, nearest and
// strongest first, and every visible edge among them.
type Network struct {
	Center Entity        `json:"center"`
	Nodes  []NetworkNode `json:"nodes"`
	Edges  []Edge        `json:"edges"`
}

// EntityNetwork walks the visible edges out from an entity breadth first,
// up to q.Depth hops: each hop adds the newly reached entities, those most
// strongly tied to the entities already in the network first, until
// q.Limit entities are in; then it returns them with every visible edge
// among them. An entity no visible memory mentions is ErrNotFound.
func (s *Service) EntityNetwork(ctx context.Context, q NetworkQuery) (Network, error) {
	g, a, err := s.graphAccess(ctx)
	if err != nil {
		return Network{}, err
	}
	center, err := entityField("entity", q.Entity)
	if err != nil {
		return Network{}, err
	}
	if q.Depth, err = limitField("depth", q.Depth, 1, MaxNetworkDepth); err != nil {
		return Network{}, err
	}
	if q.Limit, err = limitField("limit", q.Limit, DefaultNetworkLimit, MaxNetworkLimit); err != nil {
		return Network{}, err
	}
	if err := edgeTypes("types", q.Types); err != nil {
		return Network{}, err
	}
	found, err := g.Entities(ctx, a, EntityQuery{Names: []string{center}})
	if err != nil {
		return Network{}, err
	}
	if len(found) == 0 {
		return Network{}, entityNotFound("entity")
	}
	depth := map[string]int{center: 0}
	order := []string{}
	frontier := []string{center}
	for d := 1; d <= q.Depth && len(frontier) > 0 && len(order) < q.Limit; d++ {
		edges, err := g.Edges(ctx, a, EdgeQuery{From: frontier, Types: q.Types})
		if err != nil {
			return Network{}, err
		}
		strength := map[string]float64{}
		for _, e := range edges {
			for _, n := range []string{e.From, e.To} {
				if _, seen := depth[n]; !seen {
					strength[n] += e.Weight
				}
			}
		}
		next := sortedByStrength(strength)
		next = next[:min(len(next), q.Limit-len(order))]
		for _, n := range next {
			depth[n] = d
		}
		order = append(order, next...)
		frontier = next
	}
	net := Network{Center: found[0], Nodes: []NetworkNode{}, Edges: []Edge{}}
	if len(order) == 0 {
		return net, nil
	}
	ents, err := g.Entities(ctx, a, EntityQuery{Names: order})
	if err != nil {
		return Network{}, err
	}
	byName := map[string]Entity{}
	for _, e := range ents {
		byName[e.Name] = e
	}
	for _, n := range order {
		if e, ok := byName[n]; ok {
			net.Nodes = append(net.Nodes, NetworkNode{Entity: e, Depth: depth[n]})
		}
	}
	all := append([]string{center}, order...)
	edges, err := g.Edges(ctx, a, EdgeQuery{From: all, To: all, Types: q.Types})
	if err != nil {
		return Network{}, err
	}
	net.Edges = distinctEdges(edges)
	return net, nil
}

// sortedByStrength returns the names of m, strongest first, then by name.
func sortedByStrength(m map[string]float64) []string {
	names := sortedKeys(m)
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	return names
}

// distinctEdges keeps one copy of each edge: a derived edge between two
// queried entities comes back once from each end.
func distinctEdges(edges []Edge) []Edge {
	seen := map[Edge]bool{}
	out := []Edge{}
	for _, e := range edges {
		key := e
		key.Weight = 0
		if !strings.HasPrefix(e.Type, RelationPrefix) && e.Type != EdgeSimilar && e.To < e.From {
			key.From, key.To = e.To, e.From
			e.From, e.To = e.To, e.From
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(b.Weight, a.Weight), strings.Compare(a.From, b.From), strings.Compare(a.To, b.To), strings.Compare(a.Type, b.Type))
	})
	return out
}

// betterEdge reports whether a describes a hop better than b: heavier,
// then stated (a relation) rather than derived, then by type.
func betterEdge(a, b Edge) bool {
	stated := func(e Edge) bool { return strings.HasPrefix(e.Type, RelationPrefix) || e.Type == EdgeSimilar }
	if a.Weight != b.Weight {
		return a.Weight > b.Weight
	}
	if stated(a) != stated(b) {
		return stated(a)
	}
	return a.Type < b.Type
}

// entityNotFound says which input named no visible entity. It does not
// repeat the name: the answer is the same for a name no memory mentions and
// for one only memories outside the caller's access mention.
func entityNotFound(field string) error {
	return fmt.Errorf("the entity %s names: %w", field, ErrNotFound)
}

// PathQuery asks for a shortest path between two entities.
type PathQuery struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	MaxDepth int      `json:"max_depth,omitempty"` // edges, 1-4 (default 4)
	Types    []string `json:"types,omitempty"`
}

// Path is a shortest path between two entities over visible edges, or
// Found false when there is none within MaxDepth edges.
type Path struct {
	Found bool     `json:"found"`
	Hops  int      `json:"hops"`
	Nodes []Entity `json:"nodes"` // From, …, To
	Edges []Edge   `json:"edges"` // Edges[i] joins Nodes[i] and Nodes[i+1]
}

// PathBetweenEntities finds a shortest path between two entities over the
// edges the caller may see, in either direction of a relation. It searches
// breadth first from both ends in process, expanding the smaller frontier
// one hop at a time with one store query (GraphStore.Edges) per hop. Among
// shortest paths it prefers the one through the lexically first meeting
// entity, and for each hop the heaviest edge. An entity no visible memory
// mentions is ErrNotFound.
func (s *Service) PathBetweenEntities(ctx context.Context, q PathQuery) (Path, error) {
	g, a, err := s.graphAccess(ctx)
	if err != nil {
		return Path{}, err
	}
	from, err := entityField("from", q.From)
	if err != nil {
		return Path{}, err
	}
	to, err := entityField("to", q.To)
	if err != nil {
		return Path{}, err
	}
	if q.MaxDepth, err = limitField("max_depth", q.MaxDepth, MaxPathDepth, MaxPathDepth); err != nil {
		return Path{}, err
	}
	if err := edgeTypes("types", q.Types); err != nil {
		return Path{}, err
	}
	ends, err := g.Entities(ctx, a, EntityQuery{Names: []string{from, to}})
	if err != nil {
		return Path{}, err
	}
	byName := map[string]Entity{}
	for _, e := range ends {
		byName[e.Name] = e
	}
	if _, ok := byName[from]; !ok {
		return Path{}, entityNotFound("from")
	}
	if _, ok := byName[to]; !ok {
		return Path{}, entityNotFound("to")
	}
	if from == to {
		return Path{Found: true, Nodes: []Entity{byName[from]}, Edges: []Edge{}}, nil
	}
	names, err := s.shortestPath(ctx, g, a, from, to, q.MaxDepth, q.Types)
	if err != nil || names == nil {
		return Path{Nodes: []Entity{}, Edges: []Edge{}}, err
	}
	// The heaviest edge of each hop, and the nodes as the caller sees them.
	p := Path{Found: true, Hops: len(names) - 1, Nodes: make([]Entity, 0, len(names)), Edges: make([]Edge, 0, len(names)-1)}
	edges, err := g.Edges(ctx, a, EdgeQuery{From: names, To: names, Types: q.Types})
	if err != nil {
		return Path{}, err
	}
	for i := 0; i+1 < len(names); i++ {
		var best *Edge
		for j, e := range edges {
			if (e.From == names[i] && e.To == names[i+1]) || (e.From == names[i+1] && e.To == names[i]) {
				if best == nil || betterEdge(e, *best) {
					best = &edges[j]
				}
			}
		}
		if best == nil { // the graph changed between the queries
			return Path{Nodes: []Entity{}, Edges: []Edge{}}, nil
		}
		e := *best
		if e.From != names[i] && !strings.HasPrefix(e.Type, RelationPrefix) && e.Type != EdgeSimilar {
			e.From, e.To = e.To, e.From
		}
		p.Edges = append(p.Edges, e)
	}
	ents, err := g.Entities(ctx, a, EntityQuery{Names: names})
	if err != nil {
		return Path{}, err
	}
	for _, e := range ents {
		byName[e.Name] = e
	}
	for _, n := range names {
		p.Nodes = append(p.Nodes, byName[n])
	}
	return p, nil
}

// shortestPath runs the bidirectional breadth-first search and returns
// the entity names of a shortest path, or nil.
func (s *Service) shortestPath(ctx context.Context, g GraphStore, a Access, from, to string, maxDepth int, types []string) ([]string, error) {
	type side struct {
		parent   map[string]string
		dist     map[string]int
		frontier []string
	}
	sides := [2]*side{
		{parent: map[string]string{from: ""}, dist: map[string]int{from: 0}, frontier: []string{from}},
		{parent: map[string]string{to: ""}, dist: map[string]int{to: 0}, frontier: []string{to}},
	}
	for hops := 0; hops < maxDepth; hops++ {
		i := 0
		if len(sides[1].frontier) < len(sides[0].frontier) {
			i = 1
		}
		me, other := sides[i], sides[1-i]
		if len(me.frontier) == 0 {
			return nil, nil
		}
		expand := me.frontier[:min(len(me.frontier), maxFrontier)]
		edges, err := g.Edges(ctx, a, EdgeQuery{From: expand, Types: types})
		if err != nil {
			return nil, err
		}
		inFrontier := map[string]bool{}
		for _, n := range expand {
			inFrontier[n] = true
		}
		// Deterministic: neighbours in name order, each parent the first
		// frontier entity (by name) that reaches it.
		slices.SortFunc(edges, func(x, y Edge) int {
			return cmp.Or(strings.Compare(x.From, y.From), strings.Compare(x.To, y.To))
		})
		var next []string
		meet, best := "", -1
		for _, e := range edges {
			for _, pair := range [2][2]string{{e.From, e.To}, {e.To, e.From}} {
				u, v := pair[0], pair[1]
				if !inFrontier[u] {
					continue
				}
				if _, seen := me.parent[v]; seen {
					continue
				}
				me.parent[v], me.dist[v] = u, me.dist[u]+1
				next = append(next, v)
				if d, ok := other.dist[v]; ok {
					if total := me.dist[v] + d; best < 0 || total < best || (total == best && v < meet) {
						meet, best = v, total
					}
				}
			}
		}
		if best >= 0 {
			var path []string
			for n := meet; n != ""; n = sides[0].parent[n] {
				path = append(path, n)
			}
			slices.Reverse(path)
			for n := sides[1].parent[meet]; n != ""; n = sides[1].parent[n] {
				path = append(path, n)
			}
			return path, nil
		}
		slices.Sort(next)
		me.frontier = next
	}
	return nil, nil
}

// Aggregate counts visible memories grouped by one field (see
// AggregateQuery).
func (s *Service) Aggregate(ctx context.Context, q AggregateQuery) ([]Bucket, error) {
	g, a, err := s.graphAccess(ctx)
	if err != nil {
		return nil, err
	}
	if q.By == "" {
		return nil, invalid("by", "is required; use one of: %s", strings.Join(AggregateBy, ", "))
	}
	if err := oneOf("by", q.By, AggregateBy); err != nil {
		return nil, err
	}
	if q.Limit, err = limitField("limit", q.Limit, DefaultAggregate, MaxAggregateLimit); err != nil {
		return nil, err
	}
	if err := validateFilter(q.Filter, ""); err != nil {
		return nil, err
	}
	return g.Aggregate(ctx, a, q)
}

// TagCooccurrence counts how often tags appear together on visible
// memories: with tag when given (key=value, or a key: the key with any
// value), else every pair.
func (s *Service) TagCooccurrence(ctx context.Context, tag string, limit int) ([]TagPair, error) {
	g, a, err := s.graphAccess(ctx)
	if err != nil {
		return nil, err
	}
	if limit, err = limitField("limit", limit, DefaultPairsLimit, MaxPairsLimit); err != nil {
		return nil, err
	}
	if tag != "" {
		if tag = NormalizeEntity(tag); tag == "" {
			return nil, invalid("tag", "is longer than %d bytes", MaxEntityName)
		}
	}
	return g.TagCooccurrence(ctx, a, tag, limit)
}

// RelateInput asks for a typed relation: between two entities (From, To)
// or between two memories (FromMemory, ToMemory).
//
// A relation between entities is itself a memory: Relate adds one whose
// entity is From and whose tag relation:<Type> names To, with the content
// "<from> <type> <to>" (and ": <note>"), in the access entity the other
// fields choose exactly as Add chooses it, validated and authorized as
// Add does. It is therefore visible exactly to those who may see that
// memory, has history, and goes when the memory is deleted or archived.
//
// A relation between memories is a link; the caller must see both, and it
// is visible only to those who see both.
type RelateInput struct {
	Type           string   `json:"type" jsonschema:"the relation: depends_on, uses, calls, implements, owned_by, part_of, replaces, related_to or similar"`
	From           string   `json:"from,omitempty" jsonschema:"the entity the relation starts from"`
	To             string   `json:"to,omitempty" jsonschema:"the entity it points to"`
	FromMemory     string   `json:"from_memory,omitempty" jsonschema:"instead of entities: the id of the memory the relation starts from"`
	ToMemory       string   `json:"to_memory,omitempty" jsonschema:"and the id of the memory it points to"`
	Note           string   `json:"note,omitempty" jsonschema:"why, or what else to know; added to the relation's memory"`
	Category       Category `json:"category,omitempty" jsonschema:"category of the relation's memory"`
	Scope          Scope    `json:"scope,omitempty" jsonschema:"who may see the relation; default user (only you)"`
	AccessEntity   string   `json:"access_entity,omitempty" jsonschema:"exactly who may see it; derived from scope when omitted"`
	Evidence       []string `json:"evidence,omitempty" jsonschema:"references that back it up"`
	IdempotencyKey string   `json:"idempotency_key,omitempty"`
}

// Relation is what Relate stored (or found already stored: Created false).
type Relation struct {
	Type       string    `json:"type"`
	From       string    `json:"from,omitempty"`
	To         string    `json:"to,omitempty"`
	FromMemory string    `json:"from_memory,omitempty"`
	ToMemory   string    `json:"to_memory,omitempty"`
	MemoryID   string    `json:"memory_id,omitempty" jsonschema:"the memory that states an entity relation"`
	Created    bool      `json:"created"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
}

// Relate creates a typed relation (see RelateInput).
func (s *Service) Relate(ctx context.Context, in RelateInput) (Relation, error) {
	p, err := principal(ctx)
	if err != nil {
		return Relation{}, err
	}
	if in.Type == "" {
		return Relation{}, invalid("type", "is required; use one of: %s", strings.Join(RelationTypes, ", "))
	}
	if err := oneOf("type", in.Type, RelationTypes); err != nil {
		return Relation{}, err
	}
	byEntity := in.From != "" || in.To != ""
	byMemory := in.FromMemory != "" || in.ToMemory != ""
	switch {
	case byEntity && byMemory:
		return Relation{}, invalid("from_memory", "relates memories; give either from and to (entities) or from_memory and to_memory, not both")
	case byMemory:
		return s.linkMemories(ctx, p.Subject, in)
	}
	from, err := entityField("from", in.From)
	if err != nil {
		return Relation{}, err
	}
	to, err := entityField("to", in.To)
	if err != nil {
		return Relation{}, err
	}
	switch {
	case strings.Contains(in.To, ","):
		return Relation{}, invalid("to", "must not contain a comma")
	case from == to:
		return Relation{}, invalid("to", "names the same entity as from")
	}
	content := fmt.Sprintf("%s %s %s", strings.TrimSpace(in.From), strings.ReplaceAll(in.Type, "_", " "), strings.TrimSpace(in.To))
	if note := strings.TrimSpace(in.Note); note != "" {
		content += ": " + note
	}
	m, created, err := s.Add(ctx, Input{
		Content: content, Entity: strings.TrimSpace(in.From), Category: in.Category, Scope: in.Scope,
		AccessEntity: in.AccessEntity, Evidence: in.Evidence, IdempotencyKey: in.IdempotencyKey,
		Tags: map[string]any{RelationPrefix + in.Type: strings.TrimSpace(in.To)},
	})
	if err != nil {
		return Relation{}, err
	}
	return Relation{Type: in.Type, From: strings.TrimSpace(in.From), To: strings.TrimSpace(in.To), MemoryID: m.ID,
		Created: created, CreatedBy: m.CreatedBy, CreatedAt: m.CreatedAt}, nil
}

func (s *Service) linkMemories(ctx context.Context, subject string, in RelateInput) (Relation, error) {
	g, a, err := s.graphAccess(ctx)
	if err != nil {
		return Relation{}, err
	}
	switch {
	case strings.TrimSpace(in.FromMemory) == "":
		return Relation{}, invalid("from_memory", "is required with to_memory")
	case strings.TrimSpace(in.ToMemory) == "":
		return Relation{}, invalid("to_memory", "is required with from_memory")
	case in.FromMemory == in.ToMemory:
		return Relation{}, invalid("to_memory", "is the same memory as from_memory")
	case in.Note != "" || in.Category != "" || in.Scope != "" || in.AccessEntity != "" || len(in.Evidence) > 0:
		return Relation{}, invalid("note", "note, category, scope, access_entity and evidence describe an entity relation's memory; a link between memories has none")
	}
	for _, id := range []string{in.FromMemory, in.ToMemory} {
		m, err := s.store.Get(ctx, a, id)
		if err == nil && m.State == StateDeleted {
			err = fmt.Errorf("memory %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return Relation{}, err
		}
		if !Live(m.State) {
			return Relation{}, fmt.Errorf("%w: memory %s is %s; restore it before relating it", ErrConflict, id, m.State)
		}
	}
	l, created, err := g.LinkMemories(ctx, a, MemoryLink{From: in.FromMemory, To: in.ToMemory, Type: in.Type, CreatedBy: subject, CreatedAt: s.now().UTC()})
	if err != nil {
		return Relation{}, err
	}
	return Relation{Type: l.Type, FromMemory: l.From, ToMemory: l.To, Created: created, CreatedBy: l.CreatedBy, CreatedAt: l.CreatedAt}, nil
}

// GraphNeighbours is the graph neighbourhood as a retrieval source for
// hybrid search: the live memories a may see, matching f, that mention an
// entity the query text names (QueryEntityNames) or one of those entities'
// strongest neighbours, best first, at most limit (see
// GraphStore.GraphNeighbours for the score). It takes the Access instead of
// reading the principal, for Search to call with the access it already
// checked; it writes no access-log rows (the caller logs what it returns).
// No entity named, or a store without a graph, is no hits and no error.
func (s *Service) GraphNeighbours(ctx context.Context, a Access, query string, f Filter, limit int) ([]Hit, error) {
	g, ok := s.store.(GraphStore)
	seeds := QueryEntityNames(query)
	if !ok || len(seeds) == 0 || limit < 1 {
		return []Hit{}, nil
	}
	return g.GraphNeighbours(ctx, a, seeds, f, limit)
}
