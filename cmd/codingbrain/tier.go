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
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/schedule"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

const tierUsage = `Usage: codingbrain tier run|status [--json] [--tier-after-days N] [--database-url URL | --data-dir DIR]

Memories are kept in a hot and a cold tier (docs/scaling.md, "Tiering").
Search covers the hot tier unless asked to include cold memories
(include_cold), and only hot memories are held in the in-process indexes of
every replica. Reading a cold memory by id or changing it brings it back.

  run     move archived and deleted memories, and memories neither written
          nor returned to a reader for tier_after_days days (default 90), to
          the cold tier, in batches of 1000; then print both tiers' counts.
          serve runs the same job on tier_schedule.
  status  print how many memories each tier holds.

It reads the same configuration as serve (--config, CODINGBRAIN_*); the
store is PostgreSQL when --database-url is set, else the SQLite file in the
data directory. serve may keep running.

Flags:
`

// tiersMigration is the migration that adds the tiers to both stores.
const tiersMigration = 8

// runTier runs `codingbrain tier`.
func runTier(ctx context.Context, args []string, e env) (err error) {
	if len(args) == 0 || (args[0] != "run" && args[0] != "status") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(e.stdout, tierUsage+config.Usage())
			return nil
		}
		fmt.Fprint(e.stderr, tierUsage)
		return errUsage
	}
	sub := args[0]
	var (
		fset   *flag.FlagSet
		asJSON bool
	)
	cfg, err := config.LoadWith(args[1:], e.getenv, func(fs *flag.FlagSet) {
		fset = fs
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, tierUsage+config.Usage())
		return nil
	}
	if err != nil {
		return fmt.Errorf("tier %s: %w", sub, err)
	}
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["database-url"] && given["data-dir"] {
		return fmt.Errorf("tier %s: give --database-url (PostgreSQL) or --data-dir (SQLite), not both", sub)
	}
	if given["data-dir"] {
		cfg.DatabaseURL = ""
	}
	defer func() {
		if err != nil {
			err = errors.New(cfg.Redact(err.Error())) // a driver's error may quote a secret
		}
	}()
	st, err := openForTier(ctx, cfg, e.stderr)
	if err != nil {
		return fmt.Errorf("tier %s: %w", sub, err)
	}
	defer st.Close()
	var rep memory.TierReport
	start := time.Now()
	if sub == "run" {
		rep, err = memory.RunTiering(ctx, st, tierCut(time.Now(), cfg.TierAfterDays), memory.DefaultTierBatch)
	} else {
		rep.Hot, rep.Cold, err = st.TierCounts(ctx)
	}
	if err != nil {
		return fmt.Errorf("tier %s: %w", sub, err)
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	if sub == "run" {
		fmt.Fprintf(e.stdout, "moved %d memories to the cold tier (untouched for %d days, archived or deleted) in %s\n",
			rep.MovedCold, cfg.TierAfterDays, time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(e.stdout, "hot: %d\ncold: %d\n", rep.Hot, rep.Cold)
	return nil
}

// tierCut is the time before which a memory not touched since is moved to
// the cold tier.
func tierCut(now time.Time, afterDays int) time.Time {
	return now.Add(-time.Duration(afterDays) * 24 * time.Hour)
}

// tierStore is what `tier` needs of a store.
type tierStore interface {
	memory.Tiers
	Close() error
}

// openForTier opens the store of cfg without migrating it and checks that
// its schema has the tiers.
func openForTier(ctx context.Context, cfg config.Config, out io.Writer) (tierStore, error) {
	return openExisting[tierStore](ctx, cfg, out, 2, tiersMigration, "tiers")
}

// startTiering schedules serve's tiering job (tier_schedule) when
// configured: each occurrence runs on the replica that claims it in the
// shared kv store. Moves and tier counts go to metrics through the
// observed store. The returned stop ends the schedule and waits for a
// running job (whose context is cancelled) until its ctx ends.
func startTiering(ctx context.Context, cfg config.Config, b *backends, metrics *telemetry.Metrics,
	tp trace.TracerProvider, log *slog.Logger) (stop func(context.Context), err error) {
	if cfg.TierSchedule == "" {
		return func(context.Context) {}, nil
	}
	t, ok := telemetry.ObserveStore(b.store, metrics, tp).(memory.Tiers)
	if !ok {
		return nil, errors.New("tier_schedule: this store has no tiers")
	}
	s, err := schedule.Parse(cfg.TierSchedule)
	if err != nil {
		return nil, fmt.Errorf("tier_schedule: %w", err)
	}
	if _, _, err := t.TierCounts(ctx); err != nil { // the gauges from the start
		log.Warn("tiers not counted", "err", err)
	}
	host, _ := os.Hostname()
	sched := schedule.New(b.shared, host+"/"+strconv.Itoa(os.Getpid()), log)
	sched.Trace(tp)
	sched.Add(schedule.Job{Name: "tier", Schedule: s, Run: func(ctx context.Context) error {
		start := time.Now()
		rep, err := memory.RunTiering(ctx, t, tierCut(start, cfg.TierAfterDays), memory.DefaultTierBatch)
		if err != nil {
			return fmt.Errorf("tiering moved %d memories, then: %w", rep.MovedCold, err)
		}
		log.Info("tiering done", "moved_cold", rep.MovedCold, "hot", rep.Hot, "cold", rep.Cold,
			"took", time.Since(start).Round(time.Millisecond).String())
		return nil
	}})
	log.Info("tiering scheduled", "schedule", cfg.TierSchedule, "after_days", cfg.TierAfterDays)
	sched.Start(ctx)
	return func(ctx context.Context) {
		if err := sched.Stop(ctx); err != nil {
			log.Warn("the tiering job did not stop in time", "err", err)
		}
	}, nil
}
