package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

const mcpUsage = `Usage: codingbrain mcp [--data-dir DIR] [--token TOKEN]

Serves MCP over stdin/stdout for clients that spawn a process, acting as the
principal of TOKEN (default $CODINGBRAIN_TOKEN). The token must be signed
with the data directory's key (see "codingbrain token issue"). Logs go to
stderr; stdout carries only the protocol.

Flags:
`

// runMCP serves MCP over stdio until stdin closes or ctx is done.
func runMCP(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, mcpUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", firstNonEmpty(e.getenv("CODINGBRAIN_DATA_DIR"), config.Default().DataDir), "data directory holding codingbrain.db and signing.key")
	token := fs.String("token", "", "bearer token (default $CODINGBRAIN_TOKEN)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "mcp: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *token == "" {
		*token = e.getenv("CODINGBRAIN_TOKEN")
	}
	if *token == "" {
		return errors.New("mcp: no token; pass --token or set CODINGBRAIN_TOKEN (mint one with `codingbrain token issue`)")
	}

	key, err := auth.LoadKey(*dataDir)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	verifier := auth.NewHS256(key,
		firstNonEmpty(e.getenv("CODINGBRAIN_ISSUER"), config.DefaultIssuer),
		firstNonEmpty(e.getenv("CODINGBRAIN_AUDIENCE"), config.DefaultAudience), nil)
	p, err := verifier.Verify(ctx, *token)
	if err != nil {
		return fmt.Errorf("mcp: verify token: %w", err)
	}

	store, err := sqlite.Open(ctx, filepath.Join(*dataDir, dbFile))
	if err != nil {
		return fmt.Errorf("mcp: open store: %w", err)
	}
	defer store.Close()

	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: mcpLogLevel(e.getenv("CODINGBRAIN_LOG_LEVEL"))}))
	v, _, _ := buildInfo()
	srv := mcpserver.New(memory.NewService(store, memory.Options{}), mcpserver.Options{Logger: log, Version: v})
	log.Info("serving mcp over stdio", "sub", p.Subject, "org_id", p.OrgID, "data_dir", *dataDir)
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
