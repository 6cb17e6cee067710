package mcpserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// Observability of MCP: observe is a receiving middleware on the SDK server
// (every transport goes through it) that gives each tool call
//
//   - a span "mcp.tool <name>", the child of the W3C traceparent in the
//     request's params._meta (the way MCP 2026-07-28 clients carry trace
//     context) or else of the HTTP request that carried the call (its span,
//     which httpapi also writes into the request's traceparent header, so
//     that calls on a long-lived session find it); store and embedder spans
//     of the call are its children;
//   - one log line "mcp tool call" with tool, outcome, duration, request id,
//     principal, trace and span ids;
//   - codingbrain_mcp_tool_calls_total{tool,outcome} and its duration, and
//     codingbrain_search_duration_seconds{channel="mcp"} for search_memory.
//
// Outcomes: ok; error (the tool answered isError: bad input, not found, a
// failure); denied (the token lacks the tool's scope — also counted when
// the HTTP transport refuses the call with 403 before the SDK sees it, see
// toolDenied); invalid (a protocol error: unknown tool, arguments that do
// not match the schema).
//
// It also keeps codingbrain_mcp_sessions_active: a session counts from its
// notifications/initialized until it ends.

// Trace context keys in params._meta.
const (
	metaTraceparent = "traceparent"
	metaTracestate  = "tracestate"
)

// callRecord lets the tool (through toolDenied) tell observe that it
// refused the call for a missing scope.
type callRecord struct{ denied bool }

type callRecordKey struct{}

// observe is the receiving middleware; see above.
func (s *Server) observe(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "notifications/initialized" && s.opts.Metrics != nil {
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok {
				s.opts.Metrics.SessionOpened()
				// The goroutine ends with the session: Wait returns when
				// its connection closes.
				go func() {
					_ = ss.Wait()
					s.opts.Metrics.SessionClosed()
				}()
			}
		}
		call, ok := req.(*mcp.CallToolRequest)
		if !ok || call.Params == nil {
			return next(ctx, method, req)
		}
		tool := call.Params.Name
		ctx = parentContext(ctx, call)
		ctx, span := s.tracer.Start(ctx, "mcp.tool "+tool, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("mcp.method.name", method), attribute.String("gen_ai.tool.name", tool)))
		rec := &callRecord{}
		ctx = context.WithValue(ctx, callRecordKey{}, rec)
		start := time.Now()
		res, err := next(ctx, method, req)
		d := time.Since(start)

		outcome := telemetry.OutcomeOK
		switch r, _ := res.(*mcp.CallToolResult); {
		case rec.denied:
			outcome = telemetry.OutcomeDenied
		case err != nil:
			outcome = telemetry.OutcomeInvalid
			var werr *jsonrpc.Error
			if !errors.As(err, &werr) {
				outcome = telemetry.OutcomeError
			}
		case r != nil && r.IsError:
			outcome = telemetry.OutcomeError
		}
		span.SetAttributes(attribute.String("codingbrain.outcome", outcome))
		if outcome != telemetry.OutcomeOK {
			span.SetStatus(codes.Error, outcome)
		}
		span.End()
		s.opts.Metrics.ObserveToolCall(tool, outcome, d)
		if tool == "search_memory" && outcome == telemetry.OutcomeOK {
			s.opts.Metrics.ObserveSearch(telemetry.ChannelMCP, d)
		}
		s.logToolCall(ctx, call, tool, outcome, d, span.SpanContext())
		return res, err
	}
}

// parentContext makes the trace context in params._meta, when there is
// one, the parent of the call's span; else the HTTP request's, found in
// the traceparent header httpapi set on the request that carried the call
// to its server span; else whatever ctx carries (stdio: the caller's).
func parentContext(ctx context.Context, call *mcp.CallToolRequest) context.Context {
	if meta := call.Params.GetMeta(); meta != nil {
		if tp, _ := meta[metaTraceparent].(string); tp != "" {
			carrier := propagation.MapCarrier{metaTraceparent: tp}
			if ts, _ := meta[metaTracestate].(string); ts != "" {
				carrier[metaTracestate] = ts
			}
			if pctx := telemetry.Propagator.Extract(ctx, carrier); trace.SpanContextFromContext(pctx).IsValid() {
				return pctx
			}
		}
	}
	// The header first: a session's context is the one of the request
	// that opened it (initialize), long ended.
	if call.Extra != nil && call.Extra.Header != nil {
		if pctx := telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(call.Extra.Header)); trace.SpanContextFromContext(pctx).IsValid() {
			return pctx
		}
	}
	return ctx
}

func (s *Server) logToolCall(ctx context.Context, call *mcp.CallToolRequest, tool, outcome string, d time.Duration, sc trace.SpanContext) {
	attrs := []any{"tool", tool, "outcome", outcome, "duration_ms", float64(d.Microseconds()) / 1000}
	var h http.Header
	if call.Extra != nil {
		h = call.Extra.Header
	}
	if id := h.Get("X-Request-ID"); id != "" {
		attrs = append(attrs, "request_id", id)
	}
	var p auth.Principal
	if call.Extra != nil && call.Extra.TokenInfo != nil {
		p, _ = principalOf(call.Extra.TokenInfo)
	} else {
		p, _ = auth.PrincipalFrom(ctx)
	}
	attrs = append(attrs, "sub", p.Subject, "org_id", p.OrgID)
	if sc.IsValid() {
		attrs = append(attrs, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
	}
	s.log.Log(ctx, slog.LevelInfo, "mcp tool call", attrs...)
}

// toolDenied notes a tool call refused for a missing scope. Inside a tool
// (stdio, legacy SSE, or a session) observe records it; a call the HTTP
// transport refused with 403 before the SDK saw it (scopeChallenge) is
// recorded here, with no duration worth measuring.
func (s *Server) toolDenied(ctx context.Context, r *http.Request, tool string) {
	if rec, ok := ctx.Value(callRecordKey{}).(*callRecord); ok {
		rec.denied = true
		return
	}
	if r == nil {
		return
	}
	s.opts.Metrics.ObserveToolCall(tool, telemetry.OutcomeDenied, 0)
	p, _ := r.Context().Value(verifiedKey{}).(auth.Principal)
	attrs := []any{"tool", tool, "outcome", telemetry.OutcomeDenied, "duration_ms", 0.0,
		"request_id", r.Header.Get("X-Request-ID"), "sub", p.Subject, "org_id", p.OrgID}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
	}
	s.log.Log(ctx, slog.LevelInfo, "mcp tool call", attrs...)
}
