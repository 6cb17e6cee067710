package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
)

const tokenUsage = `Usage: codingbrain token issue --sub SUB --org ORG [flags]

Mints a token signed with the data directory's key and prints it alone on
stdout.

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
	sub := fs.String("sub", "", "subject (user or service id) (required)")
	org := fs.String("org", "", "org_id (required)")
	scopes := fs.String("scopes", strings.Join([]string{auth.ScopeMemoriesRead, auth.ScopeMemoriesWrite, auth.ScopeSearchRead}, " "), "space-separated scopes")
	grants := fs.String("grants", "", `space-separated grants, e.g. "team:acme/web project:acme/api"`)
	app := fs.String("app", "", "client app name recorded on memories")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	issuer := fs.String("issuer", firstNonEmpty(e.getenv("CODINGBRAIN_ISSUER"), config.DefaultIssuer), "iss claim")
	audience := fs.String("audience", firstNonEmpty(e.getenv("CODINGBRAIN_AUDIENCE"), config.DefaultAudience), "aud claim")
	if err := fs.Parse(args[1:]); err != nil {
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
	key, err := auth.LoadKey(*dataDir)
	if err != nil {
		return err
	}
	p := auth.Principal{Subject: *sub, OrgID: *org, Scopes: auth.ParseScopes(*scopes), Grants: strings.Fields(*grants), App: *app}
	t, err := auth.NewHS256(key, *issuer, *audience, nil).Issue(p, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, t)
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
