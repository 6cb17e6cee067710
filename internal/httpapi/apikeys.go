package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// The admin API for API keys (auth.APIKey): create, list, revoke, always
// within the caller's org. A new key never holds more than its creator: its
// scopes are scopes the caller holds, its grants lie within the caller's
// grants, and its subject is a service account (svc:<name>) or the caller
// itself — never another person, whose private memories (user:<sub>) the
// key would otherwise see.
type (
	apiKeyRequest struct {
		Subject string   `json:"subject" jsonschema:"the service account, svc:<name>, or your own subject for a personal key"`
		OrgID   string   `json:"org_id,omitempty" jsonschema:"your own org, the default; keys cannot be made for another"`
		Scopes  []string `json:"scopes" jsonschema:"scopes of the key, each one you hold"`
		Grants  []string `json:"grants,omitempty" jsonschema:"access entities the key may see, each within your own grants"`
		App     string   `json:"app,omitempty" jsonschema:"client app name recorded on memories the key writes"`
		TTL     string   `json:"ttl,omitempty" jsonschema:"lifetime, such as 720h or 90d; empty: the key does not expire"`
	}
	apiKeyCreatedResponse struct {
		Key    string      `json:"key" jsonschema:"the API key, cb_<id>_<secret>; shown only in this answer (the server keeps a hash)"`
		APIKey auth.APIKey `json:"api_key"`
	}
	apiKeyResponse     auth.APIKey
	apiKeyListResponse struct {
		APIKeys []auth.APIKey `json:"api_keys"`
	}
)

// serviceAccount is the form of a service account's subject.
var serviceAccount = regexp.MustCompile(`^svc:[A-Za-z0-9][A-Za-z0-9.-]{0,63}$`)

// maxAPIKeyApp bounds the app name of a key.
const maxAPIKeyApp = 100

// newKeyAttempts bounds retries when a random key id is taken.
const newKeyAttempts = 3

func (s *Server) keyStore() (auth.KeyStore, error) {
	if s.opts.APIKeys == nil {
		return nil, &httpError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this server keeps no API keys"}
	}
	return s.opts.APIKeys, nil
}

func forbiddenField(field, format string, args ...any) error {
	return &httpError{status: http.StatusForbidden, code: "forbidden", field: field, msg: field + ": " + fmt.Sprintf(format, args...)}
}

func invalidField(field, format string, args ...any) error {
	return &memory.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// keyPrincipal checks req against the caller p and returns the principal the
// new key authenticates as and its lifetime (0: no expiry).
func keyPrincipal(p auth.Principal, req apiKeyRequest) (auth.Principal, time.Duration, error) {
	if req.OrgID != "" && req.OrgID != p.OrgID {
		return auth.Principal{}, 0, forbiddenField("org_id", "keys can be made only in your own org %q", p.OrgID)
	}
	switch {
	case req.Subject == "":
		return auth.Principal{}, 0, invalidField("subject", "is required: a service account such as svc:ci, or your own subject")
	case req.Subject == p.Subject:
	case strings.HasPrefix(req.Subject, "svc:") && !serviceAccount.MatchString(req.Subject):
		return auth.Principal{}, 0, invalidField("subject", "%q must be svc: followed by up to 64 letters, digits, dots and hyphens", req.Subject)
	case !strings.HasPrefix(req.Subject, "svc:"):
		return auth.Principal{}, 0, forbiddenField("subject",
			"%q is neither a service account (svc:<name>) nor you: a key for another person would see their private memories", req.Subject)
	}

	if len(req.Scopes) == 0 {
		return auth.Principal{}, 0, invalidField("scopes", "give at least one scope; known scopes: %s", strings.Join(auth.AllScopes, " "))
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if !slices.Contains(auth.AllScopes, sc) {
			return auth.Principal{}, 0, invalidField("scopes", "%q is not a scope; known scopes: %s", sc, strings.Join(auth.AllScopes, " "))
		}
		if !p.HasScope(sc) {
			return auth.Principal{}, 0, forbiddenField("scopes", "you do not hold %q, so a key you make cannot", sc)
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}

	access := memory.AccessFor(p)
	var grants []string
	for _, g := range req.Grants {
		if err := memory.ValidEntity(g); err != nil {
			var ve *memory.ValidationError
			if errors.As(err, &ve) {
				return auth.Principal{}, 0, invalidField("grants", "%s", ve.Reason)
			}
			return auth.Principal{}, 0, err
		}
		if !access.Allows(g) {
			return auth.Principal{}, 0, forbiddenField("grants", "%q is not within your own grants", g)
		}
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}

	if len(req.App) > maxAPIKeyApp || strings.IndexFunc(req.App, unicode.IsControl) >= 0 {
		return auth.Principal{}, 0, invalidField("app", "must be at most %d characters without control characters", maxAPIKeyApp)
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return auth.Principal{}, 0, err
	}
	return auth.Principal{Subject: req.Subject, OrgID: p.OrgID, Scopes: scopes, Grants: grants, App: req.App}, ttl, nil
}

// parseTTL reads a lifetime: a Go duration (720h, 90m) or whole days (90d).
// Empty is 0, no expiry.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
		if n > 100*365 {
			err = errors.New("too long")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, invalidField("ttl", "%q must be a positive duration such as 720h or 90d, or empty for no expiry", s)
	}
	return d, nil
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) {
	ks, err := s.keyStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req apiKeyRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	caller, _ := auth.PrincipalFrom(r.Context())
	p, ttl, err := keyPrincipal(caller, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for range newKeyAttempts {
		plain, k, err := auth.NewAPIKey(p, s.opts.Now(), ttl)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		k.CreatedBy = caller.Subject
		switch err := ks.CreateAPIKey(r.Context(), k); {
		case errors.Is(err, auth.ErrAPIKeyExists):
			continue // a random id was taken: draw another
		case err != nil:
			s.writeError(w, r, err)
			return
		}
		s.log.InfoContext(r.Context(), "api key created", "key_id", k.ID, "subject", k.Subject, "org_id", k.OrgID,
			"by", caller.Subject, "request_id", requestID(r.Context()))
		s.auditAPIKey(r, audit.ActionAPIKeyCreate, k.ID, map[string]any{"subject": k.Subject, "scopes": k.Scopes})
		w.Header().Set("Location", "/api/v1/admin/api-keys/"+k.ID)
		writeJSON(w, http.StatusCreated, apiKeyCreatedResponse{Key: plain, APIKey: k})
		return
	}
	s.writeError(w, r, errors.New("create api key: no free id"))
}

func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.keyStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	caller, _ := auth.PrincipalFrom(r.Context())
	keys, err := ks.ListAPIKeys(r.Context(), caller.OrgID)
	s.reply(w, r, apiKeyListResponse{APIKeys: nonNil(keys)}, err)
}

func (s *Server) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	ks, err := s.keyStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	caller, _ := auth.PrincipalFrom(r.Context())
	id := r.PathValue("id")
	err = ks.RevokeAPIKey(r.Context(), caller.OrgID, id, s.opts.Now())
	if errors.Is(err, auth.ErrAPIKeyNotFound) {
		err = fmt.Errorf("api key %s: %w", id, memory.ErrNotFound)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "api key revoked", "key_id", id, "org_id", caller.OrgID,
		"by", caller.Subject, "request_id", requestID(r.Context()))
	s.auditAPIKey(r, audit.ActionAPIKeyRevoke, id, nil)
	k, err := ks.APIKeyByID(r.Context(), id)
	s.reply(w, r, apiKeyResponse(k), err)
}
