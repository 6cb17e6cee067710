package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// API keys are opaque bearer tokens for service accounts (CI jobs, agents,
// scripts), made through the admin API and revocable at once. A key reads
//
//	cb_<id>_<secret>
//
// where id is a short public identifier (12 random base32 characters; it
// names the key in listings and logs) and secret is 32 random bytes in
// base32. The server stores only SHA-256(secret) with the key's record; the
// plaintext is shown once, when the key is made.
//
// A fast hash is right here: the secret is 256 random bits, not a password,
// so there is nothing to guess from its hash, and a slow hash (bcrypt,
// Argon2) would only slow down every request. Hashes are compared in
// constant time.
const APIKeyPrefix = "cb_"

// IsAPIKey reports whether token has the form of an API key rather than a
// JWT. A JWT never starts with "cb_": its first segment is the base64url of
// a JSON object, which starts "ey".
func IsAPIKey(token string) bool { return strings.HasPrefix(token, APIKeyPrefix) }

// Errors of a KeyStore.
var (
	ErrAPIKeyNotFound = errors.New("api key not found")
	ErrAPIKeyExists   = errors.New("api key id already exists")
)

// APIKey is the stored record of an API key: whom it authenticates and
// with what, and its lifecycle. It never holds the secret, only its hash,
// which is not serialised.
type APIKey struct {
	ID string `json:"id" jsonschema:"public identifier of the key (the part after cb_)"`
	// OrgID, Subject, Scopes, Grants and App make up the principal the key
	// authenticates as.
	OrgID   string   `json:"org_id"`
	Subject string   `json:"subject" jsonschema:"the service account the key authenticates as"`
	Scopes  []string `json:"scopes"`
	Grants  []string `json:"grants,omitempty"`
	App     string   `json:"app,omitempty"`
	// SecretHash is SHA-256 of the secret part of the key.
	SecretHash []byte    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	// CreatedBy is the subject of whoever made the key.
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty" jsonschema:"absent: the key does not expire"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" jsonschema:"last successful use, updated at most once a minute"`
}

// Principal is the caller the key authenticates. TokenID is the key's id.
func (k APIKey) Principal() Principal {
	return Principal{Subject: k.Subject, OrgID: k.OrgID, Scopes: k.Scopes, Grants: k.Grants, App: k.App, TokenID: k.ID}
}

// Active reports whether the key is neither revoked nor expired at now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// KeyStore keeps API keys. Both memory stores implement it. Lookups by id
// span every org (a key names only its id); listing and revoking are always
// confined to one org in the query itself.
type KeyStore interface {
	// CreateAPIKey stores k. An id that is taken is ErrAPIKeyExists, also
	// when several callers race for it: exactly one succeeds.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// APIKeyByID returns the key with this id, revoked or not, or
	// ErrAPIKeyNotFound.
	APIKeyByID(ctx context.Context, id string) (APIKey, error)
	// ListAPIKeys returns the keys of one org, revoked ones too, oldest
	// first (by created_at, then id).
	ListAPIKeys(ctx context.Context, orgID string) ([]APIKey, error)
	// RevokeAPIKey marks the key revoked at at. A key of another org is
	// ErrAPIKeyNotFound. Revoking a revoked key succeeds and keeps the
	// first revocation time.
	RevokeAPIKey(ctx context.Context, orgID, id string, at time.Time) error
	// TouchAPIKey records a use of the key at at. last_used_at only moves
	// forward; an unknown id is not an error.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// base32 without padding, lower case: keys survive URLs, shells and
// double-click selection.
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const (
	apiKeySecretBytes = 32
	apiKeySecretLen   = 52 // base32 characters of 32 bytes
	apiKeyIDLen       = 12 // random ids; 60 bits
	apiKeyIDMaxLen    = 32
)

// NewAPIKey makes a key that authenticates as p (its subject, org, scopes,
// grants and app), created at now and expiring ttl later (never when ttl
// is 0). It returns the plaintext, to be shown once and never stored, and
// the record to store; the caller sets CreatedBy.
func NewAPIKey(p Principal, now time.Time, ttl time.Duration) (plaintext string, k APIKey, err error) {
	id := strings.ToLower(rand.Text()[:apiKeyIDLen])
	return newAPIKey(id, p, now, ttl)
}

func newAPIKey(id string, p Principal, now time.Time, ttl time.Duration) (string, APIKey, error) {
	if p.Subject == "" || p.OrgID == "" {
		return "", APIKey{}, errors.New("new api key: subject and org are required")
	}
	if ttl < 0 {
		return "", APIKey{}, errors.New("new api key: ttl must not be negative")
	}
	b := make([]byte, apiKeySecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", APIKey{}, fmt.Errorf("new api key: %w", err)
	}
	secret := keyEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(secret))
	now = now.UTC().Truncate(time.Microsecond) // what every store keeps
	k := APIKey{
		ID: id, OrgID: p.OrgID, Subject: p.Subject, Scopes: p.Scopes, Grants: p.Grants, App: p.App,
		SecretHash: h[:], CreatedAt: now,
	}
	if ttl > 0 {
		exp := now.Add(ttl)
		k.ExpiresAt = &exp
	}
	return APIKeyPrefix + id + "_" + secret, k, nil
}

// LocalAdminKeyID is the id of the admin key serve makes on first start.
// It is fixed so that the store decides what "first" means: the key is
// created with this id, and when the id is taken — by another replica
// starting at the same moment, or by an earlier start — nothing is made.
const LocalAdminKeyID = "localadmin"

// LocalAdmin is the principal of the first-start admin key: every scope in
// org "local".
func LocalAdmin() Principal {
	return Principal{Subject: "admin", OrgID: "local", Scopes: AllScopes, Grants: []string{"org:local"}}
}

// BootstrapAdminKey creates the LocalAdmin key, which does not expire,
// unless the store already has a key with LocalAdminKeyID (revoked or not).
// It returns the plaintext and true when it created the key, "" and false
// when the key exists. Of several processes calling it on one store at once,
// at most one creates the key.
func BootstrapAdminKey(ctx context.Context, ks KeyStore, now time.Time) (string, bool, error) {
	plain, k, err := newAPIKey(LocalAdminKeyID, LocalAdmin(), now, 0)
	if err != nil {
		return "", false, err
	}
	k.CreatedBy = "codingbrain serve (first start)"
	switch err := ks.CreateAPIKey(ctx, k); {
	case errors.Is(err, ErrAPIKeyExists):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("create the admin api key: %w", err)
	}
	return plain, true, nil
}

// ValidAPIKeyID reports whether id can name an API key: 1 to 32 lower-case
// letters and digits.
func ValidAPIKeyID(id string) bool {
	if id == "" || len(id) > apiKeyIDMaxLen {
		return false
	}
	for _, c := range []byte(id) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// parseAPIKey splits a key into its id and secret, checking their shape.
func parseAPIKey(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, APIKeyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || !ValidAPIKeyID(id) || len(secret) != apiKeySecretLen {
		return "", "", false
	}
	if _, err := keyEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// touchEvery is how often a key's last_used_at is written at most.
const touchEvery = time.Minute

// APIKeys verifies API keys against a KeyStore. Every verification reads
// the key's record, so a revocation takes effect on the next request, on
// every replica.
type APIKeys struct {
	store KeyStore
	now   func() time.Time
	log   *slog.Logger
}

var _ Verifier = (*APIKeys)(nil)

// APIKeysOptions configure an APIKeys verifier; the zero value is usable.
type APIKeysOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger reports failures to record a key's last use, which do not fail
	// the request; nil discards them.
	Logger *slog.Logger
}

// NewAPIKeys returns a verifier of the keys in store.
func NewAPIKeys(store KeyStore, opts APIKeysOptions) *APIKeys {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &APIKeys{store: store, now: opts.Now, log: opts.Logger}
}

// Verify implements Verifier. A malformed key, an unknown id, a wrong
// secret, a revoked or an expired key is ErrInvalidToken, wrapped with the
// reason (for the log, never for the caller). A store that cannot be read
// is returned as the store's error, which does not wrap ErrInvalidToken:
// the key may be fine, and the caller should be told to retry (503), not
// that its credentials are bad. A successful use is recorded as the key's
// last_used_at, at most once a minute.
func (v *APIKeys) Verify(ctx context.Context, token string) (Principal, error) {
	id, secret, ok := parseAPIKey(token)
	if !ok {
		return Principal{}, fmt.Errorf("%w: malformed api key (want cb_<id>_<secret>)", ErrInvalidToken)
	}
	// Hash before the lookup, so an unknown id costs what a known one does.
	h := sha256.Sum256([]byte(secret))
	k, err := v.store.APIKeyByID(ctx, id)
	switch {
	case errors.Is(err, ErrAPIKeyNotFound):
		return Principal{}, fmt.Errorf("%w: unknown api key id %q", ErrInvalidToken, id)
	case err != nil:
		return Principal{}, fmt.Errorf("verify api key %s: %w", id, err)
	}
	if subtle.ConstantTimeCompare(h[:], k.SecretHash) != 1 {
		return Principal{}, fmt.Errorf("%w: wrong secret for api key %s", ErrInvalidToken, id)
	}
	now := v.now()
	if k.RevokedAt != nil {
		return Principal{}, fmt.Errorf("%w: api key %s was revoked at %s", ErrInvalidToken, id, k.RevokedAt.Format(time.RFC3339))
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return Principal{}, fmt.Errorf("%w: api key %s expired at %s", ErrInvalidToken, id, k.ExpiresAt.Format(time.RFC3339))
	}
	if k.Subject == "" || k.OrgID == "" {
		return Principal{}, fmt.Errorf("%w: api key %s has no subject or org", ErrInvalidToken, id)
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= touchEvery {
		if err := v.store.TouchAPIKey(ctx, id, now.UTC()); err != nil {
			v.log.WarnContext(ctx, "record api key use", "key_id", id, "err", err)
		}
	}
	return k.Principal(), nil
}

// Verifiers sends each bearer token to the verifier for its kind: API keys
// (IsAPIKey: the "cb_" prefix) to APIKeys, everything else to JWT. A kind
// whose verifier is nil is not accepted (ErrInvalidToken).
type Verifiers struct {
	APIKeys Verifier
	JWT     Verifier
}

var _ Verifier = Verifiers{}

// Verify implements Verifier.
func (v Verifiers) Verify(ctx context.Context, token string) (Principal, error) {
	next, kind := v.JWT, "JWTs"
	if IsAPIKey(token) {
		next, kind = v.APIKeys, "API keys"
	}
	if next == nil {
		return Principal{}, fmt.Errorf("%w: this server does not accept %s", ErrInvalidToken, kind)
	}
	return next.Verify(ctx, token)
}
