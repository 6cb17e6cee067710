package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite generated documents under docs/")

// TestScopesDoc keeps docs/scopes.md equal to the scopes the code enforces:
// the REST route table and the MCP tool table. Run with -update-docs after
// changing either.
func TestScopesDoc(t *testing.T) {
	const path = "../../docs/scopes.md"
	want := scopesDoc()
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("docs/scopes.md is out of date with the route and tool tables; run go test ./cmd/codingbrain -run TestScopesDoc -update-docs")
	}
}

func scopesDoc() string {
	var b strings.Builder
	b.WriteString("# Scopes\n\n")
	b.WriteString("Generated from the code (`internal/httpapi/routes.go`, `internal/mcpserver/tools.go`) by\n" +
		"`go test ./cmd/codingbrain -run TestScopesDoc -update-docs`; a test fails when it drifts.\n\n")
	b.WriteString("A token carries scopes in its space-separated `scope` claim. A request whose token lacks\n" +
		"a scope gets 403 `insufficient_scope` naming it (REST), or a tool result with `isError`\n" +
		"naming it (MCP). Which memories a caller sees is decided separately, by its grants.\n\n")
	b.WriteString("## Known scopes\n\n")
	for _, s := range auth.AllScopes {
		fmt.Fprintf(&b, "- `%s`\n", s)
	}
	b.WriteString("\n## REST routes\n\n| Method | Path | Scopes |\n|---|---|---|\n")
	for _, r := range httpapi.Routes() {
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", r.Method, r.Path, scopeList(r.Scopes))
	}
	fmt.Fprintf(&b, "\n`GET /metrics` (Prometheus) needs `%s`; `serve --metrics-addr` also serves it without a token on a separate, internal listener.\n", auth.ScopeMetricsRead)
	b.WriteString("Health (`/health/*`), `/openapi.json` and `/.well-known/oauth-protected-resource` need no token.\n")
	b.WriteString("\n## MCP tools\n\n| Tool | Scopes |\n|---|---|\n")
	tools := mcpserver.ToolScopes()
	names := make([]string, 0, len(tools))
	for name := range tools {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "| `%s` | %s |\n", name, scopeList(tools[name]))
	}
	return b.String()
}

func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "any valid token"
	}
	quoted := make([]string, len(scopes))
	for i, s := range scopes {
		quoted[i] = "`" + s + "`"
	}
	return strings.Join(quoted, ", ")
}

// TestScopesKnown: every scope a route or tool needs is one tokens can carry.
func TestScopesKnown(t *testing.T) {
	check := func(where string, scopes []string) {
		for _, s := range scopes {
			if !slices.Contains(auth.AllScopes, s) {
				t.Errorf("%s needs unknown scope %q", where, s)
			}
		}
	}
	for _, r := range httpapi.Routes() {
		check(r.Method+" "+r.Path, r.Scopes)
	}
	for name, scopes := range mcpserver.ToolScopes() {
		check("tool "+name, scopes)
	}
}
