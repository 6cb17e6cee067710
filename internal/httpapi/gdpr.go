package httpapi

import (
	"net/http"
	"strings"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
)

// The privacy API: a subject's export, erasure and no-trace check, and the
// org's retention policy. A subject is always looked for in the caller's
// own org: the same identifier in another org is another person, out of
// reach.
type (
	eraseRequest struct {
		Reason string `json:"reason" jsonschema:"why the subject is erased, such as the request's reference; mentions of the subject in it are replaced by the pseudonym"`
	}
	exportResponse   gdpr.Export
	eraseResponse    gdpr.EraseResult
	checkResponse    gdpr.CheckResult
	retentionRequest struct {
		AccessLogDays        *int `json:"access_log_days,omitempty" jsonschema:"delete access-log rows older than this many days; 0 keeps them"`
		ArchiveUntouchedDays *int `json:"archive_untouched_days,omitempty" jsonschema:"archive active and paused memories not updated for this many days; 0 never"`
		PurgeDeletedDays     *int `json:"purge_deleted_days,omitempty" jsonschema:"remove deleted memories for good this many days after deletion; 0 never"`
	}
	retentionResponse gdpr.RetentionPolicy
)

func (s *Server) privacy() (*gdpr.Service, error) {
	if s.opts.GDPR == nil {
		return nil, &httpError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this server's store does not support subject export and erasure"}
	}
	return s.opts.GDPR, nil
}

// subjectOf is the path's subject in the caller's org.
func subjectOf(r *http.Request) gdpr.Subject {
	p, _ := auth.PrincipalFrom(r.Context())
	return gdpr.Subject{OrgID: p.OrgID, ID: r.PathValue("sub")}
}

func (s *Server) gdprExport(w http.ResponseWriter, r *http.Request) {
	svc, err := s.privacy()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	x, err := svc.Export(r.Context(), subjectOf(r))
	s.reply(w, r, x, err)
}

func (s *Server) gdprCheck(w http.ResponseWriter, r *http.Request) {
	svc, err := s.privacy()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := svc.Check(r.Context(), subjectOf(r))
	s.reply(w, r, c, err)
}

// gdprErase takes the reason from the JSON body or, without a body, from
// the query parameter reason.
func (s *Server) gdprErase(w http.ResponseWriter, r *http.Request) {
	svc, err := s.privacy()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in eraseRequest
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if strings.TrimSpace(in.Reason) == "" {
		in.Reason = r.URL.Query().Get("reason")
	}
	p, _ := auth.PrincipalFrom(r.Context())
	res, err := svc.Erase(r.Context(), gdpr.EraseRequest{Subject: subjectOf(r), Reason: in.Reason, RequestedBy: p.Subject})
	s.reply(w, r, res, err)
}

func (s *Server) retentionStore() (gdpr.RetentionStore, error) {
	if s.opts.Retention == nil {
		return nil, &httpError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this server's store keeps no retention policies"}
	}
	return s.opts.Retention, nil
}

func (s *Server) getRetention(w http.ResponseWriter, r *http.Request) {
	rs, err := s.retentionStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, _ := auth.PrincipalFrom(r.Context())
	pol, err := rs.RetentionPolicy(r.Context(), p.OrgID)
	s.reply(w, r, pol, err)
}

// setRetention changes the fields the body names and keeps the others.
func (s *Server) setRetention(w http.ResponseWriter, r *http.Request) {
	rs, err := s.retentionStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var in retentionRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, _ := auth.PrincipalFrom(r.Context())
	pol, err := rs.RetentionPolicy(r.Context(), p.OrgID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, f := range []struct {
		in  *int
		out *int
	}{{in.AccessLogDays, &pol.AccessLogDays}, {in.ArchiveUntouchedDays, &pol.ArchiveUntouchedDays}, {in.PurgeDeletedDays, &pol.PurgeDeletedDays}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	if err := pol.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	pol.UpdatedAt = s.opts.Now().UTC()
	if err := rs.SetRetentionPolicy(r.Context(), pol); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.auditRetention(r, pol)
	writeJSON(w, http.StatusOK, pol)
}

// auditRetention records a change of the org's retention policy.
func (s *Server) auditRetention(r *http.Request, pol gdpr.RetentionPolicy) {
	s.opts.Audit.Record(r.Context(), audit.Event{Action: audit.ActionRetentionSet, Target: "retention:" + pol.OrgID,
		Detail: map[string]any{"access_log_days": pol.AccessLogDays, "archive_untouched_days": pol.ArchiveUntouchedDays,
			"purge_deleted_days": pol.PurgeDeletedDays}})
}
