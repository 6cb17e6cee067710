// Package mcpserver serves Coding Brain's memories to AI coding assistants
// over the Model Context Protocol. The tools are thin typed adapters over
// memory.Service: the same validation, authorization and history as REST.
//
// Transports and paths (the HTTP ones are mounted by internal/httpapi):
//
//   - /mcp, Handler: Streamable HTTP for both protocol eras on one path.
//     Requests at protocol 2026-07-28 or later (Mcp-Protocol-Version header,
//     or the _meta protocol version when the header is absent) are served
//     statelessly; initialize, requests carrying Mcp-Session-Id and requests
//     of older revisions (2025-11-25 and before) go to a sessionful handler
//     that issues Mcp-Session-Id and binds each session to the principal that
//     opened it. Bindings live in Options.Sessions (Valkey when there are
//     several replicas), so any replica serves any session (sessions.go).
//   - /sse, SSEHandler: the legacy HTTP+SSE transport (2024-11-05). GET /sse
//     opens the event stream; its first event ("endpoint") names the message
//     endpoint, /sse?sessionid=ID, where the client POSTs its messages. The
//     session is bound to the principal of the GET. Its stream lives on one
//     replica: behind a load balancer it needs affinity on sessionid.
//   - stdio, ServeStdio: one session for a fixed principal, for clients that
//     spawn `codingbrain mcp`.
//
// Every HTTP request needs a token: "Authorization: Bearer", or, for a
// DPoP-bound token (cnf.jkt), "Authorization: DPoP" with a DPoP proof
// header, under the same rules as REST (auth.DPoP; authenticate says how
// that fits the SDK's bearer-token middleware). In explicit development
// mode on loopback a request without a token acts as a fixed principal.
// Each tool names the scopes it needs in toolScopes and checks them before
// it calls the service; failures come back as tool results with isError set
// and a message a model can act on.
//
// Besides tools: memories are resources (memory://{id}, listed per caller,
// with targeted list_changed; resources.go), project_context is a prompt
// (prompts.go), and Options.ConformanceFixtures adds the fixtures of the
// MCP conformance suite (fixtures.go).
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// Options configure a Server. Zero values take defaults.
type Options struct {
	// Logger receives transport and internal errors; nothing by default.
	Logger *slog.Logger
	// Verifier verifies bearer tokens on the HTTP transports. Without one,
	// every token is rejected.
	Verifier auth.Verifier
	// DevPrincipal, when non-nil (explicit --insecure-dev-no-auth on
	// loopback), is the principal of HTTP requests that carry no token.
	DevPrincipal *auth.Principal
	// ResourceMetadataURL is announced as resource_metadata in the
	// WWW-Authenticate header of a 401 (RFC 9728).
	ResourceMetadataURL string
	// Version is reported as the server's version to clients.
	Version string
	// MaxBodyBytes limits HTTP request bodies; larger ones get 413.
	// Zero means mcp.DefaultMaxRequestBodyBytes.
	MaxBodyBytes int64
	// DPoP checks the proofs of DPoP-bound tokens (RFC 9449; the rules are
	// in auth.DPoP). nil means a checker with an in-process replay cache:
	// bound tokens are never accepted without a proof. Give every replica
	// the same shared one (kv.Valkey), and share it with the REST server.
	DPoP *auth.DPoP
	// PublicURL is the externally visible base URL of the server, such as
	// https://brain.example.com; a proof's htu must be PublicURL followed by
	// the request path (/mcp, /sse). Empty means the request's scheme and
	// Host, which is wrong behind a proxy that terminates TLS or rewrites
	// Host.
	PublicURL string
	// Sessions holds the bindings of Streamable HTTP sessions so that any
	// replica can serve a session another one opened: kv.Valkey when several
	// replicas share state, kv.Memory (the default) on a single node.
	Sessions kv.Store
	// Limit, if set, wraps the handling of every authenticated HTTP
	// request, with the principal in its context (auth.PrincipalFrom): the
	// rate limits (httpapi.RateLimiter.WrapPOST).
	Limit func(http.Handler) http.Handler
	// Audit records 401s, tool calls refused for a missing scope and
	// requests on another principal's session (audit.go); nil records
	// nothing.
	Audit *audit.Recorder
	// Metrics records tool calls, searches and open sessions; nil records
	// nothing.
	Metrics *telemetry.Metrics
	// TracerProvider makes a span per tool call (telemetry.go); nil makes
	// none.
	TracerProvider trace.TracerProvider
	// ConformanceFixtures also serves the fixtures the MCP conformance
	// suite calls (fixtures.go). Only for `serve --conformance-fixtures`.
	ConformanceFixtures bool
}

// Server is the MCP server of Coding Brain. It is safe for concurrent use.
type Server struct {
	svc       *memory.Service
	opts      Options
	log       *slog.Logger
	mcp       *mcp.Server
	stateful  *mcp.StreamableHTTPHandler
	stateless *mcp.StreamableHTTPHandler
	sse       *sseHandler
	sessions  sessionStore
	tracer    trace.Tracer
	watch     watchers // sessions' principals, for list_changed (resources.go)
}

// New returns a Server whose tools call svc.
func New(svc *memory.Service, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = mcp.DefaultMaxRequestBodyBytes
	}
	if opts.Sessions == nil {
		opts.Sessions = kv.NewMemory(nil)
	}
	if opts.DPoP == nil {
		d, err := auth.NewDPoP(auth.DPoPConfig{Replay: kv.NewMemory(nil)})
		if err != nil {
			panic(err) // the defaults are valid
		}
		opts.DPoP = d
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger, sessions: sessionStore{opts.Sessions}, tracer: telemetry.Tracer(opts.TracerProvider)}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "codingbrain", Title: "Coding Brain", Version: opts.Version},
		&mcp.ServerOptions{Instructions: instructions, Logger: opts.Logger,
			CompletionHandler: s.complete, SubscribeHandler: s.subscribe, UnsubscribeHandler: s.unsubscribe,
			SetCacheable: cacheable})
	s.mcp.AddReceivingMiddleware(s.observe)
	s.addTools()
	s.addGraphTools()
	s.addResources()
	s.addPrompts()
	if opts.ConformanceFixtures {
		s.addFixtures()
	}

	get := func(*http.Request) *mcp.Server { return s.mcp }
	s.stateful = mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{
		Logger: opts.Logger, MaxRequestBodyBytes: opts.MaxBodyBytes, SessionTimeout: sessionIdle,
	})
	s.stateless = mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{
		Stateless: true, Logger: opts.Logger, MaxRequestBodyBytes: opts.MaxBodyBytes,
	})
	s.sse = &sseHandler{server: s.mcp, log: opts.Logger, maxBody: opts.MaxBodyBytes, sessions: map[string]*sseSession{}}
	s.sse.hijack = func(r *http.Request, owner, sid string) { s.auditHijack(r, owner, "sse", sid) }
	return s
}

const instructions = `Coding Brain is the team's long-term memory for software work: decisions, conventions, architecture, dependencies, workflows, runbooks.
Search it (search_memory) before answering questions about this codebase or making a design choice; add what you learn that others will need later (add_memories) — one self-contained fact per memory, with category, entity and evidence when you have them.`

// Handler serves Streamable HTTP at /mcp for both protocol eras: sessionful
// (2025-11-25 and earlier) and stateless (2026-07-28 and later).
func (s *Server) Handler() http.Handler {
	return s.authenticate(http.HandlerFunc(s.dispatch))
}

// SSEHandler serves the legacy HTTP+SSE transport (2024-11-05) at /sse: GET
// opens the event stream, POST /sse?sessionid=ID delivers messages.
func (s *Server) SSEHandler() http.Handler {
	return s.authenticate(s.sse)
}

// ServeStdio serves one MCP session over in and out as principal p until in
// reaches EOF or ctx is done. A cancelled ctx is not an error.
func (s *Server) ServeStdio(ctx context.Context, p auth.Principal, in io.Reader, out io.Writer) error {
	rc, ok := in.(io.ReadCloser)
	if !ok {
		rc = io.NopCloser(in)
	}
	t := &mcp.IOTransport{Reader: rc, Writer: nopWriteCloser{out}}
	err := s.mcp.Run(auth.WithPrincipal(ctx, p), t)
	if err != nil && (ctx.Err() != nil || errors.Is(err, io.EOF)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("serve mcp over stdio: %w", err)
	}
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// The first protocol revision without sessions or initialize. Revisions are
// dates, so they compare as strings.
const statelessEra = "2026-07-28"

// dispatch sends a Streamable HTTP request to the stateless or the
// sessionful SDK handler. The SDK accepts 2026-07-28 requests only on a
// stateless handler, and sessions (2025-11-25) only on a stateful one.
// Requests naming a session are checked against its shared binding first
// (sessions.go), so that every replica can serve them.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		s.serveSession(w, r, sid)
		return
	}
	if r.Method != http.MethodPost {
		// GET (standalone stream) and DELETE (end session) exist only with
		// sessions; without a session id the stateful handler explains.
		s.stateful.ServeHTTP(w, r)
		return
	}
	version := r.Header.Get("Mcp-Protocol-Version")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		bodyError(w, err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if s.scopeChallenge(w, r, body) {
		return
	}
	method, metaVersion := peek(body)
	if version == "" {
		version = metaVersion
	}
	// An initialize whose _meta names the stateless era is the removed
	// method of that era (404, -32601), not the start of a session.
	if version >= statelessEra && (method != "initialize" || metaVersion >= statelessEra) {
		s.stateless.ServeHTTP(w, r)
		return
	}
	s.openSession(w, r, body)
}

// peek reads the JSON-RPC method and the 2026-07-28 _meta protocol version
// of a single (non-batch) message; it returns zero values for anything else.
func peek(body []byte) (method, version string) {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Meta map[string]any `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil {
		return "", ""
	}
	version, _ = msg.Params.Meta[mcp.MetaKeyProtocolVersion].(string)
	return msg.Method, version
}

type verifiedKey struct{}

// authenticate verifies the caller, then lets the SDK's RequireBearerToken
// put the caller's TokenInfo in the context, where the SDK's session checks
// find it (a session belongs to TokenInfo.UserID).
//
// The SDK does not verify tokens itself here: it reads only
// "Authorization: Bearer" and can answer only 401 or 500 with a Bearer
// challenge, while a DPoP-bound token comes as "Authorization: DPoP" with a
// DPoP proof header, a failure needs a DPoP challenge, and a replay cache
// that is down needs 503. So auth.DPoP.Authenticate, the same rules as
// REST, runs first. The principal it returns goes into the context (which
// no client can set) and the request goes on as "Authorization: Bearer
// <token>" so that the SDK finds a token; verifyToken reads the principal
// back. In development mode a request without an Authorization header gets
// the development principal the same way.
func (s *Server) authenticate(next http.Handler) http.Handler {
	require := sdkauth.RequireBearerToken(s.verifyToken, &sdkauth.RequireBearerTokenOptions{
		ResourceMetadataURL: s.opts.ResourceMetadataURL,
		// auth.Verifier already checks exp (with leeway) and returns no
		// expiry; an expired token never gets here.
		AllowMissingExpiration: true,
	})(next)
	if s.opts.Limit != nil {
		require = s.opts.Limit(require)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			p     auth.Principal
			token = "insecure-dev-no-auth"
		)
		if dev := s.opts.DevPrincipal; dev != nil && r.Header.Get("Authorization") == "" {
			p = *dev
		} else {
			var err error
			if p, token, err = s.opts.DPoP.Authenticate(r, s.opts.Verifier, s.opts.PublicURL); err != nil {
				s.deny(w, r, err)
				return
			}
		}
		r = r.Clone(auth.WithPrincipal(context.WithValue(r.Context(), verifiedKey{}, p), p))
		r.Header.Set("Authorization", "Bearer "+token)
		require.ServeHTTP(w, r)
	})
}

// verifyToken hands the principal that authenticate verified to the SDK.
func (s *Server) verifyToken(_ context.Context, _ string, r *http.Request) (*sdkauth.TokenInfo, error) {
	if p, ok := r.Context().Value(verifiedKey{}).(auth.Principal); ok {
		return tokenInfo(p), nil
	}
	return nil, fmt.Errorf("%w: request not authenticated", sdkauth.ErrInvalidToken)
}

// deny answers a request whose credentials were not accepted: 401 with a
// Bearer and a DPoP challenge (RFC 6750, RFC 9728, RFC 9449 §7.1), 503 when
// the DPoP replay cache cannot be reached, 500 when the verifier failed.
// Why a token failed is logged, not shown to the caller.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	switch {
	case errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrInvalidToken):
		s.auditAuthFailure(r, err)
		msg := "no token: send Authorization: Bearer, or DPoP with a DPoP proof"
		if !errors.Is(err, auth.ErrNoCredentials) {
			s.log.InfoContext(ctx, "mcp token rejected", "err", err, "remote", r.RemoteAddr)
			msg = "invalid token"
		}
		bearer := "Bearer"
		if s.opts.ResourceMetadataURL != "" {
			bearer = fmt.Sprintf("Bearer resource_metadata=%q", s.opts.ResourceMetadataURL)
		}
		w.Header().Add("WWW-Authenticate", bearer)
		w.Header().Add("WWW-Authenticate", auth.DPoPChallenge(err))
		http.Error(w, msg, http.StatusUnauthorized)
	case errors.Is(err, kv.ErrUnavailable):
		s.log.ErrorContext(ctx, "mcp dpop replay cache unavailable", "err", err, "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the DPoP proof cannot be checked now; retry with a new proof", http.StatusServiceUnavailable)
	case errors.Is(err, memory.ErrUnavailable):
		// API keys are read from the store on every request.
		s.log.ErrorContext(ctx, "mcp credentials cannot be checked: store unavailable", "err", err, "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "credentials cannot be checked now; retry", http.StatusServiceUnavailable)
	default:
		s.log.ErrorContext(ctx, "mcp token verification failed", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "token verification unavailable", http.StatusInternalServerError)
	}
}

// tokenInfo describes p to the SDK. UserID binds sessions to the principal:
// the SDK answers 403 when another principal's token uses the session.
func tokenInfo(p auth.Principal) *sdkauth.TokenInfo {
	return &sdkauth.TokenInfo{
		Scopes: p.Scopes,
		UserID: p.OrgID + "/" + p.Subject,
		Extra:  map[string]any{principalExtra: p},
	}
}

const principalExtra = "principal"

func userID(ctx context.Context) string {
	if ti := sdkauth.TokenInfoFromContext(ctx); ti != nil {
		return ti.UserID
	}
	return ""
}
