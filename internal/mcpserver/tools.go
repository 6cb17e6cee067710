package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// toolScopes is the one place that says which scopes each tool needs. A
// tool that is not listed here is not served.
var toolScopes = map[string][]string{
	"add_memories":    {auth.ScopeMemoriesWrite},
	"search_memory":   {auth.ScopeSearchRead},
	"list_memories":   {auth.ScopeMemoriesRead},
	"get_memory":      {auth.ScopeMemoriesRead},
	"update_memory":   {auth.ScopeMemoriesWrite},
	"delete_memories": {auth.ScopeMemoriesDelete},
	"memory_history":  {auth.ScopeMemoriesRead},
	"whoami":          nil,
	// graphtools.go
	"related_memories":      {auth.ScopeGraphRead},
	"entity_network":        {auth.ScopeGraphRead},
	"path_between_entities": {auth.ScopeGraphRead},
	"aggregate":             {auth.ScopeGraphRead},
	"tag_cooccurrence":      {auth.ScopeGraphRead},
	"relate":                {auth.ScopeGraphWrite, auth.ScopeMemoriesWrite},
}

// ToolScopes returns a copy of the scopes each tool needs, for
// documentation and tests.
func ToolScopes() map[string][]string {
	out := make(map[string][]string, len(toolScopes))
	for name, scopes := range toolScopes {
		out[name] = slices.Clone(scopes)
	}
	return out
}

// hints builds tool annotations. Every tool here works on a closed world:
// the memory store.
func hints(title string, readOnly, destructive, idempotent bool) *mcp.ToolAnnotations {
	closed := false
	return &mcp.ToolAnnotations{
		Title: title, ReadOnlyHint: readOnly, DestructiveHint: &destructive,
		IdempotentHint: idempotent, OpenWorldHint: &closed,
	}
}

// partial is implemented by outputs of tools that work on several items and
// may fail for some of them. A non-empty failures() makes the result an
// error result that still carries the per-item outcome.
type partial interface {
	failures() string
}

// addTool registers a tool whose handler fn sees a context carrying the
// caller's principal, after the tool's scopes were checked.
func addTool[In, Out any](s *Server, t *mcp.Tool, fn func(context.Context, In) (Out, error)) {
	scopes, ok := toolScopes[t.Name]
	if !ok {
		s.log.Error("mcp tool has no entry in toolScopes; not served", "tool", t.Name)
		return
	}
	schema, err := inputSchema[In]()
	if err != nil {
		// AddTool infers a schema without the enums instead.
		s.log.Error("build mcp input schema", "tool", t.Name, "err", err)
	} else {
		t.InputSchema = schema
	}
	mcp.AddTool(s.mcp, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		var zero Out
		p, ok := principalFor(ctx, req)
		if !ok {
			return nil, zero, errors.New("not authenticated: this connection carries no valid token")
		}
		if missing := p.Missing(scopes...); missing != "" {
			s.auditScope(ctx, nil, p, t.Name, missing)
			return nil, zero, fmt.Errorf("missing scope %s: %s needs a token with scope %q; this token has [%s]",
				missing, t.Name, missing, strings.Join(p.Scopes, " "))
		}
		if p.App == "" {
			p.App = "mcp"
			if ci := req.ClientInfo(); ci != nil && ci.Name != "" {
				p.App = clip(ci.Name, 64)
			}
		}
		ctx = auth.WithPrincipal(ctx, p)
		out, err := fn(ctx, in)
		if err != nil {
			return nil, zero, s.toolError(ctx, t.Name, err)
		}
		if pr, ok := any(out).(partial); ok {
			if msg := pr.failures(); msg != "" {
				body, _ := json.Marshal(out)
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{
					&mcp.TextContent{Text: msg}, &mcp.TextContent{Text: string(body)},
				}}, out, nil
			}
		}
		return nil, out, nil
	})
}

// principalFor finds the caller: on HTTP the token of this very request,
// else (stdio, and SSE whose messages arrive on other requests) the
// principal the session was opened with.
func principalFor(ctx context.Context, req *mcp.CallToolRequest) (auth.Principal, bool) {
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		return principalOf(req.Extra.TokenInfo)
	}
	p, ok := auth.PrincipalFrom(ctx)
	return p, ok && p.Subject != "" && p.OrgID != ""
}

func principalOf(ti *sdkauth.TokenInfo) (auth.Principal, bool) {
	if ti == nil {
		return auth.Principal{}, false
	}
	p, ok := ti.Extra[principalExtra].(auth.Principal)
	return p, ok && p.Subject != "" && p.OrgID != ""
}

// toolError turns a service error into a message a model can act on. Causes
// that are not the caller's business are logged and not shown.
func (s *Server) toolError(ctx context.Context, tool string, err error) error {
	var ve *memory.ValidationError
	var h *hint
	switch {
	case errors.As(err, &h):
		return h
	case errors.As(err, &ve):
		return fmt.Errorf("invalid %s: %s. Correct %q and call %s again", ve.Field, ve.Reason, ve.Field, tool)
	case errors.Is(err, memory.ErrNotFound):
		return fmt.Errorf("%w. It does not exist, was deleted, or is outside your grants; find ids with search_memory or list_memories", err)
	case errors.Is(err, memory.ErrConflict), errors.Is(err, memory.ErrForbidden):
		return err
	case errors.Is(err, memory.ErrUnauthorized):
		return errors.New("not authenticated: this connection carries no valid token")
	case errors.Is(err, memory.ErrUnavailable):
		return errors.New("unavailable: the memory store cannot be reached right now; try again shortly")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	s.log.ErrorContext(ctx, "mcp tool failed", "tool", tool, "err", err)
	return fmt.Errorf("internal error in %s; the server logged the cause", tool)
}

// sortOrder is a List sort order; its schema lists the allowed values.
type sortOrder string

// detailLevel is how much of each memory a tool returns: compact (the
// default: id, content, category, entity and, in rankings, score) or full
// (every field).
type detailLevel string

var detailLevels = []detailLevel{"compact", "full"}

func (d detailLevel) full() bool { return d == "full" }

// enumSchemas gives every enumerated domain type a schema that lists its
// values, so a model sees the allowed values in tools/list.
func enumSchemas() map[reflect.Type]*jsonschema.Schema {
	return map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[memory.Category]():     enum(memory.Categories),
		reflect.TypeFor[memory.Scope]():        enum(memory.Scopes),
		reflect.TypeFor[memory.ArtifactType](): enum(memory.ArtifactTypes),
		reflect.TypeFor[memory.Source]():       enum(memory.Sources),
		reflect.TypeFor[memory.State]():        enum(memory.States),
		reflect.TypeFor[sortOrder]():           enum(memory.Sorts),
		reflect.TypeFor[detailLevel]():         enum(detailLevels),
		reflect.TypeFor[memory.SearchMode]():   enum(memory.SearchModes),
		reflect.TypeFor[relationType]():        enum(memory.RelationTypes),
		reflect.TypeFor[aggregateBy]():         enum(memory.AggregateBy),
		reflect.TypeFor[edgeType]():            enum(memory.EdgeTypes()),
	}
}

func enum[T ~string](values []T) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "string"}
	for _, v := range values {
		s.Enum = append(s.Enum, string(v))
	}
	return s
}

func inputSchema[In any]() (*jsonschema.Schema, error) {
	return jsonschema.For[In](&jsonschema.ForOptions{TypeSchemas: enumSchemas()})
}

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
