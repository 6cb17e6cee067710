package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// Memories as MCP resources.
//
//   - resources/templates/list offers memory://{id}; resources/read of
//     memory://ID returns the memory as JSON (every field), under the same
//     rules as get_memory: scope memories:read and the caller's grants. A
//     memory the caller cannot see is "Resource not found" (-32002), like
//     one that does not exist.
//   - resources/list lists the memories the caller can see, most recently
//     updated first, resourcesPageSize per page, continued with nextCursor.
//     A token without memories:read lists none.
//   - resources/subscribe to memory://ID (allowed when the caller can read
//     it) brings notifications/resources/updated when it is updated or
//     deleted; notifications/resources/list_changed goes to the sessions
//     whose principal can see a memory that was added, updated or deleted.
//     Both need a session: Streamable HTTP at 2025-11-25, legacy SSE and
//     stdio, or a subscriptions/listen stream at 2026-07-28.
//
// Results are marked private for caches (cacheScope, 2026-07-28): each
// caller sees different memories.

const (
	memoryScheme      = "memory://"
	resourcesPageSize = 50
	// changeSentinel is a resource added and removed at once to make the SDK
	// publish resources/list_changed; it is never listed.
	changeSentinel = "codingbrain:list-changed"
)

func memoryURI(id string) string { return memoryScheme + id }

func (s *Server) addResources() {
	s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:  "memory",
		Title: "Memory",
		Description: "One stored memory with every field (content, category, scope, entity, artifact, evidence, tags, state, author, timestamps), " +
			"as JSON. Ids come from search_memory, list_memories or resources/list.",
		MIMEType:    "application/json",
		URITemplate: memoryScheme + "{id}",
	}, s.readMemory)
	s.mcp.AddReceivingMiddleware(s.receiving)
	s.mcp.AddSendingMiddleware(s.watch.sending)
}

// caller finds the principal of a request that is not a tool call (see
// principalFor), checks its scopes and returns a context carrying it.
func (s *Server) caller(ctx context.Context, extra *mcp.RequestExtra, scopes ...string) (context.Context, auth.Principal, error) {
	var (
		p  auth.Principal
		ok bool
	)
	if extra != nil && extra.TokenInfo != nil {
		p, ok = principalOf(extra.TokenInfo)
	} else {
		p, ok = auth.PrincipalFrom(ctx)
		ok = ok && p.Subject != "" && p.OrgID != ""
	}
	if !ok {
		return ctx, p, errors.New("not authenticated: this connection carries no valid token")
	}
	if missing := p.Missing(scopes...); missing != "" {
		return ctx, p, fmt.Errorf("missing scope %s: this needs a token with scope %q; this token has [%s]",
			missing, missing, strings.Join(p.Scopes, " "))
	}
	if p.App == "" {
		p.App = "mcp"
	}
	return auth.WithPrincipal(ctx, p), p, nil
}

func (s *Server) readMemory(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id := strings.TrimPrefix(uri, memoryScheme)
	if id == "" || strings.ContainsAny(id, "/?#") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	ctx, _, err := s.caller(ctx, req.Extra, toolScopes["get_memory"]...)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: err.Error()}
	}
	m, err := s.svc.Get(ctx, id, memory.ViaMCP)
	if errors.Is(err, memory.ErrNotFound) {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	if err != nil {
		return nil, s.toolError(ctx, "resources/read", err)
	}
	body, err := json.MarshalIndent(view(m, true), "", "  ")
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{
		Contents:  []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(body)}},
		Cacheable: mcp.Cacheable{CacheScope: "private"},
	}, nil
}

// receiving sees every request first: it remembers which principal each
// session acts for (for list_changed) and answers resources/list itself,
// because the memories a caller may list are not a fixed set.
func (s *Server) receiving(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if ss, ok := req.GetSession().(*mcp.ServerSession); ok {
			if _, p, err := s.caller(ctx, req.GetExtra()); err == nil {
				s.watch.remember(s.mcp, ss, p)
			}
		}
		if r, ok := req.(*mcp.ListResourcesRequest); ok && method == "resources/list" {
			return s.listResources(ctx, r)
		}
		return next(ctx, method, req)
	}
}

func (s *Server) listResources(ctx context.Context, req *mcp.ListResourcesRequest) (*mcp.ListResourcesResult, error) {
	res := &mcp.ListResourcesResult{Resources: []*mcp.Resource{}, Cacheable: mcp.Cacheable{CacheScope: "private"}}
	cursor := ""
	if req.Params != nil {
		cursor = req.Params.Cursor
	}
	if cursor == "" && s.opts.ConformanceFixtures {
		res.Resources = append(res.Resources, fixtureResources...)
	}
	ctx, _, err := s.caller(ctx, req.Extra, toolScopes["list_memories"]...)
	if err != nil {
		return res, nil // nothing to list without memories:read
	}
	page, err := s.svc.List(ctx, memory.ListQuery{Sort: memory.SortUpdatedDesc, Limit: resourcesPageSize, Cursor: cursor}, memory.ViaMCP)
	var ve *memory.ValidationError
	if errors.As(err, &ve) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid cursor: pass the nextCursor of the previous page, or none for the first page"}
	}
	if err != nil {
		return nil, s.toolError(ctx, "resources/list", err)
	}
	for _, m := range page.Memories {
		res.Resources = append(res.Resources, memoryResource(m))
	}
	res.NextCursor = page.NextCursor
	return res, nil
}

// memoryResource describes m in a listing: its first line as the title,
// category and entity in the description.
func memoryResource(m memory.Memory) *mcp.Resource {
	title, _, _ := strings.Cut(m.Content, "\n")
	if len(title) > 80 {
		title = clip(title, 77) + "..."
	}
	var desc []string
	if m.Category != "" {
		desc = append(desc, string(m.Category))
	}
	if m.Entity != "" {
		desc = append(desc, "about "+m.Entity)
	}
	if m.ArtifactRef != "" {
		desc = append(desc, "in "+m.ArtifactRef)
	}
	return &mcp.Resource{
		URI: memoryURI(m.ID), Name: m.ID, Title: title, Description: strings.Join(desc, ", "),
		MIMEType: "application/json", Size: int64(len(m.Content)),
	}
}

// subscribe allows a subscription to a memory the caller can read, and to
// the fixtures in conformance mode.
func (s *Server) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	if s.opts.ConformanceFixtures && strings.HasPrefix(uri, "test://") {
		return nil
	}
	if !strings.HasPrefix(uri, memoryScheme) {
		return mcp.ResourceNotFoundError(uri)
	}
	ctx, _, err := s.caller(ctx, req.Extra, toolScopes["get_memory"]...)
	if err != nil {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: err.Error()}
	}
	if _, err := s.svc.Get(ctx, strings.TrimPrefix(uri, memoryScheme), memory.ViaMCP); err != nil {
		if errors.Is(err, memory.ErrNotFound) {
			return mcp.ResourceNotFoundError(uri)
		}
		return s.toolError(ctx, "resources/subscribe", err)
	}
	return nil
}

func (s *Server) unsubscribe(context.Context, *mcp.UnsubscribeRequest) error { return nil }

// cacheable marks memory reads private; every other cacheable result
// (the tool, prompt and template lists, the fixtures) is the same for
// every caller and stays public.
func cacheable(_ context.Context, req mcp.Request, c *mcp.Cacheable) {
	if r, ok := req.(*mcp.ReadResourceRequest); ok && r.Params != nil && strings.HasPrefix(r.Params.URI, memoryScheme) {
		c.CacheScope = "private"
	}
}

// changed tells sessions about written memories: resources/updated to the
// subscribers of each, and resources/list_changed to the sessions whose
// principal may see one of them.
func (s *Server) changed(ctx context.Context, ms ...memory.Memory) {
	if len(ms) == 0 {
		return
	}
	s.watch.upd.Lock()
	for _, m := range ms {
		s.watch.announce(&m)
		_ = s.mcp.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: memoryURI(m.ID)})
	}
	s.watch.announce(nil)
	s.watch.upd.Unlock()
	if s.watch.mark(s.mcp, ms) {
		s.mcp.AddResource(&mcp.Resource{URI: changeSentinel, Name: "list-changed"},
			func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			})
		s.mcp.RemoveResources(changeSentinel)
	}
}

// watchers knows the principal of each live session, and which sessions
// are due a resources/list_changed. The SDK sends list_changed to every
// session; sending drops it for the sessions that could not see the
// change, so a write is never announced to another tenant or to a user
// outside the memory's access entity.
type watchers struct {
	mu    sync.Mutex
	who   map[*mcp.ServerSession]auth.Principal
	due   map[*mcp.ServerSession]bool
	prune int // forget ended sessions when who grows past this
	// upd serializes resources/updated; updating is the memory announced,
	// which sending (called in the announcer's goroutine) checks against
	// each subscriber: memory://ID alone does not say whose memory
	// changed (PostgreSQL keeps ids per org), so a subscriber hears only
	// of a memory it may see.
	upd      sync.Mutex
	updating *memory.Memory
}

func (w *watchers) announce(m *memory.Memory) {
	w.mu.Lock()
	w.updating = m
	w.mu.Unlock()
}

// remember records the principal of a session. Every stateless request
// has a session of its own, so ended sessions are forgotten whenever the
// map has doubled since the last sweep, not only on writes.
func (w *watchers) remember(srv *mcp.Server, ss *mcp.ServerSession, p auth.Principal) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.who == nil {
		w.who, w.due = map[*mcp.ServerSession]auth.Principal{}, map[*mcp.ServerSession]bool{}
	}
	if _, ok := w.who[ss]; ok {
		return
	}
	w.who[ss] = p
	if len(w.who) > w.prune {
		w.sweep(live(srv))
		w.prune = 2*len(w.who) + 64
	}
}

func live(srv *mcp.Server) map[*mcp.ServerSession]bool {
	l := map[*mcp.ServerSession]bool{}
	for ss := range srv.Sessions() {
		l[ss] = true
	}
	return l
}

// sweep forgets the sessions that are not live. w.mu is held.
func (w *watchers) sweep(live map[*mcp.ServerSession]bool) {
	for ss := range w.who {
		if !live[ss] {
			delete(w.who, ss)
			delete(w.due, ss)
		}
	}
}

// mark makes the live sessions that may see one of ms due a notification,
// forgets sessions that have ended, and reports whether any is due.
func (w *watchers) mark(srv *mcp.Server, ms []memory.Memory) bool {
	l := live(srv)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep(l)
	due := false
	for ss, p := range w.who {
		a := memory.AccessFor(p)
		for _, m := range ms {
			if m.OrgID == p.OrgID && a.Allows(m.AccessEntity) {
				w.due[ss] = true
				due = true
				break
			}
		}
	}
	return due
}

func (w *watchers) sending(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "notifications/resources/updated" {
			ss, _ := req.GetSession().(*mcp.ServerSession)
			w.mu.Lock()
			m := w.updating
			p, known := w.who[ss]
			w.mu.Unlock()
			if m != nil && (!known || m.OrgID != p.OrgID || !memory.AccessFor(p).Allows(m.AccessEntity)) {
				return nil, nil
			}
		}
		if method == "notifications/resources/list_changed" {
			ss, _ := req.GetSession().(*mcp.ServerSession)
			w.mu.Lock()
			due := w.due[ss]
			delete(w.due, ss)
			w.mu.Unlock()
			if !due {
				return nil, nil
			}
		}
		return next(ctx, method, req)
	}
}
