package client_test

// These tests pin the wire details of the client — headers, query strings,
// request bodies and error decoding — against a recording handler. The
// behaviour of the real server is proven by the end-to-end test in
// cmd/codingbrain, which drives this client against a running server.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

const secret = "tok-SECRET-123"

// recorder is one canned answer and the request that received it.
type recorder struct {
	status int
	header http.Header
	body   string

	req     *http.Request
	reqBody []byte
}

func serve(t *testing.T, rec *recorder) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.req, rec.reqBody = r, b
		for k, vs := range rec.header {
			w.Header()[k] = vs
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		w.WriteHeader(rec.status)
		io.WriteString(w, rec.body)
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL+"/", secret, client.WithHTTPClient(srv.Client()))
}

func TestAddSendsInputAndHeaders(t *testing.T) {
	for _, tc := range []struct {
		status  int
		created bool
	}{{http.StatusCreated, true}, {http.StatusOK, false}} {
		rec := &recorder{status: tc.status, body: `{"id":"m1","content":"use pgx","state":"active"}`}
		c := serve(t, rec)
		in := memory.Input{Content: "use pgx", Category: "decision", Tags: map[string]any{"db": true}}
		m, created, err := c.Add(context.Background(), in, "key-1")
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		if m.ID != "m1" || created != tc.created {
			t.Errorf("status %d: got id %q created %v, want m1 %v", tc.status, m.ID, created, tc.created)
		}
		r := rec.req
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/memories" {
			t.Errorf("request %s %s, want POST /api/v1/memories", r.Method, r.URL.Path)
		}
		for h, want := range map[string]string{
			"Authorization": "Bearer " + secret, "Idempotency-Key": "key-1",
			"Content-Type": "application/json", "Accept": "application/json",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("header %s = %q, want %q", h, got, want)
			}
		}
		dec := json.NewDecoder(strings.NewReader(string(rec.reqBody)))
		dec.DisallowUnknownFields()
		var got memory.Input
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("body %s is not a memory.Input: %v", rec.reqBody, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Errorf("body decoded to %+v, want %+v", got, in)
		}
	}
}

func TestNoTokenNoIdempotencyKeySendsNoHeaders(t *testing.T) {
	rec := &recorder{status: http.StatusCreated, body: `{"id":"m1"}`}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.req = r
		w.WriteHeader(rec.status)
		io.WriteString(w, rec.body)
	}))
	defer srv.Close()
	c := client.New(srv.URL, "")
	if _, _, err := c.Add(context.Background(), memory.Input{Content: "x"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Authorization", "Idempotency-Key"} {
		if v, ok := rec.req.Header[h]; ok {
			t.Errorf("header %s sent as %q; want none", h, v)
		}
	}
}

func TestListBuildsQueryString(t *testing.T) {
	after := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := client.ListParams{
		Filter: memory.Filter{
			Categories: []memory.Category{"decision", "convention"},
			Scopes:     []memory.Scope{"team"},
			States:     []memory.State{"active", "paused"},
			Tags:       []string{"db", "lang=go"},
			Entity:     "OrderService", ArtifactRef: "db/orders", App: "cursor",
			AccessEntity: "team:acme/core", CreatedAfter: &after,
		},
		Sort: "-updated_at", Limit: 50, Cursor: "abc",
	}
	want := url.Values{
		"category": {"decision", "convention"}, "scope": {"team"}, "state": {"active", "paused"},
		"tag": {"db", "lang=go"}, "entity": {"OrderService"}, "artifact_ref": {"db/orders"},
		"app": {"cursor"}, "access_entity": {"team:acme/core"},
		"created_after": {"2026-01-02T03:04:05Z"}, "sort": {"-updated_at"}, "limit": {"50"}, "cursor": {"abc"},
	}
	if got := p.Values(); !reflect.DeepEqual(got, want) {
		t.Errorf("Values() = %v\nwant %v", got, want)
	}
	if got := (client.ListParams{}).Values(); len(got) != 0 {
		t.Errorf("zero ListParams gives %v, want no parameters", got)
	}

	rec := &recorder{body: `{"memories":[{"id":"a"},{"id":"b"}],"next_cursor":"n2"}`}
	c := serve(t, rec)
	page, err := c.List(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if rec.req.Method != http.MethodGet || rec.req.URL.Path != "/api/v1/memories" {
		t.Errorf("request %s %s", rec.req.Method, rec.req.URL.Path)
	}
	if got := rec.req.URL.Query(); !reflect.DeepEqual(got, want) {
		t.Errorf("server saw query %v\nwant %v", got, want)
	}
	if len(page.Memories) != 2 || page.NextCursor != "n2" {
		t.Errorf("page = %+v", page)
	}
}

func TestSearchBody(t *testing.T) {
	rec := &recorder{body: `{"hits":[{"memory":{"id":"m1","content":"pgx"},"score":1.5}],"mode":"hybrid"}`}
	c := serve(t, rec)
	res, err := c.Search(context.Background(), client.SearchRequest{
		Query: "which driver", Limit: 5,
		Filters: memory.Filter{Categories: []memory.Category{"decision"}, Tags: []string{"db"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if hits := res.Hits; len(hits) != 1 || hits[0].Memory.ID != "m1" || hits[0].Score != 1.5 {
		t.Errorf("hits = %+v", hits)
	}
	if res.Mode != memory.ModeHybrid {
		t.Errorf("mode = %q", res.Mode)
	}
	if rec.req.Method != http.MethodPost || rec.req.URL.Path != "/api/v1/search" {
		t.Errorf("request %s %s", rec.req.Method, rec.req.URL.Path)
	}
	want := `{"query":"which driver","limit":5,"filters":{"category":["decision"],"tags":["db"]}}`
	if string(rec.reqBody) != want {
		t.Errorf("body %s\nwant %s", rec.reqBody, want)
	}

	_, _ = c.Search(context.Background(), client.SearchRequest{Query: "q"})
	if want := `{"query":"q"}`; string(rec.reqBody) != want {
		t.Errorf("body without filters %s, want %s", rec.reqBody, want)
	}
}

func TestMemoryRoutes(t *testing.T) {
	ctx := context.Background()
	content := "new"
	for _, tc := range []struct {
		name         string
		call         func(c *client.Client) error
		method, path string
		body         string
	}{
		{"get", func(c *client.Client) error { _, err := c.Get(ctx, "a/b"); return err },
			"GET", "/api/v1/memories/a%2Fb", ""},
		{"update", func(c *client.Client) error {
			_, err := c.Update(ctx, "m1", memory.Patch{Content: &content})
			return err
		},
			"PATCH", "/api/v1/memories/m1", `{"content":"new"}`},
		{"delete", func(c *client.Client) error { _, err := c.Delete(ctx, "m1"); return err },
			"DELETE", "/api/v1/memories/m1", ""},
		{"state", func(c *client.Client) error { _, err := c.SetState(ctx, "m1", memory.ActionPause); return err },
			"POST", "/api/v1/memories/m1/state", `{"action":"pause"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{body: `{"id":"m1"}`}
			if err := tc.call(serve(t, rec)); err != nil {
				t.Fatal(err)
			}
			if rec.req.Method != tc.method || rec.req.URL.EscapedPath() != tc.path {
				t.Errorf("request %s %s, want %s %s", rec.req.Method, rec.req.URL.EscapedPath(), tc.method, tc.path)
			}
			if string(rec.reqBody) != tc.body {
				t.Errorf("body %q, want %q", rec.reqBody, tc.body)
			}
		})
	}
}

func TestListsUnwrapEnvelopes(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{body: `{"history":[{"id":1,"memory_id":"m1","action":"create"},{"id":2,"memory_id":"m1","action":"update"}]}`}
	h, err := serve(t, rec).History(ctx, "m1")
	if err != nil || len(h) != 2 || h[1].Action != "update" || rec.req.URL.Path != "/api/v1/memories/m1/history" {
		t.Errorf("History = %+v, %v (path %s)", h, err, rec.req.URL.Path)
	}
	rec = &recorder{body: `{"apps":[{"app":"cursor","memories":3}]}`}
	apps, err := serve(t, rec).Apps(ctx)
	if err != nil || len(apps) != 1 || apps[0] != (memory.AppCount{App: "cursor", Memories: 3}) {
		t.Errorf("Apps = %+v, %v", apps, err)
	}
	rec = &recorder{body: `{"total":4,"by_state":{"active":4}}`}
	st, err := serve(t, rec).Stats(ctx)
	if err != nil || st.Total != 4 || st.ByState["active"] != 4 || rec.req.URL.Path != "/api/v1/stats" {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}

func TestErrorEnvelope(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		sentinel error
		code     string
	}{
		{404, `{"error":{"code":"not_found","message":"memory m1: not found","request_id":"r1"}}`, memory.ErrNotFound, "not_found"},
		{409, `{"error":{"code":"conflict","message":"cannot pause","request_id":"r1"}}`, memory.ErrConflict, "conflict"},
		{403, `{"error":{"code":"forbidden","message":"no","request_id":"r1"}}`, memory.ErrForbidden, "forbidden"},
		{403, `{"error":{"code":"insufficient_scope","message":"needs search:read","request_id":"r1"}}`, memory.ErrForbidden, "insufficient_scope"},
		{401, `{"error":{"code":"unauthorized","message":"the token is not valid","request_id":"r1"}}`, memory.ErrUnauthorized, "unauthorized"},
		{503, `{"error":{"code":"unavailable","message":"retry later","request_id":"r1"}}`, memory.ErrUnavailable, "unavailable"},
		{502, `<html>bad gateway</html>`, memory.ErrUnavailable, "unavailable"},
		{404, ``, memory.ErrNotFound, "not_found"},
	} {
		rec := &recorder{status: tc.status, body: tc.body, header: http.Header{"X-Request-Id": {"r1"}}}
		_, err := serve(t, rec).Get(context.Background(), "m1")
		var ce *client.Error
		if !errors.As(err, &ce) {
			t.Fatalf("%d: error %v is not a *client.Error", tc.status, err)
		}
		if ce.Status != tc.status || ce.Code != tc.code || ce.RequestID != "r1" || ce.Message == "" {
			t.Errorf("%d: got %+v", tc.status, ce)
		}
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%d %s: errors.Is(%v) = false", tc.status, tc.code, tc.sentinel)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks the token", err)
		}
	}
}

func TestValidationError(t *testing.T) {
	rec := &recorder{status: 400, body: `{"error":{"code":"invalid_argument","message":"invalid category: \"x\" is not allowed","field":"category","request_id":"r9"}}`}
	_, _, err := serve(t, rec).Add(context.Background(), memory.Input{Content: "c", Category: "x"}, "")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Field != "category" || ce.Code != "invalid_argument" {
		t.Fatalf("err = %#v", err)
	}
	if want := `server: invalid_argument: invalid category: "x" is not allowed`; ce.Error() != want {
		t.Errorf("Error() = %q, want %q", ce.Error(), want)
	}
	if !strings.HasPrefix(err.Error(), "add memory: server: invalid_argument") {
		t.Errorf("wrapped error %q", err)
	}
	for _, s := range []error{memory.ErrNotFound, memory.ErrConflict, memory.ErrForbidden, memory.ErrUnauthorized} {
		if errors.Is(err, s) {
			t.Errorf("validation error matches %v", s)
		}
	}
}

func TestHealth(t *testing.T) {
	rec := &recorder{body: `{"status":"ok","version":"dev"}`}
	c := serve(t, rec)
	h, err := c.Health(context.Background(), "ready")
	if err != nil || h.Status != "ok" || h.Body["version"] != "dev" {
		t.Errorf("Health = %+v, %v", h, err)
	}
	if rec.req.URL.Path != "/health/ready" {
		t.Errorf("path %s", rec.req.URL.Path)
	}

	rec.status, rec.body = 503, `{"status":"unavailable","checks":{"store":"down"}}`
	h, err = c.Health(context.Background(), "deps")
	if h.Status != "unavailable" || !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("Health on 503 = %+v, %v", h, err)
	}

	if _, err := c.Health(context.Background(), "../api/v1/stats"); err == nil {
		t.Error("Health accepted an unknown probe")
	}
}

func TestTransportErrorHidesToken(t *testing.T) {
	c := client.New("http://127.0.0.1:1", secret)
	_, err := c.Get(context.Background(), "m1")
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q leaks the token", err)
	}
}
