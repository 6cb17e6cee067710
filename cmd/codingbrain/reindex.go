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
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval/embedding"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

const reindexUsage = `Usage: codingbrain reindex [--database-url URL | --data-dir DIR] [--embedder builtin|openai ...]

Computes the embedding of every live memory that lacks a current one for the
configured embedder — never embedded, embedded by another model, or changed
since — in batches of embedder_batch, each stored as it is done. Run it
after changing the embedder (serve also re-embeds in the background, but
serves vector search only for the memories done so far). It is resumable:
it only does what is missing, so a run that was interrupted (Ctrl-C, the
embedder failing) continues where it stopped when started again, and a run
with nothing missing does nothing.

Progress goes to stderr: a progress bar on a terminal, otherwise a line
every few seconds. The lexical index needs no rebuilding: it changes in the
same transaction as the memories.

It reads the same configuration as serve (--config, CODINGBRAIN_*); the
store is PostgreSQL when --database-url (or CODINGBRAIN_DATABASE_URL) is
set, else the SQLite file codingbrain.db in the data directory. An explicit
--data-dir wins over CODINGBRAIN_DATABASE_URL. serve may keep running.

Flags:
`

// embeddingsMigration is the migration that creates the embeddings of both
// stores.
const embeddingsMigration = 5

// runReindex re-embeds the memories that lack a current embedding.
func runReindex(ctx context.Context, args []string, e env) (err error) {
	var fset *flag.FlagSet
	cfg, err := config.LoadWith(args, e.getenv, func(fs *flag.FlagSet) { fset = fs })
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, reindexUsage+config.Usage())
		return nil
	}
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["database-url"] && given["data-dir"] {
		return errors.New("reindex: give --database-url (PostgreSQL) or --data-dir (SQLite), not both")
	}
	if given["data-dir"] {
		cfg.DatabaseURL = ""
	}
	defer func() {
		if err != nil {
			// A driver's or the embedder's error may quote a secret.
			err = errors.New(cfg.Redact(err.Error()))
		}
	}()
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return reindex(ctx, cfg, e, log)
}

// reindexStore is what reindex needs of a store.
type reindexStore interface {
	memory.EmbeddingStore
	Close() error
}

// openForReindex opens the store of cfg without migrating it and checks
// that its schema has the embeddings.
func openForReindex(ctx context.Context, cfg config.Config, out io.Writer) (reindexStore, error) {
	return openExisting[reindexStore](ctx, cfg, out, 4, embeddingsMigration, "embeddings")
}

// openExisting opens the store of cfg for a maintenance command: without
// migrating it, and only when its schema is at least version need, which
// brings what. S is what the command needs of a store; both stores have it.
func openExisting[S interface{ Close() error }](ctx context.Context, cfg config.Config, out io.Writer,
	maxConns int32, need int, what string) (S, error) {
	var (
		st S
		c  interface{ Close() error }
		m  migrator
	)
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxConns: maxConns, ConnectTimeout: cfg.DBConnectTimeout})
		if err != nil {
			return st, err
		}
		fmt.Fprintf(out, "store: PostgreSQL %s\n", config.MaskURL(cfg.DatabaseURL))
		c, m = s, pgMigrator{s}
	} else {
		path := filepath.Join(cfg.DataDir, dbFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("no database at %s", path)
		}
		s, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
		if err != nil {
			return st, err
		}
		fmt.Fprintf(out, "store: SQLite %s\n", path)
		c, m = s, sqliteMigrator{s}
	}
	ms, err := m.status(ctx)
	if err != nil {
		c.Close()
		return st, fmt.Errorf("read schema version: %w", err)
	}
	if current, _ := versions(ms); current < need {
		c.Close()
		return st, fmt.Errorf("the schema is at version %d and has no %s (version %d); run `codingbrain migrate up` first",
			current, what, need)
	}
	st, ok := c.(S)
	if !ok {
		c.Close()
		return st, fmt.Errorf("this store cannot keep %s", what)
	}
	return st, nil
}

func reindex(ctx context.Context, cfg config.Config, e env, log *slog.Logger) error {
	st, err := openForReindex(ctx, cfg, e.stdout)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	defer st.Close()
	emb, err := openEmbedder(cfg, log)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	model := emb.Model()
	fmt.Fprintf(e.stdout, "embedder: %s\n", model)

	models, err := st.EmbeddingModels(ctx)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	var others []string
	for m, n := range models {
		if m != model {
			others = append(others, fmt.Sprintf("%s (%d)", m, n))
		}
	}
	slices.Sort(others)
	if len(others) > 0 {
		fmt.Fprintf(e.stdout, "stored embeddings of other models, to replace: %s\n", strings.Join(others, ", "))
	}
	total, err := st.CountMissingEmbeddings(ctx, model)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	if total == 0 {
		fmt.Fprintf(e.stdout, "nothing to do: every live memory has a current embedding of %s (%d)\n", model, models[model])
		return nil
	}
	fmt.Fprintf(e.stdout, "%d memories to embed\n", total)

	start := time.Now()
	progress, finish := reindexProgress(e.stderr, total)
	bf := embedding.New(st, emb, embedding.Options{Batch: cfg.EmbedderBatch, Logger: log})
	p, err := bf.Backfill(ctx, progress)
	finish()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(e.stdout, "stopped after embedding %d memories in %s; run reindex again to continue\n", p.Embedded, took)
		return fmt.Errorf("reindex: %w", err)
	}
	rate := float64(p.Embedded) / max(time.Since(start).Seconds(), 1e-9)
	fmt.Fprintf(e.stdout, "embedded %d memories in %s (%.0f/s)", p.Embedded, took, rate)
	if p.Skipped > 0 {
		fmt.Fprintf(e.stdout, "; %d skipped (changed meanwhile, or refused by the embedder: see the log above)", p.Skipped)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// reindexProgress shows progress on w: a progress bar when w is a
// terminal, else a plain line at most every 2 seconds (and at the end).
// finish ends the display.
func reindexProgress(w io.Writer, total int) (progress func(embedding.Progress), finish func()) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("embedding"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("memories"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
		)
		return func(p embedding.Progress) { _ = bar.Set(min(p.Embedded+p.Skipped, total)) },
			func() { _ = bar.Finish(); fmt.Fprintln(w) }
	}
	start, last := time.Now(), time.Time{}
	var latest embedding.Progress
	line := func() {
		done := latest.Embedded + latest.Skipped
		fmt.Fprintf(w, "reindex: %d/%d memories (%d%%), %s\n", done, total, 100*done/max(total, 1),
			time.Since(start).Round(time.Second))
	}
	return func(p embedding.Progress) {
			latest = p
			if time.Since(last) >= 2*time.Second {
				last = time.Now()
				line()
			}
		}, func() {
			line()
		}
}
