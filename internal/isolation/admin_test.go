package isolation

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
)

// The admin routes for API keys: a key is made, listed and revoked only in
// the caller's org, holds at most the caller's grants (never one of another
// org), and authenticates as a principal that sees exactly what the oracle
// says for its grants.

// ghostKeyID is a well-formed API key id that no key has.
const ghostKeyID = "zzzzzzzzzzzz"

// madeKey is the answer to POST /api/v1/admin/api-keys.
type madeKey struct {
	Key    string      `json:"key"`
	APIKey auth.APIKey `json:"api_key"`
}

func (w *world) makeKey(t *testing.T, p *principal, body map[string]any) madeKey {
	t.Helper()
	r := w.do(t, "POST", "/api/v1/admin/api-keys", p.token, body)
	var k madeKey
	r.decode(t, &k)
	if r.status != http.StatusCreated || k.Key == "" || k.APIKey.OrgID != p.OrgID {
		t.Fatalf("%s: make key %v: %d %s, want 201 with a key of %s", p.name, body, r.status, r.body, p.OrgID)
	}
	return k
}

// keyPrincipal is the caller a key authenticates as, with the key as its
// bearer token.
func keyPrincipal(k madeKey) *principal {
	p := newPrincipal(k.APIKey.Subject, k.APIKey.OrgID, k.APIKey.Scopes, k.APIKey.Grants)
	p.token = k.Key
	return p
}

// keyCounts counts the API keys of each org in the store.
func (w *world) keyCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, org := range []string{"acme", "globex"} {
		ks, err := w.keys.ListAPIKeys(t.Context(), org)
		if err != nil {
			t.Fatal(err)
		}
		out[org] = len(ks)
	}
	return out
}

func otherOrg(org string) string { return map[string]string{"acme": "globex", "globex": "acme"}[org] }

func restCreateAPIKey(t *testing.T, w *world) {
	made := map[string]int{}
	n := 0
	for _, p := range w.principals {
		if !can(p, auth.ScopeAdminWrite) {
			continue
		}
		refused := func(what, field string, body map[string]any) {
			t.Helper()
			r := w.do(t, "POST", "/api/v1/admin/api-keys", p.token, body)
			if code, _ := r.errorOf(); r.status != http.StatusForbidden || code != "forbidden" || !strings.Contains(string(r.body), `"field":"`+field+`"`) {
				t.Errorf("%s: make %s: %d %s, want 403 forbidden on %s", p.name, what, r.status, r.body, field)
			}
			w.noLeak(t, p, "make "+what, r.body)
		}
		read := []string{auth.ScopeMemoriesRead}
		refused("a key in "+otherOrg(p.OrgID), "org_id", map[string]any{"subject": "svc:iso", "org_id": otherOrg(p.OrgID), "scopes": read})
		for _, q := range w.principals {
			if q.Subject != p.Subject {
				refused("a key for "+q.Subject, "subject", map[string]any{"subject": q.Subject, "scopes": read})
			}
		}
		for _, sc := range auth.AllScopes {
			if !p.HasScope(sc) {
				refused("a key with "+sc, "scopes", map[string]any{"subject": "svc:iso", "scopes": []string{sc}})
			}
		}
		// A key granted each entity of both orgs: only the caller's own
		// can be delegated, and the key sees exactly what they cover.
		for _, ent := range w.entities() {
			n++
			body := map[string]any{"subject": fmt.Sprintf("svc:iso-%d", n), "scopes": read, "grants": []string{ent}}
			if !writable(p, ent) {
				refused("a key granted "+ent, "grants", body)
				continue
			}
			k := w.makeKey(t, p, body)
			made[p.OrgID]++
			if !slices.Equal(k.APIKey.Grants, []string{ent}) || !slices.Equal(k.APIKey.Scopes, read) {
				t.Errorf("%s: key granted %s holds grants %v and scopes %v", p.name, ent, k.APIKey.Grants, k.APIKey.Scopes)
			}
			kp := keyPrincipal(k)
			wantIDs(t, kp, "list with a key of "+p.name+" granted "+ent,
				w.listAll(t, kp, url.Values{"state": everyState}, 200), w.visible(kp))
		}
	}
	if got := w.keyCounts(t); got["acme"] != made["acme"] || got["globex"] != made["globex"] {
		t.Errorf("API keys per org: the store has %v, the accepted requests made %v", got, made)
	}
}

// makeOrgKeys makes two keys in each org, by its admin.
func (w *world) makeOrgKeys(t *testing.T) []madeKey {
	t.Helper()
	var out []madeKey
	for _, name := range []string{"ada@acme", "ada@globex"} {
		p := w.principal(name)
		for i := range 2 {
			out = append(out, w.makeKey(t, p, map[string]any{
				"subject": fmt.Sprintf("svc:fixture-%d", i), "scopes": []string{auth.ScopeMemoriesRead}, "grants": []string{"org:" + p.OrgID},
			}))
		}
	}
	return out
}

func restListAPIKeys(t *testing.T, w *world) {
	keys := w.makeOrgKeys(t)
	for _, p := range w.principals {
		if !can(p, auth.ScopeAdminRead) {
			continue
		}
		r := w.do(t, "GET", "/api/v1/admin/api-keys", p.token, nil)
		var res struct {
			APIKeys []auth.APIKey `json:"api_keys"`
		}
		r.decode(t, &res)
		var got, want []string
		for _, k := range res.APIKeys {
			got = append(got, k.ID)
		}
		for _, k := range keys {
			if k.APIKey.OrgID == p.OrgID {
				want = append(want, k.APIKey.ID)
			} else if strings.Contains(string(r.body), k.APIKey.ID) {
				t.Errorf("%s: the key list shows key %s of %s", p.name, k.APIKey.ID, k.APIKey.OrgID)
			}
			if strings.Contains(string(r.body), k.Key[len(k.Key)-20:]) {
				t.Errorf("%s: the key list shows the secret of key %s", p.name, k.APIKey.ID)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if r.status != http.StatusOK || !slices.Equal(got, want) {
			t.Errorf("%s: list keys: %d %v, want the keys of %s %v", p.name, r.status, got, p.OrgID, want)
		}
		w.noLeak(t, p, "list keys", r.body)
	}
}

func restRevokeAPIKey(t *testing.T, w *world) {
	keys := w.makeOrgKeys(t)
	for _, p := range w.principals {
		if !can(p, auth.ScopeAdminWrite) {
			continue
		}
		ghost := w.do(t, "DELETE", "/api/v1/admin/api-keys/"+ghostKeyID, p.token, nil)
		_, gmsg := ghost.errorOf()
		for _, k := range keys {
			if k.APIKey.OrgID == p.OrgID {
				continue
			}
			r := w.do(t, "DELETE", "/api/v1/admin/api-keys/"+k.APIKey.ID, p.token, nil)
			code, msg := r.errorOf()
			if r.status != http.StatusNotFound || code != "not_found" ||
				strings.ReplaceAll(msg, k.APIKey.ID, "ID") != strings.ReplaceAll(gmsg, ghostKeyID, "ID") {
				t.Errorf("%s: revoke key %s of %s: %d %s, want 404 as for a key that does not exist (%s)", p.name, k.APIKey.ID, k.APIKey.OrgID, r.status, r.body, ghost.body)
			}
			if strings.Contains(string(r.body), k.APIKey.Subject) {
				t.Errorf("%s: revoking key %s of %s reveals its subject: %s", p.name, k.APIKey.ID, k.APIKey.OrgID, r.body)
			}
		}
	}
	for _, k := range keys {
		if r := w.do(t, "GET", "/api/v1/memories", k.Key, nil); r.status != http.StatusOK {
			t.Errorf("key %s of %s after the other org's attempts to revoke it: %d %s", k.APIKey.ID, k.APIKey.OrgID, r.status, r.body)
		}
	}
	// The org's own admin can revoke it, and then it stops working.
	for _, k := range keys[:1] {
		if r := w.do(t, "DELETE", "/api/v1/admin/api-keys/"+k.APIKey.ID, w.principal("ada@"+k.APIKey.OrgID).token, nil); r.status != http.StatusOK {
			t.Errorf("revoke key %s as its org's admin: %d %s", k.APIKey.ID, r.status, r.body)
		}
		if r := w.do(t, "GET", "/api/v1/memories", k.Key, nil); r.status != http.StatusUnauthorized {
			t.Errorf("revoked key %s: %d %s, want 401", k.APIKey.ID, r.status, r.body)
		}
	}
}

// The audit log: GET /api/v1/audit shows the caller's org's records and no
// other's. Records hold ids and entity names, never memory content; a
// reader with audit:read sees its whole org's events (deletions of
// memories it cannot read included), which is what the scope is for, but
// nothing of another org.

// auditEvents makes records in both orgs and in none: refused writes, a
// refused scope, deletions, API keys, session hijack attempts both ways,
// and failed authentication.
func (w *world) auditEvents(t *testing.T) {
	t.Helper()
	for _, p := range w.principals {
		for _, ent := range w.entities() {
			if !p.access.Allows(ent) && strings.Contains(ent, otherOrg(p.OrgID)) && can(p, auth.ScopeMemoriesWrite) {
				w.do(t, "POST", "/api/v1/memories", p.token, map[string]any{"content": "audit probe", "scope": entityScope(ent), "access_entity": ent})
			}
		}
		if !can(p, auth.ScopeMemoriesWrite) {
			w.do(t, "POST", "/api/v1/memories", p.token, map[string]any{"content": "audit probe"})
		}
		if live := w.live(p); can(p, auth.ScopeMemoriesDelete) && len(live) > 0 {
			e := live[0]
			if r := w.do(t, "DELETE", "/api/v1/memories/"+e.m.ID, p.token, nil); r.status == http.StatusOK {
				w.refresh(t, e, 1)
			}
		}
	}
	w.makeOrgKeys(t)
	acme, globex := w.principal("ada@acme"), w.principal("ada@globex")
	for _, pair := range [][2]*principal{{acme, globex}, {globex, acme}, {acme, w.principal("mallory@globex")}} {
		if status := w.useSession(t, pair[0], pair[1]); status != http.StatusForbidden {
			t.Errorf("%s on %s's session: %d, want 403", pair[1].name, pair[0].name, status)
		}
	}
	w.do(t, "GET", "/api/v1/memories", "not-a-token", nil)
}

// useSession opens a Streamable HTTP session as owner and calls a tool on it
// as caller; it returns the status of that call (and checks the answer
// reveals nothing of the owner's memories to another caller).
func (w *world) useSession(t *testing.T, owner, caller *principal) int {
	t.Helper()
	sid := w.connect(t, owner, "2025-11-25").ID()
	if sid == "" {
		t.Fatalf("%s: no session id", owner.name)
	}
	r := w.do(t, "POST", "/mcp", caller.token,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_memories","arguments":{"detail":"full"}}}`,
		"Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-11-25", "Accept", "application/json, text/event-stream")
	w.noLeak(t, caller, "a call on "+owner.name+"'s session", r.body)
	return r.status
}

func restAudit(t *testing.T, w *world) {
	w.auditEvents(t)
	var chain []audit.Record
	for after := int64(0); ; {
		recs, err := w.chain.AuditChain(t.Context(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		chain = append(chain, recs...)
		after = recs[len(recs)-1].Seq
	}
	byOrg := map[string][]int64{}
	for _, rec := range chain {
		byOrg[rec.OrgID] = append(byOrg[rec.OrgID], rec.Seq)
	}
	if len(byOrg["acme"]) == 0 || len(byOrg["globex"]) == 0 || len(byOrg[""]) == 0 {
		t.Fatalf("the events made records in acme %d, globex %d, no org %d: the case proves nothing", len(byOrg["acme"]), len(byOrg["globex"]), len(byOrg[""]))
	}
	for _, p := range w.principals {
		if !can(p, auth.ScopeAuditRead) {
			continue
		}
		var got []int64
		actions := map[string]bool{}
		for after := int64(0); ; {
			r := w.do(t, "GET", fmt.Sprintf("/api/v1/audit?after=%d&limit=7", after), p.token, nil)
			var page struct {
				Records   []audit.Record `json:"records"`
				NextAfter int64          `json:"next_after"`
			}
			r.decode(t, &page)
			if r.status != http.StatusOK {
				t.Fatalf("%s: audit: %d %s", p.name, r.status, r.body)
			}
			for _, rec := range page.Records {
				if rec.OrgID != p.OrgID {
					t.Errorf("%s: the audit log shows record %d of org %q: %+v", p.name, rec.Seq, rec.OrgID, rec)
				}
				got = append(got, rec.Seq)
				actions[rec.Action] = true
			}
			w.auditLeaks(t, p, r.body)
			if page.NextAfter == 0 {
				break
			}
			after = page.NextAfter
		}
		if !slices.Equal(got, byOrg[p.OrgID]) {
			t.Errorf("%s: the audit log shows records %v, its org has %v", p.name, got, byOrg[p.OrgID])
		}
		for _, a := range []string{audit.ActionAccessForbidden, audit.ActionMemoryDelete, audit.ActionAPIKeyCreate, audit.ActionSessionHijack} {
			if !actions[a] {
				t.Errorf("%s: the audit log of %s has no %s record", p.name, p.OrgID, a)
			}
		}
	}
}

// auditLeaks fails when an audit answer holds memory content, or an id of
// a memory of another org.
func (w *world) auditLeaks(t *testing.T, p *principal, body []byte) {
	t.Helper()
	for _, e := range w.entries {
		if e.marker != "" && strings.Contains(string(body), e.marker) {
			t.Errorf("%s: the audit log holds the content of memory %s (%s)", p.name, e.m.ID, e.marker)
		}
		if e.m.OrgID != p.OrgID && strings.Contains(string(body), e.m.ID) {
			t.Errorf("%s: the audit log names memory %s of %s", p.name, e.m.ID, e.m.OrgID)
		}
	}
}
