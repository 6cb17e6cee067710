package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestGraphWire pins the requests the graph methods send.
func TestGraphWire(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{body: `{}`}
	c := serve(t, rec)
	for _, tc := range []struct {
		call func() error
		want string // method and request URI
	}{
		{func() error { _, err := c.Related(ctx, "m/1", 5); return err }, "GET /api/v1/memories/m%2F1/related?limit=5"},
		{func() error { _, err := c.Entities(ctx, client.EntityQuery{Prefix: "pay", Kind: "tag"}); return err }, "GET /api/v1/entities?kind=tag&prefix=pay"},
		{func() error {
			_, err := c.EntityNetwork(ctx, client.NetworkQuery{Entity: "github.com/acme/api", Depth: 2, Types: []string{"co_mention", "relation"}})
			return err
		}, "GET /api/v1/entities/github.com%2Facme%2Fapi/network?depth=2&type=co_mention&type=relation"},
		{func() error { _, err := c.Path(ctx, client.PathQuery{From: "a b", To: "c", MaxDepth: 3}); return err }, "GET /api/v1/graph/path?from=a+b&max_depth=3&to=c"},
		{func() error {
			_, err := c.Aggregate(ctx, client.AggregateQuery{By: "tag", Filter: client.Filter{Tags: []string{"k=v"}}, Limit: 7})
			return err
		}, "GET /api/v1/aggregate?by=tag&limit=7&tag=k%3Dv"},
		{func() error { _, err := c.TagCooccurrence(ctx, "lang=go", 0); return err }, "GET /api/v1/tags/cooccurrence?tag=lang%3Dgo"},
	} {
		if err := tc.call(); err != nil {
			t.Errorf("%s: %v", tc.want, err)
			continue
		}
		if got := rec.req.Method + " " + rec.req.URL.RequestURI(); got != tc.want {
			t.Errorf("sent %s, want %s", got, tc.want)
		}
	}
	rec.status, rec.body = http.StatusCreated, `{"type":"uses","from":"a","to":"b","memory_id":"m9","created":true}`
	r, err := c.Relate(ctx, client.RelateInput{Type: "uses", From: "a", To: "b", Scope: "team"})
	var body map[string]any
	_ = json.Unmarshal(rec.reqBody, &body)
	if err != nil || !r.Created || r.MemoryID != "m9" || rec.req.Method != "POST" || rec.req.URL.Path != "/api/v1/relations" || body["scope"] != "team" || body["from_memory"] != nil {
		t.Errorf("relate: %+v, %v; sent %s %s %s", r, err, rec.req.Method, rec.req.URL.Path, rec.reqBody)
	}
}

// TestGraphRoundTrip runs the graph methods against the real REST server.
func TestGraphRoundTrip(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "iss", "aud", nil)
	srv := httptest.NewServer(httpapi.New(memory.NewService(store, memory.Options{}), httpapi.Options{Verifier: tokens, Version: "test"}))
	defer srv.Close()
	tok, err := tokens.Issue(auth.Principal{Subject: "ann", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"org:acme"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(srv.URL, tok)
	a, _, err := c.Add(ctx, client.Input{Content: "the api uses postgres", Entity: "github.com/acme/api", Tags: map[string]any{"lang": "go"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.Relate(ctx, client.RelateInput{Type: "depends_on", From: "github.com/acme/api", To: "postgres"})
	if err != nil || !rel.Created {
		t.Fatalf("relate: %+v, %v", rel, err)
	}
	if r, err := c.Related(ctx, a.ID, 0); err != nil || len(r) != 1 || r[0].Memory.ID != rel.MemoryID {
		t.Errorf("related: %+v, %v", r, err)
	}
	if n, err := c.EntityNetwork(ctx, client.NetworkQuery{Entity: "github.com/acme/api"}); err != nil || len(n.Nodes) != 2 {
		t.Errorf("network: %+v, %v", n, err)
	}
	if p, err := c.Path(ctx, client.PathQuery{From: "lang=go", To: "postgres"}); err != nil || !p.Found || p.Hops != 2 {
		t.Errorf("path: %+v, %v", p, err)
	}
	if es, err := c.Entities(ctx, client.EntityQuery{Kind: "tag"}); err != nil || len(es) != 1 {
		t.Errorf("entities: %+v, %v", es, err)
	}
	if bs, err := c.Aggregate(ctx, client.AggregateQuery{By: "entity"}); err != nil || len(bs) != 1 || bs[0].Memories != 2 {
		t.Errorf("aggregate: %+v, %v", bs, err)
	}
	if ps, err := c.TagCooccurrence(ctx, "", 0); err != nil || len(ps) != 0 {
		t.Errorf("tag pairs: %+v, %v", ps, err)
	}
	if _, err := c.EntityNetwork(ctx, client.NetworkQuery{Entity: "nowhere"}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("network of an unknown entity: %v", err)
	}
}
