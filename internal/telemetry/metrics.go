// Package telemetry is the one place where Coding Brain's observability is
// set up: the Prometheus metrics every part records into, OpenTelemetry
// tracing configured from the standard OTEL_* environment variables, and the
// structured logger with its redaction of secrets.
//
// Nothing here touches a global: the metrics are registered on the
// prometheus.Registerer the caller passes, and the TracerProvider is handed
// to whoever needs it. The names of the metrics are a contract with
// deploy/prometheus (recording rules, alerts) and docs/slo.md.
package telemetry

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Build identifies the running binary in codingbrain_build_info.
type Build struct {
	Version  string
	Revision string
}

// BreakerState is the value of codingbrain_breaker_state. The numbering is
// the one gobreaker uses (StateClosed 0, StateHalfOpen 1, StateOpen 2), so a
// gobreaker.State converts directly: telemetry.BreakerState(state).
type BreakerState int

// The states of a circuit breaker.
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

// Outcomes of an MCP tool call (label outcome of codingbrain_mcp_tool_calls_total).
const (
	OutcomeOK      = "ok"      // the tool ran and answered
	OutcomeError   = "error"   // the tool answered an error (bad input, not found, a failure)
	OutcomeDenied  = "denied"  // the caller lacks the scope or the access
	OutcomeInvalid = "invalid" // the request was malformed (unknown tool, bad arguments)
)

// Search channels (label channel of codingbrain_search_duration_seconds).
const (
	ChannelREST = "rest"
	ChannelMCP  = "mcp"
)

// Metrics holds every Coding Brain metric. Create it once per process with
// NewMetrics and pass it to the parts that record. A nil *Metrics is valid:
// every method on it does nothing, so a part built without metrics (a CLI
// command, a test) needs no checks. The fields are exported for the few
// callers that need a vector directly; prefer the methods.
type Metrics struct {
	// HTTP, by ServeMux route pattern ("unmatched" when none matched).
	HTTPRequests        *prometheus.CounterVec   // codingbrain_http_requests_total{method,route,code}
	HTTPRequestDuration *prometheus.HistogramVec // codingbrain_http_request_duration_seconds{method,route}
	HTTPInFlight        prometheus.Gauge         // codingbrain_http_requests_in_flight

	// MCP.
	MCPToolCalls        *prometheus.CounterVec   // codingbrain_mcp_tool_calls_total{tool,outcome}
	MCPToolCallDuration *prometheus.HistogramVec // codingbrain_mcp_tool_call_duration_seconds{tool}
	MCPSessionsActive   prometheus.Gauge         // codingbrain_mcp_sessions_active

	// Search, store and embedder.
	SearchDuration          *prometheus.HistogramVec // codingbrain_search_duration_seconds{channel}
	StoreOperationDuration  *prometheus.HistogramVec // codingbrain_store_operation_duration_seconds{op}
	StoreErrors             *prometheus.CounterVec   // codingbrain_store_errors_total{op}
	EmbedderRequestDuration prometheus.Histogram     // codingbrain_embedder_request_duration_seconds
	EmbedderErrors          prometheus.Counter       // codingbrain_embedder_errors_total

	// Resilience, security and dependencies.
	BreakerStates       *prometheus.GaugeVec   // codingbrain_breaker_state{name}
	RateLimitRejections *prometheus.CounterVec // codingbrain_rate_limit_rejections_total{class}
	AuthFailures        *prometheus.CounterVec // codingbrain_auth_failures_total{reason}
	DependencyUp        *prometheus.GaugeVec   // codingbrain_dependency_up{name}

	// Backups.
	BackupLastSuccess       prometheus.Gauge // codingbrain_backup_last_success_timestamp_seconds
	BackupVerifyLastSuccess prometheus.Gauge // codingbrain_backup_verify_last_success_timestamp_seconds

	// Tiers (memory.Tiers).
	TierMoves    *prometheus.CounterVec // codingbrain_tier_moves_total{direction}
	TierMemories *prometheus.GaugeVec   // codingbrain_tier_memories{tier}

	BuildInfo *prometheus.GaugeVec // codingbrain_build_info{version,revision,goversion}, always 1
}

// Histogram buckets, in seconds.
var (
	// httpBuckets spans a cached read (1 ms) to a slow export (10 s).
	httpBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// searchBuckets is dense around the 50 ms search SLO (docs/slo.md): the
	// recording rules read le="0.05".
	searchBuckets = []float64{0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5}
	// storeBuckets: most statements take well under a millisecond on SQLite.
	storeBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	// embedderBuckets: the built-in embedder answers in well under a
	// millisecond, a remote one in tens to hundreds.
	embedderBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// NewMetrics creates the metrics and registers them, with the Go runtime and
// process collectors, on reg. Registering twice on one registry fails.
func NewMetrics(reg prometheus.Registerer, build Build) (*Metrics, error) {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_http_requests_total",
			Help: "HTTP requests answered, by method, ServeMux route pattern and status code.",
		}, []string{"method", "route", "code"}),
		HTTPRequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "codingbrain_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and route pattern.",
			Buckets: httpBuckets,
		}, []string{"method", "route"}),
		HTTPInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codingbrain_http_requests_in_flight",
			Help: "HTTP requests being answered now (open streams included).",
		}),
		MCPToolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_mcp_tool_calls_total",
			Help: "MCP tool calls, by tool and outcome (ok, error, denied, invalid).",
		}, []string{"tool", "outcome"}),
		MCPToolCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "codingbrain_mcp_tool_call_duration_seconds",
			Help:    "Time to run an MCP tool call, by tool.",
			Buckets: httpBuckets,
		}, []string{"tool"}),
		MCPSessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codingbrain_mcp_sessions_active",
			Help: "MCP sessions open on this instance.",
		}),
		SearchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "codingbrain_search_duration_seconds",
			Help:    "Time to answer a search, by channel (rest, mcp).",
			Buckets: searchBuckets,
		}, []string{"channel"}),
		StoreOperationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "codingbrain_store_operation_duration_seconds",
			Help:    "Time of a store operation, by operation (the memory.Store method).",
			Buckets: storeBuckets,
		}, []string{"op"}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_store_errors_total",
			Help: "Store operations that failed for another reason than not found, conflict or validation, by operation.",
		}, []string{"op"}),
		EmbedderRequestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "codingbrain_embedder_request_duration_seconds",
			Help:    "Time of an embedder request (one batch of texts).",
			Buckets: embedderBuckets,
		}),
		EmbedderErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codingbrain_embedder_errors_total",
			Help: "Embedder requests that failed.",
		}),
		BreakerStates: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codingbrain_breaker_state",
			Help: "State of a circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, []string{"name"}),
		RateLimitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_rate_limit_rejections_total",
			Help: "Requests rejected with 429 by the rate limiter, by limit class.",
		}, []string{"class"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_auth_failures_total",
			Help: "Requests whose credentials were refused, by reason.",
		}, []string{"reason"}),
		DependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codingbrain_dependency_up",
			Help: "Whether a dependency (store, valkey, embedder) answered its last check: 1 up, 0 down.",
		}, []string{"name"}),
		BackupLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codingbrain_backup_last_success_timestamp_seconds",
			Help: "Unix time of the last successful backup; 0 when none succeeded since start.",
		}),
		BackupVerifyLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codingbrain_backup_verify_last_success_timestamp_seconds",
			Help: "Unix time of the last backup restored and verified successfully; 0 when none since start.",
		}),
		TierMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codingbrain_tier_moves_total",
			Help: "Memories moved between tiers: direction cold by the tiering job, hot when a cold memory is read by id (a write brings one back in its own transaction, uncounted).",
		}, []string{"direction"}),
		TierMemories: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codingbrain_tier_memories",
			Help: "Memories of every org in each tier (hot, cold), as the last tiering run counted them.",
		}, []string{"tier"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codingbrain_build_info",
			Help: "Always 1; the labels name the running build.",
		}, []string{"version", "revision", "goversion"}),
	}
	cs := []prometheus.Collector{
		m.HTTPRequests, m.HTTPRequestDuration, m.HTTPInFlight,
		m.MCPToolCalls, m.MCPToolCallDuration, m.MCPSessionsActive,
		m.SearchDuration, m.StoreOperationDuration, m.StoreErrors,
		m.EmbedderRequestDuration, m.EmbedderErrors,
		m.BreakerStates, m.RateLimitRejections, m.AuthFailures, m.DependencyUp,
		m.BackupLastSuccess, m.BackupVerifyLastSuccess, m.TierMoves, m.TierMemories, m.BuildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	v, r := build.Version, build.Revision
	if v == "" {
		v = "unknown"
	}
	if r == "" {
		r = "unknown"
	}
	m.BuildInfo.WithLabelValues(v, r, runtime.Version()).Set(1)
	return m, nil
}

// ObserveHTTP records one answered HTTP request.
func (m *Metrics) ObserveHTTP(method, route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.HTTPRequests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.HTTPRequestDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// HTTPInFlightAdd moves codingbrain_http_requests_in_flight by delta (+1
// when a request starts, -1 when it ends).
func (m *Metrics) HTTPInFlightAdd(delta float64) {
	if m == nil {
		return
	}
	m.HTTPInFlight.Add(delta)
}

// ObserveToolCall records one MCP tool call with its outcome (OutcomeOK…).
func (m *Metrics) ObserveToolCall(tool, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.MCPToolCalls.WithLabelValues(tool, outcome).Inc()
	m.MCPToolCallDuration.WithLabelValues(tool).Observe(d.Seconds())
}

// ObserveSearch records the time of one search on a channel (ChannelREST, ChannelMCP).
func (m *Metrics) ObserveSearch(channel string, d time.Duration) {
	if m == nil {
		return
	}
	m.SearchDuration.WithLabelValues(channel).Observe(d.Seconds())
}

// ObserveStore records one store operation; failed says whether it counts
// as a store error (see codingbrain_store_errors_total).
func (m *Metrics) ObserveStore(op string, d time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.StoreOperationDuration.WithLabelValues(op).Observe(d.Seconds())
	if failed {
		m.StoreErrors.WithLabelValues(op).Inc()
	}
}

// ObserveEmbedder records one embedder request.
func (m *Metrics) ObserveEmbedder(d time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.EmbedderRequestDuration.Observe(d.Seconds())
	if failed {
		m.EmbedderErrors.Inc()
	}
}

// SetBreakerState records the state of the named circuit breaker. Call it
// from the breaker's OnStateChange and once when the breaker is created.
func (m *Metrics) SetBreakerState(name string, s BreakerState) {
	if m == nil {
		return
	}
	m.BreakerStates.WithLabelValues(name).Set(float64(s))
}

// RateLimitRejected counts one request rejected by the limit class.
func (m *Metrics) RateLimitRejected(class string) {
	if m == nil {
		return
	}
	m.RateLimitRejections.WithLabelValues(class).Inc()
}

// AuthFailed counts one refused credential, by a short fixed reason
// ("missing", "invalid", "expired", "revoked", "dpop"…), never the credential.
func (m *Metrics) AuthFailed(reason string) {
	if m == nil {
		return
	}
	m.AuthFailures.WithLabelValues(reason).Inc()
}

// SetDependencyUp records the outcome of the last check of a dependency
// ("store", "valkey", "embedder").
func (m *Metrics) SetDependencyUp(name string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.DependencyUp.WithLabelValues(name).Set(v)
}

// SessionOpened and SessionClosed keep codingbrain_mcp_sessions_active.
func (m *Metrics) SessionOpened() {
	if m == nil {
		return
	}
	m.MCPSessionsActive.Inc()
}

// SessionClosed: see SessionOpened.
func (m *Metrics) SessionClosed() {
	if m == nil {
		return
	}
	m.MCPSessionsActive.Dec()
}

// BackupSucceeded records the end time of a successful backup.
func (m *Metrics) BackupSucceeded(t time.Time) {
	if m == nil {
		return
	}
	m.BackupLastSuccess.Set(float64(t.UnixNano()) / 1e9)
}

// BackupVerified records the time of a successful backup verification.
func (m *Metrics) BackupVerified(t time.Time) {
	if m == nil {
		return
	}
	m.BackupVerifyLastSuccess.Set(float64(t.UnixNano()) / 1e9)
}

// TierMoved records n memories moved to the tier named by direction
// (memory.TierHot or memory.TierCold).
func (m *Metrics) TierMoved(direction string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.TierMoves.WithLabelValues(direction).Add(float64(n))
}

// SetTierCounts records how many memories each tier holds.
func (m *Metrics) SetTierCounts(hot, cold int64) {
	if m == nil {
		return
	}
	m.TierMemories.WithLabelValues("hot").Set(float64(hot))
	m.TierMemories.WithLabelValues("cold").Set(float64(cold))
}
