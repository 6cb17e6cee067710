package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/codingbrain/codingbrain/internal/auth"
)

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// withRequestID honours a well-formed X-Request-ID or makes one, puts it in
// the context and echoes it in the response.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID.MatchString(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// statusWriter remembers the status code for the access log. It passes
// Flush through so that SSE streams keep working.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// principalHolder lets the authentication middleware report the principal
// back to the logging middleware that wraps it.
type principalHolder struct{ sub, org string }

type holderKey struct{}

// withLogging writes one line per request: method, route pattern, status,
// duration, request id and principal — never the token.
func (s *Server) withLogging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.opts.Now()
		sw := &statusWriter{ResponseWriter: w}
		h := &principalHolder{}
		r = r.WithContext(context.WithValue(r.Context(), holderKey{}, h))
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.log.InfoContext(r.Context(), "request",
			"method", r.Method, "route", route, "status", sw.status,
			"duration_ms", float64(s.opts.Now().Sub(start).Microseconds())/1000,
			"request_id", requestID(r.Context()), "sub", h.sub, "org_id", h.org)
	})
}

// withRecover turns a panic in a handler into a 500 instead of a dropped
// connection.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps the request body at MaxBodyBytes.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// bearer extracts the token from the Authorization header; tokens in the
// query string are never read.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

func (s *Server) unauthorized(msg string) error {
	hint := "Bearer"
	if s.opts.ResourceMetadataURL != "" {
		hint = fmt.Sprintf("Bearer resource_metadata=%q", s.opts.ResourceMetadataURL)
	}
	return &httpError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg, wwwAuthHint: hint}
}

// authenticate puts the caller's principal in the context or answers 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		var p auth.Principal
		switch {
		case !ok && s.opts.DevPrincipal != nil:
			p = *s.opts.DevPrincipal
		case !ok:
			s.writeError(w, r, s.unauthorized("send a token in the Authorization: Bearer header"))
			return
		case s.opts.Verifier == nil:
			s.writeError(w, r, s.unauthorized("this server accepts no tokens"))
			return
		default:
			var err error
			p, err = s.opts.Verifier.Verify(r.Context(), token)
			if err != nil {
				if !errors.Is(err, auth.ErrInvalidToken) {
					s.writeError(w, r, err)
					return
				}
				s.log.WarnContext(r.Context(), "authentication failed", "reason", err.Error(), "request_id", requestID(r.Context()))
				s.writeError(w, r, s.unauthorized("the token is not valid"))
				return
			}
		}
		if h, ok := r.Context().Value(holderKey{}).(*principalHolder); ok {
			h.sub, h.org = p.Subject, p.OrgID
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// requireScopes answers 403 insufficient_scope naming the first missing scope.
func (s *Server) requireScopes(scopes []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.PrincipalFrom(r.Context())
		if missing := p.Missing(scopes...); missing != "" {
			s.writeError(w, r, &httpError{
				status: http.StatusForbidden, code: "insufficient_scope",
				msg:         fmt.Sprintf("this operation needs scope %q", missing),
				wwwAuthHint: fmt.Sprintf("Bearer error=\"insufficient_scope\", scope=%q", strings.Join(scopes, " ")),
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}
