package mcpserver

import (
	"context"
	"errors"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// The graph tools: related_memories, entity_network, path_between_entities,
// aggregate, tag_cooccurrence and relate, thin adapters over the entity
// graph of memory.Service (memory/graph.go says what a caller sees of it).

// Enumerated inputs of the graph tools; enumSchemas lists their values.
type (
	relationType string
	aggregateBy  string
	edgeType     string
)

// hint is a tool error whose message already tells the model what to do.
type hint struct{ msg string }

func (h *hint) Error() string { return h.msg }

// entityHint rewords a not-found entity for a model.
func entityHint(err error) error {
	if errors.Is(err, memory.ErrNotFound) && strings.HasPrefix(err.Error(), "the entity ") {
		return &hint{err.Error() + ". No memory you may see mentions that entity; find entity names with aggregate (by entity, artifact or tag) or in the entity field of search_memory results"}
	}
	return err
}

// RelatedInput is the input of related_memories.
type RelatedInput struct {
	ID     string      `json:"id" jsonschema:"the memory whose related memories to find"`
	Limit  int         `json:"limit,omitempty" jsonschema:"how many, 1-100; default 10"`
	Detail detailLevel `json:"detail,omitempty" jsonschema:"compact (default): id, content, category, entity and score of each memory; full: every field"`
}

// RelatedView is one related memory.
type RelatedView struct {
	MemoryView
	Shared []string          `json:"shared,omitempty" jsonschema:"entities and tags both memories mention"`
	Links  []memory.LinkType `json:"links,omitempty" jsonschema:"explicit relations between the two memories; outgoing when the memory asked about is the source"`
}

// RelatedOutput is the output of related_memories, best first.
type RelatedOutput struct {
	Results []RelatedView `json:"results"`
}

// NetworkInput is the input of entity_network.
type NetworkInput struct {
	Entity string     `json:"entity" jsonschema:"the entity to start from: a service, module, library, artifact or tag (key or key=value); any spelling"`
	Depth  int        `json:"depth,omitempty" jsonschema:"hops, 1-3; default 1"`
	Limit  int        `json:"limit,omitempty" jsonschema:"at most this many entities besides the center, 1-200; default 50"`
	Types  []edgeType `json:"types,omitempty" jsonschema:"only these edge types; default all"`
}

// PathInput is the input of path_between_entities.
type PathInput struct {
	From     string     `json:"from" jsonschema:"the entity to start from"`
	To       string     `json:"to" jsonschema:"the entity to reach"`
	MaxDepth int        `json:"max_depth,omitempty" jsonschema:"at most this many edges, 1-4; default 4"`
	Types    []edgeType `json:"types,omitempty" jsonschema:"only these edge types; default all"`
}

// AggregateInput is the input of aggregate.
type AggregateInput struct {
	By      aggregateBy `json:"by" jsonschema:"what to group visible memories by"`
	Filters *Filters    `json:"filters,omitempty" jsonschema:"count only memories matching these"`
	Limit   int         `json:"limit,omitempty" jsonschema:"at most this many groups, 1-1000; default 100"`
}

// AggregateOutput is the output of aggregate, largest group first.
type AggregateOutput struct {
	By      string          `json:"by"`
	Buckets []memory.Bucket `json:"buckets"`
}

// TagPairsInput is the input of tag_cooccurrence.
type TagPairsInput struct {
	Tag   string `json:"tag,omitempty" jsonschema:"a tag key, or key=value: pairs with it; omit for the most frequent pairs of all"`
	Limit int    `json:"limit,omitempty" jsonschema:"how many pairs, 1-200; default 20"`
}

// TagPairsOutput is the output of tag_cooccurrence, most frequent first.
type TagPairsOutput struct {
	Pairs []memory.TagPair `json:"pairs"`
}

// RelateInput is the input of relate.
type RelateInput struct {
	Type         relationType    `json:"type" jsonschema:"the relation"`
	From         string          `json:"from,omitempty" jsonschema:"the entity the relation starts from, e.g. checkout-service"`
	To           string          `json:"to,omitempty" jsonschema:"the entity it points to, e.g. payments-api"`
	FromMemory   string          `json:"from_memory,omitempty" jsonschema:"instead of entities: the id of the memory the relation starts from"`
	ToMemory     string          `json:"to_memory,omitempty" jsonschema:"and the id of the memory it points to"`
	Note         string          `json:"note,omitempty" jsonschema:"why, or what else to know (entity relations only)"`
	Category     memory.Category `json:"category,omitempty" jsonschema:"category of the memory stating an entity relation"`
	Scope        memory.Scope    `json:"scope,omitempty" jsonschema:"who may see an entity relation; default user (only you)"`
	AccessEntity string          `json:"access_entity,omitempty" jsonschema:"exactly who may see an entity relation; derived from scope when omitted"`
	Evidence     []string        `json:"evidence,omitempty" jsonschema:"references that back an entity relation up"`
}

func (s *Server) addGraphTools() {
	addTool(s, &mcp.Tool{
		Name: "related_memories",
		Description: `Find memories related to one memory: those naming the same entities, artifacts or tags (rarer shared names count for more), and those explicitly linked to it, best first.
Use it after get_memory or search_memory to gather context around a fact: other decisions about the same service, the runbook for the same component. Returns compact memories with score, the shared names and the links; set detail to "full" for every field.`,
		Annotations: hints("Related memories", true, false, true),
	}, s.relatedMemories)
	addTool(s, &mcp.Tool{
		Name: "entity_network",
		Description: `Show the graph around an entity: the entities within a few hops and the edges among them — co_mention (named by the same memory), tag_cooccurrence, and typed relations (relation:depends_on, …) — each weighted by how many memories support it.
Use it to see what a service or module is connected to before changing it. Returns the entities (with how many memories mention each) and the weighted edges.`,
		Annotations: hints("Entity network", true, false, true),
	}, s.entityNetwork)
	addTool(s, &mcp.Tool{
		Name: "path_between_entities",
		Description: `Find a shortest chain of edges (at most 4) connecting two entities, e.g. how a frontend component reaches a database.
Use it to explain how two parts of the system are connected, or to check that they are not. Returns the entities along the path and the edge between each pair; found is false when there is none within max_depth.`,
		Annotations: hints("Path between entities", true, false, true),
	}, s.pathBetweenEntities)
	addTool(s, &mcp.Tool{
		Name: "aggregate",
		Description: `Count memories grouped by category, scope, artifact, entity, tag, app or state, optionally filtered, largest group first.
Use it to get an overview (which services have the most decisions, which tags are used) or to find entity and tag names for the other graph tools.`,
		Annotations: hints("Aggregate", true, false, true),
	}, s.aggregate)
	addTool(s, &mcp.Tool{
		Name: "tag_cooccurrence",
		Description: `Show which tags appear together on memories, most frequent first: with one tag, or the top pairs overall.
Use it to discover how the team labels things before filtering by tags. Returns tag pairs with the number of memories carrying both.`,
		Annotations: hints("Tag co-occurrence", true, false, true),
	}, s.tagCooccurrence)
	addTool(s, &mcp.Tool{
		Name: "relate",
		Description: `Record a typed relation: between two entities (from, to), stored as a memory stating it — visible per its scope like any memory — or between two existing memories (from_memory, to_memory), visible to whoever may see both.
Use it when you learn that one service depends on, uses, calls, replaces or is part of another, or that one memory supersedes another. Relating the same thing twice is detected.`,
		Annotations: hints("Relate", false, false, true),
	}, s.relate)
}

func (s *Server) relatedMemories(ctx context.Context, in RelatedInput) (RelatedOutput, error) {
	if err := requireID(in.ID); err != nil {
		return RelatedOutput{}, err
	}
	rel, err := s.svc.RelatedMemories(ctx, in.ID, in.Limit, memory.ViaMCP)
	if err != nil {
		return RelatedOutput{}, about(in.ID, err)
	}
	out := RelatedOutput{Results: make([]RelatedView, len(rel))}
	for i, r := range rel {
		v := RelatedView{MemoryView: view(r.Memory, in.Detail.full()), Shared: r.Shared, Links: r.Links}
		v.Score = r.Score
		out.Results[i] = v
	}
	return out, nil
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func (s *Server) entityNetwork(ctx context.Context, in NetworkInput) (memory.Network, error) {
	n, err := s.svc.EntityNetwork(ctx, memory.NetworkQuery{Entity: in.Entity, Depth: in.Depth, Limit: in.Limit, Types: strs(in.Types)})
	return n, entityHint(err)
}

func (s *Server) pathBetweenEntities(ctx context.Context, in PathInput) (memory.Path, error) {
	p, err := s.svc.PathBetweenEntities(ctx, memory.PathQuery{From: in.From, To: in.To, MaxDepth: in.MaxDepth, Types: strs(in.Types)})
	return p, entityHint(err)
}

func (s *Server) aggregate(ctx context.Context, in AggregateInput) (AggregateOutput, error) {
	f, err := in.Filters.filter()
	if err != nil {
		return AggregateOutput{}, err
	}
	bs, err := s.svc.Aggregate(ctx, memory.AggregateQuery{By: string(in.By), Filter: f, Limit: in.Limit})
	if err != nil {
		return AggregateOutput{}, err
	}
	return AggregateOutput{By: string(in.By), Buckets: bs}, nil
}

func (s *Server) tagCooccurrence(ctx context.Context, in TagPairsInput) (TagPairsOutput, error) {
	pairs, err := s.svc.TagCooccurrence(ctx, in.Tag, in.Limit)
	if err != nil {
		return TagPairsOutput{}, err
	}
	return TagPairsOutput{Pairs: pairs}, nil
}

func (s *Server) relate(ctx context.Context, in RelateInput) (memory.Relation, error) {
	rel, err := s.svc.Relate(ctx, memory.RelateInput{
		Type: string(in.Type), From: in.From, To: in.To, FromMemory: in.FromMemory, ToMemory: in.ToMemory,
		Note: in.Note, Category: in.Category, Scope: in.Scope, AccessEntity: in.AccessEntity, Evidence: in.Evidence,
	})
	if err != nil && errors.Is(err, memory.ErrNotFound) {
		for _, id := range []string{in.FromMemory, in.ToMemory} {
			if id != "" && strings.Contains(err.Error(), id) {
				return memory.Relation{}, about(id, err)
			}
		}
	}
	return rel, err
}
