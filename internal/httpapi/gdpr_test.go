package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// newPrivacyFixture is newFixture with the privacy routes served.
func newPrivacyFixture(t *testing.T) *fixture {
	f := newFixture(t)
	svc := memory.NewService(f.store, memory.Options{})
	api := httpapi.New(svc, httpapi.Options{
		Verifier: f.tokens, MaxBodyBytes: 4096, Version: "test",
		GDPR: gdpr.New(f.store, gdpr.Options{}), Retention: f.store,
	})
	f.srv = httptest.NewServer(api)
	t.Cleanup(f.srv.Close)
	return f
}

func TestRetentionRoutes(t *testing.T) {
	f := newPrivacyFixture(t)
	admin, other := f.token("root", "acme"), f.token("root", "globex")
	var pol gdpr.RetentionPolicy
	r := f.do("GET", "/api/v1/admin/retention", admin, nil)
	if r.decode(t, &pol); r.status != 200 || pol != (gdpr.RetentionPolicy{OrgID: "acme"}) {
		t.Fatalf("default policy: %d %s", r.status, r.body)
	}
	r = f.do("PUT", "/api/v1/admin/retention", admin, map[string]any{"access_log_days": 30, "purge_deleted_days": 90})
	if r.decode(t, &pol); r.status != 200 || pol.AccessLogDays != 30 || pol.PurgeDeletedDays != 90 || pol.UpdatedAt.IsZero() {
		t.Fatalf("set: %d %s", r.status, r.body)
	}
	r = f.do("PUT", "/api/v1/admin/retention", admin, map[string]any{"archive_untouched_days": 365})
	if r.decode(t, &pol); pol.AccessLogDays != 30 || pol.ArchiveUntouchedDays != 365 {
		t.Errorf("a partial change lost the other fields: %s", r.body)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"access_log_days": -1}, "access_log_days"},
		{map[string]any{"purge_deleted_days": 40000}, "purge_deleted_days"},
		{map[string]any{"keep_days": 3}, "keep_days"},
	} {
		r := f.do("PUT", "/api/v1/admin/retention", admin, tc.body)
		if code, field, _ := r.errorOf(t); r.status != 400 || code != "invalid_argument" || field != tc.field {
			t.Errorf("%v: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
		}
	}
	r = f.do("GET", "/api/v1/admin/retention", other, nil)
	if r.decode(t, &pol); pol.OrgID != "globex" || pol.AccessLogDays != 0 {
		t.Errorf("another org sees %s", r.body)
	}
	reader := f.token("someone", "acme", auth.ScopeAdminRead)
	if r := f.do("PUT", "/api/v1/admin/retention", reader, map[string]any{"access_log_days": 1}); r.status != http.StatusForbidden {
		t.Errorf("PUT without admin:write: %d", r.status)
	}
}

func TestPrivacyRoutesNotConfigured(t *testing.T) {
	f := newFixture(t)
	tok := f.token("root", "acme")
	for _, rt := range [][2]string{{"GET", "/api/v1/gdpr/subjects/alice/export"}, {"DELETE", "/api/v1/gdpr/subjects/alice?reason=x"},
		{"GET", "/api/v1/gdpr/subjects/alice/check"}, {"GET", "/api/v1/admin/retention"}} {
		if r := f.do(rt[0], rt[1], tok, nil); r.status != http.StatusNotImplemented {
			t.Errorf("%s %s without a privacy store: %d, want 501", rt[0], rt[1], r.status)
		}
	}
}

func TestEraseRoute(t *testing.T) {
	f := newPrivacyFixture(t)
	dpo := f.token("dpo", "acme")
	alice := f.token("alice", "acme")
	m := f.create(alice, map[string]any{"content": "alice's private note", "scope": "user"})
	r := f.do("DELETE", "/api/v1/gdpr/subjects/alice", dpo, nil)
	if _, field, _ := r.errorOf(t); r.status != 400 || field != "reason" {
		t.Errorf("erase without a reason: %d %s", r.status, r.body)
	}
	r = f.do("DELETE", "/api/v1/gdpr/subjects/alice", dpo, map[string]any{"reason": "DSR-1"})
	var res gdpr.EraseResult
	if r.decode(t, &res); r.status != 200 || !res.Check.Clean || res.Receipt.Removed[gdpr.SourceMemoriesAuthored] != 1 || !gdpr.VerifyReceipt(res.Receipt) {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/api/v1/memories/"+m.ID, dpo, nil); r.status != 404 {
		t.Errorf("the erased memory: %d", r.status)
	}
	if r := f.do("DELETE", "/api/v1/gdpr/subjects/alice?reason=x", f.token("x", "acme", auth.ScopeGDPRRead), nil); r.status != 403 {
		t.Errorf("erase with gdpr:read only: %d", r.status)
	}
}
