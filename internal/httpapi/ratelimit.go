package httpapi

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
)

// Rate limits: a token bucket per principal (org and subject; the client
// address for a request without one) and route class. The bucket holds
// Limit requests and refills at Limit per Period, so a client may spend its
// whole allowance at once and then goes at the refill rate. The buckets
// live in the shared state (kv.Store.Allow): with Valkey every replica
// takes from the same bucket, so the limit holds for the whole cluster;
// without it each process counts on its own.
//
// Every limited response carries X-RateLimit-Limit (the bucket's size),
// X-RateLimit-Remaining (whole requests left) and X-RateLimit-Reset
// (seconds until the bucket is full again). A request over the limit is
// 429 with Retry-After (seconds until one request is allowed) and the JSON
// error envelope. If the shared state cannot be reached the request goes
// through (fail open): losing the limit for a while is better than losing
// the service; it is logged and counted.

// Route classes of the rate limits.
const (
	ClassRead   = "read"
	ClassWrite  = "write"
	ClassSearch = "search"
	ClassAdmin  = "admin"
	ClassMCP    = "mcp"
)

// RateClasses are the route classes, in the order documentation lists them.
var RateClasses = []string{ClassRead, ClassWrite, ClassSearch, ClassAdmin, ClassMCP}

// routeClasses is the one table that puts every route in a class: the
// first row whose method (empty: any) and path prefix match.
var routeClasses = []struct{ method, prefix, class string }{
	{"", "/api/v1/admin/", ClassAdmin},
	{"", "/api/v1/audit", ClassAdmin},
	{"", "/api/v1/gdpr/", ClassAdmin},
	{"POST", "/api/v1/search", ClassSearch},
	{"", "/mcp", ClassMCP},
	{"", "/sse", ClassMCP},
	{"GET", "/api/", ClassRead},
	{"", "/api/", ClassWrite},
}

// RouteClass is the rate-limit class of a request to method and path.
func RouteClass(method, path string) string {
	for _, c := range routeClasses {
		if (c.method == "" || c.method == method) && strings.HasPrefix(path, c.prefix) {
			return c.class
		}
	}
	return ClassRead
}

// RateLimit is one class's allowance: Limit requests per Period, all of
// which may come at once. A zero Limit means no limit.
type RateLimit struct {
	Limit  int
	Period time.Duration
}

func (l RateLimit) String() string {
	if l.Limit == 0 {
		return "0"
	}
	if l.Period == time.Minute {
		return strconv.Itoa(l.Limit)
	}
	return fmt.Sprintf("%d/%s", l.Limit, l.Period)
}

// DefaultRateLimits suit coding agents that call the server dozens of
// times a minute each, with room for bursts: per principal and minute,
// 600 reads, 240 writes, 300 searches, 60 admin requests and 600 MCP
// messages.
func DefaultRateLimits() map[string]RateLimit {
	return map[string]RateLimit{
		ClassRead:   {600, time.Minute},
		ClassWrite:  {240, time.Minute},
		ClassSearch: {300, time.Minute},
		ClassAdmin:  {60, time.Minute},
		ClassMCP:    {600, time.Minute},
	}
}

// ParseRateLimits applies spec — comma-separated class=N (per minute) or
// class=N/duration (per that duration: 100/1s, 5000/1h), N=0 for no limit —
// over base, and returns the result. The classes are RateClasses.
func ParseRateLimits(spec string, base map[string]RateLimit) (map[string]RateLimit, error) {
	out := make(map[string]RateLimit, len(base))
	for k, v := range base {
		out[k] = v
	}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		class, val, ok := strings.Cut(item, "=")
		class = strings.TrimSpace(class)
		if !ok || !validClass(class) {
			return nil, fmt.Errorf("%q: use class=N or class=N/duration with class one of %s", item, strings.Join(RateClasses, ", "))
		}
		num, per, hasPer := strings.Cut(strings.TrimSpace(val), "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: %q is not a number of requests (0 or more; 0 means no limit)", class, num)
		}
		l := RateLimit{Limit: n, Period: time.Minute}
		if hasPer {
			d, err := time.ParseDuration(per)
			if err != nil || d < time.Millisecond {
				return nil, fmt.Errorf("%s: period %q: use a duration of at least 1ms, such as 1s, 1m or 1h", class, per)
			}
			l.Period = d
		}
		out[class] = l
	}
	return out, nil
}

func validClass(c string) bool {
	for _, k := range RateClasses {
		if c == k {
			return true
		}
	}
	return false
}

// RateLimiterOptions configure a RateLimiter.
type RateLimiterOptions struct {
	// Limits per class; a class that is absent or 0 is not limited.
	Limits map[string]RateLimit
	// Shared holds the buckets (kv.Valkey for one budget across
	// replicas); in process when nil.
	Shared kv.Store
	Logger *slog.Logger
	// OnReject, if set, hears every rejected request's class (metrics).
	OnReject func(class string)
	// OnUnavailable, if set, hears every request let through because the
	// shared state could not be reached (metrics).
	OnUnavailable func(class string)
	// Now is the clock of the in-process buckets; time.Now by default.
	Now func() time.Time
}

// RateLimiter applies the rate limits. The REST routes and the MCP
// endpoints share one, so that MCP and REST calls of a principal are each
// counted in their class whichever replica serves them.
type RateLimiter struct {
	o        RateLimiterOptions
	lastWarn atomic.Int64 // unix nanoseconds of the last fail-open warning
}

// NewRateLimiter returns a limiter.
func NewRateLimiter(o RateLimiterOptions) *RateLimiter {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Shared == nil {
		o.Shared = kv.NewMemory(o.Now)
	}
	return &RateLimiter{o: o}
}

// Limit returns the limit of class.
func (l *RateLimiter) Limit(class string) RateLimit { return l.o.Limits[class] }

// Wrap limits the requests of class that reach next. Put it after
// authentication: the bucket is the principal's (auth.PrincipalFrom),
// or the client address's when there is none.
func (l *RateLimiter) Wrap(class string, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	lim := l.o.Limits[class]
	if lim.Limit <= 0 {
		return next
	}
	rate := float64(lim.Limit) / lim.Period.Seconds()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "ratelimit:" + class + ":" + bucketOf(r)
		d, err := l.o.Shared.Allow(r.Context(), key, rate, lim.Limit)
		if err != nil {
			l.failOpen(r, class, err)
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(lim.Limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
		h.Set("X-RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter)))
		if d.Allowed {
			next.ServeHTTP(w, r)
			return
		}
		if l.o.OnReject != nil {
			l.o.OnReject(class)
		}
		retry := max(ceilSeconds(d.RetryAfter), 1)
		h.Set("Retry-After", strconv.Itoa(retry))
		writeJSON(w, http.StatusTooManyRequests, errorBody{Error: errorDetail{
			Code:      "rate_limited",
			Message:   fmt.Sprintf("rate limit of %s requests exceeded (%d per %s); retry in %ds", class, lim.Limit, lim.Period, retry),
			RequestID: requestID(r.Context()),
		}})
	})
}

// WrapPOST is Wrap for POST requests only: for the MCP endpoints, where a
// POST carries a message and a GET holds a stream open.
func (l *RateLimiter) WrapPOST(class string, next http.Handler) http.Handler {
	limited := l.Wrap(class, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			limited.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// failOpen lets a request through when the buckets cannot be read: it is
// counted every time and logged at most every 10 seconds.
func (l *RateLimiter) failOpen(r *http.Request, class string, err error) {
	if l.o.OnUnavailable != nil {
		l.o.OnUnavailable(class)
	}
	now := l.o.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(10*time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.o.Logger.WarnContext(r.Context(), "rate limits not applied: shared state unavailable",
		"err", err, "class", class, "request_id", requestID(r.Context()))
}

// bucketOf names the caller: the principal's org and subject, or the
// client address.
func bucketOf(r *http.Request) string {
	if p, ok := auth.PrincipalFrom(r.Context()); ok && p.Subject != "" {
		return "p:" + p.OrgID + "/" + p.Subject
	}
	return "ip:" + clientAddr(r)
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
