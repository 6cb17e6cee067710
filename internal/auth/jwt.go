package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// VerifierConfig says which tokens a JWT verifier accepts.
type VerifierConfig struct {
	// Issuer and Audience must equal the token's iss and (one of) its aud.
	// The audience is this server's resource URI (RFC 8707).
	Issuer   string
	Audience string
	// HMACKey, when set, accepts HS256 tokens signed with it: the local
	// scheme whose key lives in the data directory.
	HMACKey []byte
	// JWKSURL, when set, accepts RS256, ES256 and EdDSA tokens signed by
	// any key in the JSON Web Key Set at that URL. The set is fetched at
	// start, refreshed every JWKSRefresh, and at once (rate-limited) when a
	// token names a kid the cached set lacks, so keys can rotate without a
	// restart.
	JWKSURL     string
	JWKSRefresh time.Duration
	// HTTPClient fetches the JWKS; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// the package Leeway; more than MaxLeeway is refused.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MaxLeeway bounds the configurable clock skew.
const MaxLeeway = 2 * time.Minute

// DefaultJWKSRefresh is how often a JWKS is fetched again when nothing asks
// sooner.
const DefaultJWKSRefresh = 5 * time.Minute

// Asymmetric algorithms accepted from a JWKS. HS256 is accepted only with
// the local key: a public key can never serve as an HMAC secret.
var jwksMethods = []string{"RS256", "ES256", "EdDSA"}

// JWT verifies bearer JWTs: signature, algorithm, exp/nbf/iat within the
// leeway, iss, aud and the required claims sub and org_id.
type JWT struct {
	cfg  VerifierConfig
	jwks keyfunc.Keyfunc
}

var _ Verifier = (*JWT)(nil)

// NewJWT returns a verifier for cfg. With a JWKS URL it fetches the set
// once and keeps refreshing it until ctx ends; a set that cannot be fetched
// at start is an error, so a misconfigured server does not come up
// rejecting every token.
func NewJWT(ctx context.Context, cfg VerifierConfig) (*JWT, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt verifier: issuer and audience are required")
	}
	if len(cfg.HMACKey) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("jwt verifier: need a local key, a JWKS URL, or both")
	}
	if cfg.HMACKey != nil && len(cfg.HMACKey) < 32 {
		return nil, errors.New("jwt verifier: the HS256 key must be at least 32 bytes")
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = Leeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("jwt verifier: leeway %s outside 0..%s", cfg.Leeway, MaxLeeway)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &JWT{cfg: cfg}
	if cfg.JWKSURL == "" {
		return v, nil
	}
	if cfg.JWKSRefresh <= 0 {
		cfg.JWKSRefresh = DefaultJWKSRefresh
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	fail := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:                    cfg.HTTPClient,
		RefreshInterval:           cfg.JWKSRefresh,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(10*time.Second), 1),
		RateLimitWaitMax:          time.Second,
		NoErrorReturnFirstHTTPReq: &fail,
		// Refresh failures keep the last good set; the next verification
		// of an unknown kid tries again.
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) { return func(context.Context, error) {} },
	})
	if err != nil {
		return nil, fmt.Errorf("jwt verifier: fetch JWKS %s: %w", cfg.JWKSURL, err)
	}
	v.cfg = cfg
	v.jwks = kf
	return v, nil
}

// Verify implements Verifier.
func (v *JWT) Verify(ctx context.Context, token string) (Principal, error) {
	var methods []string
	if v.cfg.HMACKey != nil {
		methods = append(methods, "HS256")
	}
	if v.jwks != nil {
		methods = append(methods, jwksMethods...)
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, v.key(ctx),
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.cfg.Now),
	)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c.principal()
}

// key picks the verification key by algorithm: the local secret for HS256,
// the JWKS (by kid) for everything else.
func (v *JWT) key(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if t.Method.Alg() == "HS256" {
			return v.cfg.HMACKey, nil
		}
		if _, ok := t.Header["kid"].(string); !ok {
			return nil, errors.New("token has no kid")
		}
		k, err := v.jwks.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, fmt.Errorf("unknown kid %v: %w", t.Header["kid"], err)
		}
		return k, nil
	}
}

// principal checks the claims every token must carry and returns the
// caller they describe.
func (c Claims) principal() (Principal, error) {
	if c.Subject == "" {
		return Principal{}, fmt.Errorf("%w: missing claim sub", ErrInvalidToken)
	}
	if c.OrgID == "" {
		return Principal{}, fmt.Errorf("%w: missing claim org_id", ErrInvalidToken)
	}
	if c.IssuedAt == nil {
		return Principal{}, fmt.Errorf("%w: missing claim iat", ErrInvalidToken)
	}
	p := Principal{Subject: c.Subject, OrgID: c.OrgID, Scopes: ParseScopes(c.Scope), Grants: c.Grants, App: c.App, TokenID: c.ID}
	if c.Confirmation != nil {
		p.KeyThumbprint = c.Confirmation.JKT
	}
	return p, nil
}
