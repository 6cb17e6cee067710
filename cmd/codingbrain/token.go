package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
)

const tokenUsage = `Usage: codingbrain token issue --sub SUB --org ORG [flags]

Mints a token and prints it alone on stdout: signed with the data
directory's HS256 key, or with --key, a private key made by
"codingbrain keys generate" whose public half is in the JWKS the server
reads (--jwks-url).

The audience defaults to the server's resource URI, PUBLIC_URL/mcp, from
--public-url or $CODINGBRAIN_PUBLIC_URL (else http://$CODINGBRAIN_ADDR/mcp,
else http://127.0.0.1:8765/mcp).

Flags:
`

func runToken(_ context.Context, args []string, e env) error {
	if len(args) == 0 || args[0] != "issue" {
		fmt.Fprint(e.stderr, tokenUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("token issue", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, tokenUsage); fs.PrintDefaults() }
	def := config.Default()
	dataDir := fs.String("data-dir", firstNonEmpty(e.getenv("CODINGBRAIN_DATA_DIR"), def.DataDir), "data directory holding signing.key")
	keyFile := fs.String("key", "", "sign with this private key `file` (PEM from keys generate) instead of signing.key")
	sub := fs.String("sub", "", "subject (user or service id) (required)")
	org := fs.String("org", "", "org_id (required)")
	scopes := fs.String("scopes", strings.Join([]string{auth.ScopeMemoriesRead, auth.ScopeMemoriesWrite, auth.ScopeSearchRead}, " "), "space-separated scopes")
	grants := fs.String("grants", "", `space-separated grants, e.g. "team:acme/web project:acme/api"`)
	app := fs.String("app", "", "client app name recorded on memories")
	jkt := fs.String("dpop-jkt", "", "bind the token to a DPoP key: its RFC 7638 SHA-256 `thumbprint` (cnf.jkt)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	issuer := fs.String("issuer", firstNonEmpty(e.getenv("CODINGBRAIN_ISSUER"), config.DefaultIssuer), "iss claim")
	publicURL := fs.String("public-url", e.getenv("CODINGBRAIN_PUBLIC_URL"), "the server's public base `URL`, for the default audience")
	audience := fs.String("audience", e.getenv("CODINGBRAIN_AUDIENCE"), "aud claim (default: the server's resource URI)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *sub == "" || *org == "" {
		fmt.Fprintln(e.stderr, "token issue: --sub and --org are required")
		fs.Usage()
		return errUsage
	}
	for _, s := range auth.ParseScopes(*scopes) {
		if !slices.Contains(auth.AllScopes, s) {
			return fmt.Errorf("token issue: unknown scope %q; known scopes: %s", s, strings.Join(auth.AllScopes, " "))
		}
	}
	cfg := config.Config{Addr: firstNonEmpty(e.getenv("CODINGBRAIN_ADDR"), config.DefaultAddr), PublicURL: *publicURL, Audience: *audience}
	aud := cfg.TokenAudience(cfg.BaseURL())
	p := auth.Principal{Subject: *sub, OrgID: *org, Scopes: auth.ParseScopes(*scopes), Grants: strings.Fields(*grants), App: *app, KeyThumbprint: *jkt}

	t, err := mintToken(p, *dataDir, *keyFile, *issuer, aud, *ttl, nil)
	if err != nil {
		return fmt.Errorf("token issue: %w", err)
	}
	fmt.Fprintln(e.stdout, t)
	return nil
}

// mintToken signs a token for p: with the private key in keyFile when
// given (made by "keys generate"), else with the data directory's HS256
// key. now is the clock (nil: the system clock; only the HS256 key takes
// one). token issue and mcp-config both mint through it.
func mintToken(p auth.Principal, dataDir, keyFile, issuer, aud string, ttl time.Duration, now func() time.Time) (string, error) {
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return "", err
		}
		k, err := auth.ParseSigningKey(b)
		if err != nil {
			return "", fmt.Errorf("%s: %w", keyFile, err)
		}
		return k.Issue(p, issuer, aud, ttl)
	}
	key, err := auth.LoadKey(dataDir)
	if err != nil {
		return "", err
	}
	return auth.NewHS256(key, issuer, aud, now).Issue(p, ttl)
}

const keysUsage = `Usage: codingbrain keys generate --dir DIR [--alg ES256|RS256|EdDSA]

Makes a signing key pair for tokens verified through a JWKS: the private key
goes to DIR/<kid>.pem (mode 0600, for "codingbrain token issue --key"), and
its public key is added to DIR/jwks.json, keeping the keys already there so
that tokens of the old and the new key both verify while a rotation
overlaps. Serve jwks.json at the URL given to "serve --jwks-url".

       codingbrain keys retire --dir DIR --kid KID

Removes a key from DIR/jwks.json once no token signed by it is still in use.
See docs/runbooks/secret-rotation.md.

Flags:
`

func runKeys(_ context.Context, args []string, e env) error {
	if len(args) == 0 || (args[0] != "generate" && args[0] != "retire") {
		fmt.Fprint(e.stderr, keysUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, keysUsage); fs.PrintDefaults() }
	dir := fs.String("dir", "", "directory for the private key and jwks.json (required)")
	alg := fs.String("alg", "ES256", "ES256, RS256 or EdDSA (generate)")
	kid := fs.String("kid", "", "the key to remove (retire)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if *dir == "" || (args[0] == "retire" && *kid == "") {
		fs.Usage()
		return errUsage
	}
	jwksPath := filepath.Join(*dir, "jwks.json")
	existing, err := os.ReadFile(jwksPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keys: %w", err)
	}

	if args[0] == "retire" {
		out, err := auth.RemoveFromJWKS(existing, *kid)
		if err != nil {
			return fmt.Errorf("keys retire: %w", err)
		}
		if err := writeFileAtomic(jwksPath, out, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed %s from %s\n", *kid, jwksPath)
		return nil
	}

	k, err := auth.GenerateSigningKey(*alg)
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	pemBytes, err := k.PrivatePEM()
	if err != nil {
		return err
	}
	out, err := auth.AddToJWKS(existing, k)
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	keyPath := filepath.Join(*dir, k.KID+".pem")
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return fmt.Errorf("keys generate: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	if err := writeFileAtomic(jwksPath, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "kid %s (%s)\nprivate key: %s\njwks: %s\n", k.KID, k.Alg, keyPath, jwksPath)
	return nil
}

// writeFileAtomic replaces path with b so that readers see the old or the
// new content, never a part.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
