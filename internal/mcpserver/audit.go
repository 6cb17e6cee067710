package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
)

// Audit events of the MCP transports, written through Options.Audit
// (which never fails a request; see audit.Recorder): requests refused with
// 401, tool calls refused for a missing scope, and requests that name a
// session another principal opened. The memory service records deletions
// and writes outside the caller's grants itself.

// auditAuthFailure records a request answered 401 (and counts it in
// codingbrain_auth_failures_total by reason).
func (s *Server) auditAuthFailure(r *http.Request, err error) {
	s.opts.Metrics.AuthFailed(audit.AuthFailureReason(err))
	s.opts.Audit.Record(r.Context(), audit.Event{
		Action: audit.ActionAuthFailure, Outcome: audit.OutcomeDenied, Actor: audit.ActorAnonymous,
		Target: r.Method + " " + r.URL.Path, RemoteAddr: remoteHost(r),
		Detail: map[string]any{"reason": audit.AuthFailureReason(err), "channel": "mcp"},
	})
}

// auditScope records a tool call refused for a missing scope (and counts
// it in the tool call metrics: toolDenied). r is nil when the refusal
// happens inside the tool (stdio, legacy SSE).
func (s *Server) auditScope(ctx context.Context, r *http.Request, p auth.Principal, tool, missing string) {
	s.toolDenied(ctx, r, tool)
	e := audit.Event{
		Action: audit.ActionAccessForbidden, Outcome: audit.OutcomeDenied, Actor: p.Subject, OrgID: p.OrgID,
		Target: "mcp_tool:" + tool, Detail: map[string]any{"reason": "scope", "missing_scope": missing, "channel": "mcp"},
	}
	if r != nil {
		e.RemoteAddr = remoteHost(r)
	}
	s.opts.Audit.Record(ctx, e)
}

// auditHijack records a request that named a session opened by owner (a
// session binding's user, "<org>/<sub>"). The record belongs to the
// owner's org, whose session it is; the caller's org is in the detail.
// The session id is a credential of sorts and is kept only as a
// fingerprint.
func (s *Server) auditHijack(r *http.Request, owner, transport, sid string) {
	caller, _ := r.Context().Value(verifiedKey{}).(auth.Principal)
	ownerOrg, _, _ := strings.Cut(owner, "/")
	actor := caller.Subject
	if actor == "" {
		actor = audit.ActorAnonymous
	}
	s.opts.Audit.Record(r.Context(), audit.Event{
		Action: audit.ActionSessionHijack, Outcome: audit.OutcomeDenied, Actor: actor, OrgID: ownerOrg,
		Target: "mcp_session:" + sessionFingerprint(sid), RemoteAddr: remoteHost(r),
		Detail: map[string]any{"transport": transport, "actor_org": caller.OrgID, "session_owner": owner, "channel": "mcp"},
	})
}

// sessionFingerprint names a session in the audit log without its id: the
// first 16 hex digits of the id's SHA-256.
func sessionFingerprint(sid string) string {
	sum := sha256.Sum256([]byte(sid))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// remoteHost is the host of the peer address.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
