package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/codingbrain/codingbrain/internal/kv"
)

// DPoP checks DPoP proofs (RFC 9449): a JWT the client signs for every
// request with the private key its access token is bound to (cnf.jkt),
// naming the request's method and URI, so that a stolen token is useless
// without the key.
//
// The rules the HTTP transports apply (Authenticate, in dpop_http.go, is
// the one implementation both REST and MCP use):
//
//   - A token whose principal has KeyThumbprint set (a cnf.jkt claim) must
//     come as "Authorization: DPoP <token>" with exactly one valid DPoP
//     header. Sent as "Authorization: Bearer" it is rejected: a bound token
//     must not be downgraded to a bearer token (RFC 9449 §7.2).
//   - "Authorization: DPoP" with a token that is not bound is rejected.
//   - More than one DPoP header is rejected (RFC 9449 §4.3).
//   - A 401 carries, after the Bearer challenge, a DPoP challenge naming the
//     accepted algorithms (DPoPChallenge), with error="invalid_dpop_proof"
//     when the proof failed, and error="invalid_token" when the token does
//     not fit the scheme or the proof's key (RFC 9449 §7.1). Why is logged,
//     never shown.
//   - The replay cache failing closes the door: a proof whose jti cannot be
//     recorded is not accepted, and the transports answer 503, not 401.
//   - There is always a checker: when none is configured the transports
//     make one with an in-process replay cache, so a bound token is never
//     accepted without a proof. With several replicas the replay cache must
//     be shared (kv.Valkey), or a proof could be replayed on another replica.
type DPoP struct {
	replay kv.Store
	window time.Duration
	leeway time.Duration
	now    func() time.Time
}

// DPoPConfig configures a DPoP checker.
type DPoPConfig struct {
	// Replay records the jti of every accepted proof for as long as the
	// proof could be accepted, so that each proof is used once. Required:
	// kv.NewMemory on a single node, kv.Valkey shared by replicas.
	Replay kv.Store
	// Window is how old a proof (its iat) may be; zero means
	// DefaultDPoPWindow, more than MaxDPoPWindow is refused.
	Window time.Duration
	// Leeway is how far in the future iat may be, for clients whose clock
	// runs ahead; zero means DefaultDPoPLeeway, more than MaxLeeway is refused.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Bounds of the proof age window and clock skew.
const (
	DefaultDPoPWindow = time.Minute
	MaxDPoPWindow     = 5 * time.Minute
	DefaultDPoPLeeway = 5 * time.Second
)

// DPoPAlgs are the proof signature algorithms accepted: asymmetric only,
// never none or HMAC.
var DPoPAlgs = []string{"ES256", "RS256", "EdDSA"}

// Errors of DPoP checks. Both wrap ErrInvalidToken, so callers that only
// know about invalid tokens answer 401; the challenge tells them apart.
var (
	// ErrInvalidDPoPProof is a missing, malformed, replayed or otherwise
	// unacceptable proof (error="invalid_dpop_proof").
	ErrInvalidDPoPProof = fmt.Errorf("%w: invalid DPoP proof", ErrInvalidToken)
	// ErrDPoPBinding is a token that does not fit how it was presented: a
	// bound token as Bearer, an unbound token as DPoP, or a good proof by
	// another key than the one the token is bound to (error="invalid_token",
	// as in the "Invalid DPoP key binding" example of RFC 9449 §7.1).
	ErrDPoPBinding = fmt.Errorf("%w: DPoP key binding", ErrInvalidToken)
)

// minRSABits is the smallest RSA key accepted for RS256 proofs.
const minRSABits = 2048

// replayKey prefixes the replay-cache keys.
const replayKey = "dpop:jti:"

// NewDPoP returns a checker for cfg.
func NewDPoP(cfg DPoPConfig) (*DPoP, error) {
	if cfg.Replay == nil {
		return nil, errors.New("dpop: a replay cache is required")
	}
	switch {
	case cfg.Window == 0:
		cfg.Window = DefaultDPoPWindow
	case cfg.Window < 0 || cfg.Window > MaxDPoPWindow:
		return nil, fmt.Errorf("dpop: window %s outside 0..%s", cfg.Window, MaxDPoPWindow)
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultDPoPLeeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("dpop: leeway %s outside 0..%s", cfg.Leeway, MaxLeeway)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &DPoP{replay: cfg.Replay, window: cfg.Window, leeway: cfg.Leeway, now: cfg.Now}, nil
}

// proofClaims are the claims of a DPoP proof (RFC 9449 §4.2).
type proofClaims struct {
	jwt.RegisteredClaims
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	ATH string `json:"ath,omitempty"`
}

// Check validates proof for a request with method and URI htu (absolute;
// query and fragment are ignored) carrying accessToken, whose verified
// principal is p, as RFC 9449 §4.3 prescribes: typ dpop+jwt; an asymmetric
// alg; a public jwk in the header that verifies the signature and whose
// RFC 7638 thumbprint is p.KeyThumbprint; htm and htu matching the request;
// iat within the window; ath the hash of accessToken; and a jti not seen
// before, which is then recorded in the replay cache.
//
// An unacceptable proof is an error wrapping ErrInvalidDPoPProof (and so
// ErrInvalidToken). A replay cache that cannot be written is an error
// wrapping kv.ErrUnavailable: the proof is not accepted.
func (d *DPoP) Check(ctx context.Context, proof string, method, htu string, accessToken string, p Principal) error {
	if p.KeyThumbprint == "" {
		return fmt.Errorf("%w: token is not DPoP-bound", ErrDPoPBinding)
	}
	if proof == "" {
		return fmt.Errorf("%w: no DPoP proof", ErrInvalidDPoPProof)
	}
	var (
		c   proofClaims
		jwk jose.JSONWebKey
	)
	_, err := jwt.ParseWithClaims(proof, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "dpop+jwt" {
			return nil, fmt.Errorf("typ %v, want dpop+jwt", t.Header["typ"])
		}
		k, err := headerJWK(t.Header["jwk"])
		if err != nil {
			return nil, err
		}
		if err := keyFits(t.Method.Alg(), k.Key); err != nil {
			return nil, err
		}
		if k.Algorithm != "" && k.Algorithm != t.Method.Alg() {
			return nil, fmt.Errorf("jwk alg %s, header alg %s", k.Algorithm, t.Method.Alg())
		}
		jwk = k
		return k.Key, nil
	}, jwt.WithValidMethods(DPoPAlgs), jwt.WithoutClaimsValidation())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidDPoPProof, err)
	}

	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("%w: jwk thumbprint: %w", ErrInvalidDPoPProof, err)
	}
	if base64.RawURLEncoding.EncodeToString(thumb) != p.KeyThumbprint {
		return fmt.Errorf("%w: proof key is not the key the token is bound to", ErrDPoPBinding)
	}
	if c.ID == "" {
		return fmt.Errorf("%w: missing claim jti", ErrInvalidDPoPProof)
	}
	if c.HTM != method {
		return fmt.Errorf("%w: htm %q, request method %s", ErrInvalidDPoPProof, c.HTM, method)
	}
	if err := sameURI(c.HTU, htu); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidDPoPProof, err)
	}
	if c.IssuedAt == nil {
		return fmt.Errorf("%w: missing claim iat", ErrInvalidDPoPProof)
	}
	now, iat := d.now(), c.IssuedAt.Time
	if iat.Before(now.Add(-d.window)) {
		return fmt.Errorf("%w: iat %s older than %s", ErrInvalidDPoPProof, iat.UTC().Format(time.RFC3339), d.window)
	}
	if iat.After(now.Add(d.leeway)) {
		return fmt.Errorf("%w: iat %s in the future", ErrInvalidDPoPProof, iat.UTC().Format(time.RFC3339))
	}
	if accessToken != "" {
		if c.ATH == "" {
			return fmt.Errorf("%w: missing claim ath", ErrInvalidDPoPProof)
		}
		if c.ATH != tokenHash(accessToken) {
			return fmt.Errorf("%w: ath is not the hash of the access token", ErrInvalidDPoPProof)
		}
	}

	// Last, once the proof is otherwise good: use its jti up. It stays
	// recorded for as long as the proof could pass the iat check.
	key := sha256.Sum256([]byte(p.KeyThumbprint + "\x00" + c.ID))
	fresh, err := d.replay.SetNX(ctx, replayKey+base64.RawURLEncoding.EncodeToString(key[:]), []byte{1}, d.window+d.leeway)
	switch {
	case err != nil && errors.Is(err, kv.ErrUnavailable):
		return fmt.Errorf("dpop replay cache: %w", err)
	case err != nil:
		return fmt.Errorf("dpop replay cache: %w: %w", kv.ErrUnavailable, err)
	case !fresh:
		return fmt.Errorf("%w: jti replayed", ErrInvalidDPoPProof)
	}
	return nil
}

// privateMembers are JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// headerJWK reads the jwk header of a proof: a public EC, RSA or Ed25519 key.
func headerJWK(v any) (jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	m, ok := v.(map[string]any)
	if !ok {
		return k, errors.New("header jwk missing or not an object")
	}
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			return k, fmt.Errorf("header jwk has private member %q", name)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return k, fmt.Errorf("header jwk: %w", err)
	}
	if err := k.UnmarshalJSON(raw); err != nil {
		return k, fmt.Errorf("header jwk: %w", err)
	}
	if !k.Valid() || !k.IsPublic() {
		return k, errors.New("header jwk is not a valid public key")
	}
	return k, nil
}

// keyFits reports whether key is right for alg: P-256 for ES256, RSA of at
// least minRSABits for RS256, Ed25519 for EdDSA.
func keyFits(alg string, key any) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if alg == "ES256" && k.Curve == elliptic.P256() {
			return nil
		}
	case *rsa.PublicKey:
		if alg == "RS256" && k.N.BitLen() >= minRSABits {
			return nil
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return nil
		}
	}
	return fmt.Errorf("alg %s does not fit the jwk (%T)", alg, key)
}

// tokenHash is the ath of an access token: base64url(SHA-256(token)).
func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// sameURI reports whether the htu of a proof names the request URI,
// ignoring query and fragment, after syntax- and scheme-based normalization
// (RFC 3986 §6.2.2, §6.2.3; RFC 9449 §4.3).
func sameURI(htu, request string) error {
	got, err := normalizeURI(htu)
	if err != nil {
		return fmt.Errorf("htu: %w", err)
	}
	want, err := normalizeURI(request)
	if err != nil {
		return fmt.Errorf("request URI: %w", err)
	}
	if got != want {
		return fmt.Errorf("htu %q, request URI %q", got, want)
	}
	return nil
}

// normalizeURI returns an absolute http(s) URI without query and fragment,
// with scheme and host in lower case, no default port, a non-empty path and
// percent-encodings normalized.
func normalizeURI(s string) (string, error) {
	u, err := url.Parse(s) // lower-cases the scheme
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q is not an absolute http(s) URI", s)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return u.Scheme + "://" + host + normalizePercent(path), nil
}

// normalizePercent upper-cases percent-encodings and decodes those of
// unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			if c, err := hex.DecodeString(p[i+1 : i+3]); err == nil {
				if unreserved(c[0]) {
					b.WriteByte(c[0])
				} else {
					b.WriteString("%" + strings.ToUpper(p[i+1:i+3]))
				}
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// JWKThumbprint returns the RFC 7638 SHA-256 thumbprint of a public key,
// base64url-encoded: the cnf.jkt of tokens bound to it.
func JWKThumbprint(pub crypto.PublicKey) (string, error) {
	k := jose.JSONWebKey{Key: pub}
	if !k.Valid() || !k.IsPublic() {
		return "", fmt.Errorf("jwk thumbprint: %T is not a supported public key", pub)
	}
	t, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jwk thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// NewDPoPProof signs a DPoP proof with key for a request with method to
// htu, carrying accessToken (its hash becomes ath; "" for none), issued at
// now. alg is ES256 (P-256 key), RS256 or EdDSA (Ed25519). For clients and
// tests.
func NewDPoPProof(key crypto.Signer, alg, method, htu, accessToken string, now time.Time) (string, error) {
	sm := jwt.GetSigningMethod(alg)
	if sm == nil || keyFits(alg, key.Public()) != nil {
		return "", fmt.Errorf("dpop proof: alg %q does not fit a %T key", alg, key)
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	c := proofClaims{
		RegisteredClaims: jwt.RegisteredClaims{ID: rand.Text(), IssuedAt: jwt.NewNumericDate(now)},
		HTM:              method, HTU: htu,
	}
	if accessToken != "" {
		c.ATH = tokenHash(accessToken)
	}
	t := jwt.NewWithClaims(sm, c)
	t.Header["typ"] = "dpop+jwt"
	t.Header["jwk"] = json.RawMessage(pub)
	return t.SignedString(key)
}
