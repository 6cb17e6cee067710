package telemetry_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// TestNilMetricsRecordsNothing: parts built without metrics call the same
// methods on a nil *Metrics.
func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *telemetry.Metrics
	m.ObserveHTTP("GET", "GET /x", 200, time.Millisecond)
	m.HTTPInFlightAdd(1)
	m.ObserveToolCall("t", telemetry.OutcomeOK, time.Millisecond)
	m.ObserveSearch(telemetry.ChannelREST, time.Millisecond)
	m.ObserveStore("Get", time.Millisecond, true)
	m.ObserveEmbedder(time.Millisecond, true)
	m.SetBreakerState("embedder", telemetry.BreakerOpen)
	m.RateLimitRejected("read")
	m.AuthFailed("invalid_token")
	m.SetDependencyUp("store", true)
	m.SessionOpened()
	m.SessionClosed()
	m.BackupSucceeded(time.Now())
	m.BackupVerified(time.Now())
}

// TestMetricsForOthers: the setters the breakers, rate limiter, health
// checks and backups use land in the series the alerts read.
func TestMetricsForOthers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.Build{Version: "v1", Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.NewMetrics(reg, telemetry.Build{}); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
	m.SetBreakerState("embedder", telemetry.BreakerHalfOpen)
	m.SetBreakerState("embedder", telemetry.BreakerOpen)
	m.RateLimitRejected("search")
	m.RateLimitRejected("search")
	m.SetDependencyUp("valkey", false)
	m.SetDependencyUp("store", true)
	at := time.Unix(1_700_000_000, 500_000_000)
	m.BackupSucceeded(at)
	m.BackupVerified(at.Add(time.Hour))
	for name, c := range map[string]struct {
		got, want float64
	}{
		"breaker_state{embedder}":       {testutil.ToFloat64(m.BreakerStates.WithLabelValues("embedder")), 2},
		"rate_limit_rejections{search}": {testutil.ToFloat64(m.RateLimitRejections.WithLabelValues("search")), 2},
		"dependency_up{valkey}":         {testutil.ToFloat64(m.DependencyUp.WithLabelValues("valkey")), 0},
		"dependency_up{store}":          {testutil.ToFloat64(m.DependencyUp.WithLabelValues("store")), 1},
		"backup_last_success":           {testutil.ToFloat64(m.BackupLastSuccess), 1_700_000_000.5},
		"backup_verify_last_success":    {testutil.ToFloat64(m.BackupVerifyLastSuccess), 1_700_003_600.5},
		"build_info{v1,r}":              {testutil.ToFloat64(m.BuildInfo), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
}
