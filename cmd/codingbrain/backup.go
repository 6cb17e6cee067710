package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

const backupUsage = `Usage: codingbrain backup <command> [flags]

  create   --to DEST [--data-dir DIR | --database-url URL] [--recipient KEY]... [--native]
           [--keep-daily N --keep-weekly M] [--json]
           take a consistent backup of the store into a new archive in DEST
  verify   --from DEST [--max-age 26h] [--identity FILE]... [--scratch-database-url URL]
           [--json] [--webhook URL] [--textfile PATH]
           restore the newest archive in DEST (or the archive DEST names) into
           a scratch store and check it
  restore  --from DEST [--data-dir DIR | --database-url URL] [--identity FILE]... [--force]
           restore the newest archive in DEST (or the archive DEST names)
  list     --from DEST [--keep-daily N --keep-weekly M] [--json]
           list the archives, and which the retention keeps
  prune    --from DEST --keep-daily N --keep-weekly M [--dry-run]
           delete the archives the retention does not keep

An archive is a tar.gz file named codingbrain-YYYYMMDDTHHMMSSZ.tar.gz
(.tar.gz.age when encrypted with --recipient): a manifest with row counts and
checksums, and every table in a portable JSONL form that restores into
SQLite or PostgreSQL whichever it was taken from. Embeddings and the entity
graph are rebuilt on restore, not copied.

Exit codes of verify: 0 verified; 1 the backup is bad (missing, stale,
smaller than expected, corrupt, tampered, not decryptable with the identities
given, from a newer schema, failing to restore, failing its integrity checks
or canary searches); 2 it could not be verified (bad flags, the scratch store
or temporary directory failed, no identity for an encrypted archive).
Other commands exit 1 on any error.

See docs/runbooks/backup-restore.md.
`

// exitCodeError makes the process exit with code after printing nothing
// more (the command already reported).
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
func (e exitCodeError) ExitCode() int { return e.code }

func runBackup(ctx context.Context, args []string, e env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(e.stderr, backupUsage)
			return errUsage
		}
		fmt.Fprint(e.stdout, backupUsage)
		return nil
	}
	switch args[0] {
	case "create":
		return backupCreate(ctx, args[1:], e)
	case "verify":
		return backupVerify(ctx, args[1:], e)
	case "restore":
		return backupRestore(ctx, args[1:], e)
	case "list":
		return backupList(ctx, args[1:], e, false)
	case "prune":
		return backupList(ctx, args[1:], e, true)
	}
	fmt.Fprintf(e.stderr, "backup: unknown command %q\n\n%s", args[0], backupUsage)
	return errUsage
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// storeFlags loads the serve configuration with a command's own flags and
// applies the rule of migrate and reindex: an explicit --data-dir wins over
// CODINGBRAIN_DATABASE_URL; both flags at once are refused.
func storeFlags(cmd string, args []string, e env, extra func(*flag.FlagSet)) (config.Config, error) {
	var fset *flag.FlagSet
	cfg, err := config.LoadWith(args, e.getenv, func(fs *flag.FlagSet) { fset = fs; extra(fs) })
	if err != nil {
		return cfg, err
	}
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["database-url"] && given["data-dir"] {
		return cfg, fmt.Errorf("%s: give --database-url (PostgreSQL) or --data-dir (SQLite), not both", cmd)
	}
	if given["data-dir"] {
		cfg.DatabaseURL = ""
	}
	return cfg, nil
}

// parseRecipients reads --recipient values: an age1… public key, or a file
// of them (one a line, # comments).
func parseRecipients(vals []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, v := range vals {
		if strings.HasPrefix(v, "age1") {
			r, err := age.ParseX25519Recipient(v)
			if err != nil {
				return nil, fmt.Errorf("--recipient: %w", err)
			}
			out = append(out, r)
			continue
		}
		f, err := os.Open(v)
		if err != nil {
			return nil, fmt.Errorf("--recipient: not an age1… key, and not a readable file: %w", err)
		}
		rs, err := age.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--recipient %s: %w", v, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// parseIdentities reads --identity files (age-keygen format).
func parseIdentities(files []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--identity %s: %w", p, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// progress shows backup.Progress on w: a bar per stage on a terminal,
// else a line per stage every few seconds and at its end.
func progress(w io.Writer) (backup.Progress, func()) {
	tty := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	var (
		stage       string
		bar         *progressbar.ProgressBar
		begun, last time.Time
		lastN       int64
		lastT       int64
	)
	end := func() {
		switch {
		case bar != nil:
			_ = bar.Finish()
			fmt.Fprintln(w)
			bar = nil
		case stage != "" && !tty && time.Since(begun) > 2*time.Second:
			if lastT > 0 {
				fmt.Fprintf(w, "%s: %d/%d, done in %s\n", stage, lastN, lastT, time.Since(begun).Round(100*time.Millisecond))
			} else {
				fmt.Fprintf(w, "%s: done in %s\n", stage, time.Since(begun).Round(100*time.Millisecond))
			}
		}
	}
	return func(s string, done, total int64) {
			if s != stage {
				end()
				stage, begun, last = s, time.Now(), time.Now()
				if tty {
					bar = progressbar.NewOptions64(max(total, 1), progressbar.OptionSetWriter(w),
						progressbar.OptionSetDescription(s), progressbar.OptionShowCount(),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionFullWidth())
				}
			}
			lastN, lastT = done, total
			if bar != nil {
				_ = bar.Set64(min(done, max(total, 1)))
			} else if time.Since(last) > 2*time.Second {
				fmt.Fprintf(w, "%s: %d/%d\n", s, done, total)
				last = time.Now()
			}
		}, func() {
			end()
			stage = ""
		}
}

// backupSource opens the store of cfg for a backup, without migrating it.
func backupSource(ctx context.Context, cfg config.Config) (backup.Source, func() error, string, error) {
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxConns: 2, ConnectTimeout: cfg.DBConnectTimeout})
		if err != nil {
			return nil, nil, "", err
		}
		return s, s.Close, "PostgreSQL " + config.MaskURL(cfg.DatabaseURL), nil
	}
	path := filepath.Join(cfg.DataDir, dbFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, "", fmt.Errorf("no database at %s", path)
	}
	s, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
	if err != nil {
		return nil, nil, "", err
	}
	return s, s.Close, "SQLite " + path, nil
}

func backupCreate(ctx context.Context, args []string, e env) (err error) {
	var (
		to, tmp             string
		recipients          listFlag
		keepDaily, keepWeek int
		asJSON, native      bool
		textfile            string
	)
	cfg, err := storeFlags("backup create", args, e, func(fs *flag.FlagSet) {
		fs.StringVar(&to, "to", "", "destination `directory` of the archives (required)")
		fs.Var(&recipients, "recipient", "encrypt to this age `recipient` (age1… key, or a file of them); repeatable")
		fs.IntVar(&keepDaily, "keep-daily", 0, "after the backup, prune to the newest backup of each of the last `N` days (with --keep-weekly)")
		fs.IntVar(&keepWeek, "keep-weekly", 0, "after the backup, also keep the newest backup of each of the last `N` ISO weeks")
		fs.StringVar(&tmp, "tmp-dir", "", "scratch `directory` for the dump (default: the system's)")
		fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
		fs.StringVar(&textfile, "textfile", "", "write the backup metrics to this `file` (Prometheus text format, for node_exporter)")
		fs.BoolVar(&native, "native", false, "also put the store's own copy of the same snapshot in the archive (SQLite: the database\n"+
			"file by the online backup API; PostgreSQL: pg_dump -Fc, when pg_dump is installed)")
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, backupUsage+"\nFlags of create (and the store flags of serve):\n"+config.Usage())
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup create: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.New(cfg.Redact(err.Error()))
		}
	}()
	if to == "" {
		return errors.New("backup create: --to is required: the directory that keeps the archives")
	}
	if keepDaily < 0 || keepWeek < 0 {
		return errors.New("backup create: --keep-daily and --keep-weekly must be 0 or more")
	}
	var res backup.Result
	if textfile != "" {
		defer func() {
			if werr := backup.WriteCreateTextfile(textfile, &res, err != nil, time.Now()); werr != nil {
				fmt.Fprintf(e.stderr, "backup create: %v\n", werr)
			}
		}()
	}
	rs, err := parseRecipients(recipients)
	if err != nil {
		return fmt.Errorf("backup create: %w", err)
	}
	src, closeSrc, what, err := backupSource(ctx, cfg)
	if err != nil {
		return fmt.Errorf("backup create: %w", err)
	}
	defer closeSrc()
	if !asJSON {
		fmt.Fprintf(e.stdout, "store: %s\n", what)
	}
	prog, done := progress(e.stderr)
	target := backup.Dir{Path: to}
	res, err = backup.Create(ctx, src, target, backup.CreateOptions{Recipients: rs, AppVersion: version, TempDir: tmp, Progress: prog, Native: native})
	done()
	if err != nil {
		return fmt.Errorf("backup create: %w", err)
	}
	// The erasure ledger's copy beside the archives, which restores of
	// older backups re-apply (docs/privacy.md).
	if gs, ok := src.(gdpr.Store); ok {
		if _, err := syncLedgerFile(ctx, gs, filepath.Join(to, gdpr.LedgerFileName)); err != nil {
			return fmt.Errorf("backup create: the backup is written; copying the erasure ledger beside it failed: %w", err)
		}
	}
	var pruned []string
	if keepDaily > 0 || keepWeek > 0 {
		if pruned, err = backup.Prune(ctx, target, backup.Retention{Daily: keepDaily, Weekly: keepWeek}, false); err != nil {
			return fmt.Errorf("backup create: %w", err)
		}
	}
	if asJSON {
		return writeJSON(e.stdout, map[string]any{"backup": res, "path": filepath.Join(to, res.Name), "pruned": pruned})
	}
	var rows int64
	for _, t := range res.Manifest.Tables {
		rows += t.Rows
	}
	fmt.Fprintf(e.stdout, "backup %s: %d memories, %d rows in %d tables, schema %d, %d bytes%s, in %s\n",
		filepath.Join(to, res.Name), res.Manifest.Tables[backup.TableMemories].Rows, rows, len(res.Manifest.Tables),
		res.Manifest.SchemaVersion, res.Size, map[bool]string{true: ", encrypted", false: ""}[res.Manifest.Encrypted],
		res.Took.Round(time.Millisecond))
	for name, fi := range res.Manifest.Files {
		if strings.HasPrefix(name, "native/") {
			fmt.Fprintf(e.stdout, "native copy %s: %d bytes (restore it with the engine's own tools)\n", name, fi.Size)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	for _, p := range pruned {
		fmt.Fprintf(e.stdout, "pruned %s\n", p)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func backupVerify(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("backup verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var identities listFlag
	from := fs.String("from", "", "directory of archives (the newest is verified), or one archive `path` (required)")
	maxAge := fs.Duration("max-age", 26*time.Hour, "fail a backup older than this `duration` (0: no limit)")
	minRatio := fs.Float64("min-size-ratio", 0.5, "fail an archive smaller than this `fraction` of the one before it (0: no check)")
	fs.Var(&identities, "identity", "age identity `file` to decrypt with; repeatable")
	scratchURL := fs.String("scratch-database-url", "", "restore into a temporary database created through this PostgreSQL `URL` (default: a temporary SQLite file)")
	canaries := fs.Int("canaries", 20, "`number` of memories sampled from the archive that search must find")
	tmp := fs.String("tmp-dir", "", "scratch `directory` (default: the system's)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	webhook := fs.String("webhook", "", "POST an alert (Slack and Alertmanager compatible JSON) to this `URL` when verification fails")
	textfile := fs.String("textfile", "", "write the verification metrics to this `file` (Prometheus text format, for node_exporter)")
	fs.Usage = func() { fmt.Fprint(e.stderr, backupUsage+"\nFlags of verify:\n"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitCodeError{backup.ExitCouldNotRun}
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(e.stderr, "backup verify: "+format+"\n", a...)
		return exitCodeError{backup.ExitCouldNotRun}
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *from == "" {
		return usageErr("--from is required: the directory of archives, or one archive")
	}
	if *maxAge < 0 || *minRatio < 0 || *minRatio > 1 || *canaries < 0 {
		return usageErr("--max-age must be 0 or more, --min-size-ratio between 0 and 1, --canaries 0 or more")
	}
	ids, err := parseIdentities(identities)
	if err != nil {
		return usageErr("%v", err)
	}
	target, name, err := backup.OpenArchive(*from)
	if err != nil {
		return usageErr("--from: %v", err)
	}
	prog, done := progress(io.Discard)
	if !*asJSON {
		prog, done = progress(e.stderr)
	}
	rep := backup.Verify(ctx, target, backup.VerifyOptions{
		Name: name, MaxAge: *maxAge, MinSizeRatio: *minRatio, Identities: ids, TempDir: *tmp,
		Canaries: max(*canaries, 1), Progress: prog,
		OpenScratch: func(ctx context.Context) (backup.Scratch, func() error, error) {
			if *scratchURL != "" {
				return scratchPostgres(ctx, *scratchURL)
			}
			return scratchSQLite(ctx, *tmp)
		},
	})
	done()
	end := time.Now()
	if *textfile != "" {
		if err := backup.WriteTextfile(*textfile, rep, end); err != nil {
			fmt.Fprintf(e.stderr, "backup verify: %v\n", err)
		}
	}
	if rep.Status != backup.StatusOK && *webhook != "" {
		if err := backup.PostAlert(ctx, http.DefaultClient, *webhook, rep); err != nil {
			fmt.Fprintf(e.stderr, "backup verify: alert not sent: %v\n", err)
		}
	}
	if *asJSON {
		writeJSON(e.stdout, rep)
	} else {
		printReport(e.stdout, rep)
	}
	if code := rep.ExitCode(); code != 0 {
		return exitCodeError{code}
	}
	return nil
}

func printReport(w io.Writer, r *backup.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "%s (%.1fs)\n", r.Summary(), r.Seconds)
}

// scratchSQLite opens a store in a new temporary file.
func scratchSQLite(ctx context.Context, tmp string) (backup.Scratch, func() error, error) {
	dir, err := os.MkdirTemp(tmp, "codingbrain-verify-")
	if err != nil {
		return nil, nil, err
	}
	s, err := sqlite.Open(ctx, filepath.Join(dir, dbFile))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() error { s.Close(); return os.RemoveAll(dir) }, nil
}

// scratchPostgres creates a temporary database through adminURL, migrates
// it, and drops it on close.
func scratchPostgres(ctx context.Context, adminURL string) (backup.Scratch, func() error, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to --scratch-database-url: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	b := make([]byte, 6)
	rand.Read(b)
	db := "codingbrain_verify_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return nil, nil, fmt.Errorf("create the scratch database: %w", err)
	}
	drop := func() error {
		c, err := pgx.Connect(context.WithoutCancel(ctx), adminURL)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		_, err = c.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		return err
	}
	dbURL, err := withDatabase(adminURL, db)
	if err != nil {
		drop()
		return nil, nil, err
	}
	s, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: 4})
	if err == nil {
		_, err = s.Migrate(ctx)
	}
	if err != nil {
		if s != nil {
			s.Close()
		}
		drop()
		return nil, nil, fmt.Errorf("open the scratch database: %w", err)
	}
	return s, func() error { s.Close(); return drop() }, nil
}

// withDatabase returns a connection string for database db on the server
// of u (a postgres:// URL or a key=value string).
func withDatabase(u, db string) (string, error) {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		p, err := url.Parse(u)
		if err != nil {
			return "", err
		}
		p.Path = "/" + db
		return p.String(), nil
	}
	return u + " dbname=" + db, nil
}

func backupRestore(ctx context.Context, args []string, e env) (err error) {
	var (
		from, tmp      string
		identities     listFlag
		force, noEmbed bool
	)
	cfg, err := storeFlags("backup restore", args, e, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "directory of archives (the newest is restored), or one archive `path` (required)")
		fs.Var(&identities, "identity", "age identity `file` to decrypt with; repeatable")
		fs.BoolVar(&force, "force", false, "replace a store that holds data (SQLite: the old file is kept beside the new one)")
		fs.BoolVar(&noEmbed, "skip-embeddings", false, "do not compute embeddings after the restore (run reindex, or let serve do it)")
		fs.StringVar(&tmp, "tmp-dir", "", "scratch `directory` (default: the system's)")
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, backupUsage+"\nFlags of restore (and the store and embedder flags of serve):\n"+config.Usage())
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.New(cfg.Redact(err.Error()))
		}
	}()
	if from == "" {
		return errors.New("backup restore: --from is required: the directory of archives, or one archive")
	}
	ids, err := parseIdentities(identities)
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	target, name, err := backup.OpenArchive(from)
	if err != nil {
		return fmt.Errorf("backup restore: --from: %w", err)
	}
	if name == "" {
		objs, err := target.List(ctx)
		if err != nil {
			return fmt.Errorf("backup restore: %w", err)
		}
		if len(objs) == 0 {
			return fmt.Errorf("backup restore: %w in %s", backup.ErrNoBackup, from)
		}
		name = objs[len(objs)-1].Name
	}
	rc, err := target.Open(ctx, name)
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	defer rc.Close()
	fmt.Fprintf(e.stdout, "archive: %s\n", filepath.Join(target.Path, name))
	start := time.Now()
	prog, done := progress(e.stderr)
	// Rows of subjects erased after the backup was taken are not loaded
	// (the ledger beside the archives); the whole ledger is re-applied
	// after the load (below).
	filter, err := restoreFilter(target.Path)
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	opts := backup.RestoreOptions{Identities: ids, TempDir: tmp, Progress: prog, Filter: filter}
	var rep *backup.RestoreReport
	if cfg.DatabaseURL != "" {
		rep, err = restorePostgres(ctx, cfg, rc, name, opts, force, e.stdout)
	} else {
		rep, err = restoreSQLite(ctx, cfg, rc, name, opts, force, e.stdout)
	}
	done()
	if errors.Is(err, backup.ErrNotEmpty) {
		return errors.New("backup restore: the store holds data; restore into an empty store, or give --force to replace it")
	}
	if err != nil {
		return fmt.Errorf("backup restore: %w", err)
	}
	m := rep.Manifest
	fmt.Fprintf(e.stdout, "restored a backup of %s schema %d taken %s by %s\n", m.Store, m.SchemaVersion, m.CreatedAt.Format(time.RFC3339), m.AppVersion)
	for _, t := range backup.Tables {
		fmt.Fprintf(e.stdout, "  %-12s %d rows", t, rep.Loaded[t])
		if n := rep.Filtered[t]; n > 0 {
			fmt.Fprintf(e.stdout, " (%d left out by the erasure filter)", n)
		}
		fmt.Fprintln(e.stdout)
	}
	fmt.Fprintf(e.stdout, "checks passed: row counts, checksums, foreign keys, audit chain (extract %.1fs, load %.1fs, graph %.1fs, checks %.1fs)\n",
		rep.ExtractSeconds, rep.LoadSeconds, rep.GraphSeconds, rep.CheckSeconds)
	// Subjects erased since the backup was taken are erased again before
	// anything is served from it (docs/privacy.md).
	summary, err := reapplyErasures(ctx, cfg, target.Path)
	if err != nil {
		return fmt.Errorf("backup restore: the data is restored but re-applying the erasure ledger failed; run `codingbrain gdpr ledger --reapply %s` before serving it: %w", target.Path, err)
	}
	fmt.Fprintln(e.stdout, summary)
	if noEmbed {
		fmt.Fprintln(e.stdout, "embeddings not computed (--skip-embeddings): run `codingbrain reindex`, or serve computes them in the background")
	} else {
		log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := reindex(ctx, cfg, e, log); err != nil {
			return fmt.Errorf("backup restore: the data is restored, computing embeddings failed (run `codingbrain reindex`): %w", err)
		}
	}
	fmt.Fprintf(e.stdout, "restore done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// auditRestore records the restore in the restored store's audit log.
func auditRestore(ctx context.Context, st audit.Store, rep *backup.RestoreReport, name string) error {
	_, err := st.AppendAudit(ctx, audit.Event{At: time.Now(), Actor: "codingbrain backup restore",
		Action: audit.ActionBackupRestore, Target: "backup:" + name, Outcome: audit.OutcomeSuccess,
		Detail: map[string]any{"memories": rep.Loaded[backup.TableMemories], "schema_version": rep.Manifest.SchemaVersion,
			"store": rep.Manifest.Store, "taken_at": rep.Manifest.CreatedAt.Format(time.RFC3339)}})
	return err
}

func restorePostgres(ctx context.Context, cfg config.Config, r io.Reader, name string, o backup.RestoreOptions, force bool, out io.Writer) (*backup.RestoreReport, error) {
	s, err := postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxConns: 4, ConnectTimeout: cfg.DBConnectTimeout})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	fmt.Fprintf(out, "store: PostgreSQL %s\n", config.MaskURL(cfg.DatabaseURL))
	if v, err := s.SchemaVersion(ctx); err == nil && v > s.LatestSchemaVersion() {
		return nil, fmt.Errorf("the database's schema (%d) is newer than this binary's (%d)", v, s.LatestSchemaVersion())
	}
	if _, err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	o.Replace = force
	rep, err := backup.Restore(ctx, r, s, o)
	if err != nil {
		return rep, err
	}
	return rep, auditRestore(ctx, s, rep, name)
}

// restoreSQLite restores into a new file beside the database and moves it
// into place; an existing database with data is refused without force,
// and with force kept as codingbrain.db.before-restore-<time>.
func restoreSQLite(ctx context.Context, cfg config.Config, r io.Reader, name string, o backup.RestoreOptions, force bool, out io.Writer) (*backup.RestoreReport, error) {
	path := filepath.Join(cfg.DataDir, dbFile)
	fmt.Fprintf(out, "store: SQLite %s\n", path)
	exists := false
	if _, err := os.Stat(path); err == nil {
		exists = true
		old, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
		if err != nil {
			return nil, err
		}
		empty, err := old.Empty(ctx)
		old.Close()
		if err != nil && !force {
			return nil, fmt.Errorf("%w (give --force to replace the file)", err)
		}
		if !empty && !force {
			return nil, backup.ErrNotEmpty
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".restoring"
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(tmp + suffix)
	}
	s, err := sqlite.Open(ctx, tmp)
	if err != nil {
		return nil, err
	}
	rep, err := backup.Restore(ctx, r, s, o)
	if err == nil {
		err = auditRestore(ctx, s, rep, name)
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + suffix)
		}
		return rep, err
	}
	if exists {
		aside := path + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(path+suffix, aside+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return rep, fmt.Errorf("move the old database aside: %w", err)
			}
		}
		fmt.Fprintf(out, "the previous database is kept as %s\n", aside)
	}
	if err := os.Rename(tmp, path); err != nil {
		return rep, err
	}
	return rep, nil
}

func backupList(ctx context.Context, args []string, e env, prune bool) error {
	name := "backup list"
	if prune {
		name = "backup prune"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	from := fs.String("from", "", "directory of archives (required)")
	daily := fs.Int("keep-daily", 7, "keep the newest backup of each of the last `N` days that have one")
	weekly := fs.Int("keep-weekly", 4, "keep the newest backup of each of the last `N` ISO weeks that have one")
	dry := fs.Bool("dry-run", false, "prune: only list what would be deleted")
	asJSON := fs.Bool("json", false, "list: print JSON")
	fs.Usage = func() { fmt.Fprint(e.stderr, backupUsage+"\nFlags of list and prune:\n"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *from == "" || fs.NArg() > 0 {
		return fmt.Errorf("%s: --from DIR is required, and nothing else", name)
	}
	if *daily < 0 || *weekly < 0 {
		return fmt.Errorf("%s: --keep-daily and --keep-weekly must be 0 or more", name)
	}
	target := backup.Dir{Path: *from}
	ret := backup.Retention{Daily: *daily, Weekly: *weekly}
	if prune {
		removed, err := backup.Prune(ctx, target, ret, *dry)
		verb := "deleted"
		if *dry {
			verb = "would delete"
		}
		for _, n := range removed {
			fmt.Fprintf(e.stdout, "%s %s\n", verb, n)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(e.stdout, "%s %d archives\n", verb, len(removed))
		return nil
	}
	objs, err := target.List(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	keep := ret.Keep(objs)
	if *asJSON {
		type row struct {
			backup.Object
			Keep string `json:"kept_as,omitempty"`
		}
		rows := []row{}
		for _, o := range objs {
			rows = append(rows, row{o, keep[o.Name]})
		}
		return writeJSON(e.stdout, rows)
	}
	if len(objs) == 0 {
		fmt.Fprintf(e.stdout, "no backups in %s\n", *from)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTAKEN\tSIZE\tRETENTION")
	for _, o := range objs {
		k := keep[o.Name]
		if k == "" {
			k = "prune"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", o.Name, o.At.Format(time.RFC3339), o.Size, k)
	}
	return tw.Flush()
}
