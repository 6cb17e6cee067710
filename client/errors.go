package client

import (
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Error is a failure the server reported: the HTTP status and the fields of
// the JSON error envelope. errors.Is matches it against memory.ErrNotFound,
// ErrConflict, ErrForbidden, ErrUnauthorized and ErrUnavailable.
type Error struct {
	Status    int
	Code      string // invalid_argument, unauthorized, forbidden, not_found, conflict, …
	Message   string
	Field     string // the offending input field, for invalid_argument
	RequestID string // quote it when reporting a problem
}

func (e *Error) Error() string { return "server: " + e.Code + ": " + e.Message }

// Unwrap returns the memory sentinel that matches the error code (or, for
// codes this client does not know, the status), or nil.
func (e *Error) Unwrap() error {
	switch e.Code {
	case "not_found":
		return memory.ErrNotFound
	case "conflict":
		return memory.ErrConflict
	case "forbidden", "insufficient_scope":
		return memory.ErrForbidden
	case "unauthorized":
		return memory.ErrUnauthorized
	case "unavailable":
		return memory.ErrUnavailable
	}
	switch e.Status {
	case http.StatusNotFound:
		return memory.ErrNotFound
	case http.StatusConflict:
		return memory.ErrConflict
	case http.StatusForbidden:
		return memory.ErrForbidden
	case http.StatusUnauthorized:
		return memory.ErrUnauthorized
	case http.StatusServiceUnavailable:
		return memory.ErrUnavailable
	}
	return nil
}

// decodeError builds an *Error from a non-2xx answer. A body that is not the
// API's envelope (a proxy's error page, say) still gives a useful error.
func decodeError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	var env struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			Field     string `json:"field"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message, e.Field, e.RequestID = env.Error.Code, env.Error.Message, env.Error.Field, env.Error.RequestID
	} else {
		e.Code = codeFor(resp.StatusCode)
		e.Message = http.StatusText(resp.StatusCode)
		if s := strings.TrimSpace(string(body)); s != "" {
			e.Message += ": " + truncate(s, 200)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-ID")
	}
	return e
}

// codeFor names the error code the API uses for a status.
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_argument"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return "unavailable"
	}
	return "internal"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
