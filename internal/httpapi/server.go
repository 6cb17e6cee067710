// Package httpapi is the REST surface of Coding Brain: the /api/v1 routes,
// health probes, the OpenAPI document, and the middleware every request goes
// through (request ids, logging, body limits, authentication, scopes). It
// also mounts the MCP handlers so that one mux serves the whole server.
package httpapi

import (
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// Options configure the REST server.
type Options struct {
	Logger *slog.Logger
	// Metrics records requests by route, their duration and those in
	// flight; nil records nothing.
	Metrics *telemetry.Metrics
	// TracerProvider makes a server span per request, continuing an
	// incoming traceparent; nil makes none.
	TracerProvider trace.TracerProvider
	// MetricsHandler serves GET /metrics to tokens with scope metrics:read;
	// nil serves no /metrics on this handler.
	MetricsHandler http.Handler
	// Verifier checks bearer tokens. Required unless DevPrincipal is set.
	Verifier auth.Verifier
	// APIKeys keeps the API keys the admin routes make, list and revoke;
	// without it those routes answer 501.
	APIKeys auth.KeyStore
	// DevPrincipal, when set, is used for requests without a token. Only the
	// explicit development flag on a loopback address sets it.
	DevPrincipal *auth.Principal
	// Audit records failed authentications, missing scopes and API keys
	// made or revoked, and serves GET /api/v1/audit; nil records nothing
	// and that route answers 501.
	Audit *audit.Recorder
	// MaxBodyBytes limits request bodies; larger ones get 413.
	MaxBodyBytes int64
	// ResourceMetadataURL is announced in WWW-Authenticate on 401.
	ResourceMetadataURL string
	// DPoP checks the proofs of DPoP-bound tokens (RFC 9449; the rules are
	// in auth.DPoP). nil means a checker with an in-process replay cache:
	// bound tokens are never accepted without a proof. Give every replica
	// the same shared one (kv.Valkey), and share it with the MCP server.
	DPoP *auth.DPoP
	// PublicURL is the externally visible base URL of the server, such as
	// https://brain.example.com; a proof's htu must be PublicURL followed by
	// the request path. Empty means the request's scheme and Host, which is
	// wrong behind a proxy that terminates TLS or rewrites Host.
	PublicURL string
	// MCP serves /mcp (Streamable HTTP) and SSE the legacy HTTP+SSE
	// transport at /sse; both may be nil. They authenticate on their own.
	MCP, SSE http.Handler
	// Checks are the dependencies probed by /health/ready and /health/deps.
	Checks []Check
	// Breakers are the circuit breakers /health/deps shows.
	Breakers []Breaker
	// OnDependency, if set, hears the outcome of every dependency check
	// (codingbrain_dependency_up).
	OnDependency func(name string, up bool)
	// RateLimiter limits requests per principal and route class; nil
	// limits nothing. Give the MCP server the same one.
	RateLimiter *RateLimiter
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Real-IP name the client (ClientIP); none by default.
	TrustedProxies []netip.Prefix
	// Resource is this server's MCP resource URI, published in the RFC 9728
	// protected-resource metadata.
	Resource string
	// AuthorizationServers are announced in that metadata.
	AuthorizationServers []string
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to
	// call the API and the MCP endpoints; none by default.
	CORSOrigins []string
	// Shared holds the failed-authentication counters (kv.Valkey so that
	// replicas count together); in process by default.
	Shared kv.Store
	// AuthFailureLimit throttles clients whose authentication keeps
	// failing; DefaultAuthFailureLimit when zero.
	AuthFailureLimit AuthFailureLimit
	// Version is reported by /health/live.
	Version string
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// GDPR serves the subject export, erasure and check routes; nil
	// answers 501.
	GDPR *gdpr.Service
	// Retention keeps the orgs' retention policies (the admin routes); nil
	// answers 501.
	Retention gdpr.RetentionStore
}

// Server is the HTTP handler of the whole API.
type Server struct {
	svc      *memory.Service
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	handler  http.Handler
	draining atomic.Bool
	health   *healthCache
	tracer   trace.Tracer
}

// New builds the server and its routes.
func New(svc *memory.Service, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DPoP == nil {
		d, err := auth.NewDPoP(auth.DPoPConfig{Replay: kv.NewMemory(nil), Now: opts.Now})
		if err != nil {
			panic(err) // the defaults are valid
		}
		opts.DPoP = d
	}
	if opts.Shared == nil {
		opts.Shared = kv.NewMemory(opts.Now)
	}
	if opts.AuthFailureLimit.Burst <= 0 || opts.AuthFailureLimit.Rate <= 0 {
		opts.AuthFailureLimit = DefaultAuthFailureLimit
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	s.health = newHealthCache(opts.Checks, opts.Now, opts.Logger, opts.OnDependency)
	s.tracer = telemetry.Tracer(opts.TracerProvider)
	s.routes()
	s.metricsRoute()
	s.handler = s.withClientIP(s.withRequestID(s.withLogging(s.withRecover(
		s.withSecurityHeaders(s.withCORS(s.withDrain(s.withAuthFailureLimit(s.mux))))))))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain makes /health/ready fail so that load balancers stop sending new
// work, and refuses new work with 503 (withDrain); requests in flight go
// on. Call it first on shutdown.
func (s *Server) Drain() { s.draining.Store(true) }
