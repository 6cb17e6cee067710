package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check is one dependency the server needs. Critical checks decide
// readiness; every check is listed by /health/deps.
type Check struct {
	Name     string
	Critical bool
	Probe    func(ctx context.Context) error
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
	Status  string      `json:"status"`
	Version string      `json:"version,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Deps    []depStatus `json:"deps,omitempty"`
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
	mu     sync.Mutex
	at     time.Time
	last   []depStatus
}

func newHealthCache(checks []Check, now func() time.Time, log *slog.Logger) *healthCache {
	return &healthCache{checks: checks, now: now, log: log}
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
				if errors.Is(err, context.DeadlineExceeded) {
					d.Error = "no answer within " + probeTimeout.String()
				}
				h.log.Warn("dependency check failed", "dep", c.Name, "err", err)
			}
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
// dependency answers (for the store: reachable with a current schema).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthReport{Status: "unavailable", Reason: "shutting down"})
		return
	}
	for _, d := range s.health.run(r.Context()) {
		if d.Critical && d.Status != "ok" {
			writeJSON(w, http.StatusServiceUnavailable, healthReport{Status: "unavailable", Reason: d.Name + " is unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, healthReport{Status: "ok"})
}

// deps lists every dependency with status and latency; 503 when one is down.
func (s *Server) deps(w http.ResponseWriter, r *http.Request) {
	deps := s.health.run(r.Context())
	rep := healthReport{Status: "ok", Deps: deps}
	status := http.StatusOK
	for _, d := range deps {
		if d.Status != "ok" {
			rep.Status, status = "unavailable", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, rep)
}
