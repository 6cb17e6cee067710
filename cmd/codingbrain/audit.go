package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

const auditUsage = `Usage: codingbrain audit verify [--database-url URL | --data-dir DIR]

  verify  walk the whole audit chain in the database and check every link:
          seqs without gaps, each record's prev_hash the hash of the one
          before, each hash the SHA-256 of the record's canonical encoding.
          Prints "audit chain ok: N records" and the head (seq and hash), or
          the first broken link, and then exits 1.

Keep the head somewhere the database's administrators cannot write: records
removed from the end leave a shorter chain that still verifies, and only a
head recorded earlier shows that.

The store is chosen as for migrate: PostgreSQL when --database-url (or
CODINGBRAIN_DATABASE_URL) is set, else the SQLite file codingbrain.db in the
data directory (--data-dir, CODINGBRAIN_DATA_DIR, or serve's default). An
explicit --data-dir wins over CODINGBRAIN_DATABASE_URL. The command reads
the database directly; serve may keep running.
`

// auditMigration is the migration that creates the audit log in both
// stores.
const auditMigration = "0004_audit_log"

// errAuditBroken means verify found a broken link (and printed it).
var errAuditBroken = errors.New("audit chain broken")

// runAudit runs the audit subcommands.
func runAudit(ctx context.Context, args []string, e env) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, auditUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "audit: unknown subcommand %q\n", args[0])
		}
		fmt.Fprint(e.stderr, auditUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, auditUsage+"\nFlags:\n"); fs.PrintDefaults() }
	def := config.Default()
	dbURL := fs.String("database-url", "", "PostgreSQL `URL` (default $CODINGBRAIN_DATABASE_URL)")
	dataDir := fs.String("data-dir", "", "data `directory` holding codingbrain.db (default $CODINGBRAIN_DATA_DIR or "+def.DataDir+")")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "audit verify: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["database-url"] && given["data-dir"] {
		return errors.New("audit verify: give --database-url (PostgreSQL) or --data-dir (SQLite), not both")
	}
	cfg := def
	cfg.DataDir = firstNonEmpty(*dataDir, e.getenv("CODINGBRAIN_DATA_DIR"), def.DataDir)
	if !given["data-dir"] {
		cfg.DatabaseURL = firstNonEmpty(*dbURL, e.getenv("CODINGBRAIN_DATABASE_URL"))
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	err := verifyAudit(ctx, cfg, e.stdout)
	if err != nil && !errors.Is(err, errAuditBroken) {
		// A driver's error may quote the URL it was given.
		return errors.New(cfg.Redact(fmt.Sprintf("audit verify: %v", err)))
	}
	return err
}

// verifyAudit opens the store of cfg without migrating it, checks that its
// schema has the audit log, and verifies the chain.
func verifyAudit(ctx context.Context, cfg config.Config, out io.Writer) error {
	var (
		chain audit.ChainReader
		m     migrator
	)
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxConns: 2, ConnectTimeout: cfg.DBConnectTimeout})
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintf(out, "store: PostgreSQL %s\n", config.MaskURL(cfg.DatabaseURL))
		chain, m = s, pgMigrator{s}
	} else {
		path := filepath.Join(cfg.DataDir, dbFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no database at %s", path)
		}
		s, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintf(out, "store: SQLite %s\n", path)
		chain, m = s, sqliteMigrator{s}
	}
	ms, err := m.status(ctx)
	if err != nil {
		return err
	}
	if !hasMigration(ms, auditMigration) {
		return fmt.Errorf("the database has no audit log: migration %s is not applied; run `codingbrain migrate up`", auditMigration)
	}
	rep, err := audit.Verify(ctx, chain)
	if err != nil {
		return err
	}
	if b := rep.Broken; b != nil {
		fmt.Fprintf(out, "audit chain BROKEN at seq %d: %s\n  expected: %s\n  stored:   %s\n%d records intact before it (last intact: seq %d, hash %s)\n",
			b.Seq, b.Problem, b.Expected, b.Stored, rep.Records, rep.HeadSeq, rep.HeadHash)
		return fmt.Errorf("%w at seq %d", errAuditBroken, b.Seq)
	}
	fmt.Fprintf(out, "audit chain ok: %d records\n", rep.Records)
	if rep.Records > 0 {
		fmt.Fprintf(out, "head: seq %d, hash %s\n", rep.HeadSeq, rep.HeadHash)
	}
	return nil
}

func hasMigration(ms []migration, name string) bool {
	for _, m := range ms {
		if m.Applied && m.Name == name {
			return true
		}
	}
	return false
}

// auditRecorder is the recorder serve gives the service, REST and MCP: it
// writes to the store, which keeps the audit log too, and logs what it
// cannot write.
func auditRecorder(st memory.Store, log *slog.Logger) (*audit.Recorder, error) {
	as, ok := st.(audit.Store)
	if !ok {
		return nil, fmt.Errorf("the %T store keeps no audit log", st)
	}
	return audit.NewRecorder(as, audit.RecorderOptions{Logger: log}), nil
}
