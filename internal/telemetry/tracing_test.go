package telemetry_test

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/codingbrain/codingbrain/internal/telemetry"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestTracingFromEnvironment: off unless an endpoint or the otlp exporter
// is asked for; unsupported exporters and protocols are refused by name.
func TestTracingFromEnvironment(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"unset":    nil,
		"none":     {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"disabled": {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
	} {
		tr, err := telemetry.NewTracing(t.Context(), envOf(env), telemetry.Build{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, isNoop := tr.Provider.(noop.TracerProvider); tr.Enabled || !isNoop {
			t.Errorf("%s: tracing on (%T), want a no-op provider", name, tr.Provider)
		}
		if err := tr.Shutdown(t.Context()); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
	}
	for name, env := range map[string]map[string]string{
		"endpoint":        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"traces endpoint": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
		"exporter":        {"OTEL_TRACES_EXPORTER": "otlp"},
	} {
		tr, err := telemetry.NewTracing(t.Context(), envOf(env), telemetry.Build{Version: "test"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !tr.Enabled || tr.Endpoint == "" {
			t.Errorf("%s: tracing off, want on", name)
		}
		// Nothing was recorded: shutting down sends nothing.
		if err := tr.Shutdown(t.Context()); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
	}
	for env, want := range map[string]string{
		"OTEL_TRACES_EXPORTER=zipkin":      "OTEL_TRACES_EXPORTER",
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc": "OTEL_EXPORTER_OTLP_PROTOCOL",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := telemetry.NewTracing(t.Context(), envOf(map[string]string{k: v, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}), telemetry.Build{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want one naming %s", env, err, want)
		}
	}
}
