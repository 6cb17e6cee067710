package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/transfer"
)

// MaxImportBytes limits an import body (an export file or an OpenMemory
// zip); other bodies are limited by Options.MaxBodyBytes.
const MaxImportBytes = 1 << 30

var exportParams = []Param{
	{Name: "org", Type: "string", Description: "your org (an export never leaves it); checked, not needed"},
	{Name: "team", Type: "string", Description: "only memories shared with this team: <team> or <org>/<team>"},
	{Name: "project", Type: "string", Description: "only memories shared with this project: <project> or <org>/<project>"},
	{Name: "access_entity", Type: "string", Description: "only memories of this exact access entity"},
	{Name: "entity", Type: "string", Description: "only memories about this entity"},
	{Name: "category", Type: "string", Repeat: true, Description: "only these categories"},
	{Name: "scope", Type: "string", Repeat: true, Description: "only these scopes"},
	{Name: "state", Type: "string", Repeat: true, Description: "only these states, or all (default: all but deleted)"},
	{Name: "app", Type: "string", Description: "written through this app"},
	{Name: "tag", Type: "string", Repeat: true, Description: "has this tag key (or key=value)"},
	{Name: "since", Type: "string", Description: "RFC 3339 time: only memories updated at or after it"},
	{Name: "history", Type: "boolean", Description: "carry each memory's history (default true)"},
}

var importParams = []Param{
	{Name: "on_conflict", Type: "string", Description: "fail (default: nothing is imported when an id, idempotency key or content is taken), skip (leave the stored memory; a re-run skips what it imported), or remap (a taken id gets a new one, a taken idempotency key is dropped, a content duplicate is skipped)"},
}

// importResponse is the report of an import; importFailure is the error
// envelope of an import that imported nothing, with the report.
type (
	importResponse memory.ImportReport
	importFailure  struct {
		Error  errorDetail         `json:"error"`
		Report memory.ImportReport `json:"report"`
	}
)

// parseExportQuery reads the export filters of the query string for p.
func parseExportQuery(v url.Values, p auth.Principal) (memory.ExportQuery, error) {
	known := map[string]bool{}
	for _, prm := range exportParams {
		known[prm.Name] = true
	}
	for k := range v {
		if !known[k] {
			return memory.ExportQuery{}, &memory.ValidationError{Field: k, Reason: "is not a known query parameter"}
		}
	}
	q := memory.ExportQuery{History: true, Filter: memory.Filter{
		Categories: convert[memory.Category](v["category"]), Scopes: convert[memory.Scope](v["scope"]),
		States: convert[memory.State](v["state"]), Tags: v["tag"], Entity: v.Get("entity"),
		App: v.Get("app"), AccessEntity: v.Get("access_entity"),
	}}
	if org := v.Get("org"); org != "" && org != p.OrgID {
		return q, &memory.ValidationError{Field: "org", Reason: fmt.Sprintf("%q is not your org (%s); an export covers only your own org", org, p.OrgID)}
	}
	for _, kind := range []string{"team", "project"} {
		name := v.Get(kind)
		if name == "" {
			continue
		}
		if q.Filter.AccessEntity != "" {
			return q, &memory.ValidationError{Field: kind, Reason: "give only one of team, project and access_entity"}
		}
		if !strings.Contains(name, "/") {
			name = p.OrgID + "/" + name
		}
		q.Filter.AccessEntity = kind + ":" + name
	}
	if len(q.Filter.States) == 1 && q.Filter.States[0] == "all" {
		q.Filter.States = memory.States
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, &memory.ValidationError{Field: "since", Reason: "must be an RFC 3339 time such as 2025-01-31T12:00:00Z"}
		}
		q.Since = &t
	}
	if s := v.Get("history"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return q, &memory.ValidationError{Field: "history", Reason: "must be true or false"}
		}
		q.History = b
	}
	return q, nil
}

// exportMemories streams the caller's memories as an export file. Problems
// found before the first line are error responses; a failure later ends
// the stream early, which an import finds out from the header's count.
func (s *Server) exportMemories(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	q, err := parseExportQuery(r.URL.Query(), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tw := transfer.NewWriter(w)
	started := false
	_, err = s.svc.Export(r.Context(), q, func(count int) error {
		h := transfer.Header{
			Exporter:   transfer.Exporter{Name: "codingbrain", Version: s.opts.Version},
			ExportedAt: s.opts.Now().UTC(), OrgID: p.OrgID, Subject: p.Subject,
			Since: q.Since, History: q.History, Counts: transfer.Counts{Memories: &count},
		}
		if !filterIsZero(q.Filter) {
			f := q.Filter
			h.Filter = &f
		}
		w.Header().Set("Content-Type", transfer.ContentType)
		w.Header().Set("Content-Disposition", `attachment; filename="codingbrain-export.jsonl"`)
		w.WriteHeader(http.StatusOK)
		started = true
		return tw.WriteHeader(h)
	}, tw.Write)
	if err == nil {
		return
	}
	if !started {
		s.writeError(w, r, err)
		return
	}
	s.log.WarnContext(r.Context(), "export ended early", "err", err, "request_id", requestID(r.Context()))
}

func filterIsZero(f memory.Filter) bool {
	return len(f.Categories) == 0 && len(f.Scopes) == 0 && len(f.States) == 0 && f.Entity == "" &&
		f.ArtifactRef == "" && len(f.Tags) == 0 && f.App == "" && f.AccessEntity == "" &&
		f.CreatedAfter == nil && f.CreatedBefore == nil && f.ValidAt == nil
}

// importMemories imports an export file (application/x-ndjson) or an
// OpenMemory export zip (application/zip), all or nothing.
func (s *Server) importMemories(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	v := r.URL.Query()
	for k := range v {
		if k != "on_conflict" {
			s.writeError(w, r, &memory.ValidationError{Field: k, Reason: "is not a known query parameter"})
			return
		}
	}
	mode := memory.ConflictMode(v.Get("on_conflict"))
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var next func() (memory.ImportItem, error)
	switch ct {
	case transfer.ContentType, "application/jsonl", "application/json-lines":
		next = transfer.NewReader(r.Body).Next
	case transfer.ZipContentType:
		data, err := io.ReadAll(r.Body)
		if err != nil {
			s.writeError(w, r, bodyError(err))
			return
		}
		items, err := transfer.OpenMemoryItems(data, p.Subject, s.opts.Now().UTC())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next = func() (memory.ImportItem, error) {
			if len(items) == 0 {
				return memory.ImportItem{}, io.EOF
			}
			it := items[0]
			items = items[1:]
			return it, nil
		}
	default:
		s.writeError(w, r, &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", field: "Content-Type",
			msg: fmt.Sprintf("Content-Type %q: send %s (an export file) or %s (an OpenMemory export)", ct, transfer.ContentType, transfer.ZipContentType)})
		return
	}
	rep, err := s.svc.Import(r.Context(), mode, func() (memory.ImportItem, error) {
		it, err := next()
		if err != nil && !errors.Is(err, io.EOF) {
			return it, bodyError(err)
		}
		return it, err
	})
	var ie *memory.ImportError
	if errors.As(err, &ie) {
		status, code := http.StatusBadRequest, "invalid_argument"
		switch {
		case errors.Is(err, memory.ErrForbidden):
			status, code = http.StatusForbidden, "forbidden"
		case errors.Is(err, memory.ErrConflict):
			status, code = http.StatusConflict, "conflict"
		}
		first := ie.Report.Errors[0]
		writeJSON(w, status, importFailure{Report: ie.Report, Error: errorDetail{Code: code, Message: ie.Error(),
			Field: first.Field, RequestID: requestID(r.Context())}})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, importResponse(rep))
}

// bodyError turns a failure to read the request body into its response.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &httpError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large",
			msg: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	}
	return &httpError{status: http.StatusBadRequest, code: "invalid_argument", msg: "reading the request body: " + err.Error()}
}

// limitImport caps an import body at MaxImportBytes.
func (s *Server) limitImport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxImportBytes)
		next.ServeHTTP(w, r)
	})
}
