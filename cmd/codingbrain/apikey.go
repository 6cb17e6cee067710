package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

const apikeyUsage = `Usage: codingbrain apikey <command> [arguments] [flags]

API keys are bearer tokens for service accounts (CI jobs, agents, scripts):
cb_<id>_<secret>. The server keeps only a hash of the secret; a key is shown
once, when it is made, and can be revoked at any time.

Commands:
  create --subject svc:NAME --scopes "S ..."   make a key; prints it alone on stdout
  list                                         the keys of your org (never their secrets)
  revoke ID                                    revoke a key; it stops working at once

A key is made in your own org with at most your own scopes and grants. Its
subject is a service account (svc:<name>) or yourself.

Every command takes:
  --server URL   server address (env CODINGBRAIN_SERVER, default ` + client.DefaultBaseURL + `)
  --token T      bearer token (env CODINGBRAIN_TOKEN; required; needs admin:write or admin:read)
  --json         print the JSON result, for scripts
  --timeout D    give up after this long (default 30s)

Run "codingbrain apikey <command> -h" for the flags of a command.
`

// apikeyCommands returns the apikey subcommands, with fresh flag state.
func apikeyCommands(e env) map[string]memoryCmd {
	return map[string]memoryCmd{
		"create": apikeyCreateCmd(e),
		"list": {about: "List the API keys of your org, revoked and expired ones too, oldest first.",
			run: runAPIKeyList},
		"revoke": {args: "ID ", nargs: 1, run: runAPIKeyRevoke,
			about: "Revoke an API key of your org. Requests with it fail from now on, on every replica."},
	}
}

// runAPIKey is the command-line client of the API-key admin routes.
func runAPIKey(ctx context.Context, args []string, e env) error {
	return runClientCommand(ctx, "apikey", apikeyUsage, apikeyCommands(e), args, e)
}

// words is a flag of space- or comma-separated words, repeatable.
type words []string

func (w *words) String() string { return strings.Join(*w, " ") }

func (w *words) Set(s string) error {
	*w = append(*w, strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })...)
	return nil
}

func apikeyCreateCmd(e env) memoryCmd {
	var (
		req            client.APIKeyRequest
		scopes, grants words
	)
	return memoryCmd{
		about: `Make an API key and print it alone on standard output, e.g.
  export CODINGBRAIN_TOKEN=$(codingbrain apikey create --subject svc:ci --scopes "memories:read search:read")
The key is shown only now; the server keeps a hash of it.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&req.Subject, "subject", "", "the service account, svc:<name>, or your own subject (required)")
			fs.Var(&scopes, "scopes", "the key's `scopes`, space- or comma-separated, each one you hold (required)")
			fs.Var(&grants, "grants", "access entities the key may see, e.g. \"team:acme/web project:acme/api\", within your own grants")
			fs.StringVar(&req.App, "app", "", "client app name recorded on memories the key writes")
			fs.StringVar(&req.TTL, "ttl", "", "lifetime, such as 720h or 90d (default: no expiry)")
			fs.StringVar(&req.OrgID, "org", "", "org of the key; only your own (the default)")
		},
		run: func(ctx context.Context, c *client.Client, o *output, _ []string) error {
			if req.Subject == "" || len(scopes) == 0 {
				return usageError("--subject and --scopes are required")
			}
			req.Scopes, req.Grants = scopes, grants
			k, err := c.CreateAPIKey(ctx, req)
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(k)
			}
			fmt.Fprintf(e.stderr, "created API key %s for %s; it is shown only now:\n", k.APIKey.ID, k.APIKey.Subject)
			return o.printf("%s\n", k.Key)
		},
	}
}

func runAPIKeyList(ctx context.Context, c *client.Client, o *output, _ []string) error {
	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	if o.json {
		if keys == nil {
			keys = []client.APIKey{}
		}
		return o.printJSON(map[string]any{"api_keys": keys})
	}
	if len(keys) == 0 {
		return o.printf("no API keys\n")
	}
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tSTATE\tCREATED\tEXPIRES\tLAST USED\tSCOPES")
	now := time.Now()
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Subject, keyState(k, now),
			formatTime(k.CreatedAt)+by(k.CreatedBy), orDash(formatTimePtr(k.ExpiresAt)),
			orDash(formatTimePtr(k.LastUsedAt)), scopeSummary(k.Scopes))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func runAPIKeyRevoke(ctx context.Context, c *client.Client, o *output, args []string) error {
	k, err := c.RevokeAPIKey(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		return o.printJSON(k)
	}
	return o.printf("revoked %s (%s)\n", k.ID, k.Subject)
}

func keyState(k client.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case !k.Active(now):
		return "expired"
	}
	return "active"
}

func scopeSummary(scopes []string) string {
	if len(scopes) == len(auth.AllScopes) && !slices.ContainsFunc(auth.AllScopes, func(s string) bool { return !slices.Contains(scopes, s) }) {
		return "(all)"
	}
	return strings.Join(scopes, " ")
}

// keyStore is the API-key store of serve's system of record: both stores
// keep the keys in the same database as the memories.
func keyStore(st memory.Store) (auth.KeyStore, error) {
	ks, ok := st.(auth.KeyStore)
	if !ok {
		return nil, fmt.Errorf("the %T store keeps no API keys", st)
	}
	return ks, nil
}

// tokenVerifier accepts what serve and mcp accept: API keys from the
// store, and JWTs through jwt (nil: JWTs are refused).
func tokenVerifier(ks auth.KeyStore, jwt auth.Verifier, log *slog.Logger) auth.Verifier {
	return auth.Verifiers{APIKeys: auth.NewAPIKeys(ks, auth.APIKeysOptions{Logger: log}), JWT: jwt}
}

// announceAdminKey makes the first-start admin key and prints it once, as
// "admin token: cb_…". The store decides what "first" means (see
// auth.BootstrapAdminKey): replicas starting together on one database print
// at most one key between them, and a restart prints none.
func announceAdminKey(ctx context.Context, ks auth.KeyStore, w io.Writer) error {
	key, created, err := auth.BootstrapAdminKey(ctx, ks, time.Now())
	if err != nil || !created {
		return err
	}
	admin := auth.LocalAdmin()
	fmt.Fprintf(w, "First start: created the admin API key %s (subject %s, org %s, every scope).\n"+
		"admin token: %s\n"+
		"It is shown once and stored only as a hash; it does not expire. Make keys for services with\n"+
		"`codingbrain apikey create`; revoke this one with `codingbrain apikey revoke %s`.\n",
		auth.LocalAdminKeyID, admin.Subject, admin.OrgID, key, auth.LocalAdminKeyID)
	return nil
}
