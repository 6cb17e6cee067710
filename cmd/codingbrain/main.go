// Command codingbrain is the Coding Brain memory server and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ec exitCodeError
		if errors.As(err, &ec) { // the command reported, and chose its exit code
			os.Exit(ec.code)
		}
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "codingbrain:", err)
		}
		os.Exit(1)
	}
}

// errUsage means the usage text was already printed.
var errUsage = errors.New("usage")

const usage = `codingbrain — a memory server for AI coding assistants

Usage:
  codingbrain serve [flags]          run the server (REST, MCP, health)
  codingbrain mcp [flags]            MCP over stdio, for clients that spawn a process
  codingbrain mcp-config --client C  print a client's MCP configuration with a fresh token
  codingbrain memory <cmd> [flags]   add, get, list, search, update, delete memories
  codingbrain apikey <cmd> [flags]   create, list, revoke API keys for service accounts
  codingbrain token issue [flags]    mint a token signed with the data directory's key
  codingbrain keys generate|retire   make or retire a JWKS signing key pair (rotation)
  codingbrain migrate up|status      apply or list schema migrations (SQLite or PostgreSQL)
  codingbrain audit verify [flags]   check the audit log's hash chain in the database
  codingbrain backup <cmd> [flags]   create, verify, restore, list, prune backups
  codingbrain gdpr <cmd> [flags]     export, erase or check a data subject; the erasure ledger
  codingbrain export [flags]         export the memories you may see as a JSON Lines file
  codingbrain import FILE [flags]    import an export file, or an OpenMemory export zip (--openmemory)
  codingbrain reindex [flags]        embed every memory that lacks a current embedding (resumable)
  codingbrain tier run|status        move untouched memories to the cold tier; count both tiers
  codingbrain bench retrieval        measure search quality and latency on a labelled data set
  codingbrain healthcheck            exit 0 when the local server is ready (the image's HEALTHCHECK)
  codingbrain version                print version information

Run "codingbrain <command> -h" for the flags of a command.
`

// env is how subcommands see the process environment; tests pass their own.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program; main only supplies the process's context,
// arguments, environment and streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, e)
	case "mcp":
		return runMCP(ctx, rest, e)
	case "mcp-config":
		return runMCPConfig(ctx, rest, e)
	case "memory":
		return runMemory(ctx, rest, e)
	case "apikey":
		return runAPIKey(ctx, rest, e)
	case "token":
		return runToken(ctx, rest, e)
	case "keys":
		return runKeys(ctx, rest, e)
	case "migrate":
		return runMigrate(ctx, rest, e)
	case "audit":
		return runAudit(ctx, rest, e)
	case "export":
		return runExport(ctx, rest, e)
	case "import":
		return runImport(ctx, rest, e)
	case "reindex":
		return runReindex(ctx, rest, e)
	case "tier":
		return runTier(ctx, rest, e)
	case "gdpr":
		return runGDPR(ctx, rest, e)
	case "backup":
		return runBackup(ctx, rest, e)
	case "bench":
		return runBench(ctx, rest, e)
	case "healthcheck":
		return runHealthcheck(ctx, rest, e)
	case "version", "--version", "-v":
		return runVersion(e)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return errUsage
}
