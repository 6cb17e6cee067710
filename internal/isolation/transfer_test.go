package isolation

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/transfer"
)

// exportFile is a parsed export: its header and records.
type exportFile struct {
	header  transfer.Header
	records []transfer.Record
}

// export runs GET /api/v1/export?query as p and parses the file, checking
// it for leaks and every record against the record of the world.
func (w *world) export(t *testing.T, p *principal, q url.Values) (exportFile, response) {
	t.Helper()
	r := w.do(t, "GET", "/api/v1/export?"+q.Encode(), p.token, nil)
	var f exportFile
	if r.status != http.StatusOK {
		w.noLeak(t, p, "export "+q.Encode(), r.body)
		return f, r
	}
	// The header repeats the query (the caller's own words); the lines
	// after it are what the export reveals.
	lines := strings.Split(strings.TrimRight(string(r.body), "\n"), "\n")
	w.noLeak(t, p, "export "+q.Encode(), []byte(strings.Join(lines[1:], "\n")))
	if err := json.Unmarshal([]byte(lines[0]), &f.header); err != nil {
		t.Fatalf("%s: export %s: header %q: %v", p.name, q.Encode(), lines[0], err)
	}
	for _, l := range lines[1:] {
		var rec transfer.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%s: export %s: line %q: %v", p.name, q.Encode(), l, err)
		}
		f.records = append(f.records, rec)
		w.sameAsRecord(t, p, "export", memory.Memory{ID: rec.ID, OrgID: rec.OrgID, Content: rec.Content, AccessEntity: rec.AccessEntity, State: rec.State})
		if e := w.byID[rec.ID]; e != nil && q.Get("history") != "false" && len(rec.History) != e.history {
			t.Errorf("%s: export carries %d history entries of %s, the store %d", p.name, len(rec.History), rec.ID, e.history)
		}
		for _, l := range rec.Links {
			if e := w.byID[l.To]; e == nil || !p.sees(e.m) {
				t.Errorf("%s: export carries a link of %s to %s, a memory outside the caller's access", p.name, rec.ID, l.To)
			}
		}
	}
	if f.header.OrgID != p.OrgID {
		t.Errorf("%s: export %s: the header names org %q", p.name, q.Encode(), f.header.OrgID)
	}
	return f, r
}

func (f exportFile) ids() []string {
	out := []string{}
	for _, r := range f.records {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

// seedLinks links memories of acme as its admin: the project:acme/api
// memory (seed 12) to a team:acme/ops memory (19) and to the paused
// project:acme/api one (13), so that pat sees one link of two.
func (w *world) seedLinks(t *testing.T) {
	t.Helper()
	ada := w.principal("ada@acme")
	for _, to := range []int{19, 13} {
		r := w.do(t, "POST", "/api/v1/relations", ada.token, map[string]any{"type": "related_to", "from_memory": w.entries[12].m.ID, "to_memory": w.entries[to].m.ID})
		if r.status != http.StatusCreated {
			t.Fatalf("link seed 12 to %d: %d %s", to, r.status, r.body)
		}
	}
}

func restExport(t *testing.T, w *world) {
	w.seedLinks(t)
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		f, r := w.export(t, p, url.Values{})
		if r.status != http.StatusOK {
			t.Errorf("%s: export: %d %s", p.name, r.status, r.body)
			continue
		}
		wantIDs(t, p, "export", f.ids(), w.live(p))
		f, _ = w.export(t, p, url.Values{"state": {"all"}})
		wantIDs(t, p, "export of every state", f.ids(), w.visible(p))
		for _, ent := range w.entities() {
			f, r := w.export(t, p, url.Values{"state": {"all"}, "access_entity": {ent}})
			if r.status == http.StatusOK {
				wantIDs(t, p, "export of access_entity "+ent, f.ids(), w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.AccessEntity == ent }))
			} else if r.status != http.StatusBadRequest {
				t.Errorf("%s: export of access_entity %s: %d %s", p.name, ent, r.status, r.body)
			}
		}
		// team= and project= name teams of the caller's org, or, with an
		// org, any: another org's are empty.
		for _, c := range []struct{ kind, name string }{
			{"team", "web"}, {"team", "ops"}, {"project", "api"}, {"team", otherOrg(p.OrgID) + "/web"},
			{"project", otherOrg(p.OrgID) + "/api"}, {"team", "acme/web"}, {"team", "globex/web"},
		} {
			f, r := w.export(t, p, url.Values{"state": {"all"}, c.kind: {c.name}})
			ent := c.kind + ":" + c.name
			if !strings.Contains(c.name, "/") {
				ent = c.kind + ":" + p.OrgID + "/" + c.name
			}
			if r.status != http.StatusOK {
				t.Errorf("%s: export of %s=%s: %d %s", p.name, c.kind, c.name, r.status, r.body)
				continue
			}
			wantIDs(t, p, "export of "+c.kind+"="+c.name, f.ids(), w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.AccessEntity == ent }))
		}
		// The export never leaves the caller's org.
		r = w.do(t, "GET", "/api/v1/export?org="+otherOrg(p.OrgID), p.token, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"org"`) {
			t.Errorf("%s: export with org=%s: %d %.300s, want 400 naming org", p.name, otherOrg(p.OrgID), r.status, r.body)
		}
		w.noLeak(t, p, "export of the other org", r.body)
		for _, e := range w.hidden(p) {
			f, _ := w.export(t, p, url.Values{"state": {"all"}, "entity": {e.m.Entity}})
			if len(f.records) != 0 {
				t.Errorf("%s: export of the entity of hidden memory %s returned %v", p.name, e.m.ID, f.ids())
			}
		}
	}
	// The links: ada sees both of seed 12's, pat one; the check of every
	// link's target is in export.
	for name, want := range map[string]int{"ada@acme": 2, "pat@acme": 1} {
		f, _ := w.export(t, w.principal(name), url.Values{"state": {"all"}})
		for _, rec := range f.records {
			if rec.ID == w.entries[12].m.ID && len(rec.Links) != want {
				t.Errorf("%s: export carries %d links of %s, want %d", name, len(rec.Links), rec.ID, want)
			}
		}
	}
}

// importLine is one memory line of an import file.
func importLine(id, content, entity, author string, extra map[string]any) map[string]any {
	at := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	m := map[string]any{"id": id, "content": content, "scope": entityScope(entity), "access_entity": entity,
		"source": "user", "state": "active", "created_by": author, "created_at": at, "updated_at": at}
	maps.Copy(m, extra)
	return m
}

// importFile sends lines as an export file to POST /api/v1/import as p.
func (w *world) importFile(t *testing.T, p *principal, mode string, lines ...map[string]any) (memory.ImportReport, response) {
	t.Helper()
	var b strings.Builder
	n := len(lines)
	h, _ := json.Marshal(transfer.Header{Format: transfer.Format, Version: transfer.Version, History: true, Counts: transfer.Counts{Memories: &n}})
	b.Write(h)
	b.WriteByte('\n')
	for _, l := range lines {
		j, _ := json.Marshal(l)
		b.Write(j)
		b.WriteByte('\n')
	}
	path := "/api/v1/import"
	if mode != "" {
		path += "?on_conflict=" + mode
	}
	r := w.do(t, "POST", path, p.token, b.String(), "Content-Type", transfer.ContentType)
	var rep memory.ImportReport
	switch r.status {
	case http.StatusOK:
		r.decode(t, &rep)
	default:
		var fail struct {
			Report memory.ImportReport `json:"report"`
		}
		_ = json.Unmarshal(r.body, &fail)
		rep = fail.Report
	}
	return rep, r
}

// lineOf is the file line of the i-th memory line (the header is line 1).
func lineOf(i int) int { return i + 2 }

func restImport(t *testing.T, w *world) {
	n := 0
	newID := func(p *principal) string {
		n++
		return fmt.Sprintf("imp-%s-%s-%04d", p.Subject, p.OrgID, n)
	}
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		other := otherOrg(p.OrgID)
		// Into every entity of both orgs, each line saying it is of the
		// other org: one file into the entities the caller may write is
		// imported, into its own org; one into all the others is refused
		// line by line, and nothing of it is written.
		var okLines, badLines []map[string]any
		var okEnts, badEnts []string
		for _, ent := range w.entities() {
			line := importLine(newID(p), fmt.Sprintf("import probe by %s into %s", p.name, ent), ent, p.Subject, map[string]any{"org_id": other})
			if writable(p, ent) {
				okLines, okEnts = append(okLines, line), append(okEnts, ent)
			} else {
				badLines, badEnts = append(badLines, line), append(badEnts, ent)
			}
		}
		rep, r := w.importFile(t, p, "", okLines...)
		w.noLeak(t, p, "import into the entities it may write", r.body)
		if r.status != http.StatusOK || rep.Imported != len(okLines) {
			t.Errorf("%s: import into %v: %d %s, want 200 with %d memories imported", p.name, okEnts, r.status, r.body, len(okLines))
		} else {
			for i, l := range okLines {
				e := w.add(t, l["id"].(string), "")
				if e.m.OrgID != p.OrgID || e.m.AccessEntity != okEnts[i] {
					t.Errorf("%s: import into %s stored it in %s/%s", p.name, okEnts[i], e.m.OrgID, e.m.AccessEntity)
				}
			}
		}
		rep, r = w.importFile(t, p, "", badLines...)
		w.noLeak(t, p, "import into the entities it may not write", r.body)
		if code, _ := r.errorOf(); r.status != http.StatusForbidden || code != "forbidden" || rep.Committed || len(rep.Errors) != len(badLines) {
			t.Errorf("%s: import into %v, outside its grants: %d %.400s, want 403 forbidden refusing each line", p.name, badEnts, r.status, r.body)
		} else {
			for i, le := range rep.Errors {
				if le.Line != lineOf(i) || le.Code != "forbidden" || le.Field != "access_entity" {
					t.Errorf("%s: import into %s, outside its grants: %+v, want line %d forbidden naming access_entity", p.name, badEnts[i], le, lineOf(i))
				}
			}
		}
		// One refused line refuses the whole file.
		_, r = w.importFile(t, p, "", importLine(newID(p), "import probe kept by "+p.name, p.UserEntity(), p.Subject, nil),
			importLine(newID(p), "import probe smuggled by "+p.name, "org:"+other, p.Subject, nil))
		if r.status != http.StatusForbidden {
			t.Errorf("%s: import with a line into org:%s: %d %s, want 403", p.name, other, r.status, r.body)
		}
		if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
			t.Errorf("%s: memories per org after refused imports: the store has %v, the accepted imports account for %v", p.name, got, want)
		}

		// The ids of another org's memories: ids are unique across orgs
		// on SQLite (remap gives new ones) and per org on PostgreSQL (the
		// same id is free in the caller's org); either way the other's
		// memory is untouched and the new one is the caller's.
		foreignIDs := map[string]bool{}
		var lines []map[string]any
		for _, e := range w.entries {
			if e.m.OrgID != p.OrgID && e.marker != "" {
				foreignIDs[e.m.ID] = true
				lines = append(lines, importLine(e.m.ID, "import over foreign "+e.m.ID+" by "+p.name, p.UserEntity(), p.Subject, nil))
			}
		}
		rep, r = w.importFile(t, p, "remap", lines...)
		w.noLeak(t, p, "import with the ids of the other org's memories", r.body, slices.Collect(maps.Keys(foreignIDs))...)
		if r.status != http.StatusOK || rep.Imported != len(lines) {
			t.Errorf("%s: import with the ids of %d memories of the other org, remap: %d %.400s, want each imported", p.name, len(lines), r.status, r.body)
		} else {
			newIDs := map[string]string{}
			for _, rm := range rep.Remapped {
				newIDs[rm.OldID] = rm.NewID
			}
			own := memory.Access{OrgID: p.OrgID, Entities: []string{p.UserEntity()}}
			for _, l := range lines {
				id := l["id"].(string)
				if nid, ok := newIDs[id]; ok {
					id = nid
				} else {
					w.sameIDs[p.name+" "+id] = true
				}
				if m, err := w.store.Get(t.Context(), own, id); err != nil || m.Content != l["content"] {
					t.Errorf("%s: import over foreign %s: its own memory %s is %q (%v)", p.name, l["id"], id, m.Content, err)
				}
			}
			w.uncounted[p.OrgID] += len(lines)
		}
		for id := range foreignIDs {
			w.unchanged(t, w.byID[id], p.name+" importing over "+id)
		}

		// The ids of memories of its own org the caller may not see (of
		// the fixture): never overwritten, under every conflict mode, and
		// remap makes new memories.
		hidden := slices.DeleteFunc(w.hidden(p), func(e *entry) bool { return e.marker == "" || e.m.OrgID != p.OrgID })
		lines = nil
		for _, e := range hidden {
			lines = append(lines, importLine(e.m.ID, "import over hidden "+e.m.ID+" by "+p.name, p.UserEntity(), p.Subject, map[string]any{
				"org_id": e.m.OrgID, "history": []map[string]any{{"actor": e.m.CreatedBy, "action": "update", "at": time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC),
					"after": map[string]any{"id": e.m.ID, "org_id": e.m.OrgID, "content": "forged", "access_entity": e.m.AccessEntity}}},
			}))
		}
		exempt := idsOf(hidden)
		for _, mode := range []string{"fail", "skip", "remap"} {
			if len(lines) == 0 {
				break
			}
			rep, r := w.importFile(t, p, mode, lines...)
			w.noLeak(t, p, "import with the ids of hidden memories, on_conflict="+mode, r.body, exempt...)
			for _, e := range hidden {
				w.unchanged(t, e, p.name+" importing over "+e.m.ID+" on_conflict="+mode)
			}
			switch mode {
			case "fail":
				if r.status != http.StatusConflict || rep.Committed || len(rep.Errors) != len(lines) {
					t.Errorf("%s: import with the ids of %d hidden memories, on_conflict=fail: %d %.400s, want 409 naming each", p.name, len(lines), r.status, r.body)
				}
			case "skip":
				if r.status != http.StatusOK || rep.Imported != 0 || len(rep.Skipped) != len(lines) {
					t.Errorf("%s: import with the ids of %d hidden memories, on_conflict=skip: %d %.400s, want each skipped", p.name, len(lines), r.status, r.body)
				}
				for _, sk := range rep.Skipped {
					if sk.ExistingID != "" {
						t.Errorf("%s: import skipping %s names existing memory %s", p.name, sk.ID, sk.ExistingID)
					}
				}
			case "remap":
				if r.status != http.StatusOK || rep.Imported != len(lines) || len(rep.Remapped) != len(lines) {
					t.Errorf("%s: import with the ids of %d hidden memories, on_conflict=remap: %d %.400s, want each under a new id", p.name, len(lines), r.status, r.body)
					continue
				}
				for _, rm := range rep.Remapped {
					ne := w.add(t, rm.NewID, "")
					if ne.m.OrgID != p.OrgID || ne.m.AccessEntity != p.UserEntity() || ne.history != 1 || rm.NewID == rm.OldID {
						t.Errorf("%s: import remapped over %s stored %s in %s/%s with %d history entries", p.name, rm.OldID, ne.m.ID, ne.m.OrgID, ne.m.AccessEntity, ne.history)
					}
				}
			}
		}

		// Content identical to hidden memories makes new memories: the
		// import never answers with the others.
		lines = nil
		for _, e := range hidden {
			if e.marker != "" && e.m.State != memory.StateDeleted {
				lines = append(lines, importLine(newID(p), e.m.Content, p.UserEntity(), p.Subject, nil))
			}
		}
		if len(lines) > 0 {
			rep, r := w.importFile(t, p, "skip", lines...)
			w.noLeak(t, p, "import of hidden memories' content", r.body)
			if r.status != http.StatusOK || rep.Imported != len(lines) || len(rep.Skipped) != 0 {
				t.Errorf("%s: import of the content of %d hidden memories: %d %.400s, want new memories", p.name, len(lines), r.status, r.body)
			} else {
				for _, l := range lines {
					w.add(t, l["id"].(string), "")
				}
			}
		}

		// Links to every memory: only those to memories the caller sees
		// are written.
		id := newID(p)
		var links []map[string]any
		for _, e := range w.entries {
			links = append(links, map[string]any{"to_memory": e.m.ID, "type": "related_to"})
		}
		rep, r = w.importFile(t, p, "", importLine(id, "import probe with links by "+p.name, p.UserEntity(), p.Subject, map[string]any{"links": links}))
		w.noLeak(t, p, "import with links to every memory", r.body)
		if r.status != http.StatusOK {
			t.Errorf("%s: import with links: %d %s", p.name, r.status, r.body)
			continue
		}
		w.add(t, id, "")
		// (On PostgreSQL an id of the other org's names, in the caller's
		// org, the caller's own memory imported above under that id.)
		want := len(w.visible(p)) - 1
		for _, l := range links {
			if w.sameIDs[p.name+" "+l["to_memory"].(string)] {
				want++
			}
		}
		if rep.Links != want || rep.LinksDropped != len(links)-want {
			t.Errorf("%s: import with links to all %d memories wrote %d and dropped %d, want %d written (the memories it may see)",
				p.name, len(links), rep.Links, rep.LinksDropped, want)
		}
	}
	// The idempotency keys of memories the caller may not see (in its own
	// org) conflict without showing the memory; remap drops the keys.
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesWrite) {
			continue
		}
		var lines []map[string]any
		var hidden []*entry
		for i, s := range seeds {
			e := w.entries[i]
			if i%3 == 0 && s.org == p.OrgID && !p.sees(e.m) {
				hidden = append(hidden, e)
				lines = append(lines, importLine(newID(p), "import with the key of "+e.m.ID+" by "+p.name, p.UserEntity(), p.Subject,
					map[string]any{"idempotency_key": idemKey(i)}))
			}
		}
		if len(lines) == 0 {
			continue
		}
		for _, mode := range []string{"fail", "remap"} {
			rep, r := w.importFile(t, p, mode, lines...)
			w.noLeak(t, p, "import with the idempotency keys of hidden memories", r.body)
			for _, e := range hidden {
				w.unchanged(t, e, p.name+" importing with the key of "+e.m.ID)
			}
			if mode == "fail" {
				if r.status != http.StatusConflict || len(rep.Errors) != len(lines) {
					t.Errorf("%s: import with the idempotency keys of %d hidden memories, fail: %d %.400s, want 409 naming each", p.name, len(lines), r.status, r.body)
				}
				continue
			}
			if r.status != http.StatusOK || rep.Imported != len(lines) || len(rep.Remapped) != len(lines) {
				t.Errorf("%s: import with the idempotency keys of %d hidden memories, remap: %d %.400s, want imported without the keys", p.name, len(lines), r.status, r.body)
				continue
			}
			for _, rm := range rep.Remapped {
				if !rm.DroppedKey {
					t.Errorf("%s: import with a taken idempotency key kept it: %+v", p.name, rm)
				}
				w.add(t, rm.NewID, "")
			}
		}
	}
	if got, want := w.totals(t), w.recorded(); !maps.Equal(got, want) {
		t.Errorf("memories per org: the store has %v, the accepted imports account for %v", got, want)
	}
}
