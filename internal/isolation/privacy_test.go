package isolation

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// The privacy routes act on a subject of the caller's org and, by design
// (docs/privacy.md), on all of that org: gdpr:read and gdpr:delete are the
// data-protection officer's scopes, and admin:read and admin:write the
// org administrator's, not bounded by grants. What these cases prove is
// the org boundary: the same subject identifier in another org is another
// person, never exported, counted, erased or pseudonymized from outside
// its org, and an org's retention policy is read and set only by its own
// callers.

// subjects are the subject identifiers of the fixture, of both orgs: ada
// is a subject of both; gus and mallory only of globex; the others only
// of acme.
var subjects = []string{"ada", "pat", "wendy", "oscar", "luke", "nina", "rita", "nora", "gus", "mallory"}

// crossOrgSubjects are identifiers that try to name a subject of the other
// org from inside one's own.
func crossOrgSubjects(other string) []string {
	return []string{other + "/gus", "gus@" + other, "../" + other + "/gus", other + ":gus", other + "/luke", "luke@" + other}
}

// subjectPath is the route of sub, escaped.
func subjectPath(sub, suffix string) string {
	return "/api/v1/gdpr/subjects/" + url.PathEscape(sub) + suffix
}

// orgLeaks returns what body reveals of memories of orgs other than org:
// their ids and the unique words of their content.
func (w *world) orgLeaks(org string, body []byte) []string {
	var out []string
	for _, e := range w.entries {
		if e.m.OrgID == org {
			continue
		}
		if bytes.Contains(body, []byte(e.m.ID)) {
			out = append(out, "id "+e.m.ID)
		}
		if e.marker != "" && bytes.Contains(body, []byte(e.marker)) {
			out = append(out, "content of "+e.m.ID+" ("+e.marker+")")
		}
	}
	return out
}

func (w *world) noOrgLeak(t *testing.T, p *principal, what string, body []byte) {
	t.Helper()
	if l := w.orgLeaks(p.OrgID, body); len(l) > 0 {
		t.Errorf("%s: %s: the answer reveals %s of another org: %.400s", p.name, what, strings.Join(l, ", "), body)
	}
}

// subjectState gives the subjects data beyond their memories in both
// orgs: reads and searches (access log) by every principal, searches in
// globex that name acme's subjects, a luke of globex (another person than
// acme's) with a memory and an API key, and MCP sessions of ada and luke
// in both orgs, bound in the shared state.
func (w *world) subjectState(t *testing.T) map[*principal]*mcp.ClientSession {
	t.Helper()
	for _, p := range w.principals {
		if can(p, auth.ScopeSearchRead) {
			q := "canary"
			if p.OrgID == "globex" {
				q = "canary luke pat wendy"
			}
			w.do(t, "POST", "/api/v1/search", p.token, map[string]any{"query": q})
		}
		if can(p, auth.ScopeMemoriesRead) {
			if id := sampleOwnID(w, p); id != ghostID {
				w.do(t, "GET", "/api/v1/memories/"+id, p.token, nil)
			}
		}
	}
	// globex's luke, another person than acme's: a memory of his own, an
	// API key and a session.
	lukeG := newPrincipal("luke", "globex", allScopes, nil)
	w.issue(t, lukeG)
	r := w.do(t, "POST", "/api/v1/memories", lukeG.token, map[string]any{"content": "globex's luke keeps his own notes"})
	var m memory.Memory
	r.decode(t, &m)
	if r.status != http.StatusCreated {
		t.Fatalf("luke@globex: create: %d %s", r.status, r.body)
	}
	w.add(t, m.ID, "")
	w.makeKey(t, lukeG, map[string]any{"subject": "luke", "scopes": []string{auth.ScopeMemoriesRead}})
	sessions := map[*principal]*mcp.ClientSession{}
	for _, p := range []*principal{w.principal("ada@acme"), w.principal("ada@globex"), w.principal("luke@acme"), lukeG} {
		sessions[p] = w.connect(t, p, eras[0])
		if _, ok := w.sessionBound(t, sessions[p].ID()); !ok {
			t.Fatalf("%s: MCP session %q is not bound in the shared state", p.name, sessions[p].ID())
		}
	}
	return sessions
}

// gdprExport exports sub as p.
func (w *world) gdprExport(t *testing.T, p *principal, sub string) (gdpr.Export, response) {
	t.Helper()
	r := w.do(t, "GET", subjectPath(sub, "/export"), p.token, nil)
	var x gdpr.Export
	if r.status == http.StatusOK {
		r.decode(t, &x)
	}
	return x, r
}

// wantOwnOrgExport checks that an export p made holds only data of p's org.
func (w *world) wantOwnOrgExport(t *testing.T, p *principal, sub string, x gdpr.Export, r response) {
	t.Helper()
	what := "gdpr export of " + sub
	if r.status != http.StatusOK {
		// A refused identifier is fine; it must say nothing of others.
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: %s: %d %.300s, want 200 or 400", p.name, what, r.status, r.body)
		}
		w.noOrgLeak(t, p, what, r.body)
		return
	}
	w.noOrgLeak(t, p, what, r.body)
	if x.OrgID != p.OrgID {
		t.Errorf("%s: %s: the export is of org %q", p.name, what, x.OrgID)
	}
	for _, m := range slices.Concat(x.MemoriesAuthored, x.MemoriesNaming) {
		if e := w.byID[m.ID]; m.OrgID != p.OrgID || e == nil || e.m.OrgID != p.OrgID {
			t.Errorf("%s: %s holds memory %s of org %q", p.name, what, m.ID, m.OrgID)
		}
	}
	for _, h := range x.History {
		if h.OrgID != p.OrgID {
			t.Errorf("%s: %s holds history of %s in org %q", p.name, what, h.MemoryID, h.OrgID)
		}
	}
	for _, a := range x.AccessLog {
		if a.OrgID != p.OrgID {
			t.Errorf("%s: %s holds an access-log row of org %q (%s by %s)", p.name, what, a.OrgID, a.Via, a.Actor)
		}
	}
	for _, a := range x.AuditLog {
		if a.OrgID != p.OrgID {
			t.Errorf("%s: %s holds audit record %d of org %q", p.name, what, a.Seq, a.OrgID)
		}
	}
	for _, k := range slices.Concat(x.APIKeys, x.APIKeysCreated) {
		if k.OrgID != p.OrgID {
			t.Errorf("%s: %s holds API key %s of org %q", p.name, what, k.ID, k.OrgID)
		}
	}
	for _, s := range x.Sessions {
		if s.Data["user"] != p.OrgID+"/"+sub {
			t.Errorf("%s: %s holds session %s of %v", p.name, what, s.Key, s.Data["user"])
		}
	}
	for _, s := range x.SharedKeys {
		if !strings.Contains(s.Key, p.OrgID+"/"+sub) {
			t.Errorf("%s: %s holds shared-state key %s", p.name, what, s.Key)
		}
	}
}

// authoredIn are the ids of org's memories whose author is sub.
func (w *world) authoredIn(org, sub string) []string {
	return idsOf(w.filter(func(e *entry) bool { return e.m.OrgID == org && e.m.CreatedBy == sub }))
}

func exportedIDs(x gdpr.Export) []string {
	var out []string
	for _, m := range slices.Concat(x.MemoriesAuthored, x.MemoriesNaming) {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func restGDPRExport(t *testing.T, w *world) {
	w.subjectState(t)
	for _, p := range w.principals {
		if !can(p, auth.ScopeGDPRRead) {
			continue
		}
		for _, sub := range append(slices.Clone(subjects), crossOrgSubjects(otherOrg(p.OrgID))...) {
			x, r := w.gdprExport(t, p, sub)
			w.wantOwnOrgExport(t, p, sub, x, r)
			// Every memory of the caller's org the subject wrote is
			// there: the boundary is the org, not a broken route.
			if r.status == http.StatusOK {
				got := exportedIDs(x)
				for _, id := range w.authoredIn(p.OrgID, sub) {
					if !slices.Contains(got, id) {
						t.Errorf("%s: gdpr export of %s lacks %s's memory %s of %s", p.name, sub, sub, id, p.OrgID)
					}
				}
			}
		}
	}
	// ada is a subject of both orgs: each org's export is its own ada's.
	acme, _ := w.gdprExport(t, w.principal("ada@acme"), "ada")
	globex, _ := w.gdprExport(t, w.principal("ada@globex"), "ada")
	if len(acme.MemoriesAuthored) == 0 || len(globex.MemoriesAuthored) == 0 {
		t.Errorf("ada's exports hold %d memories in acme and %d in globex, want both non-empty", len(acme.MemoriesAuthored), len(globex.MemoriesAuthored))
	}
	// acme's luke has two memories and no key; globex's luke one memory
	// and a key.
	lukeA, _ := w.gdprExport(t, w.principal("ada@acme"), "luke")
	lukeG, _ := w.gdprExport(t, w.principal("ada@globex"), "luke")
	if len(lukeA.MemoriesAuthored) != 2 || len(lukeA.APIKeys) != 0 || len(lukeG.APIKeys) != 1 || len(lukeG.MemoriesAuthored) != 1 {
		t.Errorf("luke's exports: acme %d memories %d keys, globex %d memories %d keys; want 2 and 0 in acme, 1 and 1 in globex",
			len(lukeA.MemoriesAuthored), len(lukeA.APIKeys), len(lukeG.MemoriesAuthored), len(lukeG.APIKeys))
	}
}

func restGDPRCheck(t *testing.T, w *world) {
	w.subjectState(t)
	// Subjects with no data in an org are clean there, whatever the other
	// org holds of the same identifier.
	absent := absentSubjects
	for _, p := range w.principals {
		if !can(p, auth.ScopeGDPRRead) {
			continue
		}
		for _, sub := range append(slices.Clone(absent[p.OrgID]), crossOrgSubjects(otherOrg(p.OrgID))...) {
			r := w.do(t, "GET", subjectPath(sub, "/check"), p.token, nil)
			w.noOrgLeak(t, p, "gdpr check of "+sub, r.body)
			if r.status == http.StatusBadRequest {
				continue
			}
			var c gdpr.CheckResult
			r.decode(t, &c)
			if r.status != http.StatusOK || !c.Clean || sumCounts(c.Found) != 0 {
				t.Errorf("%s: gdpr check of %s, a subject only of the other org: %d clean=%v found %v, want clean with nothing found",
					p.name, sub, r.status, c.Clean, c.Found)
			}
		}
	}
	// And subjects with data are found: the check is not always clean.
	for _, c := range []struct{ who, sub string }{{"ada@acme", "ada"}, {"ada@acme", "luke"}, {"ada@globex", "ada"}, {"ada@globex", "luke"}, {"ada@globex", "gus"}} {
		r := w.do(t, "GET", subjectPath(c.sub, "/check"), w.principal(c.who).token, nil)
		var res gdpr.CheckResult
		r.decode(t, &res)
		if r.status != http.StatusOK || res.Clean {
			t.Errorf("%s: gdpr check of %s: %d clean=%v, want the subject found", c.who, c.sub, r.status, res.Clean)
		}
	}
}

// absentSubjects are, per org, the subjects the other org has and this one
// holds nothing about (subjectState has globex search for luke, pat and
// wendy, which makes those subjects of globex's access log too).
var absentSubjects = map[string][]string{"acme": {"gus", "mallory"}, "globex": {"oscar", "rita", "nora", "nina"}}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// exportCounts are the manifest counts of sub's export in p's org, but
// the audit log, which every export and erasure adds to.
func (w *world) exportCounts(t *testing.T, p *principal, sub string) map[string]int {
	t.Helper()
	x, r := w.gdprExport(t, p, sub)
	if r.status != http.StatusOK {
		t.Fatalf("%s: gdpr export of %s: %d %s", p.name, sub, r.status, r.body)
	}
	out := map[string]int{}
	for _, m := range x.Manifest {
		if m.Source != gdpr.SourceAudit {
			out[m.Source] = m.Count
		}
	}
	return out
}

func restGDPRErase(t *testing.T, w *world) {
	sessions := w.subjectState(t)
	orgCounts := func() map[string]map[string]int {
		out := map[string]map[string]int{}
		for _, admin := range []string{"ada@acme", "ada@globex"} {
			p := w.principal(admin)
			for _, sub := range subjects {
				out[p.OrgID+"/"+sub] = w.exportCounts(t, p, sub)
			}
		}
		return out
	}
	before, keysBefore := orgCounts(), w.keyCounts(t)

	// Erasing from one org a subject only the other has, or an
	// identifier dressed as the other org's, erases nothing anywhere.
	absent := absentSubjects
	for _, p := range w.principals {
		if !can(p, auth.ScopeGDPRDelete) {
			continue
		}
		for _, sub := range append(slices.Clone(absent[p.OrgID]), crossOrgSubjects(otherOrg(p.OrgID))...) {
			r := w.do(t, "DELETE", subjectPath(sub, ""), p.token, map[string]any{"reason": "isolation probe by " + p.name})
			w.noOrgLeak(t, p, "gdpr erase of "+sub, r.body)
			if r.status == http.StatusBadRequest {
				continue
			}
			var res gdpr.EraseResult
			r.decode(t, &res)
			if r.status != http.StatusOK || res.Receipt.OrgID != p.OrgID || sumCounts(res.Receipt.Removed) != 0 || sumCounts(res.Receipt.Pseudonymized) != 0 {
				t.Errorf("%s: gdpr erase of %s, a subject only of the other org: %d %.400s, want 200 in %s with nothing removed or pseudonymized",
					p.name, sub, r.status, r.body, p.OrgID)
			}
		}
	}
	w.allUnchanged(t, "erasures of subjects of the other org")
	if after := orgCounts(); !maps.EqualFunc(before, after, maps.Equal) {
		for k := range before {
			if !maps.Equal(before[k], after[k]) {
				t.Errorf("erasures of subjects of the other org changed what %s holds: %v → %v", k, before[k], after[k])
			}
		}
	}
	if after := w.keyCounts(t); !maps.Equal(keysBefore, after) {
		t.Errorf("erasures of subjects of the other org changed the API keys: %v → %v", keysBefore, after)
	}

	// A subject of both orgs: erasing acme's ada leaves globex's ada,
	// her memories, her session and her export as they were; erasing
	// globex's luke (a key and searches) leaves acme's luke.
	for _, c := range []struct{ eraser, sub string }{{"ada@acme", "ada"}, {"ada@globex", "luke"}} {
		p := w.principal(c.eraser)
		other := otherOrg(p.OrgID)
		before, keysBefore := orgCounts(), w.keyCounts(t)
		r := w.do(t, "DELETE", subjectPath(c.sub, ""), p.token, map[string]any{"reason": "isolation: erase " + c.sub + " of " + p.OrgID})
		w.noOrgLeak(t, p, "gdpr erase of "+c.sub, r.body)
		var res gdpr.EraseResult
		r.decode(t, &res)
		if r.status != http.StatusOK || res.Receipt.OrgID != p.OrgID || sumCounts(res.Receipt.Removed)+sumCounts(res.Receipt.Pseudonymized) == 0 || !res.Check.Clean {
			t.Errorf("%s: gdpr erase of %s: %d %.400s, want 200 removing the subject of %s, clean", p.name, c.sub, r.status, r.body, p.OrgID)
		}
		for _, e := range w.entries {
			if e.m.OrgID == other {
				w.unchanged(t, e, p.name+" erasing "+c.sub)
			}
		}
		for _, sub := range subjects {
			k := other + "/" + sub
			if got := w.exportCounts(t, w.principal("ada@"+other), sub); !maps.Equal(before[k], got) {
				t.Errorf("%s erasing %s changed what %s holds: %v → %v", p.name, c.sub, k, before[k], got)
			}
		}
		if got := w.keyCounts(t); got[other] != keysBefore[other] {
			t.Errorf("%s erasing %s changed %s's API keys: %d → %d", p.name, c.sub, other, keysBefore[other], got[other])
		}
		w.rerecord(t, p.OrgID)
	}
	// The erased subjects' sessions end; the other org's ada keeps hers,
	// and acme's luke his.
	for sp, cs := range sessions {
		user, bound := w.sessionBound(t, cs.ID())
		if want := sp.name != "ada@acme" && sp.name != "luke@globex"; bound != want {
			t.Errorf("after the erasures, %s's MCP session is bound: %v (%s), want %v", sp.name, bound, user, want)
		}
	}
	if r := call(t, sessions[w.principal("ada@globex")], "whoami", nil); r.failed() {
		t.Errorf("ada@globex's session after acme's ada was erased: %s", r.raw)
	}
}

// sessionBound reports whether the shared state binds MCP session id, and
// to whom.
func (w *world) sessionBound(t *testing.T, id string) (string, bool) {
	t.Helper()
	v, err := w.shared.Get(t.Context(), "mcp:session:"+id)
	if errors.Is(err, kv.ErrMiss) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v), true
}

// rerecord records every memory of org as the store holds it now, after an
// erasure (a tombstone's access entity is the pseudonym's).
func (w *world) rerecord(t *testing.T, org string) {
	t.Helper()
	for _, e := range w.entries {
		if e.m.OrgID != org {
			continue
		}
		m, err := w.store.Get(t.Context(), memory.Access{OrgID: org, Prefixes: []string{"user:", "team:", "project:", "org:"}}, e.m.ID)
		if err != nil {
			t.Fatalf("re-read %s after an erasure: %v", e.m.ID, err)
		}
		e.m = m
		_, e.history = w.readBack(t, e)
	}
}

func restGetRetention(t *testing.T, w *world) {
	for _, p := range w.principals {
		if !can(p, auth.ScopeAdminRead) {
			continue
		}
		r := w.do(t, "GET", "/api/v1/admin/retention", p.token, nil)
		var pol gdpr.RetentionPolicy
		r.decode(t, &pol)
		if r.status != http.StatusOK || pol.OrgID != p.OrgID {
			t.Errorf("%s: get retention: %d %s, want 200 with the policy of %s", p.name, r.status, r.body, p.OrgID)
		}
	}
}

func restSetRetention(t *testing.T, w *world) {
	rs := w.store.(gdpr.RetentionStore)
	want := map[string]gdpr.RetentionPolicy{}
	for _, org := range []string{"acme", "globex"} {
		pol, err := rs.RetentionPolicy(t.Context(), org)
		if err != nil {
			t.Fatal(err)
		}
		want[org] = pol
	}
	for i, p := range w.principals {
		if !can(p, auth.ScopeAdminWrite) {
			continue
		}
		// A body naming the other org is refused or ignored: the policy
		// set is always the caller's org's.
		days := 30 + i
		r := w.do(t, "PUT", "/api/v1/admin/retention", p.token, map[string]any{"org_id": otherOrg(p.OrgID), "purge_deleted_days": days})
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"org_id"`) {
			t.Errorf("%s: set retention with org_id %s: %d %s, want 400 naming org_id", p.name, otherOrg(p.OrgID), r.status, r.body)
		}
		r = w.do(t, "PUT", "/api/v1/admin/retention", p.token, map[string]any{"purge_deleted_days": days, "access_log_days": days + 100})
		var pol gdpr.RetentionPolicy
		r.decode(t, &pol)
		if r.status != http.StatusOK || pol.OrgID != p.OrgID || pol.PurgeDeletedDays != days {
			t.Errorf("%s: set retention: %d %s, want 200 with %s's policy", p.name, r.status, r.body, p.OrgID)
			continue
		}
		w2 := want[p.OrgID]
		w2.PurgeDeletedDays, w2.AccessLogDays = days, days+100
		want[p.OrgID] = w2
		for _, org := range []string{"acme", "globex"} {
			got, err := rs.RetentionPolicy(t.Context(), org)
			if err != nil {
				t.Fatal(err)
			}
			if got.PurgeDeletedDays != want[org].PurgeDeletedDays || got.AccessLogDays != want[org].AccessLogDays ||
				got.ArchiveUntouchedDays != want[org].ArchiveUntouchedDays {
				t.Errorf("after %s set its retention, %s's policy is %+v, want %+v", p.name, org, got, want[org])
			}
		}
	}
	if fmt.Sprint(want["acme"]) == fmt.Sprint(want["globex"]) {
		t.Errorf("both orgs ended with the same policy %+v: the case did not set them apart", want["acme"])
	}
}
