package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/schedule"
	"github.com/codingbrain/codingbrain/internal/telemetry"

	"go.opentelemetry.io/otel/trace"
)

// startBackups schedules serve's backups and restore verifications
// (backup_schedule, backup_verify_schedule) when configured. Each
// occurrence runs on one replica: the one that claims it in the shared kv
// store. The returned stop ends the schedule and waits for a running job
// (whose context is cancelled) until ctx ends.
func startBackups(ctx context.Context, cfg config.Config, b *backends, metrics *telemetry.Metrics,
	reg prometheus.Registerer, tp trace.TracerProvider, log *slog.Logger) (stop func(context.Context), err error) {
	nothing := func(context.Context) {}
	if cfg.BackupSchedule == "" && cfg.BackupVerifySchedule == "" {
		return nothing, nil
	}
	src, ok := b.store.(backup.Source)
	if !ok {
		return nil, errors.New("backup_schedule: this store cannot be backed up")
	}
	host, _ := os.Hostname()
	sched := schedule.New(b.shared, host+"/"+strconv.Itoa(os.Getpid()), log)
	sched.Trace(tp)
	target := backup.Dir{Path: cfg.BackupDir}
	if cfg.BackupSchedule != "" {
		s, err := schedule.Parse(cfg.BackupSchedule)
		if err != nil {
			return nil, fmt.Errorf("backup_schedule: %w", err)
		}
		recipients, err := parseRecipients(cfg.BackupRecipients)
		if err != nil {
			return nil, fmt.Errorf("backup_recipients: %w", err)
		}
		sched.Add(schedule.Job{Name: "backup", Schedule: s, Run: func(ctx context.Context) error {
			res, err := backup.Create(ctx, src, target, backup.CreateOptions{Recipients: recipients, AppVersion: version})
			if err != nil {
				return err
			}
			metrics.BackupSucceeded(time.Now())
			log.Info("backup written", "archive", res.Name, "bytes", res.Size,
				"memories", res.Manifest.Tables[backup.TableMemories].Rows, "took", res.Took.Round(time.Millisecond))
			if gs, ok := b.store.(gdpr.Store); ok {
				if _, err := syncLedgerFile(ctx, gs, filepath.Join(cfg.BackupDir, gdpr.LedgerFileName)); err != nil {
					return fmt.Errorf("copy the erasure ledger beside the backups: %w", err)
				}
			}
			if cfg.BackupKeepDaily > 0 || cfg.BackupKeepWeekly > 0 {
				pruned, err := backup.Prune(ctx, target, backup.Retention{Daily: cfg.BackupKeepDaily, Weekly: cfg.BackupKeepWeekly}, false)
				if err != nil {
					return err
				}
				if len(pruned) > 0 {
					log.Info("backups pruned", "archives", pruned)
				}
			}
			return nil
		}})
		log.Info("backups scheduled", "schedule", cfg.BackupSchedule, "dir", cfg.BackupDir)
	}
	if cfg.BackupVerifySchedule != "" {
		s, err := schedule.Parse(cfg.BackupVerifySchedule)
		if err != nil {
			return nil, fmt.Errorf("backup_verify_schedule: %w", err)
		}
		var ids []string
		if cfg.BackupIdentityFile != "" {
			ids = []string{cfg.BackupIdentityFile}
		}
		identities, err := parseIdentities(ids)
		if err != nil {
			return nil, fmt.Errorf("backup_identity_file: %w", err)
		}
		vm, err := backup.NewVerifyMetrics(reg)
		if err != nil {
			return nil, fmt.Errorf("backup metrics: %w", err)
		}
		sched.Add(schedule.Job{Name: "backup-verify", Schedule: s, Run: func(ctx context.Context) error {
			rep := backup.Verify(ctx, target, backup.VerifyOptions{
				MaxAge: 26 * time.Hour, MinSizeRatio: 0.5, Identities: identities,
				OpenScratch: func(ctx context.Context) (backup.Scratch, func() error, error) { return scratchSQLite(ctx, "") },
			})
			end := time.Now()
			vm.Record(rep, end)
			if rep.Status == backup.StatusOK {
				metrics.BackupVerified(end)
				log.Info("backup verified", "archive", rep.Archive, "canaries", rep.Canaries, "seconds", rep.Seconds)
				return nil
			}
			if cfg.BackupWebhook != "" {
				if err := backup.PostAlert(ctx, http.DefaultClient, cfg.BackupWebhook, rep); err != nil {
					log.Error("backup alert not sent", "err", cfg.Redact(err.Error()))
				}
			}
			return errors.New(rep.Summary())
		}})
		log.Info("backup verification scheduled", "schedule", cfg.BackupVerifySchedule, "dir", cfg.BackupDir)
	}
	sched.Start(ctx)
	return func(ctx context.Context) {
		if err := sched.Stop(ctx); err != nil {
			log.Warn("scheduled backup work did not stop in time", "err", err)
		}
	}, nil
}
