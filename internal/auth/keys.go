package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// SigningKey is an asymmetric key that signs tokens verified through a
// JWKS: an identity provider's, or one made by `codingbrain keys generate`
// for service accounts and tests.
type SigningKey struct {
	KID     string
	Alg     string // RS256, ES256 or EdDSA
	Private crypto.Signer
}

// GenerateSigningKey makes a new key for alg with a random kid.
func GenerateSigningKey(alg string) (SigningKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return SigningKey{}, fmt.Errorf("generate key: alg %q: use one of %s", alg, strings.Join(jwksMethods, ", "))
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return SigningKey{KID: time.Now().UTC().Format("20060102") + "-" + rand.Text()[:8], Alg: alg, Private: priv}, nil
}

// PrivatePEM encodes the private key as PKCS #8 PEM, with the kid and alg
// in headers so that the file alone is enough to sign.
func (k SigningKey) PrivatePEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kid": k.KID, "alg": k.Alg}, Bytes: der}), nil
}

// ParseSigningKey reads a key written by PrivatePEM.
func ParseSigningKey(b []byte) (SigningKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return SigningKey{}, errors.New("parse signing key: not a PKCS #8 PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return SigningKey{}, fmt.Errorf("parse signing key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return SigningKey{}, fmt.Errorf("parse signing key: %T cannot sign", key)
	}
	k := SigningKey{KID: block.Headers["kid"], Alg: block.Headers["alg"], Private: signer}
	if k.KID == "" || k.Alg == "" {
		return SigningKey{}, errors.New("parse signing key: the PEM headers kid and alg are required")
	}
	return k, nil
}

// JWKS returns the public JSON Web Key Set of keys, for a verifier's
// JWKSURL. During a rotation it holds the old and the new key.
func JWKS(keys ...SigningKey) ([]byte, error) {
	return AddToJWKS(nil, keys...)
}

// AddToJWKS returns the set existing (a JWKS document; empty for none)
// with the public keys of keys added.
func AddToJWKS(existing []byte, keys ...SigningKey) ([]byte, error) {
	set, err := parseJWKS(existing)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.Private.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.KID, ALG: jwkset.ALG(k.Alg), USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, fmt.Errorf("jwks: key %s: %w", k.KID, err)
		}
		if err := set.KeyWrite(context.Background(), j); err != nil {
			return nil, fmt.Errorf("jwks: key %s: %w", k.KID, err)
		}
	}
	return marshalJWKS(set)
}

// RemoveFromJWKS returns the set existing without the key kid; a kid that
// is not there is an error, so that a typo does not pass for a rotation.
func RemoveFromJWKS(existing []byte, kid string) ([]byte, error) {
	set, err := parseJWKS(existing)
	if err != nil {
		return nil, err
	}
	ok, err := set.KeyDelete(context.Background(), kid)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("jwks: no key with kid %q", kid)
	}
	return marshalJWKS(set)
}

func parseJWKS(b []byte) (*jwkset.MemoryJWKSet, error) {
	set := jwkset.NewMemoryStorage()
	if len(b) == 0 {
		return set, nil
	}
	var m jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys, err := m.JWKSlice()
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	for _, k := range keys {
		if err := set.KeyWrite(context.Background(), k); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
	}
	return set, nil
}

func marshalJWKS(set *jwkset.MemoryJWKSet) ([]byte, error) {
	m, err := set.Marshal(context.Background())
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return json.MarshalIndent(m, "", "  ")
}

// Issue mints a token for p, for issuer and audience, valid for ttl.
func (k SigningKey) Issue(p Principal, issuer, audience string, ttl time.Duration) (string, error) {
	c, err := newClaims(p, issuer, audience, time.Now(), ttl)
	if err != nil {
		return "", err
	}
	method := jwt.GetSigningMethod(k.Alg)
	if method == nil {
		return "", fmt.Errorf("issue token: unknown alg %q", k.Alg)
	}
	t := jwt.NewWithClaims(method, c)
	t.Header["kid"] = k.KID
	return t.SignedString(k.Private)
}
