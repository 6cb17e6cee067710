package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
)

const mcpConfigUsage = `Usage: codingbrain mcp-config --client CLIENT [flags]

Prints a ready-to-paste MCP configuration for CLIENT with a freshly minted
token of the chosen scopes (signed like "codingbrain token issue"):

  claude-code     .mcp.json at the project root (or: claude mcp add-json)
  cursor          ~/.cursor/mcp.json, or .cursor/mcp.json in a project
  vscode          .vscode/mcp.json
  codex           ~/.codex/config.toml
  claude-desktop  claude_desktop_config.json

By default the client connects to the server's Streamable HTTP endpoint
(--url, default $CODINGBRAIN_PUBLIC_URL, else http://$CODINGBRAIN_ADDR, else
http://127.0.0.1:8765) with an Authorization header; Claude Desktop reaches
it through mcp-remote. With --stdio the client runs "codingbrain mcp" itself
on this data directory, with the token in CODINGBRAIN_TOKEN. The token is a
secret: the output belongs in a file only you can read.

Flags:
`

// mcpClients are the clients mcp-config knows, in the order of the usage.
var mcpClients = []string{"claude-code", "cursor", "vscode", "codex", "claude-desktop"}

// defaultClientScopes are what a coding assistant needs day to day.
var defaultClientScopes = []string{
	auth.ScopeMemoriesRead, auth.ScopeMemoriesWrite, auth.ScopeMemoriesDelete, auth.ScopeSearchRead,
	auth.ScopeGraphRead, auth.ScopeEntitiesRead,
}

func runMCPConfig(_ context.Context, args []string, e env) error {
	return mcpConfig(args, e, nil)
}

// mcpConfig is runMCPConfig with a clock (nil: the system clock), so that
// tests get stable tokens.
func mcpConfig(args []string, e env, now func() time.Time) error {
	fs := flag.NewFlagSet("mcp-config", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, mcpConfigUsage); fs.PrintDefaults() }
	def := config.Default()
	client := fs.String("client", "", "the client: "+strings.Join(mcpClients, ", ")+" (required)")
	url := fs.String("url", "", "the server's base `URL` (default $CODINGBRAIN_PUBLIC_URL, else http://$CODINGBRAIN_ADDR)")
	stdio := fs.Bool("stdio", false, `have the client run "codingbrain mcp" over stdio instead of connecting to a server`)
	scopes := fs.String("scopes", strings.Join(defaultClientScopes, " "), "space-separated scopes of the token")
	sub := fs.String("sub", firstNonEmpty(e.getenv("USER"), "developer"), "subject of the token (default $USER)")
	org := fs.String("org", "local", "org_id of the token")
	grants := fs.String("grants", "", `space-separated grants, e.g. "team:acme/web project:acme/api"`)
	ttl := fs.Duration("ttl", 30*24*time.Hour, "token lifetime")
	name := fs.String("name", "codingbrain", "the server's name in the client's configuration")
	dataDir := fs.String("data-dir", firstNonEmpty(e.getenv("CODINGBRAIN_DATA_DIR"), def.DataDir), "data directory holding signing.key (and, with --stdio, the database)")
	keyFile := fs.String("key", "", "sign with this private key `file` (PEM from keys generate) instead of signing.key")
	issuer := fs.String("issuer", firstNonEmpty(e.getenv("CODINGBRAIN_ISSUER"), config.DefaultIssuer), "iss claim")
	command := fs.String("command", "", "with --stdio: the codingbrain executable the client runs (default: this one)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("mcp-config: unexpected argument %q", fs.Arg(0))
	}
	if !slices.Contains(mcpClients, *client) {
		if *client == "" {
			fmt.Fprintln(e.stderr, "mcp-config: --client is required")
			fs.Usage()
			return errUsage
		}
		return fmt.Errorf("mcp-config: --client %q: use one of %s", *client, strings.Join(mcpClients, ", "))
	}
	for _, s := range auth.ParseScopes(*scopes) {
		if !slices.Contains(auth.AllScopes, s) {
			return fmt.Errorf("mcp-config: --scopes: unknown scope %q; known scopes: %s", s, strings.Join(auth.AllScopes, " "))
		}
	}

	cfg := config.Config{
		Addr:      firstNonEmpty(e.getenv("CODINGBRAIN_ADDR"), config.DefaultAddr),
		PublicURL: firstNonEmpty(*url, e.getenv("CODINGBRAIN_PUBLIC_URL")),
		Audience:  e.getenv("CODINGBRAIN_AUDIENCE"),
	}
	base := cfg.BaseURL()
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return fmt.Errorf("mcp-config: --url %q: use http://host:port or https://host", base)
	}
	p := auth.Principal{Subject: *sub, OrgID: *org, Scopes: auth.ParseScopes(*scopes), Grants: strings.Fields(*grants), App: *client}
	token, err := mintToken(p, *dataDir, *keyFile, *issuer, cfg.TokenAudience(base), *ttl, now)
	if err != nil {
		return fmt.Errorf("mcp-config: %w", err)
	}

	s := clientServer{name: *name, url: base + "/mcp", token: token}
	if *stdio {
		s.command = *command
		if s.command == "" {
			if s.command, err = os.Executable(); err != nil {
				return fmt.Errorf("mcp-config: find this executable: %w", err)
			}
		}
		dir, err := filepath.Abs(*dataDir)
		if err != nil {
			return fmt.Errorf("mcp-config: --data-dir: %w", err)
		}
		s.args = []string{"mcp", "--data-dir", dir}
		if cfg.PublicURL != "" {
			s.args = append(s.args, "--public-url", cfg.PublicURL)
		}
	}
	out, where, err := s.render(*client)
	if err != nil {
		return fmt.Errorf("mcp-config: %w", err)
	}
	fmt.Fprint(e.stdout, out)
	fmt.Fprintf(e.stderr, "%s\nThe token (sub %s, org %s, scopes %q) expires in %s; it is a secret.\n", where, *sub, *org, strings.Join(p.Scopes, " "), ttl.String())
	return nil
}

// clientServer is the server entry of a client configuration: a URL and
// a token for HTTP, or a command, its args and the token for stdio.
type clientServer struct {
	name, url, token string
	command          string // stdio when set
	args             []string
}

// render returns the configuration for client and a line saying where it
// goes.
func (s clientServer) render(client string) (out, where string, err error) {
	auth := "Bearer " + s.token
	env := map[string]string{"CODINGBRAIN_TOKEN": s.token}
	var entry map[string]any
	switch client {
	case "claude-code":
		where = "Paste into .mcp.json at the project root (or ~/.claude.json), or pass the entry to `claude mcp add-json " + s.name + "`."
		if s.command != "" {
			entry = map[string]any{"type": "stdio", "command": s.command, "args": s.args, "env": env}
		} else {
			entry = map[string]any{"type": "http", "url": s.url, "headers": map[string]string{"Authorization": auth}}
		}
		return jsonConfig("mcpServers", s.name, entry), where, nil
	case "cursor":
		where = "Paste into ~/.cursor/mcp.json (every project) or .cursor/mcp.json (this project)."
		if s.command != "" {
			entry = map[string]any{"command": s.command, "args": s.args, "env": env}
		} else {
			entry = map[string]any{"url": s.url, "headers": map[string]string{"Authorization": auth}}
		}
		return jsonConfig("mcpServers", s.name, entry), where, nil
	case "vscode":
		where = "Paste into .vscode/mcp.json (or the \"mcp\" section of your user settings)."
		if s.command != "" {
			entry = map[string]any{"type": "stdio", "command": s.command, "args": s.args, "env": env}
		} else {
			entry = map[string]any{"type": "http", "url": s.url, "headers": map[string]string{"Authorization": auth}}
		}
		return jsonConfig("servers", s.name, entry), where, nil
	case "claude-desktop":
		where = "Paste into claude_desktop_config.json (Settings > Developer > Edit Config) and restart Claude Desktop."
		if s.command != "" {
			entry = map[string]any{"command": s.command, "args": s.args, "env": env}
		} else {
			// Claude Desktop's config file starts local processes only;
			// mcp-remote bridges stdio to the server's Streamable HTTP.
			entry = map[string]any{
				"command": "npx",
				"args":    []string{"-y", "mcp-remote", s.url, "--header", "Authorization:${CODINGBRAIN_AUTH}"},
				"env":     map[string]string{"CODINGBRAIN_AUTH": auth},
			}
		}
		return jsonConfig("mcpServers", s.name, entry), where, nil
	case "codex":
		where = "Paste into ~/.codex/config.toml (or .codex/config.toml in a trusted project)."
		var b strings.Builder
		fmt.Fprintf(&b, "[mcp_servers.%s]\n", tomlKey(s.name))
		if s.command != "" {
			fmt.Fprintf(&b, "command = %s\nargs = %s\nenv = { CODINGBRAIN_TOKEN = %s }\n", tomlString(s.command), tomlArray(s.args), tomlString(s.token))
		} else {
			fmt.Fprintf(&b, "url = %s\nhttp_headers = { Authorization = %s }\n", tomlString(s.url), tomlString(auth))
		}
		return b.String(), where, nil
	}
	return "", "", fmt.Errorf("unknown client %q", client)
}

// jsonConfig renders {top: {name: entry}} indented, with keys sorted.
func jsonConfig(top, name string, entry map[string]any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{top: map[string]any{name: entry}})
	return b.String()
}

// tomlString quotes s as a TOML basic string (the escapes are JSON's).
func tomlString(s string) string { return strconv.Quote(s) }

func tomlArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// tomlKey leaves a bare key bare and quotes anything else.
func tomlKey(k string) string {
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return tomlString(k)
		}
	}
	return k
}
