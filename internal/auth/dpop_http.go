package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrNoCredentials is a request without a Bearer or DPoP token in its
// Authorization header. Tokens in the query string are never read.
var ErrNoCredentials = errors.New("no Bearer or DPoP token in the Authorization header")

// Authenticate verifies the credentials of r with v and, for DPoP-bound
// tokens, its DPoP proof, applying the rules in the DPoP documentation. It
// returns the principal and the access token. publicURL is the externally
// visible base URL of the server (see DPoPTargetURI).
//
// Errors: ErrNoCredentials; errors wrapping ErrInvalidToken (401; among
// them ErrInvalidDPoPProof and ErrDPoPBinding); errors wrapping
// kv.ErrUnavailable when the replay cache cannot be reached (503); and
// whatever else v returns.
func (d *DPoP) Authenticate(r *http.Request, v Verifier, publicURL string) (Principal, string, error) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	dpop := strings.EqualFold(scheme, "DPoP")
	if token == "" || !dpop && !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, "", ErrNoCredentials
	}
	if v == nil {
		return Principal{}, "", fmt.Errorf("%w: no token verifier configured", ErrInvalidToken)
	}
	p, err := v.Verify(r.Context(), token)
	if err != nil {
		return Principal{}, "", err
	}
	switch {
	case p.KeyThumbprint == "" && dpop:
		return Principal{}, "", fmt.Errorf("%w: DPoP scheme with a token that is not DPoP-bound", ErrDPoPBinding)
	case p.KeyThumbprint == "":
		return p, token, nil
	case !dpop:
		return Principal{}, "", fmt.Errorf("%w: DPoP-bound token presented as Bearer", ErrDPoPBinding)
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return Principal{}, "", fmt.Errorf("%w: %d DPoP headers, want one", ErrInvalidDPoPProof, len(proofs))
	}
	if err := d.Check(r.Context(), proofs[0], r.Method, DPoPTargetURI(r, publicURL), token, p); err != nil {
		return Principal{}, "", err
	}
	return p, token, nil
}

// DPoPTargetURI is the URI a proof for r must name in htu: publicURL (the
// server's externally visible base URL, which may end in a path prefix)
// followed by the request path. Without publicURL it is built from the
// request: https when it came over TLS, else http, and its Host. Behind a
// proxy that terminates TLS or rewrites Host, publicURL must be set;
// forwarding headers are not trusted.
func DPoPTargetURI(r *http.Request, publicURL string) string {
	base := strings.TrimSuffix(publicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + r.URL.EscapedPath()
}

// DPoPChallenge is the WWW-Authenticate DPoP challenge for a 401 caused by
// err (RFC 9449 §7.1): the accepted algorithms and, when err is a DPoP
// failure, its error code. Send it after the Bearer challenge.
func DPoPChallenge(err error) string {
	c := `DPoP algs="` + strings.Join(DPoPAlgs, " ") + `"`
	switch {
	case errors.Is(err, ErrInvalidDPoPProof):
		c += `, error="invalid_dpop_proof"`
	case errors.Is(err, ErrDPoPBinding):
		c += `, error="invalid_token"`
	}
	return c
}
