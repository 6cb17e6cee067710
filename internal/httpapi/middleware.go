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

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/telemetry"
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
		// Handlers that see only the headers (MCP calls on a session) log it too.
		r.Header.Set("X-Request-ID", id)
		ctx := audit.WithRequest(context.WithValue(r.Context(), requestIDKey{}, id), id, r.RemoteAddr)
		next.ServeHTTP(w, r.WithContext(ctx))
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
// duration, request id, principal, client address (ClientIP), and the
// trace and span ids — never the token. Around the request it also keeps the HTTP metrics (requests by
// method, route and code, duration, in flight) and the server span, which
// continues an incoming traceparent (observe.go).
func (s *Server) withLogging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.opts.Now()
		route := s.routeOf(r)
		s.opts.Metrics.HTTPInFlightAdd(1)
		defer s.opts.Metrics.HTTPInFlightAdd(-1)
		r, span := s.startSpan(r, route)
		sw := &statusWriter{ResponseWriter: w}
		h := &principalHolder{}
		r = r.WithContext(context.WithValue(r.Context(), holderKey{}, h))
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := s.opts.Now().Sub(start)
		endSpan(span, sw.status, h)
		s.opts.Metrics.ObserveHTTP(methodLabel(r.Method), route, sw.status, d)
		if route == searchRoute && sw.status < 400 {
			s.opts.Metrics.ObserveSearch(telemetry.ChannelREST, d)
		}
		attrs := []any{"method", r.Method, "route", route, "status", sw.status,
			"duration_ms", float64(d.Microseconds()) / 1000,
			"request_id", requestID(r.Context()), "sub", h.sub, "org_id", h.org, "client", clientAddr(r)}
		if sc := span.SpanContext(); sc.IsValid() {
			attrs = append(attrs, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
		}
		s.log.InfoContext(r.Context(), "request", attrs...)
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

func (s *Server) bearerChallenge() string {
	if s.opts.ResourceMetadataURL != "" {
		return fmt.Sprintf("Bearer resource_metadata=%q", s.opts.ResourceMetadataURL)
	}
	return "Bearer"
}

// unauthorized answers 401 with two challenges: Bearer (with the resource
// metadata URL) and DPoP, which names the proof algorithms and, when err is
// a DPoP failure, its error code (RFC 9449 §7.1).
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string, err error) {
	w.Header().Add("WWW-Authenticate", s.bearerChallenge())
	w.Header().Add("WWW-Authenticate", auth.DPoPChallenge(err))
	s.auditAuthFailure(r, err)
	s.opts.Metrics.AuthFailed(audit.AuthFailureReason(err))
	s.writeError(w, r, &httpError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg})
}

// authenticate puts the caller's principal in the context or answers 401.
// Tokens come as "Authorization: Bearer" or, when DPoP-bound, as
// "Authorization: DPoP" with a DPoP proof header (auth.DPoP has the rules).
// A replay cache that cannot be reached is 503: the proof is not accepted.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _, err := s.opts.DPoP.Authenticate(r, s.opts.Verifier, s.opts.PublicURL)
		switch {
		case errors.Is(err, auth.ErrNoCredentials) && s.opts.DevPrincipal != nil:
			p = *s.opts.DevPrincipal
		case errors.Is(err, auth.ErrNoCredentials):
			s.unauthorized(w, r, "send a token in the Authorization header (Bearer, or DPoP with a DPoP proof)", err)
			return
		case errors.Is(err, auth.ErrInvalidToken):
			s.log.WarnContext(r.Context(), "authentication failed", "reason", err.Error(), "request_id", requestID(r.Context()))
			msg := "the token is not valid"
			if errors.Is(err, auth.ErrInvalidDPoPProof) || errors.Is(err, auth.ErrDPoPBinding) {
				msg = "the token or its DPoP proof is not valid"
			}
			s.unauthorized(w, r, msg, err)
			return
		case errors.Is(err, kv.ErrUnavailable):
			s.log.ErrorContext(r.Context(), "dpop replay cache unavailable", "err", err, "request_id", requestID(r.Context()))
			w.Header().Set("Retry-After", "1")
			s.writeError(w, r, &httpError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the DPoP proof cannot be checked now; retry with a new proof"})
			return
		case err != nil:
			s.writeError(w, r, err)
			return
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
			s.auditScope(r, missing)
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
