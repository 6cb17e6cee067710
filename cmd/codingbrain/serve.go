package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// dbFile is the SQLite database inside the data directory.
const dbFile = "codingbrain.db"

const serveUsage = `Usage: codingbrain serve [flags]

Serves REST (/api/v1), MCP (/mcp, /sse) and health probes (/health/*).
Memories live in the SQLite file codingbrain.db in the data directory, or in
PostgreSQL with --database-url; the signing key is always in the data
directory. Every flag has a CODINGBRAIN_* environment variable and a
config file field (see README).

Flags:
`

const conformanceUsage = "also serve the fixtures of the MCP conformance suite, and MCP without a token (loopback only; testing)"

// runServe wires the server top to bottom — config, logger, store, auth,
// service, REST and MCP handlers, HTTP server — and stops it in reverse
// order when ctx ends.
func runServe(ctx context.Context, args []string, e env) (err error) {
	var fixtures bool
	cfg, err := config.LoadWith(args, e.getenv, func(fs *flag.FlagSet) {
		fs.BoolVar(&fixtures, "conformance-fixtures", false, conformanceUsage)
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, serveUsage+config.Usage()+"  -conformance-fixtures\n    \t"+conformanceUsage+"\n")
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if host, _, _ := net.SplitHostPort(cfg.Addr); fixtures && !config.IsLoopback(host) {
		return fmt.Errorf("config: --conformance-fixtures: refused on %q; it serves MCP without a token and works only on a loopback address", cfg.Addr)
	}
	// A driver's error may quote the URL it was given: no password leaves.
	defer func() {
		if err != nil {
			if msg := cfg.Redact(err.Error()); msg != err.Error() {
				err = errors.New(msg)
			}
		}
	}()
	log := newLogger(cfg, e)
	v, _, _ := buildInfo()
	// Metrics and tracing first, so that everything after records; queued
	// spans are flushed last, after the servers have stopped.
	obs, err := newObservability(ctx, e, log)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		obs.shutdown(fctx, log)
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	b, err := openBackends(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.routeReads(ctx, cfg, obs.registry, log); err != nil {
		return err
	}
	b.observe(obs.metrics)
	b.embedder = telemetry.ObserveEmbedder(b.embedder, obs.metrics, obs.tracing.Provider)
	// The vector index loads before serving and then follows the store;
	// embeddings follow it in the background and report to the index.
	if err := b.startVectors(ctx, log); err != nil {
		return err
	}
	var onEmbedded func([]memory.Embedding)
	var onRemoved func([]memory.MemoryKey)
	if b.vectors != nil {
		onEmbedded, onRemoved = b.vectors.Embedded, b.vectors.Removed
	}
	b.startEmbedding(ctx, log, onEmbedded, onRemoved)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + ln.Addr().String()
	}
	resource := publicURL + "/mcp"
	audience := cfg.TokenAudience(publicURL)

	key, created, err := auth.LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		return err
	}
	if created {
		log.Info("created a signing key for `codingbrain token issue`", "data_dir", cfg.DataDir)
	}
	jwtVerifier, err := auth.NewJWT(ctx, auth.VerifierConfig{
		Issuer: cfg.Issuer, Audience: audience, HMACKey: key,
		JWKSURL: cfg.JWKSURL, JWKSRefresh: cfg.JWKSRefresh, Leeway: cfg.TokenLeeway,
	})
	if err != nil {
		return err
	}
	keys, err := keyStore(b.store)
	if err != nil {
		return err
	}
	if err := announceAdminKey(ctx, keys, e.stdout); err != nil {
		return err
	}
	verifier := tokenVerifier(keys, jwtVerifier, log)
	dpop, err := auth.NewDPoP(auth.DPoPConfig{Replay: b.shared})
	if err != nil {
		return err
	}

	var dev *auth.Principal
	if cfg.InsecureNoAuth {
		dev = &auth.Principal{Subject: "dev", OrgID: "local", Scopes: auth.AllScopes, Grants: []string{"org:local"}, App: "dev"}
		log.Warn("serving WITHOUT authentication (--insecure-dev-no-auth); loopback only, never in production", "addr", cfg.Addr)
	}
	mcpDev := dev
	if fixtures && dev == nil {
		// The conformance suite sends no token: MCP (not REST) accepts
		// requests without one as a principal of its own org.
		mcpDev = &auth.Principal{Subject: "conformance", OrgID: "conformance", App: "conformance",
			Scopes: []string{auth.ScopeMemoriesRead, auth.ScopeMemoriesWrite, auth.ScopeMemoriesDelete, auth.ScopeSearchRead}}
	}
	if fixtures {
		log.Warn("serving MCP conformance fixtures, and MCP WITHOUT a token (--conformance-fixtures); loopback only, for testing, never in production", "addr", cfg.Addr)
	}
	log.Info("authentication", "issuer", cfg.Issuer, "audience", audience, "jwks_url", cfg.JWKSURL)
	resourceMetadata := publicURL + "/.well-known/oauth-protected-resource"

	rec, err := auditRecorder(b.store, log)
	if err != nil {
		return err
	}
	ranking, err := searchRanking(cfg)
	if err != nil {
		return err
	}
	limits, err := httpapi.ParseRateLimits(cfg.RateLimits, httpapi.DefaultRateLimits())
	if err != nil {
		return fmt.Errorf("config: rate_limits: %w", err)
	}
	trusted, err := httpapi.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// With Valkey every replica takes from the same buckets.
	limiter := httpapi.NewRateLimiter(httpapi.RateLimiterOptions{
		Limits: limits, Shared: b.shared, Logger: log,
		OnReject:      func(class string) { b.metrics.Load().RateLimitRejected(class) },
		OnUnavailable: func(string) { b.metrics.Load().SetDependencyUp("valkey", false) },
	})
	logLimits(log, limits, trusted)
	// The service's store calls get spans and timings; the rest of the
	// process (keys, audit, change feed, embeddings) uses the store itself.
	svc := memory.NewService(telemetry.ObserveStore(b.store, obs.metrics, obs.tracing.Provider), memory.Options{Audit: rec, Vectors: b.serviceVectors(), Ranking: ranking})
	mcp := mcpserver.New(svc, mcpserver.Options{
		Logger: log, Verifier: verifier, DevPrincipal: mcpDev, ConformanceFixtures: fixtures, ResourceMetadataURL: resourceMetadata,
		Version: v, MaxBodyBytes: cfg.MaxBodyBytes, Sessions: b.shared, DPoP: dpop, PublicURL: publicURL, Audit: rec,
		Limit:   func(h http.Handler) http.Handler { return limiter.WrapPOST(httpapi.ClassMCP, h) },
		Metrics: obs.metrics, TracerProvider: obs.tracing.Provider,
	})
	privacy, err := startPrivacy(ctx, cfg, b, rec, obs.registry, obs.tracing.Provider, log)
	if err != nil {
		return err
	}
	defer privacy.stop(context.WithoutCancel(ctx))
	stopTiering, err := startTiering(ctx, cfg, b, obs.metrics, obs.tracing.Provider, log)
	if err != nil {
		return err
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		stopTiering(tctx)
	}()
	stopBackups, err := startBackups(ctx, cfg, b, obs.metrics, obs.registry, obs.tracing.Provider, log)
	if err != nil {
		return err
	}
	defer func() {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		stopBackups(bctx)
	}()
	api := httpapi.New(svc, httpapi.Options{
		Logger: log, Verifier: verifier, APIKeys: keys, DevPrincipal: dev, MaxBodyBytes: cfg.MaxBodyBytes,
		ResourceMetadataURL: resourceMetadata, MCP: mcp.Handler(), SSE: mcp.SSEHandler(), Audit: rec,
		Checks:   b.checks,
		Breakers: b.breakers,
		OnDependency: func(name string, up bool) {
			b.metrics.Load().SetDependencyUp(name, up)
		},
		RateLimiter:    limiter,
		TrustedProxies: trusted,
		Version:        v,
		Resource:       resource,
		DPoP:           dpop,
		PublicURL:      publicURL,
		CORSOrigins:    cfg.CORSOrigins,
		Shared:         b.shared,
		Metrics:        obs.metrics,
		TracerProvider: obs.tracing.Provider,
		MetricsHandler: obs.handler,
		GDPR:           privacy.svc,
		Retention:      privacy.retention,
	})
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if cfg.MetricsAddr != "" {
		stopMetrics, _, err := startMetricsListener(cfg.MetricsAddr, obs.handler, log)
		if err != nil {
			return err
		}
		defer func() {
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			stopMetrics(mctx)
		}()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "data_dir", cfg.DataDir, "version", v)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Readiness fails and new work is refused first, for shutdown_delay,
	// so that load balancers stop sending work; then the listener closes,
	// MCP sessions end after their running requests (their streams close
	// cleanly and clients reconnect elsewhere: http.Server.Shutdown does
	// not end streaming responses itself), and in-flight requests finish,
	// all within shutdown_wait. Requests keep their own contexts: nothing
	// in flight is cancelled before the deadline.
	log.Info("shutting down", "delay", cfg.ShutdownDelay.String(), "wait", cfg.ShutdownWait.String())
	api.Drain()
	if cfg.ShutdownDelay > 0 {
		select {
		case <-time.After(cfg.ShutdownDelay):
		case err := <-serveErr:
			return fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownWait)
	defer cancel()
	srv.RegisterOnShutdown(func() { mcp.CloseSessions(sctx) })
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown deadline passed; closing remaining connections", "err", err)
		_ = srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// logLimits logs the rate limits and trusted proxies serve applies.
func logLimits(log *slog.Logger, limits map[string]httpapi.RateLimit, trusted []netip.Prefix) {
	attrs := make([]any, 0, 2*len(httpapi.RateClasses)+2)
	for _, c := range httpapi.RateClasses {
		attrs = append(attrs, c, limits[c].String())
	}
	log.Info("rate limits per principal (requests per minute unless a period is given; 0: none)",
		append(attrs, "trusted_proxies", fmt.Sprint(trusted))...)
}
