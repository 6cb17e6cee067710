package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// TestExportFilters: GET /api/v1/export streams JSON Lines, and its query
// selects by team, project, access entity, time and history; bad
// parameters are 400 naming the parameter.
func TestExportFilters(t *testing.T) {
	f := newFixture(t)
	alice := f.token("alice", "acme")
	web := f.create(alice, map[string]any{"content": "web deploys on Tuesdays", "scope": "team", "access_entity": "team:acme/web"})
	f.create(alice, map[string]any{"content": "ops rotates keys monthly", "scope": "team", "access_entity": "team:acme/ops"})
	f.create(alice, map[string]any{"content": "alice's own note"})

	lines := func(path string) []string {
		t.Helper()
		r := f.do("GET", path, alice, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("GET %s: %d %s %s", path, r.status, r.header.Get("Content-Type"), r.body)
		}
		return strings.Split(strings.TrimRight(string(r.body), "\n"), "\n")
	}
	if got := lines("/api/v1/export"); len(got) != 4 || !strings.Contains(got[0], `"counts":{"memories":3}`) {
		t.Errorf("export of everything: %q", got)
	}
	got := lines("/api/v1/export?team=web")
	if len(got) != 2 || !strings.Contains(got[1], web.ID) || !strings.Contains(got[0], `"access_entity":"team:acme/web"`) {
		t.Errorf("team=web: %q", got)
	}
	if got := lines("/api/v1/export?team=acme/ops"); len(got) != 2 || !strings.Contains(got[1], "ops rotates") {
		t.Errorf("team=acme/ops: %q", got)
	}
	if got := lines("/api/v1/export?access_entity=user:alice&history=false"); len(got) != 2 ||
		strings.Contains(got[1], `"history"`) || !strings.Contains(got[0], `"history":false`) {
		t.Errorf("access_entity and history=false: %q", got)
	}
	if got := lines("/api/v1/export?since=2999-01-01T00:00:00Z"); len(got) != 1 || !strings.Contains(got[0], `"counts":{"memories":0}`) {
		t.Errorf("since in the future: %q", got)
	}
	if got := lines("/api/v1/export?org=acme&state=all"); len(got) != 4 {
		t.Errorf("org=acme&state=all: %q", got)
	}

	for _, c := range []struct{ query, field string }{
		{"org=globex", "org"},
		{"bogus=1", "bogus"},
		{"team=web&access_entity=team:acme/ops", "team"},
		{"since=yesterday", "since"},
		{"history=maybe", "history"},
		{"state=gone", "state"},
		{"access_entity=nobody", "access_entity"},
	} {
		r := f.do("GET", "/api/v1/export?"+c.query, alice, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", c.query, r.status, r.body)
			continue
		}
		if _, field, _ := r.errorOf(t); field != c.field {
			t.Errorf("%s: field %q, want %q", c.query, field, c.field)
		}
	}
	if r := f.do("GET", "/api/v1/export", f.token("alice", "acme", auth.ScopeSearchRead), nil); r.status != http.StatusForbidden {
		t.Errorf("export without memories:read: %d", r.status)
	}
}

// TestImportREST: POST /api/v1/import answers the report, refuses a bad
// on_conflict, a file it cannot read (with the report and the error
// envelope) and a token without memories:write.
func TestImportREST(t *testing.T) {
	f := newFixture(t)
	alice := f.token("alice", "acme")
	f.create(alice, map[string]any{"content": "web deploys on Tuesdays", "scope": "team", "access_entity": "team:acme/web"})
	file := string(f.do("GET", "/api/v1/export", alice, nil).body)
	ndjson := []string{"Content-Type", "application/x-ndjson"}

	r := f.do("POST", "/api/v1/import?on_conflict=skip", alice, file, ndjson...)
	var rep struct {
		Committed bool              `json:"committed"`
		Imported  int               `json:"imported"`
		Skipped   []json.RawMessage `json:"skipped"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	r.decode(t, &rep)
	if !rep.Committed || rep.Imported != 0 || len(rep.Skipped) != 1 {
		t.Errorf("re-import with skip: %s", r.body)
	}

	r = f.do("POST", "/api/v1/import", alice, file, ndjson...)
	if r.status != http.StatusConflict {
		t.Errorf("re-import with the default (fail): %d %s, want 409", r.status, r.body)
	} else if code, field, _ := r.errorOf(t); code != "conflict" || field != "id" || !strings.Contains(string(r.body), `"report":{"committed":false`) {
		t.Errorf("conflict answer: %s", r.body)
	}

	r = f.do("POST", "/api/v1/import?on_conflict=maybe", alice, file, ndjson...)
	if _, field, _ := r.errorOf(t); r.status != http.StatusBadRequest || field != "on_conflict" {
		t.Errorf("on_conflict=maybe: %d %s", r.status, r.body)
	}
	r = f.do("POST", "/api/v1/import", alice, `{"format":"codingbrain-export","version":9}`+"\n", ndjson...)
	if _, field, msg := r.errorOf(t); r.status != http.StatusBadRequest || field != "version" || !strings.Contains(msg, "line 1") {
		t.Errorf("a newer version: %d %s", r.status, r.body)
	}
	r = f.do("POST", "/api/v1/import", f.token("alice", "acme", auth.ScopeMemoriesRead), file, ndjson...)
	if r.status != http.StatusForbidden {
		t.Errorf("import without memories:write: %d", r.status)
	}
	r = f.do("POST", "/api/v1/import", alice, "not a zip", "Content-Type", "application/zip")
	if _, field, _ := r.errorOf(t); r.status != http.StatusBadRequest || field != "body" {
		t.Errorf("a body that is not a zip: %d %s", r.status, r.body)
	}
}
