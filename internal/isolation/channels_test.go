package isolation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// A channel is one way in to the memory service: the service itself, REST,
// or MCP. The property test runs every operation through one of them and
// judges the outcome with the same model. Errors are the service's
// sentinels (memory.ErrNotFound, ErrForbidden, ErrConflict, a
// *memory.ValidationError) or errScope; raw is everything the caller got
// back, for leak checks.
type channel interface {
	name() string
	// scopes returns the scopes op needs on this channel (none on the
	// service, which leaves scopes to the transports) and whether the
	// channel offers op at all.
	scopes(op opKind) ([]string, bool)
	add(t *testing.T, p *principal, in memory.Input) (m memory.Memory, created bool, raw []byte, err error)
	get(t *testing.T, p *principal, id string) (memory.Memory, []byte, error)
	update(t *testing.T, p *principal, id string, patch memory.Patch) (memory.Memory, []byte, error)
	transition(t *testing.T, p *principal, id string, a memory.Action) (memory.Memory, []byte, error)
	remove(t *testing.T, p *principal, id string) ([]byte, error)
	history(t *testing.T, p *principal, id string) (int, []byte, error)
	list(t *testing.T, p *principal, q memory.ListQuery) ([]memory.Memory, string, []byte, error)
	search(t *testing.T, p *principal, q memory.SearchQuery) ([]memory.Memory, []byte, error)
	apps(t *testing.T, p *principal) ([]memory.AppCount, []byte, error)
	stats(t *testing.T, p *principal) (memory.Stats, []byte, error)
}

// errScope is a refusal for a missing scope.
var errScope = errors.New("missing scope")

// ---- the service ----

type serviceChannel struct{ svc *memory.Service }

func (serviceChannel) name() string                   { return "service" }
func (serviceChannel) scopes(opKind) ([]string, bool) { return nil, true }

func errText(err error) []byte {
	if err == nil {
		return nil
	}
	return []byte(err.Error())
}

func (c serviceChannel) add(t *testing.T, p *principal, in memory.Input) (memory.Memory, bool, []byte, error) {
	m, created, err := c.svc.Add(p.ctx(t.Context()), in)
	return m, created, errText(err), err
}

func (c serviceChannel) get(t *testing.T, p *principal, id string) (memory.Memory, []byte, error) {
	m, err := c.svc.Get(p.ctx(t.Context()), id, memory.ViaREST)
	return m, errText(err), err
}

func (c serviceChannel) update(t *testing.T, p *principal, id string, patch memory.Patch) (memory.Memory, []byte, error) {
	m, err := c.svc.Update(p.ctx(t.Context()), id, patch)
	return m, errText(err), err
}

func (c serviceChannel) transition(t *testing.T, p *principal, id string, a memory.Action) (memory.Memory, []byte, error) {
	m, err := c.svc.Transition(p.ctx(t.Context()), id, a)
	return m, errText(err), err
}

func (c serviceChannel) remove(t *testing.T, p *principal, id string) ([]byte, error) {
	_, err := c.svc.Delete(p.ctx(t.Context()), id)
	return errText(err), err
}

func (c serviceChannel) history(t *testing.T, p *principal, id string) (int, []byte, error) {
	h, err := c.svc.History(p.ctx(t.Context()), id)
	raw, _ := json.Marshal(h)
	return len(h), append(raw, errText(err)...), err
}

func (c serviceChannel) list(t *testing.T, p *principal, q memory.ListQuery) ([]memory.Memory, string, []byte, error) {
	page, err := c.svc.List(p.ctx(t.Context()), q, memory.ViaREST)
	return page.Memories, page.NextCursor, errText(err), err
}

func (c serviceChannel) search(t *testing.T, p *principal, q memory.SearchQuery) ([]memory.Memory, []byte, error) {
	res, err := c.svc.Search(p.ctx(t.Context()), q, memory.ViaREST)
	hits := res.Hits
	ms := make([]memory.Memory, len(hits))
	for i, h := range hits {
		ms[i] = h.Memory
	}
	return ms, errText(err), err
}

func (c serviceChannel) apps(t *testing.T, p *principal) ([]memory.AppCount, []byte, error) {
	a, err := c.svc.Apps(p.ctx(t.Context()))
	return a, errText(err), err
}

func (c serviceChannel) stats(t *testing.T, p *principal) (memory.Stats, []byte, error) {
	s, err := c.svc.Stats(p.ctx(t.Context()))
	return s, errText(err), err
}

// ---- REST ----

type restChannel struct {
	srv    *server
	routes map[opKind]httpapi.Route
}

func newRESTChannel(srv *server) restChannel {
	keys := map[opKind]string{
		opAdd: "POST /api/v1/memories", opGet: "GET /api/v1/memories/{id}", opUpdate: "PATCH /api/v1/memories/{id}",
		opTransition: "POST /api/v1/memories/{id}/state", opDelete: "DELETE /api/v1/memories/{id}",
		opHistory: "GET /api/v1/memories/{id}/history", opList: "GET /api/v1/memories", opSearch: "POST /api/v1/search",
		opApps: "GET /api/v1/apps", opStats: "GET /api/v1/stats",
	}
	c := restChannel{srv: srv, routes: map[opKind]httpapi.Route{}}
	for _, rt := range httpapi.Routes() {
		for op, key := range keys {
			if rt.Method+" "+rt.Path == key {
				c.routes[op] = rt
			}
		}
	}
	return c
}

func (restChannel) name() string { return "rest" }

func (c restChannel) scopes(op opKind) ([]string, bool) {
	rt, ok := c.routes[op]
	return rt.Scopes, ok
}

// call sends a request and maps an error answer to the service's errors.
func (c restChannel) call(t *testing.T, p *principal, method, path string, body any, out any) ([]byte, int, error) {
	t.Helper()
	r := c.srv.do(t, method, path, p.token, body)
	if r.status/100 == 2 {
		if out != nil {
			r.decode(t, out)
		}
		return r.body, r.status, nil
	}
	var e struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	var err error
	switch {
	case r.status == http.StatusForbidden && e.Error.Code == "insufficient_scope":
		err = fmt.Errorf("%w: %s", errScope, e.Error.Message)
	case r.status == http.StatusForbidden && e.Error.Code == "forbidden":
		err = fmt.Errorf("%w: %s", memory.ErrForbidden, e.Error.Message)
	case r.status == http.StatusNotFound && e.Error.Code == "not_found":
		err = fmt.Errorf("%w: %s", memory.ErrNotFound, e.Error.Message)
	case r.status == http.StatusConflict && e.Error.Code == "conflict":
		err = fmt.Errorf("%w: %s", memory.ErrConflict, e.Error.Message)
	case r.status == http.StatusBadRequest && e.Error.Code == "invalid_argument":
		err = &memory.ValidationError{Field: e.Error.Field, Reason: e.Error.Message}
	default:
		err = fmt.Errorf("unexpected answer %d %s", r.status, r.body)
	}
	return r.body, r.status, err
}

func memPath(id string, suffix string) string {
	return "/api/v1/memories/" + url.PathEscape(id) + suffix
}

func (c restChannel) add(t *testing.T, p *principal, in memory.Input) (memory.Memory, bool, []byte, error) {
	var m memory.Memory
	raw, status, err := c.call(t, p, "POST", "/api/v1/memories", in, &m)
	return m, status == http.StatusCreated, raw, err
}

func (c restChannel) get(t *testing.T, p *principal, id string) (memory.Memory, []byte, error) {
	var m memory.Memory
	raw, _, err := c.call(t, p, "GET", memPath(id, ""), nil, &m)
	return m, raw, err
}

func (c restChannel) update(t *testing.T, p *principal, id string, patch memory.Patch) (memory.Memory, []byte, error) {
	var m memory.Memory
	raw, _, err := c.call(t, p, "PATCH", memPath(id, ""), patch, &m)
	return m, raw, err
}

func (c restChannel) transition(t *testing.T, p *principal, id string, a memory.Action) (memory.Memory, []byte, error) {
	var m memory.Memory
	raw, _, err := c.call(t, p, "POST", memPath(id, "/state"), map[string]any{"action": a}, &m)
	return m, raw, err
}

func (c restChannel) remove(t *testing.T, p *principal, id string) ([]byte, error) {
	raw, _, err := c.call(t, p, "DELETE", memPath(id, ""), nil, nil)
	return raw, err
}

func (c restChannel) history(t *testing.T, p *principal, id string) (int, []byte, error) {
	var h struct {
		History []memory.HistoryEntry `json:"history"`
	}
	raw, _, err := c.call(t, p, "GET", memPath(id, "/history"), nil, &h)
	return len(h.History), raw, err
}

func strs[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

func timeParam(t *time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (c restChannel) list(t *testing.T, p *principal, q memory.ListQuery) ([]memory.Memory, string, []byte, error) {
	v := url.Values{}
	f := q.Filter
	for _, x := range f.Categories {
		v.Add("category", string(x))
	}
	for _, x := range f.Scopes {
		v.Add("scope", string(x))
	}
	for _, x := range f.States {
		v.Add("state", string(x))
	}
	for _, x := range f.Tags {
		v.Add("tag", x)
	}
	for name, val := range map[string]string{"entity": f.Entity, "artifact_ref": f.ArtifactRef, "app": f.App,
		"access_entity": f.AccessEntity, "sort": q.Sort, "cursor": q.Cursor} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if f.CreatedAfter != nil {
		v.Set("created_after", timeParam(f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		v.Set("created_before", timeParam(f.CreatedBefore))
	}
	if q.Limit != 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var page memory.Page
	raw, _, err := c.call(t, p, "GET", "/api/v1/memories?"+v.Encode(), nil, &page)
	return page.Memories, page.NextCursor, raw, err
}

func (c restChannel) search(t *testing.T, p *principal, q memory.SearchQuery) ([]memory.Memory, []byte, error) {
	f := q.Filter
	filters := map[string]any{}
	// (No nulls: "tags": null reads as one empty tag, which matches nothing.)
	for name, val := range map[string][]string{"category": strs(f.Categories), "scope": strs(f.Scopes), "state": strs(f.States), "tags": f.Tags} {
		if len(val) > 0 {
			filters[name] = val
		}
	}
	for name, val := range map[string]string{"entity": f.Entity, "artifact_ref": f.ArtifactRef, "app": f.App, "access_entity": f.AccessEntity} {
		if val != "" {
			filters[name] = val
		}
	}
	if f.CreatedAfter != nil {
		filters["created_after"] = timeParam(f.CreatedAfter)
	}
	if f.CreatedBefore != nil {
		filters["created_before"] = timeParam(f.CreatedBefore)
	}
	var res struct {
		Hits []memory.Hit `json:"hits"`
	}
	body := map[string]any{"query": q.Text, "limit": q.Limit, "filters": filters}
	if q.IncludeCold {
		body["include_cold"] = true
	}
	raw, _, err := c.call(t, p, "POST", "/api/v1/search", body, &res)
	ms := make([]memory.Memory, len(res.Hits))
	for i, h := range res.Hits {
		ms[i] = h.Memory
	}
	return ms, raw, err
}

func (c restChannel) apps(t *testing.T, p *principal) ([]memory.AppCount, []byte, error) {
	var res struct {
		Apps []memory.AppCount `json:"apps"`
	}
	raw, _, err := c.call(t, p, "GET", "/api/v1/apps", nil, &res)
	return res.Apps, raw, err
}

func (c restChannel) stats(t *testing.T, p *principal) (memory.Stats, []byte, error) {
	var s memory.Stats
	raw, _, err := c.call(t, p, "GET", "/api/v1/stats", nil, &s)
	return s, raw, err
}

// ---- MCP ----

// mcpChannel calls the tools through the SDK client over Streamable HTTP,
// one client session per principal, alternating the protocol eras.
type mcpChannel struct {
	srv   *server
	tools map[string][]string
	conns map[*principal]*mcp.ClientSession
	n     int
}

func newMCPChannel(srv *server) *mcpChannel {
	return &mcpChannel{srv: srv, tools: mcpserver.ToolScopes(), conns: map[*principal]*mcp.ClientSession{}}
}

func (*mcpChannel) name() string { return "mcp" }

var opTools = map[opKind]string{
	opAdd: "add_memories", opGet: "get_memory", opUpdate: "update_memory", opDelete: "delete_memories",
	opHistory: "memory_history", opList: "list_memories", opSearch: "search_memory",
}

func (c *mcpChannel) scopes(op opKind) ([]string, bool) {
	s, ok := c.tools[opTools[op]]
	return s, ok
}

func (c *mcpChannel) session(t *testing.T, p *principal) *mcp.ClientSession {
	t.Helper()
	cs, ok := c.conns[p]
	if !ok {
		cs = c.srv.connect(t, p, eras[c.n%len(eras)])
		c.n++
		c.conns[p] = cs
	}
	return cs
}

func (c *mcpChannel) call(t *testing.T, p *principal, tool string, args map[string]any, out any) ([]byte, error) {
	t.Helper()
	r := call(t, c.session(t, p), tool, args)
	if r.failed() {
		return r.raw, toolErr(r.message())
	}
	if out != nil {
		if err := json.Unmarshal(mustJSON(r.res.StructuredContent), out); err != nil {
			t.Fatalf("%s: decode %s: %v", tool, r.raw, err)
		}
	}
	return r.raw, nil
}

// toolErr maps a tool's error text to the service's errors.
func toolErr(msg string) error {
	switch {
	case strings.Contains(msg, "missing scope"):
		return fmt.Errorf("%w: %s", errScope, msg)
	case strings.HasPrefix(msg, "invalid "):
		field, _, _ := strings.Cut(strings.TrimPrefix(msg, "invalid "), ":")
		return &memory.ValidationError{Field: field, Reason: msg}
	case strings.Contains(msg, "not found"):
		return fmt.Errorf("%w: %s", memory.ErrNotFound, msg)
	case strings.Contains(msg, "forbidden"):
		return fmt.Errorf("%w: %s", memory.ErrForbidden, msg)
	case strings.Contains(msg, "conflict"):
		return fmt.Errorf("%w: %s", memory.ErrConflict, msg)
	}
	return errors.New(msg)
}

func fromView(v mcpserver.MemoryView) memory.Memory {
	return memory.Memory{ID: v.ID, Content: v.Content, Category: memory.Category(v.Category), Entity: v.Entity,
		Scope: memory.Scope(v.Scope), State: memory.State(v.State), AccessEntity: v.AccessEntity, App: v.App}
}

func (c *mcpChannel) add(t *testing.T, p *principal, in memory.Input) (memory.Memory, bool, []byte, error) {
	item := map[string]any{"content": in.Content}
	for k, v := range map[string]string{"category": string(in.Category), "scope": string(in.Scope), "access_entity": in.AccessEntity,
		"idempotency_key": in.IdempotencyKey, "entity": in.Entity} {
		if v != "" {
			item[k] = v
		}
	}
	if in.Tags != nil {
		item["tags"] = in.Tags
	}
	r := call(t, c.session(t, p), "add_memories", addArgs(item))
	if r.err != nil {
		return memory.Memory{}, false, r.raw, toolErr(r.message())
	}
	// A refused item makes an error result that still carries the
	// outcome of each item.
	var out mcpserver.AddMemoriesOutput
	if err := json.Unmarshal(mustJSON(r.res.StructuredContent), &out); err != nil || len(out.Results) != 1 {
		if r.res.IsError {
			return memory.Memory{}, false, r.raw, toolErr(r.message())
		}
		t.Fatalf("add_memories answered %s", r.raw)
	}
	res := out.Results[0]
	if res.Status == "failed" {
		return memory.Memory{}, false, r.raw, toolErr(res.Error)
	}
	return memory.Memory{ID: res.ID}, res.Status == "created", r.raw, nil
}

func (c *mcpChannel) get(t *testing.T, p *principal, id string) (memory.Memory, []byte, error) {
	var v mcpserver.MemoryView
	raw, err := c.call(t, p, "get_memory", map[string]any{"id": id}, &v)
	return fromView(v), raw, err
}

func (c *mcpChannel) update(t *testing.T, p *principal, id string, patch memory.Patch) (memory.Memory, []byte, error) {
	args := map[string]any{"id": id}
	if patch.Content != nil {
		args["content"] = *patch.Content
	}
	if patch.Category != nil {
		args["category"] = *patch.Category
	}
	if patch.Scope != nil {
		args["scope"] = *patch.Scope
	}
	if patch.AccessEntity != nil {
		args["access_entity"] = *patch.AccessEntity
	}
	if patch.Tags != nil {
		args["tags"] = *patch.Tags
	}
	var v mcpserver.MemoryView
	raw, err := c.call(t, p, "update_memory", args, &v)
	return fromView(v), raw, err
}

func (c *mcpChannel) transition(*testing.T, *principal, string, memory.Action) (memory.Memory, []byte, error) {
	panic("no MCP tool changes state")
}

func (c *mcpChannel) remove(t *testing.T, p *principal, id string) ([]byte, error) {
	var out mcpserver.DeleteOutput
	raw, err := c.call(t, p, "delete_memories", map[string]any{"ids": []string{id}}, &out)
	return raw, err
}

func (c *mcpChannel) history(t *testing.T, p *principal, id string) (int, []byte, error) {
	var out mcpserver.HistoryOutput
	raw, err := c.call(t, p, "memory_history", map[string]any{"id": id, "detail": "full"}, &out)
	return len(out.Entries), raw, err
}

func mcpFilters(f memory.Filter) map[string]any {
	out := map[string]any{}
	if len(f.Categories) > 0 {
		out["category"] = f.Categories
	}
	if len(f.Scopes) > 0 {
		out["scope"] = f.Scopes
	}
	if len(f.States) > 0 {
		out["state"] = f.States
	}
	if len(f.Tags) > 0 {
		out["tags"] = f.Tags
	}
	for name, val := range map[string]string{"entity": f.Entity, "artifact_ref": f.ArtifactRef, "app": f.App} {
		if val != "" {
			out[name] = val
		}
	}
	if f.CreatedAfter != nil {
		out["created_after"] = timeParam(f.CreatedAfter)
	}
	if f.CreatedBefore != nil {
		out["created_before"] = timeParam(f.CreatedBefore)
	}
	return out
}

func (c *mcpChannel) list(t *testing.T, p *principal, q memory.ListQuery) ([]memory.Memory, string, []byte, error) {
	args := map[string]any{"detail": "full", "filters": mcpFilters(q.Filter)}
	if q.Sort != "" {
		args["sort"] = q.Sort
	}
	if q.Limit != 0 {
		args["limit"] = q.Limit
	}
	if q.Cursor != "" {
		args["cursor"] = q.Cursor
	}
	var out mcpserver.ListOutput
	raw, err := c.call(t, p, "list_memories", args, &out)
	ms := make([]memory.Memory, len(out.Memories))
	for i, v := range out.Memories {
		ms[i] = fromView(v)
	}
	return ms, out.NextCursor, raw, err
}

func (c *mcpChannel) search(t *testing.T, p *principal, q memory.SearchQuery) ([]memory.Memory, []byte, error) {
	args := map[string]any{"query": q.Text, "detail": "full", "filters": mcpFilters(q.Filter)}
	if q.Limit != 0 {
		args["limit"] = q.Limit
	}
	if q.IncludeCold {
		args["include_cold"] = true
	}
	var out mcpserver.SearchOutput
	raw, err := c.call(t, p, "search_memory", args, &out)
	ms := make([]memory.Memory, len(out.Results))
	for i, v := range out.Results {
		ms[i] = fromView(v)
	}
	return ms, raw, err
}

func (c *mcpChannel) apps(*testing.T, *principal) ([]memory.AppCount, []byte, error) {
	panic("no MCP tool counts apps")
}

func (c *mcpChannel) stats(*testing.T, *principal) (memory.Stats, []byte, error) {
	panic("no MCP tool counts memories")
}
