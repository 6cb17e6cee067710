package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/schedule"

	"go.opentelemetry.io/otel/trace"
)

const gdprUsage = `Usage: codingbrain gdpr <command> --org ORG --subject SUB [flags]

  export  everything stored about the subject in the org, as one JSON
          document with a manifest of what was searched and counts per
          source (--out FILE, default standard output)
  erase   remove the subject's personal data from the store (one
          transaction), the derived indexes and the shared state; shared
          memories they wrote are pseudonymized or deleted by
          gdpr_shared_memories. --reason is required. Prints the receipt
          and the no-trace check; exits 1 unless the check is clean
  check   search every source for the subject; exits 1 unless nothing
          erasable remains
  ledger  list the erasure ledger (no personal data: subjects are hashes);
          with --to DIR, add the entries DIR/erasure-ledger.jsonl lacks
          (the copy that restores of older backups re-apply; backup create
          does it too); with --reapply DIR, erase again every subject the
          ledger names (backup restore does it after loading)

The store and shared state are chosen as for serve (--database-url,
--data-dir, --valkey-url, or the CODINGBRAIN_* variables and the config
file); the command works on the database directly, serve may keep running
(its in-process vector index drops erased memories when they are next read,
and at its next start).
`

// runGDPR runs the gdpr subcommands.
func runGDPR(ctx context.Context, args []string, e env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, gdprUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	var org, subject, reason, out, to, reapply, requestedBy string
	var asJSON bool
	cfg, err := config.LoadWith(rest, e.getenv, func(fs *flag.FlagSet) {
		if cmd != "ledger" {
			fs.StringVar(&org, "org", "", "the subject's `org` (required)")
			fs.StringVar(&subject, "subject", "", "the `subject` identifier, a principal's sub (required)")
		}
		switch cmd {
		case "export":
			fs.StringVar(&out, "out", "", "write the export to this `file` (mode 0600) instead of standard output")
		case "erase":
			fs.StringVar(&reason, "reason", "", "why the subject is erased, such as the request's reference (required)")
			fs.StringVar(&requestedBy, "requested-by", "codingbrain gdpr erase", "who asks, for the receipt and the audit log")
			fs.BoolVar(&asJSON, "json", false, "print the receipt and check as JSON")
		case "check":
			fs.BoolVar(&asJSON, "json", false, "print the check as JSON")
		case "ledger":
			fs.StringVar(&to, "to", "", "backup `directory` whose "+gdpr.LedgerFileName+" gets the missing entries")
			fs.StringVar(&reapply, "reapply", "", "erase again every subject the store's ledger and this backup `directory`'s "+gdpr.LedgerFileName+"\n"+
				"name (what backup restore does after loading)")
		}
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, gdprUsage)
		return nil
	}
	switch cmd {
	case "export", "erase", "check", "ledger":
	default:
		fmt.Fprintf(e.stderr, "gdpr: unknown command %q\n\n%s", cmd, gdprUsage)
		return errUsage
	}
	if err != nil {
		return fmt.Errorf("gdpr %s: %w", cmd, err)
	}
	if reapply != "" {
		summary, err := reapplyErasures(ctx, cfg, reapply)
		if err != nil {
			return fmt.Errorf("gdpr ledger: %s", cfg.Redact(err.Error()))
		}
		fmt.Fprintln(e.stdout, summary)
		return nil
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, shared, closeAll, err := openPrivacy(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("gdpr %s: %s", cmd, cfg.Redact(err.Error()))
	}
	defer closeAll()
	svc, err := privacyService(cfg, st, shared, log, nil)
	if err != nil {
		return fmt.Errorf("gdpr %s: %w", cmd, err)
	}
	subj := gdpr.Subject{OrgID: org, ID: subject}
	switch cmd {
	case "export":
		x, err := svc.Export(ctx, subj)
		if err != nil {
			return fmt.Errorf("gdpr export: %w", err)
		}
		return writeExport(x, out, e.stdout)
	case "erase":
		res, err := svc.Erase(ctx, gdpr.EraseRequest{Subject: subj, Reason: reason, RequestedBy: requestedBy})
		if err != nil {
			return fmt.Errorf("gdpr erase: %w", err)
		}
		if asJSON {
			writeIndented(e.stdout, res)
		} else {
			printReceipt(e.stdout, res.Receipt)
			printCheck(e.stdout, res.Check)
		}
		if !res.Check.Clean {
			return errors.New("gdpr erase: the check after the erasure still finds the subject (see above); run the erasure again")
		}
		return nil
	case "check":
		c, err := svc.Check(ctx, subj)
		if err != nil {
			return fmt.Errorf("gdpr check: %w", err)
		}
		if asJSON {
			writeIndented(e.stdout, c)
		} else {
			printCheck(e.stdout, c)
		}
		if !c.Clean {
			return errors.New("gdpr check: the subject is still found")
		}
		return nil
	}
	return ledgerCommand(ctx, st, to, e.stdout)
}

// privacyStore is what the gdpr commands and serve's privacy routes need
// from the store.
type privacyStore interface {
	memory.Store
	gdpr.Store
}

// openPrivacy opens the store and the shared state cfg names.
func openPrivacy(ctx context.Context, cfg config.Config, log *slog.Logger) (privacyStore, kv.Store, func(), error) {
	var st memory.Store
	var err error
	if cfg.DatabaseURL != "" {
		st, err = openPostgres(ctx, cfg, log)
	} else {
		st, err = openSQLite(ctx, filepath.Join(cfg.DataDir, dbFile), cfg, log)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	ps, ok := st.(privacyStore)
	if !ok {
		st.Close()
		return nil, nil, nil, fmt.Errorf("the %T store does not support subject export and erasure", st)
	}
	var shared kv.Store = kv.NewMemory(nil)
	if cfg.ValkeyURL != "" {
		if shared, err = kv.NewValkey(cfg.ValkeyURL, valkeyPrefix); err != nil {
			st.Close()
			return nil, nil, nil, fmt.Errorf("valkey: %w", err)
		}
	}
	return ps, shared, func() { shared.Close(); st.Close() }, nil
}

// privacyService builds the gdpr.Service serve and the commands use.
// onErased, when not nil, hears of the memories an erasure removed or
// rewrote (the vector index).
func privacyService(cfg config.Config, st memory.Store, shared kv.Store, log *slog.Logger, onErased func([]memory.MemoryKey)) (*gdpr.Service, error) {
	gs, ok := st.(gdpr.Store)
	if !ok {
		return nil, fmt.Errorf("the %T store does not support subject export and erasure", st)
	}
	policy, err := gdpr.ParseSharedPolicy(cfg.GDPRSharedMemories)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	rec, err := auditRecorder(st, log)
	if err != nil {
		return nil, err
	}
	o := gdpr.Options{Shared: shared, Audit: rec, SharedMemories: policy, Logger: log, OnErased: onErased}
	if path := ledgerFile(cfg); path != "" {
		o.Ledger = &gdpr.LedgerFile{Path: path}
	}
	return gdpr.New(gs, o), nil
}

func writeExport(x gdpr.Export, path string, stdout io.Writer) error {
	if path == "" {
		writeIndented(stdout, x)
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("gdpr export: %w", err)
	}
	writeIndented(f, x)
	if err := f.Close(); err != nil {
		return fmt.Errorf("gdpr export: %w", err)
	}
	for _, m := range x.Manifest {
		fmt.Fprintf(stdout, "%-18s %d\n", m.Source, m.Count)
	}
	fmt.Fprintf(stdout, "written to %s\n", path)
	return nil
}

func writeIndented(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func printCounts(w io.Writer, title string, m map[string]int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	fmt.Fprintf(w, "%s: %s\n", title, strings.Join(parts, ", "))
}

func printReceipt(w io.Writer, rc gdpr.Receipt) {
	fmt.Fprintf(w, "erasure %s in org %s at %s (policy %s)\n", rc.ID, rc.OrgID, rc.ErasedAt.Format("2006-01-02T15:04:05Z07:00"), rc.Policy)
	fmt.Fprintf(w, "subject hash %s, pseudonym %s\n", rc.SubjectHash, rc.Pseudonym)
	printCounts(w, "removed", rc.Removed)
	printCounts(w, "pseudonymized", rc.Pseudonymized)
	fmt.Fprintf(w, "receipt sha256 %s\n", rc.Hash)
}

func printCheck(w io.Writer, c gdpr.CheckResult) {
	printCounts(w, "check found", c.Found)
	printCounts(w, "retained", c.Retained)
	if c.Clean {
		fmt.Fprintln(w, "no trace: clean")
	} else {
		fmt.Fprintln(w, "NOT CLEAN: the subject is still found")
	}
}

// ledgerCommand lists the ledger or adds its missing entries to a backup
// directory's copy.
func ledgerCommand(ctx context.Context, st gdpr.Store, dir string, out io.Writer) error {
	if dir == "" {
		entries, err := st.Erasures(ctx, "")
		if err != nil {
			return fmt.Errorf("gdpr ledger: %w", err)
		}
		for _, en := range entries {
			fmt.Fprintf(out, "%s %s %s %s %s\n", en.ErasedAt.Format("2006-01-02T15:04:05Z"), en.ID, en.OrgID, en.SubjectHash, en.Policy)
		}
		return nil
	}
	n, err := syncLedgerFile(ctx, st, filepath.Join(dir, gdpr.LedgerFileName))
	if err != nil {
		return fmt.Errorf("gdpr ledger: %w", err)
	}
	fmt.Fprintf(out, "%d entries added to %s\n", n, filepath.Join(dir, gdpr.LedgerFileName))
	return nil
}

// syncLedgerFile appends to the ledger file at path the store's entries it
// lacks, and reports how many. backup create calls it so that every backup
// directory carries the ledger as of its newest backup.
func syncLedgerFile(ctx context.Context, st gdpr.Store, path string) (int, error) {
	have, err := gdpr.ReadLedger(path)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, en := range have {
		seen[en.ID] = true
	}
	entries, err := st.Erasures(ctx, "")
	if err != nil {
		return 0, err
	}
	f := &gdpr.LedgerFile{Path: path}
	n := 0
	for _, en := range entries {
		if seen[en.ID] {
			continue
		}
		en.Receipt = nil
		if err := f.Append(ctx, en); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// restoreEraser is the erasure hook of backup restore: the ledger restored
// with the backup and the copy in the backup directory dir.
func restoreEraser(cfg config.Config, dir string) gdpr.RestoreEraser {
	policy, _ := gdpr.ParseSharedPolicy(cfg.GDPRSharedMemories)
	return gdpr.RestoreEraser{LedgerFile: filepath.Join(dir, gdpr.LedgerFileName), Options: gdpr.Options{SharedMemories: policy}}
}

// reapplyErasures runs the erasure ledger over the store cfg names, just
// restored from a backup in dir: the entries restored with the backup and
// those in dir's ledger file (erasures made after the backup was taken).
func reapplyErasures(ctx context.Context, cfg config.Config, dir string) (string, error) {
	log := slog.New(slog.DiscardHandler)
	st, _, closeAll, err := openPrivacy(ctx, cfg, log) // the shared state is not restored
	if err != nil {
		return "", err
	}
	defer closeAll()
	r := restoreEraser(cfg, dir)
	return gdpr.ReapplyLedger(ctx, st, r.LedgerFile, r.Options)
}

// servePrivacy is what serve runs for privacy: the export and erasure
// service, the retention store, and the retention purge on the scheduler.
type servePrivacy struct {
	svc       *gdpr.Service
	retention gdpr.RetentionStore
	sched     *schedule.Scheduler
}

// startPrivacy builds the privacy service over serve's backends (erasures
// reach the vector index at once) and, when retention_every is set, runs
// the retention purge on that schedule, one replica per occurrence. A store
// without privacy support gets nil parts (the routes answer 501). Stop it
// with stop.
func startPrivacy(ctx context.Context, cfg config.Config, b *backends, rec *audit.Recorder, reg prometheus.Registerer, tp trace.TracerProvider, log *slog.Logger) (*servePrivacy, error) {
	p := &servePrivacy{}
	if _, ok := b.store.(gdpr.Store); !ok {
		log.Warn("the store does not support subject export and erasure; the /api/v1/gdpr routes answer 501")
		return p, nil
	}
	policy, err := gdpr.ParseSharedPolicy(cfg.GDPRSharedMemories)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	o := gdpr.Options{Shared: b.shared, Audit: rec, SharedMemories: policy, Logger: log}
	if path := ledgerFile(cfg); path != "" {
		o.Ledger = &gdpr.LedgerFile{Path: path}
	}
	if b.vectors != nil {
		o.OnErased = b.vectors.Removed // read back at once: gone from the store, so gone from the index
	}
	p.svc = gdpr.New(b.store.(gdpr.Store), o)
	rs, ok := b.store.(gdpr.RetentionStore)
	if !ok {
		return p, nil
	}
	p.retention = rs
	purger, err := gdpr.NewPurger(rs, b.store, gdpr.PurgerOptions{Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	if cfg.RetentionEvery <= 0 {
		log.Info("retention purge off (retention_every 0)")
		return p, nil
	}
	every, err := schedule.Parse("@every " + cfg.RetentionEvery.String())
	if err != nil {
		return nil, fmt.Errorf("config: retention_every: %w", err)
	}
	host, _ := os.Hostname()
	p.sched = schedule.New(b.shared, fmt.Sprintf("%s/%d", host, os.Getpid()), log)
	p.sched.Trace(tp)
	if err := p.sched.Add(schedule.Job{Name: "retention", Schedule: every, Run: func(ctx context.Context) error {
		n, err := purger.RunOnce(ctx)
		if total := n[gdpr.PurgeAccessLog] + n[gdpr.PurgeArchived] + n[gdpr.PurgeDeletedMemories]; total > 0 {
			log.InfoContext(ctx, "retention purge", "access_log", n[gdpr.PurgeAccessLog],
				"archived_memories", n[gdpr.PurgeArchived], "deleted_memories", n[gdpr.PurgeDeletedMemories])
		}
		return err
	}}); err != nil {
		return nil, err
	}
	p.sched.Start(context.WithoutCancel(ctx))
	log.Info("retention purge scheduled", "every", cfg.RetentionEvery.String())
	return p, nil
}

// stop ends the retention schedule, waiting for a run in progress.
func (p *servePrivacy) stop(ctx context.Context) {
	if p.sched != nil {
		_ = p.sched.Stop(ctx)
	}
}

// restoreFilter is the row filter of backup restore: the erasures in the
// ledger file beside the archives in dir.
func restoreFilter(dir string) (gdpr.Ledger, error) {
	entries, err := gdpr.ReadLedger(filepath.Join(dir, gdpr.LedgerFileName))
	if err != nil {
		return nil, err
	}
	return gdpr.NewLedger(entries), nil
}

// ledgerFile is where erasures append the ledger's copy: gdpr_ledger_file,
// else erasure-ledger.jsonl in backup_dir (serve's scheduled backups), else
// nowhere (backup create copies the ledger then).
func ledgerFile(cfg config.Config) string {
	switch {
	case cfg.GDPRLedgerFile != "":
		return cfg.GDPRLedgerFile
	case cfg.BackupDir != "":
		return filepath.Join(cfg.BackupDir, gdpr.LedgerFileName)
	}
	return ""
}
