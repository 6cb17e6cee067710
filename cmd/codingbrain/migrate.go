package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

const migrateUsage = `Usage: codingbrain migrate up|status [--database-url URL | --data-dir DIR]

  up      apply the pending schema migrations and list what was applied
  status  list every migration with when it was applied, or "pending"

The store is PostgreSQL when --database-url (or CODINGBRAIN_DATABASE_URL) is
set, else the SQLite file codingbrain.db in the data directory (--data-dir,
CODINGBRAIN_DATA_DIR, or serve's default). An explicit --data-dir wins over
CODINGBRAIN_DATABASE_URL. "serve --migrate" applies migrations at start
instead; PostgreSQL takes an advisory lock, so concurrent runs apply each
migration once.
`

// runMigrate applies or reports the schema migrations of a store.
func runMigrate(ctx context.Context, args []string, e env) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, migrateUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "migrate: unknown subcommand %q\n", args[0])
		}
		fmt.Fprint(e.stderr, migrateUsage)
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, migrateUsage+"\nFlags:\n"); fs.PrintDefaults() }
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
		fmt.Fprintf(e.stderr, "migrate %s: unexpected argument %q\n", sub, fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["database-url"] && given["data-dir"] {
		return fmt.Errorf("migrate %s: give --database-url (PostgreSQL) or --data-dir (SQLite), not both", sub)
	}
	cfg := def
	cfg.DataDir = firstNonEmpty(*dataDir, e.getenv("CODINGBRAIN_DATA_DIR"), def.DataDir)
	if !given["data-dir"] {
		cfg.DatabaseURL = firstNonEmpty(*dbURL, e.getenv("CODINGBRAIN_DATABASE_URL"))
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("migrate %s: %w", sub, err)
	}
	if err := migrate(ctx, sub, cfg, e.stdout); err != nil {
		// A driver's error may quote the URL it was given.
		return errors.New(cfg.Redact(fmt.Sprintf("migrate %s: %v", sub, err)))
	}
	return nil
}

// migrate opens the store of cfg without migrating it and runs sub on it.
func migrate(ctx context.Context, sub string, cfg config.Config, out io.Writer) error {
	var m migrator
	if cfg.DatabaseURL != "" {
		// No statement_timeout: a migration may legitimately run long.
		s, err := postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxConns: 2, ConnectTimeout: cfg.DBConnectTimeout})
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintf(out, "store: PostgreSQL %s\n", config.MaskURL(cfg.DatabaseURL))
		m = pgMigrator{s}
	} else {
		path := filepath.Join(cfg.DataDir, dbFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && sub == "status" {
			// Opening would create it; status only reports.
			fmt.Fprintf(out, "store: SQLite %s\nno database there yet; `codingbrain migrate up --data-dir %s` or serve creates it\n",
				path, cfg.DataDir)
			return nil
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		s, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintf(out, "store: SQLite %s\n", path)
		m = sqliteMigrator{s}
	}

	if sub == "status" {
		ms, err := m.status(ctx)
		if err != nil {
			return err
		}
		printMigrations(out, ms)
		return nil
	}
	applied, err := m.up(ctx)
	for _, a := range applied {
		fmt.Fprintf(out, "applied %s (version %d)\n", a.Name, a.Version)
	}
	if err != nil {
		return err
	}
	ms, err := m.status(ctx)
	if err != nil {
		return err
	}
	current, latest := versions(ms)
	switch {
	case current > latest:
		fmt.Fprintf(out, "schema is at version %d, ahead of this binary (latest %d); nothing to apply\n", current, latest)
	case len(applied) > 0:
		fmt.Fprintf(out, "schema is now at version %d\n", current)
	default:
		fmt.Fprintf(out, "schema is up to date at version %d\n", current)
	}
	return nil
}

// printMigrations writes the migration table and a summary line.
func printMigrations(out io.Writer, ms []migration) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	pending := 0
	for _, m := range ms {
		at := "pending"
		if m.Applied {
			at = m.AppliedAt.UTC().Format(time.RFC3339)
		} else {
			pending++
		}
		if !m.Known {
			at += " (not in this binary)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, at)
	}
	tw.Flush()
	current, latest := versions(ms)
	fmt.Fprintf(out, "current version %d, latest %d: ", current, latest)
	switch {
	case current > latest:
		fmt.Fprintln(out, "the schema is ahead of this binary")
	case pending > 0:
		fmt.Fprintf(out, "%d pending; run `codingbrain migrate up`\n", pending)
	default:
		fmt.Fprintln(out, "up to date")
	}
}

// migration is a schema migration of either store: postgres.Migration and
// sqlite.Migration have the same fields, so both convert to it.
type migration struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time
	Known     bool // false for a version applied by a newer binary
}

func toMigrations[M postgres.Migration | sqlite.Migration](ms []M) []migration {
	out := make([]migration, len(ms))
	for i, m := range ms {
		out[i] = migration(m)
	}
	return out
}

// versions returns the highest applied version and the highest version
// this binary carries.
func versions(ms []migration) (current, latest int) {
	for _, m := range ms {
		if m.Applied {
			current = max(current, m.Version)
		}
		if m.Known {
			latest = max(latest, m.Version)
		}
	}
	return current, latest
}

// migrator is the schema side of either store, in one shape.
type migrator interface {
	status(context.Context) ([]migration, error)
	up(context.Context) ([]migration, error)
}

// pgMigrator and sqliteMigrator are the migrators of the two stores.
type pgMigrator struct{ s *postgres.Store }

func (p pgMigrator) status(ctx context.Context) ([]migration, error) {
	ms, err := p.s.MigrationStatus(ctx)
	return toMigrations(ms), err
}

func (p pgMigrator) up(ctx context.Context) ([]migration, error) {
	ms, err := p.s.Migrate(ctx)
	return toMigrations(ms), err
}

type sqliteMigrator struct{ s *sqlite.Store }

func (q sqliteMigrator) status(ctx context.Context) ([]migration, error) {
	ms, err := q.s.MigrationStatus(ctx)
	return toMigrations(ms), err
}

func (q sqliteMigrator) up(ctx context.Context) ([]migration, error) {
	ms, err := q.s.Migrate(ctx)
	return toMigrations(ms), err
}
