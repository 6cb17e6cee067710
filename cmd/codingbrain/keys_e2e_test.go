package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestKeyRotation rotates a JWKS signing key under a running server, the
// way docs/runbooks/secret-rotation.md describes: generate a second key
// (both verify), move token issuance to it, retire the first (its tokens
// stop verifying) — without restarting serve.
func TestKeyRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	keysDir := t.TempDir()
	idp := httptest.NewServer(http.FileServer(http.Dir(keysDir))) // a static JWKS host
	defer idp.Close()

	kidOf := regexp.MustCompile(`(?m)^kid (\S+) \(ES256\)$`)
	generate := func() string {
		t.Helper()
		r := runCLI(t, bin, nil, "keys", "generate", "--dir", keysDir)
		m := kidOf.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("keys generate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if fi, err := os.Stat(filepath.Join(keysDir, m[1]+".pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("private key file: %v, mode %v", err, fi.Mode().Perm())
		}
		return m[1]
	}
	oldKID := generate()

	cfgFile := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfgFile, []byte(`{"jwks_refresh": "1s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, bin, t.TempDir(), "--config", cfgFile, "--jwks-url", idp.URL+"/jwks.json", "--public-url", "http://brain.test")

	issue := func(kid string) string {
		t.Helper()
		r := runCLI(t, bin, nil, "token", "issue", "--key", filepath.Join(keysDir, kid+".pem"), "--issuer", "codingbrain-local",
			"--public-url", "http://brain.test", "--sub", "svc-ci", "--org", "acme", "--scopes", "memories:read memories:write search:read")
		if r.code != 0 {
			t.Fatalf("token issue --key: exit %d: %s", r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	works := func(token string) error {
		_, err := client.New(srv.url, token).Search(t.Context(), client.SearchRequest{Query: "anything"})
		return err
	}
	oldToken := issue(oldKID)
	if err := works(oldToken); err != nil {
		t.Fatalf("token of the first key: %v", err)
	}
	if _, _, err := client.New(srv.url, oldToken).Add(t.Context(), memory.Input{Content: "CI writes build facts through a service account."}, ""); err != nil {
		t.Fatalf("write with the first key: %v", err)
	}

	newKID := generate() // overlap: jwks.json now holds both
	newToken := issue(newKID)
	if err := works(newToken); err != nil {
		t.Errorf("token of the new key during the overlap: %v", err)
	}
	if err := works(oldToken); err != nil {
		t.Errorf("token of the old key during the overlap: %v", err)
	}

	if r := runCLI(t, bin, nil, "keys", "retire", "--dir", keysDir, "--kid", oldKID); r.code != 0 {
		t.Fatalf("keys retire: exit %d: %s", r.code, r.stderr)
	}
	eventually(t, "the retired key's token is refused", func() error {
		if err := works(oldToken); !errors.Is(err, memory.ErrUnauthorized) {
			return errors.New("still accepted")
		}
		return nil
	})
	if err := works(newToken); err != nil {
		t.Errorf("token of the new key after the old one was retired: %v", err)
	}
	if r := runCLI(t, bin, nil, "keys", "retire", "--dir", keysDir, "--kid", "no-such-kid"); r.code == 0 {
		t.Errorf("retiring an unknown kid succeeded")
	}
}
