package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Alert is the webhook body sent when a verification does not pass. It is
// one JSON object that both a Slack incoming webhook (text) and a receiver
// of Alertmanager's webhook format (version 4: status, alerts, labels,
// annotations) read; report carries the whole verification report.
type Alert struct {
	Text              string            `json:"text"`
	Version           string            `json:"version"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	Alerts            []AlertItem       `json:"alerts"`
	Report            *Report           `json:"report"`
}

// AlertItem is one alert of Alert.
type AlertItem struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

// AlertName is the alertname label of the webhook alert.
const AlertName = "CodingBrainBackupVerifyFailed"

// NewAlert builds the webhook body for r.
func NewAlert(r *Report) Alert {
	labels := map[string]string{
		"alertname": AlertName,
		"severity":  "critical",
		"service":   "codingbrain",
		"verdict":   r.Status,
	}
	if r.Archive != "" {
		labels["archive"] = r.Archive
	}
	var failed []string
	for _, c := range r.Failed() {
		failed = append(failed, c.Name)
	}
	ann := map[string]string{
		"summary":     r.Summary(),
		"description": "codingbrain backup verify found: " + strings.Join(failed, ", ") + ". See docs/runbooks/backup-restore.md.",
	}
	return Alert{
		Text:    ":rotating_light: " + r.Summary(),
		Version: "4", Status: "firing", Receiver: "codingbrain-backup-verify",
		GroupLabels:  map[string]string{"alertname": AlertName},
		CommonLabels: labels, CommonAnnotations: ann,
		Alerts: []AlertItem{{Status: "firing", Labels: labels, Annotations: ann, StartsAt: r.StartedAt}},
		Report: r,
	}
}

// PostAlert posts NewAlert(r) to url as JSON and expects a 2xx answer.
func PostAlert(ctx context.Context, client *http.Client, url string, r *Report) error {
	body, err := json.Marshal(NewAlert(r))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: answered %s", resp.Status)
	}
	return nil
}

// Metric names of a verification.
const (
	MetricVerifyLastSuccess = "codingbrain_backup_verify_last_success_timestamp_seconds"
	MetricVerifyLastRun     = "codingbrain_backup_verify_last_run_timestamp_seconds"
	MetricVerifyDuration    = "codingbrain_backup_verify_duration_seconds"
	MetricVerifyStatus      = "codingbrain_backup_verify_last_status"
)

// StatusValue is the value of codingbrain_backup_verify_last_status for
// a report: its exit code (0 ok, 1 bad, 2 could not verify).
func StatusValue(r *Report) float64 { return float64(r.ExitCode()) }

// VerifyMetrics are the gauges of the last verification run (the last
// success timestamp is telemetry's, on serve's registry, or the textfile's).
type VerifyMetrics struct {
	LastRun  prometheus.Gauge
	Duration prometheus.Gauge
	Status   prometheus.Gauge
}

// NewVerifyMetrics registers the gauges on reg.
func NewVerifyMetrics(reg prometheus.Registerer) (*VerifyMetrics, error) {
	m := &VerifyMetrics{
		LastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricVerifyLastRun,
			Help: "Unix time the last backup verification finished, whatever its outcome."}),
		Duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricVerifyDuration,
			Help: "Seconds the last backup verification took."}),
		Status: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricVerifyStatus,
			Help: "Outcome of the last backup verification: 0 verified, 1 backup bad, 2 could not verify."}),
	}
	for _, c := range []prometheus.Collector{m.LastRun, m.Duration, m.Status} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Record sets the gauges from r, which finished at end.
func (m *VerifyMetrics) Record(r *Report, end time.Time) {
	if m == nil {
		return
	}
	m.LastRun.Set(float64(end.UnixNano()) / 1e9)
	m.Duration.Set(r.Seconds)
	m.Status.Set(StatusValue(r))
}

// WriteTextfile writes the verification metrics of r to path in the
// Prometheus text format (for node_exporter's textfile collector),
// atomically. The last success timestamp is r's end when r passed, else
// the value the file held before (0 when none), so a failure never hides
// when the last good verification was.
func WriteTextfile(path string, r *Report, end time.Time) error {
	reg := prometheus.NewRegistry()
	m, err := NewVerifyMetrics(reg)
	if err != nil {
		return err
	}
	m.Record(r, end)
	last := prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricVerifyLastSuccess,
		Help: "Unix time of the last backup restored and verified successfully."})
	reg.MustRegister(last)
	if r.Status == StatusOK {
		last.Set(float64(end.UnixNano()) / 1e9)
	} else {
		last.Set(previousValue(path, MetricVerifyLastSuccess))
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("write metrics to %s: %w", path, err)
	}
	return nil
}

// previousValue reads metric from a text-format file, or 0.
func previousValue(path, metric string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == metric {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// Metric names of a backup.
const (
	MetricBackupLastSuccess = "codingbrain_backup_last_success_timestamp_seconds"
	MetricBackupDuration    = "codingbrain_backup_duration_seconds"
	MetricBackupSize        = "codingbrain_backup_size_bytes"
	MetricBackupLastStatus  = "codingbrain_backup_last_status"
)

// WriteCreateTextfile writes the metrics of a backup run that ended at end
// to path (Prometheus text format, atomically): the last success
// timestamp (kept from the file when this run failed), the duration and
// size of the last successful backup, and the last status (0 ok, 1 failed).
func WriteCreateTextfile(path string, res *Result, failed bool, end time.Time) error {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	last := gauge(MetricBackupLastSuccess, "Unix time of the last successful backup.")
	status := gauge(MetricBackupLastStatus, "Outcome of the last backup run: 0 succeeded, 1 failed.")
	if failed || res == nil {
		last.Set(previousValue(path, MetricBackupLastSuccess))
		status.Set(1)
	} else {
		last.Set(float64(end.UnixNano()) / 1e9)
		gauge(MetricBackupDuration, "Seconds the last successful backup took.").Set(res.Took.Seconds())
		gauge(MetricBackupSize, "Size in bytes of the last successful backup's archive.").Set(float64(res.Size))
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("write metrics to %s: %w", path, err)
	}
	return nil
}
