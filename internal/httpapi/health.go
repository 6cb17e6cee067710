package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Check is one dependency the server needs. Critical checks decide
// readiness; every check is listed by /health/deps.
type Check struct {
	Name     string
	Critical bool
	Probe    func(ctx context.Context) error
	// Public means the probe's errors name nothing secret (no host, user
	// or database) and are shown as they are; others show only their kind.
	Public bool
}

// depStatus is one dependency in /health/deps.
type depStatus struct {
	Name      string  `json:"name"`
	Status    string  `json:"status"`
	Critical  bool    `json:"critical"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

type healthReport struct {
	Status   string          `json:"status"`
	Version  string          `json:"version,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Deps     []depStatus     `json:"deps,omitempty"`
	Breakers []breakerStatus `json:"breakers,omitempty"`
}

// Breaker is a circuit breaker shown by /health/deps.
type Breaker struct {
	Name string
	// State is "closed", "half-open" or "open".
	State func() string
}

type breakerStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// probeTimeout bounds each dependency check; cacheFor keeps results briefly
// so that frequent probes cannot overload a store.
const (
	probeTimeout = 2 * time.Second
	cacheFor     = time.Second
)

// healthCache runs the checks concurrently and remembers the result for
// cacheFor.
type healthCache struct {
	checks []Check
	now    func() time.Time
	log    *slog.Logger
	onDep  func(name string, up bool)
	mu     sync.Mutex
	at     time.Time
	last   []depStatus
}

func newHealthCache(checks []Check, now func() time.Time, log *slog.Logger, onDep func(string, bool)) *healthCache {
	if onDep == nil {
		onDep = func(string, bool) {}
	}
	return &healthCache{checks: checks, now: now, log: log, onDep: onDep}
}

func (h *healthCache) run(ctx context.Context) []depStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last != nil && h.now().Sub(h.at) < cacheFor {
		return h.last
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out := make([]depStatus, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Go(func() {
			start := time.Now()
			err := c.Probe(ctx)
			d := depStatus{Name: c.Name, Status: "ok", Critical: c.Critical,
				LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				// The health routes need no token: the answer names the
				// kind of failure, the log has the details (which can
				// name hosts, users and databases).
				d.Status, d.Error = "unavailable", "unreachable"
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					d.Error = "no answer within " + probeTimeout.String()
				case c.Public:
					d.Error = err.Error()
				}
				h.log.Warn("dependency check failed", "dep", c.Name, "err", err)
			}
			h.onDep(c.Name, err == nil)
			out[i] = d
		})
	}
	wg.Wait()
	h.at, h.last = h.now(), out
	return out
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthReport{Status: "ok", Version: s.opts.Version})
}

// ready is 200 only when the server is not draining and every critical
// dependency answers (the store reachable, its schema not behind the
// binary).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthReport{Status: "unavailable", Reason: "shutting down"})
		return
	}
	var reasons []string
	for _, d := range s.health.run(r.Context()) {
		if d.Critical && d.Status != "ok" {
			reason := d.Name + " is unavailable"
			if d.Error != "unreachable" {
				reason = d.Name + ": " + d.Error
			}
			reasons = append(reasons, reason)
		}
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, healthReport{Status: "unavailable", Reason: strings.Join(reasons, "; ")})
		return
	}
	writeJSON(w, http.StatusOK, healthReport{Status: "ok"})
}

// deps lists every dependency with status and latency, and every circuit
// breaker with its state; 503 when a dependency is down or the server is
// draining.
func (s *Server) deps(w http.ResponseWriter, r *http.Request) {
	deps := s.health.run(r.Context())
	rep := healthReport{Status: "ok", Deps: deps}
	status := http.StatusOK
	for _, d := range deps {
		if d.Status != "ok" {
			rep.Status, status = "unavailable", http.StatusServiceUnavailable
		}
	}
	for _, b := range s.opts.Breakers {
		rep.Breakers = append(rep.Breakers, breakerStatus{Name: b.Name, State: b.State()})
	}
	if s.draining.Load() {
		rep.Status, rep.Reason, status = "unavailable", "shutting down", http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}
