package httpapi

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// Observability of the HTTP surface: withLogging (middleware.go) writes the
// one log line per request and, through these helpers, records the RED
// metrics by route pattern and runs a server span per request that
// continues an incoming W3C traceparent.

// unmatched is the route label of a request no pattern matched (a 404 or
// 405 from the mux), so that scanners cannot grow the label set.
const unmatched = "unmatched"

// searchRoute is the REST search, timed into
// codingbrain_search_duration_seconds{channel="rest"}.
const searchRoute = "POST /api/v1/search"

// routeOf returns the ServeMux pattern that serves r ("GET /api/v1/memories/{id}"),
// or unmatched. It asks the mux before the request runs, so the span is
// named after the route from its start and a handler that replaces the
// request (r.WithContext) does not lose the pattern.
func (s *Server) routeOf(r *http.Request) string {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		return pattern
	}
	return unmatched
}

// methodLabel keeps the method label to the methods of HTTP; anything else
// is "OTHER".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// startSpan starts the server span of r as a child of the traceparent the
// request carries, if any.
func (s *Server) startSpan(r *http.Request, route string) (*http.Request, trace.Span) {
	ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	// "{method} {route}" as the HTTP semantic conventions name server
	// spans; http.route is the path template alone.
	method := methodLabel(r.Method)
	name, path := method, ""
	if route != unmatched {
		path = route
		if _, p, ok := strings.Cut(route, " "); ok {
			path = p
		}
		name = method + " " + path
	}
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", path),
			attribute.String("url.path", r.URL.Path),
			attribute.String("request_id", requestID(r.Context())),
		))
	// Handlers below that read only the headers (MCP calls on a
	// long-lived session run outside this request's context) find this
	// span as the parent of theirs.
	telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r.WithContext(ctx), span
}

// endSpan records the outcome on the span: the status code, the principal,
// and an error status for a 5xx.
func endSpan(span trace.Span, status int, h *principalHolder) {
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if h.sub != "" {
		span.SetAttributes(attribute.String("enduser.id", h.sub), attribute.String("codingbrain.org_id", h.org))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// metrics serves GET /metrics on the main listener: a token with scope
// metrics:read is needed (only health and metadata are open). The same
// metrics are served without a token on the internal listener that
// serve --metrics-addr opens.
func (s *Server) metricsRoute() {
	if s.opts.MetricsHandler == nil {
		return
	}
	s.mux.Handle("GET /metrics", s.authenticate(s.requireScopes([]string{auth.ScopeMetricsRead}, s.opts.MetricsHandler)))
}
