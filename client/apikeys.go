package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// APIKey is the record of an API key as the server shows it: never its
// secret or the secret's hash.
type APIKey = auth.APIKey

// APIKeyRequest is the body of POST /api/v1/admin/api-keys. The key gets at
// most the caller's own scopes and grants, in the caller's org.
type APIKeyRequest struct {
	// Subject is the service account, svc:<name>, or the caller's own
	// subject for a personal key.
	Subject string `json:"subject"`
	// OrgID, when set, must be the caller's org.
	OrgID  string   `json:"org_id,omitempty"`
	Scopes []string `json:"scopes"`
	Grants []string `json:"grants,omitempty"`
	App    string   `json:"app,omitempty"`
	// TTL is the lifetime, such as "720h" or "90d"; empty means no expiry.
	TTL string `json:"ttl,omitempty"`
}

// CreatedAPIKey is a new key: Key is the bearer token, shown only once.
type CreatedAPIKey struct {
	Key    string `json:"key"`
	APIKey APIKey `json:"api_key"`
}

// CreateAPIKey makes an API key (scope admin:write).
func (c *Client) CreateAPIKey(ctx context.Context, r APIKeyRequest) (CreatedAPIKey, error) {
	var out CreatedAPIKey
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/admin/api-keys", nil, nil, r, &out); err != nil {
		return CreatedAPIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return out, nil
}

// ListAPIKeys returns the API keys of the caller's org, revoked ones too,
// oldest first (scope admin:read).
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var out struct {
		APIKeys []APIKey `json:"api_keys"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/admin/api-keys", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out.APIKeys, nil
}

// RevokeAPIKey revokes an API key of the caller's org and returns its
// record (scope admin:write). Revoking a revoked key succeeds.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	if _, err := c.do(ctx, http.MethodDelete, "/api/v1/admin/api-keys/"+url.PathEscape(id), nil, nil, nil, &k); err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	return k, nil
}
