package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is returned for every token that is not accepted. The
// wrapped message says why; it is logged and audited, not shown to callers.
var ErrInvalidToken = errors.New("invalid token")

// Verifier turns a bearer token into a Principal.
type Verifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// Claims are the JWT claims Coding Brain reads and writes.
type Claims struct {
	jwt.RegisteredClaims
	OrgID  string   `json:"org_id"`
	Scope  string   `json:"scope,omitempty"`
	Grants []string `json:"grants,omitempty"`
	App    string   `json:"app,omitempty"`
	// Confirmation binds the token to a DPoP key (RFC 9449 §6): cnf.jkt
	// is the SHA-256 JWK thumbprint of the key that must sign each proof.
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the cnf claim.
type Confirmation struct {
	JKT string `json:"jkt,omitempty"`
}

// HS256 signs and verifies tokens with one shared secret. It is the local,
// single-node token scheme: the key lives in the data directory.
type HS256 struct {
	key      []byte
	issuer   string
	audience string
	now      func() time.Time
}

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// NewHS256 returns a signer and verifier for tokens issued by issuer for
// audience. now may be nil.
func NewHS256(key []byte, issuer, audience string, now func() time.Time) *HS256 {
	if now == nil {
		now = time.Now
	}
	return &HS256{key: key, issuer: issuer, audience: audience, now: now}
}

// Issue mints a token for p valid for ttl.
func (h *HS256) Issue(p Principal, ttl time.Duration) (string, error) {
	c, err := newClaims(p, h.issuer, h.audience, h.now(), ttl)
	if err != nil {
		return "", err
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(h.key)
}

// newClaims are the claims of a token for p issued now.
func newClaims(p Principal, issuer, audience string, now time.Time, ttl time.Duration) (Claims, error) {
	if p.Subject == "" || p.OrgID == "" {
		return Claims{}, errors.New("issue token: sub and org_id are required")
	}
	if ttl <= 0 {
		return Claims{}, errors.New("issue token: ttl must be positive")
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: p.Subject, Audience: jwt.ClaimStrings{audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: rand.Text(),
		},
		OrgID: p.OrgID, Scope: strings.Join(p.Scopes, " "), Grants: p.Grants, App: p.App,
	}
	if p.KeyThumbprint != "" {
		c.Confirmation = &Confirmation{JKT: p.KeyThumbprint}
	}
	return c, nil
}

// Verify checks signature, algorithm, exp/nbf/iat (with Leeway), issuer,
// audience and the required claims.
func (h *HS256) Verify(_ context.Context, token string) (Principal, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return h.key, nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithIssuer(h.issuer),
		jwt.WithAudience(h.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(h.now),
	)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c.principal()
}

// KeyFile is the name of the HS256 signing key in the data directory.
const KeyFile = "signing.key"

// LoadOrCreateKey reads the signing key in dir, creating a random 32-byte key
// (file mode 0600) when there is none. created reports whether it was made.
func LoadOrCreateKey(dir string) (key []byte, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	key, err = os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, false, fmt.Errorf("load signing key %s: shorter than 32 bytes", path)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("load signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data dir: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("create signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create signing key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write signing key: %w", err)
	}
	return key, true, nil
}

// LoadKey reads the signing key in dir; it does not create one.
func LoadKey(dir string) ([]byte, error) {
	key, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("load signing key (start `codingbrain serve` once to create it): %w", err)
	}
	return key, nil
}
