package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// DefaultWriteTimeout bounds one audit write.
const DefaultWriteTimeout = 2 * time.Second

// Recorder writes events to a Store for the request paths (REST, MCP, the
// memory service). A nil *Recorder records nothing.
//
// Writes are synchronous, bounded by a timeout, and never fail the
// request:
//
//   - Synchronous, because the event is then in the chain before the
//     caller sees the response: a client that was refused, or whose delete
//     succeeded, can never observe the outcome without the record, and a
//     crash right after the response loses nothing. The request path
//     already depends on the same database (a deletion cannot succeed
//     while it is down), and an append is one short transaction.
//   - Bounded: a write that has not finished after WriteTimeout is given
//     up, so a stuck database delays a response by at most that much. The
//     write does not inherit the request's cancellation: a client that
//     hangs up does not cancel the record of what it did.
//   - Never failing the request: an audit write failure does not turn a
//     successful request (or a 401/403) into another answer. It is logged
//     at ERROR level as "audit write failed" with the whole event (which
//     never holds secrets), so the event survives in the logs and the
//     failure is visible; Failures counts them.
type Recorder struct {
	store    Store
	log      *slog.Logger
	now      func() time.Time
	timeout  time.Duration
	failures atomic.Int64
}

// RecorderOptions configure a Recorder. Zero values take defaults.
type RecorderOptions struct {
	Logger       *slog.Logger     // where failures go; nothing by default
	Now          func() time.Time // clock; time.Now by default
	WriteTimeout time.Duration    // DefaultWriteTimeout by default
}

// NewRecorder returns a Recorder writing to store.
func NewRecorder(store Store, opts RecorderOptions) *Recorder {
	r := &Recorder{store: store, log: opts.Logger, now: opts.Now, timeout: opts.WriteTimeout}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.timeout <= 0 {
		r.timeout = DefaultWriteTimeout
	}
	return r
}

// Record appends e. Empty fields are filled from ctx: At from the clock;
// OrgID and Actor from the principal in ctx (auth.WithPrincipal), else
// Actor is ActorAnonymous; RequestID and RemoteAddr from WithRequest.
// Failures are logged, never returned (see Recorder).
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil {
		return
	}
	if e.At.IsZero() {
		e.At = r.now()
	}
	if p, ok := auth.PrincipalFrom(ctx); ok {
		if e.Actor == "" {
			e.Actor = p.Subject
		}
		if e.OrgID == "" && e.Actor == p.Subject {
			e.OrgID = p.OrgID
		}
	}
	if info, ok := ctx.Value(requestKey{}).(requestInfo); ok {
		if e.RequestID == "" {
			e.RequestID = info.id
		}
		if e.RemoteAddr == "" {
			e.RemoteAddr = info.remote
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	if _, err := r.store.AppendAudit(wctx, e); err != nil {
		r.failures.Add(1)
		r.log.ErrorContext(ctx, "audit write failed", "err", err,
			slog.Group("event", "at", e.At, "org_id", e.OrgID, "actor", e.Actor, "action", e.Action,
				"target", e.Target, "outcome", e.Outcome, "remote_addr", e.RemoteAddr,
				"request_id", e.RequestID, "detail", e.Detail))
	}
}

// Failures is how many events could not be written since the Recorder
// was made.
func (r *Recorder) Failures() int64 {
	if r == nil {
		return 0
	}
	return r.failures.Load()
}

// ErrNoStore is returned by List of a nil Recorder.
var ErrNoStore = errors.New("audit: no audit store configured")

// List returns one org's records with Seq > after, at most limit.
func (r *Recorder) List(ctx context.Context, orgID string, after int64, limit int) ([]Record, error) {
	if r == nil {
		return nil, ErrNoStore
	}
	recs, err := r.store.ListAudit(ctx, orgID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit records: %w", err)
	}
	return recs, nil
}

type requestKey struct{}

type requestInfo struct{ id, remote string }

// WithRequest returns ctx carrying the request id and the client address
// (a host; a host:port is cut to the host) that Record puts into events
// without them. Transports call it once per request.
func WithRequest(ctx context.Context, requestID, remoteAddr string) context.Context {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		remoteAddr = host
	}
	return context.WithValue(ctx, requestKey{}, requestInfo{id: requestID, remote: remoteAddr})
}

// AuthFailureReason classifies an authentication error for Detail without
// quoting it (the error text may echo what the client sent).
func AuthFailureReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return "no_credentials"
	case errors.Is(err, auth.ErrDPoPBinding):
		return "dpop_binding"
	case errors.Is(err, auth.ErrInvalidDPoPProof):
		return "invalid_dpop_proof"
	case errors.Is(err, auth.ErrInvalidToken):
		return "invalid_token"
	case err == nil:
		return ""
	}
	return "error"
}
