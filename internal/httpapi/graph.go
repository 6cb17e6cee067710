package httpapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// The entity graph's routes: related memories, entities, networks, paths,
// aggregations, tag co-occurrence and relations. The rules, and what each
// caller may see of the graph, are memory.Service's.

// Request and response bodies of the graph routes.
type (
	relatedResponse struct {
		Related []memory.RelatedMemory `json:"related"`
	}
	entitiesResponse struct {
		Entities []memory.Entity `json:"entities"`
	}
	networkResponse   memory.Network
	pathResponse      memory.Path
	aggregateResponse struct {
		By      string          `json:"by"`
		Buckets []memory.Bucket `json:"buckets"`
	}
	tagPairsResponse struct {
		Pairs []memory.TagPair `json:"pairs"`
	}
	relateRequest    memory.RelateInput
	relationResponse memory.Relation
)

var (
	relatedParams = []Param{{Name: "limit", Type: "integer", Description: "how many, 1-100 (default 10)"}}
	entityParams  = []Param{
		{Name: "prefix", Type: "string", Description: "names starting with this (normalized)"},
		{Name: "kind", Type: "string", Description: "named as: entity, artifact, explicit or tag"},
		{Name: "limit", Type: "integer", Description: "how many, 1-500 (default 50)"},
	}
	edgeTypeParam = Param{Name: "type", Type: "string", Repeat: true,
		Description: "only edges of these types: co_mention, tag_cooccurrence, relation (every relation), relation:<type>, similar"}
	networkParams = []Param{
		{Name: "depth", Type: "integer", Description: "hops from the entity, 1-3 (default 1)"},
		{Name: "limit", Type: "integer", Description: "entities besides the center, 1-200 (default 50)"},
		edgeTypeParam,
	}
	graphPathParams = []Param{
		{Name: "from", Type: "string", Description: "the entity to start from"},
		{Name: "to", Type: "string", Description: "the entity to reach"},
		{Name: "max_depth", Type: "integer", Description: "at most this many edges, 1-4 (default 4)"},
		edgeTypeParam,
	}
	tagPairParams = []Param{
		{Name: "tag", Type: "string", Description: "pairs with this tag (a key, or key=value); absent: every pair"},
		{Name: "limit", Type: "integer", Description: "how many, 1-200 (default 20)"},
	}
)

// aggregateParams are by, limit and the filters of a listing.
var aggregateParams = func() []Param {
	ps := []Param{
		{Name: "by", Type: "string", Description: "category, scope, artifact, entity, tag, app or state"},
		{Name: "limit", Type: "integer", Description: "how many groups, 1-1000 (default 100)"},
	}
	for _, p := range listParams {
		switch p.Name {
		case "sort", "limit", "cursor":
		default:
			ps = append(ps, p)
		}
	}
	return ps
}()

// query checks that v has only the params ps names and reads the integer
// ones named in ints.
func query(v url.Values, ps []Param, ints map[string]*int) error {
	known := map[string]bool{}
	for _, p := range ps {
		known[p.Name] = true
	}
	for k := range v {
		if !known[k] {
			return &memory.ValidationError{Field: k, Reason: "is not a known query parameter"}
		}
	}
	for name, dst := range ints {
		if s := v.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return &memory.ValidationError{Field: name, Reason: "must be an integer"}
			}
			*dst = n
		}
	}
	return nil
}

func (s *Server) relatedMemories(w http.ResponseWriter, r *http.Request) {
	var limit int
	if err := query(r.URL.Query(), relatedParams, map[string]*int{"limit": &limit}); err != nil {
		s.writeError(w, r, err)
		return
	}
	rel, err := s.svc.RelatedMemories(r.Context(), r.PathValue("id"), limit, memory.ViaREST)
	s.reply(w, r, relatedResponse{Related: nonNil(rel)}, err)
}

func (s *Server) listEntities(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := memory.EntityQuery{Prefix: v.Get("prefix"), Kind: v.Get("kind")}
	if err := query(v, entityParams, map[string]*int{"limit": &q.Limit}); err != nil {
		s.writeError(w, r, err)
		return
	}
	es, err := s.svc.Entities(r.Context(), q)
	s.reply(w, r, entitiesResponse{Entities: nonNil(es)}, err)
}

func (s *Server) entityNetwork(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := memory.NetworkQuery{Entity: r.PathValue("name"), Types: convert[string](v["type"])}
	if err := query(v, networkParams, map[string]*int{"depth": &q.Depth, "limit": &q.Limit}); err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.svc.EntityNetwork(r.Context(), q)
	s.reply(w, r, n, err)
}

func (s *Server) graphPath(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := memory.PathQuery{From: v.Get("from"), To: v.Get("to"), Types: convert[string](v["type"])}
	if err := query(v, graphPathParams, map[string]*int{"max_depth": &q.MaxDepth}); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.svc.PathBetweenEntities(r.Context(), q)
	s.reply(w, r, p, err)
}

func (s *Server) aggregate(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := memory.AggregateQuery{By: v.Get("by")}
	if err := query(v, aggregateParams, map[string]*int{"limit": &q.Limit}); err != nil {
		s.writeError(w, r, err)
		return
	}
	filters := url.Values{}
	for k, vs := range v {
		if k != "by" && k != "limit" {
			filters[k] = vs
		}
	}
	lq, err := parseListQuery(filters)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q.Filter = lq.Filter
	bs, err := s.svc.Aggregate(r.Context(), q)
	s.reply(w, r, aggregateResponse{By: q.By, Buckets: nonNil(bs)}, err)
}

func (s *Server) tagCooccurrence(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	var limit int
	if err := query(v, tagPairParams, map[string]*int{"limit": &limit}); err != nil {
		s.writeError(w, r, err)
		return
	}
	pairs, err := s.svc.TagCooccurrence(r.Context(), v.Get("tag"), limit)
	s.reply(w, r, tagPairsResponse{Pairs: nonNil(pairs)}, err)
}

func (s *Server) relate(w http.ResponseWriter, r *http.Request) {
	var in relateRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		in.IdempotencyKey = k
	}
	rel, err := s.svc.Relate(r.Context(), memory.RelateInput(in))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if rel.Created {
		status = http.StatusCreated
	}
	if rel.MemoryID != "" {
		w.Header().Set("Location", "/api/v1/memories/"+rel.MemoryID)
	}
	writeJSON(w, status, rel)
}
