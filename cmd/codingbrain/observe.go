package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/term"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// observability is what serve records into and exports: the Prometheus
// registry with the metrics, the tracing, and the /metrics handler.
type observability struct {
	metrics *telemetry.Metrics
	tracing *telemetry.Tracing
	// handler serves the registry in the Prometheus text format.
	handler http.Handler
	// registry takes the metrics of parts that define their own
	// (the retention purge).
	registry prometheus.Registerer
}

// newObservability makes the metrics (on a registry of their own, with
// build info from version.go) and the tracing configured by the OTEL_*
// variables of e.
func newObservability(ctx context.Context, e env, log *slog.Logger) (*observability, error) {
	v, c, _ := buildInfo()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.Build{Version: v, Revision: c})
	if err != nil {
		return nil, err
	}
	tr, err := telemetry.NewTracing(ctx, e.getenv, telemetry.Build{Version: v, Revision: c})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if tr.Enabled {
		log.Info("tracing", "exporter", "otlp", "endpoint", config.MaskURL(tr.Endpoint))
	} else {
		log.Info("tracing off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)")
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Registry: reg, // promhttp_metric_handler_errors_total
	})
	return &observability{metrics: m, tracing: tr, handler: h, registry: reg}, nil
}

// shutdown flushes the spans still queued, within ctx.
func (o *observability) shutdown(ctx context.Context, log *slog.Logger) {
	if err := o.tracing.Shutdown(ctx); err != nil {
		log.Warn("tracing shutdown", "err", err)
	}
}

// startMetricsListener serves /metrics and /debug/pprof/ WITHOUT
// authentication on addr, for the internal network (Prometheus scrapes,
// profiling). It warns when addr is not a loopback address. The returned
// stop closes the listener and waits for it within ctx.
func startMetricsListener(addr string, metrics http.Handler, log *slog.Logger) (stop func(context.Context), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on metrics_addr: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	if !config.IsLoopback(host) {
		log.Warn("metrics_addr is not a loopback address: /metrics and /debug/pprof/ are served there WITHOUT authentication; keep it on the internal network", "metrics_addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	log.Info("serving metrics and pprof without authentication", "metrics_addr", ln.Addr().String())
	return func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}, ln.Addr().String(), nil
}

// newLogger is serve's logger: JSON, or text when log_format says so or
// is auto and stderr is a terminal; the configuration's secrets are
// scrubbed from every line (telemetry.NewLogger).
func newLogger(cfg config.Config, e env) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	return telemetry.NewLogger(e.stderr, telemetry.LogOptions{Format: format, Level: level, Redact: cfg.Redact})
}
