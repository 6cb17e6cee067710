package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/codingbrain/codingbrain/client"
)

func TestAPIKeyMethods(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{status: http.StatusCreated, body: `{"key":"cb_abc_def","api_key":{"id":"abc","org_id":"acme","subject":"svc:ci","scopes":["search:read"],"created_at":"2026-01-02T03:04:05Z","created_by":"carol"}}`}
	c := serve(t, rec)
	got, err := c.CreateAPIKey(ctx, client.APIKeyRequest{Subject: "svc:ci", Scopes: []string{"search:read"}, TTL: "90d"})
	if err != nil || got.Key != "cb_abc_def" || got.APIKey.ID != "abc" || got.APIKey.Subject != "svc:ci" {
		t.Fatalf("create: %+v, %v", got, err)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.reqBody, &body); err != nil {
		t.Fatal(err)
	}
	if rec.req.Method != "POST" || rec.req.URL.Path != "/api/v1/admin/api-keys" || body["subject"] != "svc:ci" || body["ttl"] != "90d" || body["org_id"] != nil {
		t.Errorf("create sent %s %s %s", rec.req.Method, rec.req.URL.Path, rec.reqBody)
	}

	rec.status, rec.body = http.StatusOK, `{"api_keys":[{"id":"abc","subject":"svc:ci"},{"id":"def","subject":"svc:bot"}]}`
	keys, err := c.ListAPIKeys(ctx)
	if err != nil || len(keys) != 2 || keys[1].ID != "def" || rec.req.Method != "GET" || rec.req.URL.Path != "/api/v1/admin/api-keys" {
		t.Errorf("list: %+v, %v (%s %s)", keys, err, rec.req.Method, rec.req.URL.Path)
	}

	rec.body = `{"id":"a/b","revoked_at":"2026-01-02T03:04:05Z"}`
	k, err := c.RevokeAPIKey(ctx, "a/b")
	if err != nil || k.RevokedAt == nil || rec.req.Method != "DELETE" || rec.req.URL.EscapedPath() != "/api/v1/admin/api-keys/a%2Fb" {
		t.Errorf("revoke: %+v, %v (%s %s)", k, err, rec.req.Method, rec.req.URL.EscapedPath())
	}

	rec.status, rec.body = http.StatusForbidden, `{"error":{"code":"forbidden","message":"scopes: you do not hold \"gdpr:delete\"","field":"scopes"}}`
	_, err = c.CreateAPIKey(ctx, client.APIKeyRequest{Subject: "svc:ci", Scopes: []string{"gdpr:delete"}})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Field != "scopes" || !errors.Is(err, client.ErrForbidden) {
		t.Errorf("a refused create: %v", err)
	}
}
