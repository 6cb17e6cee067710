package config

import (
	"strings"
	"testing"
	"time"
)

func TestGDPRSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.GDPRSharedMemories != "pseudonymize" || c.RetentionEvery != time.Hour || c.GDPRLedgerFile != "" {
		t.Errorf("defaults: %q %s %q", c.GDPRSharedMemories, c.RetentionEvery, c.GDPRLedgerFile)
	}
	c, err = Load([]string{"--gdpr-shared-memories", "delete", "--retention-every", "0"},
		env(map[string]string{"CODINGBRAIN_GDPR_LEDGER_FILE": "/backups/erasure-ledger.jsonl", "CODINGBRAIN_RETENTION_EVERY": "5m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GDPRSharedMemories != "delete" || c.RetentionEvery != 0 || c.GDPRLedgerFile != "/backups/erasure-ledger.jsonl" {
		t.Errorf("flags and environment: %q %s %q", c.GDPRSharedMemories, c.RetentionEvery, c.GDPRLedgerFile)
	}
	for _, tc := range []struct {
		args  []string
		field string
	}{
		{[]string{"--gdpr-shared-memories", "keep"}, "gdpr_shared_memories"},
		{[]string{"--retention-every", "1s"}, "retention_every"},
	} {
		if _, err := Load(tc.args, env(nil)); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.field)
		}
	}
}
