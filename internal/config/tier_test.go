package config_test

import (
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/config"
)

func TestTierSettings(t *testing.T) {
	if c := config.Default(); c.TierSchedule != "" || c.TierAfterDays != 90 {
		t.Errorf("defaults: tier_schedule %q, tier_after_days %d; want none and 90", c.TierSchedule, c.TierAfterDays)
	}
	env := map[string]string{"CODINGBRAIN_TIER_SCHEDULE": "@daily", "CODINGBRAIN_TIER_AFTER_DAYS": "30"}
	c, err := config.Load([]string{"--tier-after-days", "45"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.TierSchedule != "@daily" || c.TierAfterDays != 45 {
		t.Errorf("loaded tier_schedule %q, tier_after_days %d; want @daily and 45 (the flag over the environment)", c.TierSchedule, c.TierAfterDays)
	}

	bad := config.Default()
	bad.TierSchedule = "nightly"
	bad.TierAfterDays = 0
	err = bad.Validate()
	for _, want := range []string{"tier_schedule", "five fields", "tier_after_days 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
