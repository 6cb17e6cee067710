package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Request and response bodies. They are named types so that the OpenAPI
// document can describe them.
type (
	createRequest   memory.Input
	patchRequest    memory.Patch
	memoryResponse  memory.Memory
	pageResponse    memory.Page
	historyResponse struct {
		History []memory.HistoryEntry `json:"history"`
	}
	stateRequest struct {
		Action memory.Action `json:"action" jsonschema:"pause, archive or restore"`
	}
	searchRequest struct {
		Query   string            `json:"query" jsonschema:"what to look for"`
		Limit   int               `json:"limit,omitempty" jsonschema:"1-100, default 10"`
		Filters searchFilters     `json:"filters,omitempty"`
		Mode    memory.SearchMode `json:"mode,omitempty" jsonschema:"hybrid (default: lexical, vector and graph fused), lexical or vector"`
		Explain bool              `json:"explain,omitempty" jsonschema:"explain each hit's rank: each source's rank and score, boosts, recency"`
		// IncludeCold also searches the cold tier (docs/scaling.md).
		IncludeCold bool `json:"include_cold,omitempty" jsonschema:"also search cold memories (archived, deleted or long untouched), by their words; needs mode hybrid or lexical"`
	}
	searchResponse memory.SearchResult
	appsResponse   struct {
		Apps []memory.AppCount `json:"apps"`
	}
	statsResponse memory.Stats
)

// searchFilters accepts a single string or a list for the enum filters.
type searchFilters struct {
	Category      stringList `json:"category,omitempty"`
	Scope         stringList `json:"scope,omitempty"`
	State         stringList `json:"state,omitempty"`
	Tags          stringList `json:"tags,omitempty"`
	Entity        string     `json:"entity,omitempty"`
	ArtifactRef   string     `json:"artifact_ref,omitempty"`
	App           string     `json:"app,omitempty"`
	AccessEntity  string     `json:"access_entity,omitempty"`
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
	ValidAt       *time.Time `json:"valid_at,omitempty" jsonschema:"only memories valid at this time (valid_from not after it, valid_to after it)"`
}

// stringList is a JSON string or array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*l = many
	return nil
}

func (f searchFilters) filter() memory.Filter {
	return memory.Filter{
		Categories: convert[memory.Category](f.Category), Scopes: convert[memory.Scope](f.Scope),
		States: convert[memory.State](f.State), Tags: f.Tags, Entity: f.Entity,
		ArtifactRef: f.ArtifactRef, App: f.App, AccessEntity: f.AccessEntity,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore, ValidAt: f.ValidAt,
	}
}

func convert[T ~string](in []string) []T {
	out := make([]T, 0, len(in))
	for _, v := range in {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, T(part))
			}
		}
	}
	return out
}

// decode reads one JSON object into v, rejecting unknown fields, trailing
// data and bodies over the limit with errors that name the problem.
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil && d.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		return &httpError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large",
			msg: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return &httpError{status: http.StatusBadRequest, code: "invalid_argument", msg: "request body is empty; send a JSON object"}
	case errors.As(err, &typeErr):
		return &memory.ValidationError{Field: typeErr.Field, Reason: fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value)}
	case errors.As(err, &synErr):
		return &httpError{status: http.StatusBadRequest, code: "invalid_argument", msg: fmt.Sprintf("malformed JSON at byte %d: %v", synErr.Offset, err)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &memory.ValidationError{Field: field, Reason: "is not a known field"}
	}
	return &httpError{status: http.StatusBadRequest, code: "invalid_argument", msg: "invalid JSON: " + err.Error()}
}

func (s *Server) createMemory(w http.ResponseWriter, r *http.Request) {
	var in createRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		in.IdempotencyKey = k
	}
	m, created, err := s.svc.Add(r.Context(), memory.Input(in))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/memories/"+m.ID)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, m)
}

func (s *Server) getMemory(w http.ResponseWriter, r *http.Request) {
	m, err := s.svc.Get(r.Context(), r.PathValue("id"), memory.ViaREST)
	s.reply(w, r, m, err)
}

func (s *Server) updateMemory(w http.ResponseWriter, r *http.Request) {
	var p patchRequest
	if err := decode(r, &p); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.svc.Update(r.Context(), r.PathValue("id"), memory.Patch(p))
	s.reply(w, r, m, err)
}

func (s *Server) deleteMemory(w http.ResponseWriter, r *http.Request) {
	m, err := s.svc.Delete(r.Context(), r.PathValue("id"))
	s.reply(w, r, m, err)
}

func (s *Server) setState(w http.ResponseWriter, r *http.Request) {
	var req stateRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.svc.Transition(r.Context(), r.PathValue("id"), req.Action)
	s.reply(w, r, m, err)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	h, err := s.svc.History(r.Context(), r.PathValue("id"))
	s.reply(w, r, historyResponse{History: nonNil(h)}, err)
}

func (s *Server) listMemories(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.svc.List(r.Context(), q, memory.ViaREST)
	page.Memories = nonNil(page.Memories)
	s.reply(w, r, page, err)
}

// parseListQuery reads list filters from the query string.
func parseListQuery(v url.Values) (memory.ListQuery, error) {
	known := map[string]bool{}
	for _, p := range listParams {
		known[p.Name] = true
	}
	for k := range v {
		if !known[k] {
			return memory.ListQuery{}, &memory.ValidationError{Field: k, Reason: "is not a known query parameter"}
		}
	}
	q := memory.ListQuery{
		Filter: memory.Filter{
			Categories: convert[memory.Category](v["category"]), Scopes: convert[memory.Scope](v["scope"]),
			States: convert[memory.State](v["state"]), Tags: v["tag"], Entity: v.Get("entity"),
			ArtifactRef: v.Get("artifact_ref"), App: v.Get("app"), AccessEntity: v.Get("access_entity"),
		},
		Sort: v.Get("sort"), Cursor: v.Get("cursor"),
	}
	for name, dst := range map[string]**time.Time{"created_after": &q.Filter.CreatedAfter, "created_before": &q.Filter.CreatedBefore, "valid_at": &q.Filter.ValidAt} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, &memory.ValidationError{Field: name, Reason: "must be an RFC 3339 time such as 2025-01-31T12:00:00Z"}
			}
			*dst = &t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, &memory.ValidationError{Field: "limit", Reason: "must be an integer"}
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	var req searchRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.svc.Search(r.Context(), memory.SearchQuery{Text: req.Query, Limit: req.Limit, Filter: req.Filters.filter(),
		Mode: req.Mode, Explain: req.Explain, IncludeCold: req.IncludeCold}, memory.ViaREST)
	s.reply(w, r, searchResponse(res), err)
}

func (s *Server) apps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.svc.Apps(r.Context())
	s.reply(w, r, appsResponse{Apps: nonNil(apps)}, err)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.Stats(r.Context())
	s.reply(w, r, st, err)
}

// reply writes v with 200, or the error.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
