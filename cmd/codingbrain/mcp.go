package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

const mcpUsage = `Usage: codingbrain mcp [stdio] [--token TOKEN] [serve flags]

Serves MCP over stdin/stdout for clients that spawn a process, acting as the
principal of TOKEN (default $CODINGBRAIN_TOKEN): a JWT or an API key
(cb_…). It reads the same configuration as serve (data dir, --database-url,
--jwks-url, …) and checks the token the same way. Logs go to stderr; stdout
carries only the protocol.

Flags:
`

// runMCP serves MCP over stdio until stdin closes or ctx is done.
func runMCP(ctx context.Context, args []string, e env) (err error) {
	if len(args) > 0 && args[0] == "stdio" { // the only transport: "mcp stdio" is "mcp"
		args = args[1:]
	}
	var token *string
	cfg, err := config.LoadWith(args, e.getenv, func(fs *flag.FlagSet) {
		token = fs.String("token", "", "bearer token (default $CODINGBRAIN_TOKEN)")
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stderr, mcpUsage+"  -token string\n    \tbearer token (default $CODINGBRAIN_TOKEN)\n"+config.Usage())
		return nil
	}
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	defer func() {
		if err != nil {
			if msg := cfg.Redact(err.Error()); msg != err.Error() {
				err = errors.New(msg)
			}
		}
	}()
	if *token == "" {
		*token = e.getenv("CODINGBRAIN_TOKEN")
	}
	if *token == "" {
		return errors.New("mcp: no token; pass --token or set CODINGBRAIN_TOKEN (mint one with `codingbrain token issue`)")
	}
	if cfg.LogLevel == config.Default().LogLevel && e.getenv("CODINGBRAIN_LOG_LEVEL") == "" {
		cfg.LogLevel = "warn" // stdio clients show stderr to users
	}
	// Text for the person reading the client's stderr; secrets redacted as in serve.
	log := telemetry.NewLogger(e.stderr, telemetry.LogOptions{Format: "text", Level: mcpLogLevel(cfg.LogLevel), Redact: cfg.Redact})

	// A JWT needs the signing key (or the JWKS) and is checked before the
	// store is opened; an API key is checked against the store.
	var jwtVerifier auth.Verifier
	if !auth.IsAPIKey(*token) {
		key, err := auth.LoadKey(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("mcp: %w", err)
		}
		v, err := auth.NewJWT(ctx, auth.VerifierConfig{
			Issuer: cfg.Issuer, Audience: cfg.TokenAudience(cfg.BaseURL()), HMACKey: key,
			JWKSURL: cfg.JWKSURL, JWKSRefresh: cfg.JWKSRefresh, Leeway: cfg.TokenLeeway,
		})
		if err != nil {
			return fmt.Errorf("mcp: %w", err)
		}
		if _, err := v.Verify(ctx, *token); err != nil {
			return fmt.Errorf("mcp: verify token: %w", err)
		}
		jwtVerifier = v
	}

	b, err := openBackends(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	defer b.Close()
	keys, err := keyStore(b.store)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	p, err := tokenVerifier(keys, jwtVerifier, log).Verify(ctx, *token)
	if err != nil {
		return fmt.Errorf("mcp: verify token: %w", err)
	}

	ranking, err := searchRanking(cfg)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	if err := b.startVectors(ctx, log); err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	v, _, _ := buildInfo()
	svc := memory.NewService(b.store, memory.Options{Vectors: b.serviceVectors(), Ranking: ranking})
	srv := mcpserver.New(svc, mcpserver.Options{Logger: log, Version: v})
	log.Info("serving mcp over stdio", "sub", p.Subject, "org_id", p.OrgID)
	if err := srv.ServeStdio(ctx, p, e.stdin, e.stdout); err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}

// mcpLogLevel reads a level name; stdio clients show stderr to users, so the
// default is warn.
func mcpLogLevel(s string) slog.Level {
	var l slog.Level
	if s == "" || l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelWarn
	}
	return l
}
