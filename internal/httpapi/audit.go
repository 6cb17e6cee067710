package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// The audit log on the REST side: what the middleware records (401s and
// missing scopes), what the admin routes record (API keys made and
// revoked), and GET /api/v1/audit. The memory service records deletions and
// writes outside the caller's grants itself. Records go through
// Options.Audit, which never fails a request (see audit.Recorder).

// Limits of GET /api/v1/audit.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 500
)

var auditParams = []Param{
	{Name: "after", Type: "integer", Description: "return records with a higher seq (next_after of the previous page); 0 or absent: from the start"},
	{Name: "limit", Type: "integer", Description: "page size, 1-500 (default 100)"},
}

// auditResponse is one page of the caller's org's audit records, in seq
// order.
type auditResponse struct {
	Records []audit.Record `json:"records"`
	// NextAfter is the after of the next page; absent on the last page.
	NextAfter int64 `json:"next_after,omitempty"`
}

// auditAuthFailure records a request that was answered 401. Why the
// credentials failed is classified, never quoted: the error can echo what
// the client sent.
func (s *Server) auditAuthFailure(r *http.Request, err error) {
	s.opts.Audit.Record(r.Context(), audit.Event{
		Action: audit.ActionAuthFailure, Outcome: audit.OutcomeDenied, Actor: audit.ActorAnonymous,
		Target: r.Method + " " + routeOf(r), RemoteAddr: clientAddr(r), RequestID: requestID(r.Context()),
		Detail: map[string]any{"reason": audit.AuthFailureReason(err), "channel": "rest"},
	})
}

// auditScope records a request refused for a missing scope.
func (s *Server) auditScope(r *http.Request, missing string) {
	s.opts.Audit.Record(r.Context(), audit.Event{
		Action: audit.ActionAccessForbidden, Outcome: audit.OutcomeDenied,
		Target: r.Method + " " + routeOf(r), RemoteAddr: clientAddr(r), RequestID: requestID(r.Context()),
		Detail: map[string]any{"reason": "scope", "missing_scope": missing, "channel": "rest"},
	})
}

// auditAPIKey records an API key made or revoked by the caller. The key's
// id is public (its secret is never recorded).
func (s *Server) auditAPIKey(r *http.Request, action audit.Action, id string, detail map[string]any) {
	s.opts.Audit.Record(r.Context(), audit.Event{Action: action, Target: "apikey:" + id, Detail: detail})
}

// routeOf is the path pattern of the route a request matched (so that
// ids and an attacker's junk do not fill the log), else its path.
func routeOf(r *http.Request) string {
	if r.Pattern == "" {
		return r.URL.Path
	}
	if _, path, ok := strings.Cut(r.Pattern, " "); ok {
		return path
	}
	return r.Pattern
}

// listAudit serves GET /api/v1/audit: the caller's org's records after a
// seq. Records of other orgs, and those of no org (failed authentication,
// which no org can be told apart by), are not shown; operators read the
// whole chain with `codingbrain audit verify` and the database.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "after" && k != "limit" {
			s.writeError(w, r, &memory.ValidationError{Field: k, Reason: "is not a known query parameter"})
			return
		}
	}
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.writeError(w, r, &memory.ValidationError{Field: "after", Reason: "must be a seq: an integer of 0 or more"})
			return
		}
		after = n
	}
	limit := defaultAuditLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			s.writeError(w, r, &memory.ValidationError{Field: "limit", Reason: "must be an integer from 1 to " + strconv.Itoa(maxAuditLimit)})
			return
		}
		limit = n
	}
	p, ok := auth.PrincipalFrom(r.Context())
	if !ok || p.OrgID == "" {
		s.writeError(w, r, memory.ErrUnauthorized)
		return
	}
	recs, err := s.opts.Audit.List(r.Context(), p.OrgID, after, limit)
	if errors.Is(err, audit.ErrNoStore) {
		s.writeError(w, r, &httpError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this server keeps no audit log"})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := auditResponse{Records: nonNil(recs)}
	if len(recs) == limit {
		resp.NextAfter = recs[len(recs)-1].Seq
	}
	writeJSON(w, http.StatusOK, resp)
}
