package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// errorBody is the one JSON error envelope of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// httpError is an error that already knows its status and code; the
// middleware and decoders use it for problems found before the service.
type httpError struct {
	status      int
	code, msg   string
	field       string
	wwwAuthHint string
}

func (e *httpError) Error() string { return e.msg }

// writeError maps err to a status and writes the envelope. It is the only
// place where errors become HTTP responses. A 500 logs the cause and shows
// the caller only the request id.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	d := errorDetail{RequestID: requestID(r.Context())}
	var status int
	var ve *memory.ValidationError
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, d.Code, d.Message, d.Field = he.status, he.code, he.msg, he.field
		if he.wwwAuthHint != "" {
			w.Header().Set("WWW-Authenticate", he.wwwAuthHint)
		}
	case errors.As(err, &ve):
		status, d.Code, d.Message, d.Field = http.StatusBadRequest, "invalid_argument", ve.Error(), ve.Field
	case errors.Is(err, memory.ErrUnauthorized):
		status, d.Code, d.Message = http.StatusUnauthorized, "unauthorized", "authentication required"
	case errors.Is(err, memory.ErrForbidden):
		status, d.Code, d.Message = http.StatusForbidden, "forbidden", err.Error()
	case errors.Is(err, memory.ErrNotFound):
		status, d.Code, d.Message = http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, memory.ErrConflict):
		status, d.Code, d.Message = http.StatusConflict, "conflict", err.Error()
	case errors.Is(err, memory.ErrUnavailable):
		status, d.Code, d.Message = http.StatusServiceUnavailable, "unavailable", "a dependency is unavailable; retry later"
		s.log.ErrorContext(r.Context(), "dependency unavailable", "err", err, "request_id", d.RequestID)
	default:
		status, d.Code, d.Message = http.StatusInternalServerError, "internal", "internal error; quote the request id when reporting it"
		s.log.ErrorContext(r.Context(), "internal error", "err", err, "request_id", d.RequestID)
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Default().Debug("write response", "err", err)
	}
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, &httpError{status: http.StatusNotFound, code: "not_found", msg: "no route " + r.Method + " " + r.URL.Path})
}
