package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of every Coding Brain span.
const ScopeName = "github.com/codingbrain/codingbrain"

// Propagator reads and writes the W3C traceparent and tracestate headers.
// It is the only propagation format Coding Brain speaks.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracing is the process's OpenTelemetry tracing: a TracerProvider to hand
// to the parts that make spans, and a Shutdown that flushes what is queued.
type Tracing struct {
	// Provider makes the tracers. A no-op provider when tracing is off:
	// spans cost a context lookup and nothing is exported.
	Provider trace.TracerProvider
	// Enabled says whether spans are exported.
	Enabled bool
	// Endpoint is where spans go (for the start-up log line), empty when off.
	Endpoint string

	sdk *sdktrace.TracerProvider
}

// NewTracing configures tracing from the standard OpenTelemetry environment
// variables, read through getenv:
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: off.
//   - OTEL_TRACES_EXPORTER=otlp, or OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set: spans are exported with OTLP
//     over HTTP (protobuf) in batches. The exporter reads the endpoint,
//     OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE… itself.
//   - none of them: off — a no-op provider, no exporter, no goroutine.
//
// OTEL_SERVICE_NAME (default "codingbrain") and OTEL_RESOURCE_ATTRIBUTES
// name the resource; OTEL_TRACES_SAMPLER and _ARG choose the sampler
// (parentbased_always_on by default, so an incoming sampled traceparent is
// honoured). Only the otlp exporter and the http/protobuf protocol are
// built in; asking for another is an error naming the variable.
func NewTracing(ctx context.Context, getenv func(string) string, build Build) (*Tracing, error) {
	off := &Tracing{Provider: noop.NewTracerProvider()}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return off, nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	endpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if endpoint == "" {
		endpoint = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	}
	switch exporter {
	case "none":
		return off, nil
	case "":
		if endpoint == "" {
			return off, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported; use otlp or none", exporter)
	}
	proto := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if proto == "" {
		proto = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	if proto != "" && proto != "http/protobuf" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported; use http/protobuf", proto)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := newResource(ctx, getenv, build)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	if endpoint == "" {
		endpoint = "http://localhost:4318"
	}
	return &Tracing{Provider: tp, Enabled: true, Endpoint: endpoint, sdk: tp}, nil
}

// NewTestTracing is tracing that hands every ended span to exp (such as a
// tracetest.InMemoryExporter) synchronously, for tests.
func NewTestTracing(exp sdktrace.SpanExporter) *Tracing {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	return &Tracing{Provider: tp, Enabled: true, sdk: tp}
}

func newResource(ctx context.Context, getenv func(string) string, build Build) (*resource.Resource, error) {
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if name == "" {
		name = "codingbrain"
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", name),
		attribute.String("service.version", build.Version),
	}
	// WithFromEnv comes last so that OTEL_RESOURCE_ATTRIBUTES wins.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(),
		resource.WithHost(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}

// Shutdown exports the spans still queued and stops the exporter; ctx
// bounds the wait. It does nothing when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}

// Tracer returns the Coding Brain tracer of tp, or a no-op tracer when tp
// is nil.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(ScopeName)
}
