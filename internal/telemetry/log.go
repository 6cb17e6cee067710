package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// LogOptions configure NewLogger.
type LogOptions struct {
	// Format is "json" or "text".
	Format string
	// Level is the lowest level written.
	Level slog.Level
	// Redact, when set, scrubs the configuration's secrets (database and
	// Valkey passwords, the embedder's API key) out of every string value,
	// the message included: config.Config.Redact.
	Redact func(string) string
}

// Redacted is what a secret is written as.
const Redacted = "[redacted]"

// secretKeys are attribute keys whose value is never written, whatever it
// is: a credential logged by mistake under one of these names still does
// not leave the process.
var secretKeys = []string{"token", "authorization", "password", "secret", "api_key", "apikey", "cookie", "dpop", "bearer", "credential"}

// isSecretKey reports whether an attribute key names a credential. Keys
// about a credential that are not the credential (token_id, token_type,
// key_id…) are allowed.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "_type") || strings.HasSuffix(k, "_count") {
		return false
	}
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// NewLogger returns the server's structured logger writing to w. Secrets
// are redacted by construction: an attribute whose key names a credential
// (token, authorization, password, secret, api_key, cookie, dpop…) is
// written as [redacted], a Secret value always is, and with Redact every
// string is scrubbed of the configuration's secrets. Records logged with a
// context that carries a span get trace_id and span_id.
func NewLogger(w io.Writer, o LogOptions) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: replaceAttr(o.Redact)}
	var h slog.Handler
	if o.Format == "text" {
		h = slog.NewTextHandler(w, ho)
	} else {
		h = slog.NewJSONHandler(w, ho)
	}
	return slog.New(&traceHandler{Handler: h, redact: o.Redact})
}

func replaceAttr(redact func(string) string) func([]string, slog.Attr) slog.Attr {
	return func(_ []string, a slog.Attr) slog.Attr {
		if isSecretKey(a.Key) {
			return slog.String(a.Key, Redacted)
		}
		if redact == nil {
			return a
		}
		switch a.Value.Kind() {
		case slog.KindString:
			if s := a.Value.String(); s != "" {
				if r := redact(s); r != s {
					return slog.String(a.Key, r)
				}
			}
		case slog.KindAny:
			if err, ok := a.Value.Any().(error); ok {
				if s, r := err.Error(), redact(err.Error()); r != s {
					return slog.String(a.Key, r)
				}
			}
		}
		return a
	}
}

// Secret is a credential carried as a log attribute by mistake or on
// purpose: it is always written as [redacted].
type Secret string

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// String keeps a Secret out of fmt output too.
func (Secret) String() string { return Redacted }

// traceHandler adds the trace and span ids of the record's context and
// scrubs the message.
type traceHandler struct {
	slog.Handler
	redact func(string) string
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.redact != nil {
		if m := h.redact(r.Message); m != r.Message {
			nr := slog.NewRecord(r.Time, r.Level, m, r.PC)
			r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
			r = nr
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !hasTraceAttr(r) {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func hasTraceAttr(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "trace_id" {
			found = true
			return false
		}
		return true
	})
	return found
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithAttrs(as), redact: h.redact}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithGroup(name), redact: h.redact}
}
