package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses CIDRs (or single addresses) of the reverse
// proxies whose X-Forwarded-For and X-Real-IP are believed.
func ParseTrustedProxies(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(c)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is neither a CIDR (10.0.0.0/8, fd00::/8) nor an IP address", c)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ClientIP is the address of the client that sent r. It is the peer
// address, unless the peer is one of the trusted proxies: then it is the
// nearest address in X-Forwarded-For that is not a trusted proxy (read
// from the right, since each proxy appends the address it saw, and only
// the trusted ones' additions can be believed), else X-Real-IP, else the
// peer. A client that is not behind a trusted proxy cannot choose its
// address by sending these headers.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseIP(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !inPrefixes(peer, trusted) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	var leftmost netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, ok := parseIP(parts[j])
			if !ok {
				// A hop that is not an address: nothing left of it can
				// be trusted either.
				if leftmost.IsValid() {
					return leftmost.String()
				}
				return peer.String()
			}
			if !inPrefixes(a, trusted) {
				return a.String()
			}
			leftmost = a
		}
	}
	if leftmost.IsValid() {
		return leftmost.String() // every hop is a trusted proxy
	}
	if a, ok := parseIP(r.Header.Get("X-Real-IP")); ok {
		return a.String()
	}
	return peer.String()
}

// parseIP reads an address with or without a port or brackets.
func parseIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// withClientIP puts the client's address (ClientIP) in r.RemoteAddr when
// the request came through a trusted proxy, so that everything after it
// — the authentication-failure throttle, rate limits, audit records,
// logs, the MCP handlers — sees the client rather than the proxy.
func (s *Server) withClientIP(next http.Handler) http.Handler {
	if len(s.opts.TrustedProxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip := ClientIP(r, s.opts.TrustedProxies); ip != clientAddr(r) {
			r = r.WithContext(r.Context()) // a shallow copy
			r.RemoteAddr = ip
		}
		next.ServeHTTP(w, r)
	})
}
