package httpapi

import (
	"net/http"

	mcpauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/transfer"
)

// Route is one REST operation: its pattern, the scopes a caller needs, and
// what the OpenAPI document says about it.
type Route struct {
	Method, Path string
	Scopes       []string
	Summary      string
	Request      any // body type, or nil
	Response     any // 2xx body type
	Status       int // success status
	Query        []Param
	// RequestTypes are the media types of the body (application/json when
	// empty); ResponseType is that of the success body (likewise).
	RequestTypes []string
	ResponseType string
	// LargeBody takes bodies up to MaxImportBytes instead of
	// Options.MaxBodyBytes.
	LargeBody bool
	handler   func(*Server, http.ResponseWriter, *http.Request)
}

// Param is a documented query parameter.
type Param struct {
	Name, Type, Description string
	Repeat                  bool
}

var listParams = []Param{
	{Name: "category", Type: "string", Repeat: true, Description: "only these categories"},
	{Name: "scope", Type: "string", Repeat: true, Description: "only these scopes"},
	{Name: "state", Type: "string", Repeat: true, Description: "only these states (default: all but deleted)"},
	{Name: "entity", Type: "string", Description: "exact entity"},
	{Name: "artifact_ref", Type: "string", Description: "exact artifact reference"},
	{Name: "tag", Type: "string", Repeat: true, Description: "has this tag key (or key=value)"},
	{Name: "app", Type: "string", Description: "written through this app"},
	{Name: "access_entity", Type: "string", Description: "exact access entity"},
	{Name: "created_after", Type: "string", Description: "RFC 3339 time"},
	{Name: "created_before", Type: "string", Description: "RFC 3339 time"},
	{Name: "valid_at", Type: "string", Description: "RFC 3339 time: only memories valid then (valid_from not after it, valid_to after it)"},
	{Name: "sort", Type: "string", Description: "-created_at (default), created_at, -updated_at, updated_at"},
	{Name: "limit", Type: "integer", Description: "page size, 1-200 (default 20)"},
	{Name: "cursor", Type: "string", Description: "next_cursor of the previous page"},
}

// Routes is the REST surface: every /api/v1 operation with its scopes. The
// mux, the OpenAPI document and the scope table in the docs all come from it.
func Routes() []Route {
	return []Route{
		{Method: "POST", Path: "/api/v1/memories", Scopes: []string{auth.ScopeMemoriesWrite}, Status: 201,
			Summary: "Add a memory (200 with the existing one for a duplicate or a replayed Idempotency-Key)",
			Request: createRequest{}, Response: memoryResponse{}, handler: (*Server).createMemory},
		{Method: "GET", Path: "/api/v1/memories", Scopes: []string{auth.ScopeMemoriesRead}, Status: 200,
			Summary: "List memories with filters and cursor pagination", Query: listParams,
			Response: pageResponse{}, handler: (*Server).listMemories},
		{Method: "GET", Path: "/api/v1/memories/{id}", Scopes: []string{auth.ScopeMemoriesRead}, Status: 200,
			Summary: "Get a memory", Response: memoryResponse{}, handler: (*Server).getMemory},
		{Method: "PATCH", Path: "/api/v1/memories/{id}", Scopes: []string{auth.ScopeMemoriesWrite}, Status: 200,
			Summary: "Change fields of a memory", Request: patchRequest{}, Response: memoryResponse{}, handler: (*Server).updateMemory},
		{Method: "DELETE", Path: "/api/v1/memories/{id}", Scopes: []string{auth.ScopeMemoriesDelete}, Status: 200,
			Summary: "Delete a memory (soft delete; history is kept)", Response: memoryResponse{}, handler: (*Server).deleteMemory},
		{Method: "POST", Path: "/api/v1/memories/{id}/state", Scopes: []string{auth.ScopeMemoriesWrite}, Status: 200,
			Summary: "Pause, archive or restore a memory", Request: stateRequest{}, Response: memoryResponse{}, handler: (*Server).setState},
		{Method: "GET", Path: "/api/v1/memories/{id}/history", Scopes: []string{auth.ScopeMemoriesRead}, Status: 200,
			Summary: "The changes of a memory, oldest first", Response: historyResponse{}, handler: (*Server).history},
		{Method: "POST", Path: "/api/v1/search", Scopes: []string{auth.ScopeSearchRead}, Status: 200,
			Summary: "Ranked search over visible memories", Request: searchRequest{}, Response: searchResponse{}, handler: (*Server).search},
		{Method: "GET", Path: "/api/v1/apps", Scopes: []string{auth.ScopeAppsRead}, Status: 200,
			Summary: "Apps that wrote visible memories", Response: appsResponse{}, handler: (*Server).apps},
		{Method: "GET", Path: "/api/v1/stats", Scopes: []string{auth.ScopeStatsRead}, Status: 200,
			Summary: "Counts of visible memories", Response: statsResponse{}, handler: (*Server).stats},
		{Method: "GET", Path: "/api/v1/memories/{id}/related", Scopes: []string{auth.ScopeGraphRead}, Status: 200,
			Summary: "Memories related to a memory through shared entities and tags, and explicit links, best first", Query: relatedParams,
			Response: relatedResponse{}, handler: (*Server).relatedMemories},
		{Method: "GET", Path: "/api/v1/entities", Scopes: []string{auth.ScopeEntitiesRead}, Status: 200,
			Summary: "Entities visible memories mention, most mentioned first", Query: entityParams,
			Response: entitiesResponse{}, handler: (*Server).listEntities},
		{Method: "GET", Path: "/api/v1/entities/{name}/network", Scopes: []string{auth.ScopeGraphRead}, Status: 200,
			Summary: "The entities and edges around an entity, up to 3 hops", Query: networkParams,
			Response: networkResponse{}, handler: (*Server).entityNetwork},
		{Method: "GET", Path: "/api/v1/graph/path", Scopes: []string{auth.ScopeGraphRead}, Status: 200,
			Summary: "A shortest path between two entities, up to 4 edges (found false when there is none)", Query: graphPathParams,
			Response: pathResponse{}, handler: (*Server).graphPath},
		{Method: "GET", Path: "/api/v1/aggregate", Scopes: []string{auth.ScopeGraphRead}, Status: 200,
			Summary: "Counts of visible memories grouped by category, scope, artifact, entity, tag, app or state", Query: aggregateParams,
			Response: aggregateResponse{}, handler: (*Server).aggregate},
		{Method: "GET", Path: "/api/v1/tags/cooccurrence", Scopes: []string{auth.ScopeGraphRead}, Status: 200,
			Summary: "Pairs of tags on the same visible memories, most frequent first", Query: tagPairParams,
			Response: tagPairsResponse{}, handler: (*Server).tagCooccurrence},
		{Method: "POST", Path: "/api/v1/relations", Scopes: []string{auth.ScopeGraphWrite, auth.ScopeMemoriesWrite}, Status: 201,
			Summary: "Relate two entities (stored as a memory stating the relation) or two memories (200 when it exists)",
			Request: relateRequest{}, Response: relationResponse{}, handler: (*Server).relate},
		{Method: "GET", Path: "/api/v1/export", Scopes: []string{auth.ScopeMemoriesRead}, Status: 200,
			Summary: "Export the memories you may see as JSON Lines: a header line, then one memory (with its history) per line, from one snapshot",
			Query:   exportParams, Response: transfer.Record{}, ResponseType: transfer.ContentType, handler: (*Server).exportMemories},
		{Method: "POST", Path: "/api/v1/import", Scopes: []string{auth.ScopeMemoriesWrite}, Status: 200,
			Summary: "Import an export file (application/x-ndjson) or an OpenMemory export zip (application/zip), all or nothing, into access entities your grants cover",
			Query:   importParams, Request: transfer.Record{}, RequestTypes: []string{transfer.ContentType, transfer.ZipContentType},
			Response: importResponse{}, LargeBody: true, handler: (*Server).importMemories},
		{Method: "GET", Path: "/api/v1/audit", Scopes: []string{auth.ScopeAuditRead}, Status: 200,
			Summary: "Audit records of your org, oldest first, with cursor pagination on seq", Query: auditParams,
			Response: auditResponse{}, handler: (*Server).listAudit},
		{Method: "POST", Path: "/api/v1/admin/api-keys", Scopes: []string{auth.ScopeAdminWrite}, Status: 201,
			Summary: "Make an API key in your org, with at most your scopes and grants; the key is shown once",
			Request: apiKeyRequest{}, Response: apiKeyCreatedResponse{}, handler: (*Server).createAPIKey},
		{Method: "GET", Path: "/api/v1/admin/api-keys", Scopes: []string{auth.ScopeAdminRead}, Status: 200,
			Summary: "The API keys of your org, revoked ones too (never their secrets)", Response: apiKeyListResponse{}, handler: (*Server).listAPIKeys},
		{Method: "DELETE", Path: "/api/v1/admin/api-keys/{id}", Scopes: []string{auth.ScopeAdminWrite}, Status: 200,
			Summary: "Revoke an API key of your org; it stops working at once", Response: apiKeyResponse{}, handler: (*Server).revokeAPIKey},
		{Method: "GET", Path: "/api/v1/gdpr/subjects/{sub}/export", Scopes: []string{auth.ScopeGDPRRead}, Status: 200,
			Summary:  "Everything stored about a subject of your org (subject access request), with a manifest of what was searched and counts per source",
			Response: exportResponse{}, handler: (*Server).gdprExport},
		{Method: "DELETE", Path: "/api/v1/gdpr/subjects/{sub}", Scopes: []string{auth.ScopeGDPRDelete}, Status: 200,
			Summary: "Erase a subject of your org from the store, its indexes and the shared state (reason required); returns the receipt and the no-trace check",
			Request: eraseRequest{}, Query: []Param{{Name: "reason", Type: "string", Description: "the reason, when no body is sent"}},
			Response: eraseResponse{}, handler: (*Server).gdprErase},
		{Method: "GET", Path: "/api/v1/gdpr/subjects/{sub}/check", Scopes: []string{auth.ScopeGDPRRead}, Status: 200,
			Summary:  "Search every source for a subject of your org; clean when nothing erasable remains",
			Response: checkResponse{}, handler: (*Server).gdprCheck},
		{Method: "GET", Path: "/api/v1/admin/retention", Scopes: []string{auth.ScopeAdminRead}, Status: 200,
			Summary: "Your org's retention policy (0 days keeps that data for ever)", Response: retentionResponse{}, handler: (*Server).getRetention},
		{Method: "PUT", Path: "/api/v1/admin/retention", Scopes: []string{auth.ScopeAdminWrite}, Status: 200,
			Summary: "Set your org's retention policy; fields left out keep their value", Request: retentionRequest{},
			Response: retentionResponse{}, handler: (*Server).setRetention},
	}
}

// routes registers every handler on the mux. Everything under /api/v1 is
// authenticated and scope-checked; health, metadata and the OpenAPI
// document are public; /mcp and /sse authenticate themselves.
func (s *Server) routes() {
	for _, rt := range Routes() {
		handle := rt.handler
		limit := s.limitBody
		if rt.LargeBody {
			limit = s.limitImport
		}
		h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(s, w, r) }))
		limited := s.opts.RateLimiter.Wrap(RouteClass(rt.Method, rt.Path), s.requireScopes(rt.Scopes, h))
		s.mux.Handle(rt.Method+" "+rt.Path, s.authenticate(limited))
	}
	s.mux.HandleFunc("/api/", s.notFound)
	s.mux.HandleFunc("GET /health/live", s.live)
	s.mux.HandleFunc("GET /health/ready", s.ready)
	s.mux.HandleFunc("GET /health/deps", s.deps)
	s.mux.HandleFunc("GET /openapi.json", s.openapi)
	if s.opts.Resource != "" {
		s.mux.Handle("/.well-known/oauth-protected-resource", mcpauth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
			Resource:               s.opts.Resource,
			AuthorizationServers:   s.opts.AuthorizationServers,
			ScopesSupported:        auth.AllScopes,
			BearerMethodsSupported: []string{"header"},
			// DPoP-bound tokens are accepted with proofs signed by these.
			DPOPSigningAlgValuesSupported: auth.DPoPAlgs,
		}))
	}
	if s.opts.MCP != nil {
		s.mux.Handle("/mcp", s.withOriginCheck(s.opts.MCP))
	}
	if s.opts.SSE != nil {
		s.mux.Handle("/sse", s.withOriginCheck(s.opts.SSE))
	}
}
