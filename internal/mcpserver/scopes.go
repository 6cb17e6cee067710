package mcpserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// scopeChallenge answers a tools/call over Streamable HTTP whose tool needs
// a scope the caller's token lacks with HTTP 403 and
//
//	WWW-Authenticate: Bearer error="insufficient_scope", scope="…", resource_metadata="…"
//
// (RFC 6750 §3.1; the MCP scope challenge), so a client can ask its
// authorization server for a token with more scope and retry. The body is a
// JSON-RPC error for the call, which clients surface for that call alone
// without ending the session. It reports whether it answered. The tools
// check their scopes again themselves, for stdio and legacy SSE, where no
// HTTP status can carry the challenge.
func (s *Server) scopeChallenge(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" {
		return false
	}
	scopes, ok := toolScopes[msg.Params.Name]
	if !ok {
		return false
	}
	p, _ := r.Context().Value(verifiedKey{}).(auth.Principal)
	missing := p.Missing(scopes...)
	if missing == "" {
		return false
	}
	challenge := fmt.Sprintf("Bearer error=\"insufficient_scope\", scope=%q", strings.Join(scopes, " "))
	if s.opts.ResourceMetadataURL != "" {
		challenge += fmt.Sprintf(", resource_metadata=%q", s.opts.ResourceMetadataURL)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	text := fmt.Sprintf("missing scope %s: %s needs a token with scope %q; this token has [%s]",
		missing, msg.Params.Name, missing, strings.Join(p.Scopes, " "))
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": msg.ID,
		"error": map[string]any{"code": codeInsufficientScope, "message": text, "data": map[string]any{"scope": missing}},
	})
	s.log.InfoContext(r.Context(), "mcp tool call refused: insufficient scope", "tool", msg.Params.Name, "missing", missing, "user", userID(r.Context()))
	s.auditScope(r.Context(), r, p, msg.Params.Name, missing)
	return true
}

// codeInsufficientScope is the JSON-RPC error code of a scope challenge, in
// the range JSON-RPC leaves to implementations.
const codeInsufficientScope = -32003
