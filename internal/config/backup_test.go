package config_test

import (
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/config"
)

func TestBackupSettings(t *testing.T) {
	env := map[string]string{
		"CODINGBRAIN_BACKUP_DIR":             "/var/backups/codingbrain",
		"CODINGBRAIN_BACKUP_SCHEDULE":        "0 2 * * *",
		"CODINGBRAIN_BACKUP_VERIFY_SCHEDULE": "@daily",
		"CODINGBRAIN_BACKUP_KEEP_DAILY":      "10",
		"CODINGBRAIN_BACKUP_RECIPIENTS":      "age1abc,age1def",
		"CODINGBRAIN_BACKUP_WEBHOOK":         "https://hooks.slack.com/services/T0/B0/secret-token",
	}
	c, err := config.Load([]string{"--backup-verify-schedule", "30 3 * * *"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.BackupSchedule != "0 2 * * *" || c.BackupVerifySchedule != "30 3 * * *" || c.BackupKeepDaily != 10 ||
		c.BackupKeepWeekly != 4 || len(c.BackupRecipients) != 2 {
		t.Errorf("loaded %+v", c)
	}
	if s := c.String(); strings.Contains(s, "secret-token") || !strings.Contains(s, `"backup_schedule":"0 2 * * *"`) {
		t.Errorf("printed config: %s", s)
	}
	if r := c.Redact("post to https://hooks.slack.com/services/T0/B0/secret-token failed"); strings.Contains(r, "secret-token") {
		t.Errorf("redacted: %s", r)
	}

	bad := config.Default()
	bad.BackupSchedule = "every night"
	bad.BackupVerifySchedule = "@daily"
	bad.BackupKeepWeekly = -1
	bad.BackupRecipients = []string{"ssh-ed25519 AAAA"}
	bad.BackupWebhook = "ftp://x"
	err = bad.Validate()
	for _, want := range []string{"backup_schedule", "five fields", "backup_dir", "backup_keep_weekly", "backup_recipients", "backup_webhook"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
