package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// newAuditFixture is newFixture with an audit recorder on the store, given
// to the REST server and the memory service as serve wires them. wrap, when
// set, wraps the store the recorder writes to.
func newAuditFixture(t *testing.T, logs *bytes.Buffer, wrap func(audit.Store) audit.Store) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var as audit.Store = store
	if wrap != nil {
		as = wrap(store)
	}
	log := slog.New(slog.DiscardHandler)
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	rec := audit.NewRecorder(as, audit.RecorderOptions{Logger: log})
	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	svc := memory.NewService(store, memory.Options{Audit: rec})
	api := httpapi.New(svc, httpapi.Options{Verifier: tokens, Version: "test", Audit: rec, APIKeys: store})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, api: api, store: store, tokens: tokens}
}

func (f *fixture) issue(p auth.Principal) string {
	f.t.Helper()
	tok, err := f.tokens.Issue(p, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// chain reads every audit record of the server.
func (f *fixture) chain() []audit.Record {
	f.t.Helper()
	recs, err := f.store.AuditChain(context.Background(), 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return recs
}

// newRecords returns the records after the first before, failing unless
// there are exactly want of them.
func (f *fixture) newRecords(before, want int) []audit.Record {
	f.t.Helper()
	recs := f.chain()
	if len(recs) != before+want {
		f.t.Fatalf("%d new audit records, want %d: %+v", len(recs)-before, want, recs[min(before, len(recs)):])
	}
	return recs[before:]
}

func TestAuditAuthFailures(t *testing.T) {
	f := newAuditFixture(t, nil, nil)
	other := auth.NewHS256(bytes.Repeat([]byte("x"), 32), "test-issuer", "test-aud", nil)
	forged, err := other.Issue(auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, reason string }{
		{"no token", "", "no_credentials"},
		{"forged token", forged, "invalid_token"},
	} {
		before := len(f.chain())
		r := f.do("GET", "/api/v1/memories/01SECRETID?x=1", tc.token, nil, "X-Request-ID", "req-"+tc.reason)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", tc.name, r.status)
		}
		rec := f.newRecords(before, 1)[0]
		if rec.Action != audit.ActionAuthFailure || rec.Outcome != audit.OutcomeDenied || rec.Actor != audit.ActorAnonymous ||
			rec.OrgID != "" || rec.Target != "GET /api/v1/memories/{id}" || rec.RemoteAddr != "127.0.0.1" ||
			rec.RequestID != "req-"+tc.reason || rec.Detail["reason"] != tc.reason {
			t.Errorf("%s: audit record %+v", tc.name, rec)
		}
		if tc.token != "" && strings.Contains(fmt.Sprint(rec), tc.token) {
			t.Errorf("%s: the token is in the audit record", tc.name)
		}
	}
	if rep, err := audit.Verify(context.Background(), f.store); err != nil || !rep.OK() || rep.Records != 2 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

func TestAuditForbiddenAndDeletes(t *testing.T) {
	f := newAuditFixture(t, nil, nil)
	admin := f.token("alice", "acme")
	m := f.create(admin, map[string]any{"content": "Deploys need two approvals", "scope": "org"})

	// A missing scope.
	reader := f.token("bob", "acme", auth.ScopeMemoriesRead)
	before := len(f.chain())
	r := f.do("DELETE", "/api/v1/memories/"+m.ID, reader, nil)
	if r.status != http.StatusForbidden {
		t.Fatalf("delete without memories:delete: %d %s", r.status, r.body)
	}
	rec := f.newRecords(before, 1)[0]
	if rec.Action != audit.ActionAccessForbidden || rec.Actor != "bob" || rec.OrgID != "acme" ||
		rec.Target != "DELETE /api/v1/memories/{id}" || rec.Detail["missing_scope"] != auth.ScopeMemoriesDelete ||
		rec.Detail["reason"] != "scope" || rec.RequestID != r.header.Get("X-Request-ID") {
		t.Errorf("scope failure record %+v", rec)
	}

	// Grants that do not cover the write (memory.ErrForbidden).
	narrow := f.issue(auth.Principal{Subject: "carol", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"team:acme/web"}})
	before = len(f.chain())
	r = f.do("POST", "/api/v1/memories", narrow, map[string]any{"content": "x", "scope": "team", "access_entity": "team:acme/ops"})
	if code, _, _ := r.errorOf(t); r.status != http.StatusForbidden || code != "forbidden" {
		t.Fatalf("add outside grants: %d %s", r.status, r.body)
	}
	rec = f.newRecords(before, 1)[0]
	if rec.Action != audit.ActionAccessForbidden || rec.Actor != "carol" || rec.OrgID != "acme" ||
		rec.Target != "access_entity:team:acme/ops" || rec.Detail["reason"] != "grants" ||
		rec.RequestID != r.header.Get("X-Request-ID") || rec.RemoteAddr != "127.0.0.1" {
		t.Errorf("grant failure record %+v", rec)
	}

	// A deletion.
	before = len(f.chain())
	r = f.do("DELETE", "/api/v1/memories/"+m.ID, admin, nil)
	if r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	rec = f.newRecords(before, 1)[0]
	if rec.Action != audit.ActionMemoryDelete || rec.Outcome != audit.OutcomeSuccess || rec.Actor != "alice" ||
		rec.OrgID != "acme" || rec.Target != "memory:"+m.ID || rec.RequestID != r.header.Get("X-Request-ID") {
		t.Errorf("delete record %+v", rec)
	}
	// Deleting again is not found, and not a deletion.
	before = len(f.chain())
	if r := f.do("DELETE", "/api/v1/memories/"+m.ID, admin, nil); r.status != http.StatusNotFound {
		t.Errorf("second delete: %d", r.status)
	}
	f.newRecords(before, 0)
}

func TestAuditAPIKeys(t *testing.T) {
	f := newAuditFixture(t, nil, nil)
	admin := f.token("alice", "acme")
	r := f.do("POST", "/api/v1/admin/api-keys", admin, map[string]any{"subject": "svc:ci", "scopes": []string{"memories:read"}})
	var made struct {
		Key    string `json:"key"`
		APIKey struct {
			ID string `json:"id"`
		} `json:"api_key"`
	}
	r.decode(t, &made)
	if r.status != http.StatusCreated || made.APIKey.ID == "" {
		t.Fatalf("create api key: %d %s", r.status, r.body)
	}
	if r := f.do("DELETE", "/api/v1/admin/api-keys/"+made.APIKey.ID, admin, nil); r.status != http.StatusOK {
		t.Fatalf("revoke api key: %d %s", r.status, r.body)
	}
	recs := f.newRecords(0, 2)
	if r := recs[0]; r.Action != audit.ActionAPIKeyCreate || r.Actor != "alice" || r.OrgID != "acme" ||
		r.Target != "apikey:"+made.APIKey.ID || r.Detail["subject"] != "svc:ci" {
		t.Errorf("create record %+v", r)
	}
	if r := recs[1]; r.Action != audit.ActionAPIKeyRevoke || r.Actor != "alice" || r.Target != "apikey:"+made.APIKey.ID {
		t.Errorf("revoke record %+v", r)
	}
	for _, r := range recs {
		if strings.Contains(fmt.Sprint(r), made.Key) || strings.Contains(fmt.Sprint(r), strings.TrimPrefix(made.Key, "cb_"+made.APIKey.ID+"_")) {
			t.Errorf("the key's secret is in the audit record %+v", r)
		}
	}
}

func TestAuditList(t *testing.T) {
	f := newAuditFixture(t, nil, nil)
	alice := f.token("alice", "acme")
	eve := f.token("eve", "globex")
	for i := range 3 {
		m := f.create(alice, map[string]any{"content": fmt.Sprintf("acme fact %d", i)})
		if r := f.do("DELETE", "/api/v1/memories/"+m.ID, alice, nil); r.status != 200 {
			t.Fatalf("delete: %d", r.status)
		}
	}
	m := f.create(eve, map[string]any{"content": "globex fact"})
	f.do("DELETE", "/api/v1/memories/"+m.ID, eve, nil)
	f.do("GET", "/api/v1/memories", "", nil) // a 401: no org

	// audit:read is needed, and asking without it is itself audited.
	noAudit := f.token("alice", "acme", auth.ScopeMemoriesRead)
	r := f.do("GET", "/api/v1/audit", noAudit, nil)
	if code, _, msg := r.errorOf(t); r.status != http.StatusForbidden || code != "insufficient_scope" || !strings.Contains(msg, "audit:read") {
		t.Fatalf("without audit:read: %d %s", r.status, r.body)
	}

	var page struct {
		Records   []audit.Record `json:"records"`
		NextAfter int64          `json:"next_after"`
	}
	r = f.do("GET", "/api/v1/audit", alice, nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r.decode(t, &page)
	var acme []audit.Record
	for _, rec := range f.chain() {
		if rec.OrgID == "acme" {
			acme = append(acme, rec)
		}
	}
	if len(page.Records) != 4 || len(acme) != 4 || page.NextAfter != 0 {
		t.Fatalf("acme sees %d records (next_after %d), want its 4: 3 deletes and the scope failure", len(page.Records), page.NextAfter)
	}
	for i, rec := range page.Records {
		if rec.OrgID != "acme" || rec.Seq != acme[i].Seq || rec.Hash != acme[i].Hash || rec.Action != acme[i].Action {
			t.Errorf("record %d: %+v, want %+v", i, rec, acme[i])
		}
	}
	if last := page.Records[3]; last.Action != audit.ActionAccessForbidden || last.Detail["missing_scope"] != auth.ScopeAuditRead {
		t.Errorf("the refused audit read is not the last record: %+v", last)
	}

	// Pages.
	var got []int64
	for after := int64(0); ; {
		r = f.do("GET", fmt.Sprintf("/api/v1/audit?limit=3&after=%d", after), alice, nil)
		page.NextAfter = 0
		r.decode(t, &page)
		for _, rec := range page.Records {
			got = append(got, rec.Seq)
		}
		if page.NextAfter == 0 {
			break
		}
		after = page.NextAfter
	}
	if fmt.Sprint(got) != fmt.Sprint([]int64{acme[0].Seq, acme[1].Seq, acme[2].Seq, acme[3].Seq}) {
		t.Errorf("paged seqs %v", got)
	}

	r = f.do("GET", "/api/v1/audit", eve, nil)
	r.decode(t, &page)
	if len(page.Records) != 1 || page.Records[0].OrgID != "globex" || page.Records[0].Actor != "eve" {
		t.Errorf("globex sees %+v", page.Records)
	}

	for _, q := range []string{"limit=0", "limit=501", "limit=x", "after=-1", "after=x", "org_id=globex"} {
		r = f.do("GET", "/api/v1/audit?"+q, alice, nil)
		if code, _, _ := r.errorOf(t); r.status != http.StatusBadRequest || code != "invalid_argument" {
			t.Errorf("?%s: %d %s", q, r.status, r.body)
		}
	}
}

func TestAuditListWithoutRecorder(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/api/v1/audit", f.token("alice", "acme"), nil)
	if code, _, _ := r.errorOf(t); r.status != http.StatusNotImplemented || code != "not_implemented" {
		t.Errorf("without an audit log: %d %s", r.status, r.body)
	}
}

// failingAudit is an audit store whose appends fail.
type failingAudit struct{ audit.Store }

func (failingAudit) AppendAudit(context.Context, audit.Event) (audit.Record, error) {
	return audit.Record{}, errors.New("audit disk on fire")
}

// TestAuditWriteFailure: a request succeeds when its audit record cannot
// be written, and the failure is in the log with the event.
func TestAuditWriteFailure(t *testing.T) {
	var logs bytes.Buffer
	f := newAuditFixture(t, &logs, func(s audit.Store) audit.Store { return failingAudit{s} })
	tok := f.token("alice", "acme")
	m := f.create(tok, map[string]any{"content": "to be deleted"})
	if r := f.do("DELETE", "/api/v1/memories/"+m.ID, tok, nil); r.status != http.StatusOK {
		t.Fatalf("delete with a failing audit log: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/api/v1/memories", "", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("no token with a failing audit log: %d", r.status)
	}
	out := logs.String()
	for _, want := range []string{"level=ERROR", `msg="audit write failed"`, "audit disk on fire", "event.action=memory.delete", "event.target=memory:" + m.ID, "event.action=auth.failure"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
