// Package auth knows who is calling and what they may do: principals, scopes,
// grants, and the tokens they come from.
package auth

import (
	"context"
	"slices"
	"strings"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject string   `json:"sub"`
	OrgID   string   `json:"org_id"`
	Scopes  []string `json:"scopes"`
	Grants  []string `json:"grants,omitempty"`
	// App is the client name the caller works through, when known.
	App string `json:"app,omitempty"`
	// TokenID is the jti of the token the caller presented, for audit.
	TokenID string `json:"-"`
	// KeyThumbprint, when set, is the DPoP key the token is bound to
	// (cnf.jkt): every request must carry a proof signed by that key.
	KeyThumbprint string `json:"-"`
}

// UserEntity is the access entity always granted to a principal.
func (p Principal) UserEntity() string { return "user:" + p.Subject }

// HasScope reports whether p holds scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Missing returns the first of scopes p does not hold, or "".
func (p Principal) Missing(scopes ...string) string {
	for _, s := range scopes {
		if !p.HasScope(s) {
			return s
		}
	}
	return ""
}

// Scope names. Every REST route and MCP tool declares which it needs.
const (
	ScopeMemoriesRead   = "memories:read"
	ScopeMemoriesWrite  = "memories:write"
	ScopeMemoriesDelete = "memories:delete"
	ScopeSearchRead     = "search:read"
	ScopeGraphRead      = "graph:read"
	ScopeGraphWrite     = "graph:write"
	ScopeEntitiesRead   = "entities:read"
	ScopeEntitiesWrite  = "entities:write"
	ScopeAppsRead       = "apps:read"
	ScopeAppsWrite      = "apps:write"
	ScopeStatsRead      = "stats:read"
	ScopeBackupRead     = "backup:read"
	ScopeBackupWrite    = "backup:write"
	ScopeGDPRRead       = "gdpr:read"
	ScopeGDPRDelete     = "gdpr:delete"
	ScopeAuditRead      = "audit:read"
	ScopeAdminRead      = "admin:read"
	ScopeAdminWrite     = "admin:write"
	// ScopeMetricsRead reads GET /metrics on the main listener.
	ScopeMetricsRead = "metrics:read"
)

// AllScopes lists every scope, as given to the local admin token.
var AllScopes = []string{
	ScopeMemoriesRead, ScopeMemoriesWrite, ScopeMemoriesDelete, ScopeSearchRead,
	ScopeGraphRead, ScopeGraphWrite, ScopeEntitiesRead, ScopeEntitiesWrite,
	ScopeAppsRead, ScopeAppsWrite, ScopeStatsRead, ScopeBackupRead, ScopeBackupWrite,
	ScopeGDPRRead, ScopeGDPRDelete, ScopeAuditRead, ScopeAdminRead, ScopeAdminWrite,
	ScopeMetricsRead,
}

// ParseScopes splits a space-separated scope string.
func ParseScopes(s string) []string { return strings.Fields(s) }

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx and whether there is one.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
