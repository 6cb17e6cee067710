package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// The entity graph: related memories, entities, networks, paths,
// aggregations, tag co-occurrence and relations. Reads need scope
// graph:read (Entities: entities:read); Relate needs graph:write and
// memories:write.

// Related returns the memories related to memory id through shared
// entities and tags and explicit links, best first; limit 0 takes the
// server's default.
func (c *Client) Related(ctx context.Context, id string, limit int) ([]memory.RelatedMemory, error) {
	q := url.Values{}
	addInt(q, "limit", limit)
	var out struct {
		Related []memory.RelatedMemory `json:"related"`
	}
	if _, err := c.do(ctx, http.MethodGet, memoryPath(id)+"/related", q, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("related memories of %s: %w", id, err)
	}
	return out.Related, nil
}

// Entities lists the entities visible memories mention, most mentioned
// first: with a name prefix and kind when q has them (q.Names is not sent).
func (c *Client) Entities(ctx context.Context, q memory.EntityQuery) ([]memory.Entity, error) {
	v := url.Values{}
	addString(v, "prefix", q.Prefix)
	addString(v, "kind", q.Kind)
	addInt(v, "limit", q.Limit)
	var out struct {
		Entities []memory.Entity `json:"entities"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/entities", v, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list entities: %w", err)
	}
	return out.Entities, nil
}

// EntityNetwork returns the entities and edges around q.Entity.
func (c *Client) EntityNetwork(ctx context.Context, q memory.NetworkQuery) (memory.Network, error) {
	v := url.Values{"type": q.Types}
	addInt(v, "depth", q.Depth)
	addInt(v, "limit", q.Limit)
	var out memory.Network
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/entities/"+url.PathEscape(q.Entity)+"/network", v, nil, nil, &out); err != nil {
		return memory.Network{}, fmt.Errorf("network of entity %q: %w", q.Entity, err)
	}
	return out, nil
}

// Path returns a shortest path between q.From and q.To (Found false when
// there is none within q.MaxDepth edges).
func (c *Client) Path(ctx context.Context, q memory.PathQuery) (memory.Path, error) {
	v := url.Values{"from": {q.From}, "to": {q.To}, "type": q.Types}
	addInt(v, "max_depth", q.MaxDepth)
	var out memory.Path
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/graph/path", v, nil, nil, &out); err != nil {
		return memory.Path{}, fmt.Errorf("path from %q to %q: %w", q.From, q.To, err)
	}
	return out, nil
}

// Aggregate counts visible memories matching q.Filter grouped by q.By.
func (c *Client) Aggregate(ctx context.Context, q memory.AggregateQuery) ([]memory.Bucket, error) {
	v := ListParams{Filter: q.Filter}.Values()
	v.Set("by", q.By)
	addInt(v, "limit", q.Limit)
	var out struct {
		Buckets []memory.Bucket `json:"buckets"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/aggregate", v, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("aggregate by %s: %w", q.By, err)
	}
	return out.Buckets, nil
}

// TagCooccurrence returns pairs of tags on the same visible memories, with
// tag when it is not empty, most frequent first.
func (c *Client) TagCooccurrence(ctx context.Context, tag string, limit int) ([]memory.TagPair, error) {
	v := url.Values{}
	addString(v, "tag", tag)
	addInt(v, "limit", limit)
	var out struct {
		Pairs []memory.TagPair `json:"pairs"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/tags/cooccurrence", v, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("tag co-occurrence: %w", err)
	}
	return out.Pairs, nil
}

// Relate records a typed relation between two entities (stored as a
// memory) or two memories. Relation.Created is false when it existed.
func (c *Client) Relate(ctx context.Context, in memory.RelateInput) (memory.Relation, error) {
	var out memory.Relation
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/relations", nil, nil, in, &out); err != nil {
		return memory.Relation{}, fmt.Errorf("relate: %w", err)
	}
	return out, nil
}

func addInt(q url.Values, key string, n int) {
	if n != 0 {
		q.Set(key, strconv.Itoa(n))
	}
}
