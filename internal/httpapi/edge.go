package httpapi

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/kv"
)

// The edge: what every response carries and what is refused before any
// handler runs. In order, outermost first:
//
//   - security headers on every response;
//   - CORS for the allowlisted origins only (tokens travel in headers, never
//     cookies, so no origin is ever allowed with credentials and "*" is never
//     sent);
//   - a block on clients whose authentication keeps failing (429);
//   - on /mcp and /sse, the DNS-rebinding checks: a foreign Origin is 403,
//     and on a loopback listener a non-loopback Host is 403.

// AuthFailureLimit bounds failed authentications per client address: a
// token bucket of Burst failures refilled at Rate per second. A client that
// empties it gets 429 for every request until a token is back.
type AuthFailureLimit struct {
	Rate  float64
	Burst int
}

// DefaultAuthFailureLimit allows 20 failures in a row, then one every 6 s.
var DefaultAuthFailureLimit = AuthFailureLimit{Rate: 1.0 / 6, Burst: 20}

func (s *Server) withSecurityHeaders(next http.Handler) http.Handler {
	hsts := strings.HasPrefix(s.opts.PublicURL, "https://")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// CORS: the request and response headers a browser client needs.
const (
	corsAllowHeaders  = "Authorization, Content-Type, DPoP, Idempotency-Key, Last-Event-ID, Mcp-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, X-Request-ID"
	corsExposeHeaders = "Mcp-Session-Id, WWW-Authenticate, X-Request-ID, Retry-After, DPoP-Nonce, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
	corsAllowMethods  = "GET, POST, PATCH, DELETE, OPTIONS"
)

func (s *Server) withCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		allowed := slices.Contains(s.opts.CORSOrigins, origin)
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			if !allowed {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// withAuthFailureLimit counts 401 answers per client address in the shared
// state and, once a client has used up its allowance, answers 429 with
// Retry-After before authenticating at all. Requests without credentials
// that need none (health, metadata) are never blocked. If the shared state
// is down the limit is not applied: failing open here only loses the
// throttle, while failing closed would take authentication down with it.
func (s *Server) withAuthFailureLimit(next http.Handler) http.Handler {
	lim := s.opts.AuthFailureLimit
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := clientAddr(r)
		if needsAuth(r.URL.Path) {
			if until, err := s.opts.Shared.Get(r.Context(), "authfail:block:"+client); err == nil {
				if t, perr := time.Parse(time.RFC3339Nano, string(until)); perr == nil {
					if wait := t.Sub(s.opts.Now()); wait > 0 {
						w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
						s.writeError(w, r, errTooManyFailures)
						return
					}
				}
			}
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status != http.StatusUnauthorized {
			return
		}
		d, err := s.opts.Shared.Allow(r.Context(), "authfail:"+client, lim.Rate, lim.Burst)
		if err != nil || d.Allowed {
			return
		}
		until := s.opts.Now().Add(d.RetryAfter).UTC().Format(time.RFC3339Nano)
		if err := s.opts.Shared.Set(r.Context(), "authfail:block:"+client, []byte(until), d.RetryAfter); err != nil && !errors.Is(err, kv.ErrUnavailable) {
			s.log.WarnContext(r.Context(), "auth failure block not stored", "err", err)
		}
		s.log.WarnContext(r.Context(), "client blocked after repeated authentication failures",
			"client", client, "retry_after", d.RetryAfter.String())
	})
}

var errTooManyFailures = &httpError{status: http.StatusTooManyRequests, code: "rate_limited",
	msg: "too many failed authentication attempts from this address; retry later"}

// needsAuth reports whether a path is behind authentication.
func needsAuth(path string) bool {
	return !strings.HasPrefix(path, "/health/") && path != "/openapi.json" && !strings.HasPrefix(path, "/.well-known/")
}

// clientAddr is the host of the peer address.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// withOriginCheck guards the MCP endpoints against DNS rebinding and
// cross-site use (MCP 2025-11-25: servers must validate Origin and answer
// 403 to an invalid one). A request may carry no Origin (non-browser
// clients), the server's own origin, or an allowlisted one. On a loopback
// listener, a Host that is not loopback means a rebound name: 403.
func (s *Server) withOriginCheck(next http.Handler) http.Handler {
	own := originOf(s.opts.PublicURL)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if local != nil && isLoopbackAddr(local.String()) && !isLoopbackHost(r.Host) {
			http.Error(w, "forbidden: invalid Host header", http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			ok := o == own || slices.Contains(s.opts.CORSOrigins, o) ||
				(local != nil && isLoopbackAddr(local.String()) && isLoopbackHost(hostOf(o)))
			if !ok {
				http.Error(w, "forbidden: origin not allowed", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func hostOf(origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		return ""
	}
	return u.Host
}

func isLoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackHost reports whether a Host header (name or IP, with or
// without port) names the local machine.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
