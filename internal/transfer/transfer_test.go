package transfer_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/transfer"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// stores are the stores every test runs on: SQLite always, PostgreSQL
// when the server binaries are installed (pgtest skips otherwise).
var stores = []struct {
	name string
	open func(t testing.TB) memory.Store
}{
	{"sqlite", func(t testing.TB) memory.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "brain.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t testing.TB) memory.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: pgtest.Database(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func forEachStore(t *testing.T, fn func(t *testing.T, open func(t testing.TB) memory.Store)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) { fn(t, st.open) })
	}
}

// clock ticks a microsecond per reading, so that every time is distinct
// and whole microseconds (PostgreSQL keeps no finer times).
type clock struct{ t time.Time }

func (c *clock) Now() time.Time {
	c.t = c.t.Add(time.Microsecond)
	return c.t
}

func newService(store memory.Store) *memory.Service {
	c := &clock{t: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)}
	return memory.NewService(store, memory.Options{Now: c.Now, NewID: memory.NewULIDSource(c.Now)})
}

var (
	alice = auth.Principal{Subject: "alice", OrgID: "acme", Grants: []string{"team:acme/web"}}
	bob   = auth.Principal{Subject: "bob", OrgID: "acme"}
)

func as(p auth.Principal) context.Context { return auth.WithPrincipal(context.Background(), p) }

// seed writes memories in every state with every field set, and changes
// some of them, so that they have a history.
func seed(t *testing.T, svc *memory.Service) {
	t.Helper()
	ctx := as(alice)
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	inputs := []memory.Input{
		{Content: "We deploy with blue-green on Fridays", Category: "workflow", Scope: "team", AccessEntity: "team:acme/web",
			ArtifactType: "service", ArtifactRef: "svc/web", Entity: "deploys", Source: "user", Evidence: []string{"ADR-7", "PR-12"},
			Tags: map[string]any{"lang": "go", "prio": 2.5, "flaky": true}, Metadata: map[string]any{"note": map[string]any{"a": []any{1.0, "x"}}},
			App: "cursor", ValidFrom: &from, ValidTo: &to, IdempotencyKey: "idem-1"},
		{Content: "Use pgx, not database/sql, for PostgreSQL", Category: "dependency", Scope: "team", AccessEntity: "team:acme/web"},
		{Content: "alice prefers <short> & sweet commit messages", Scope: "user"},
		{Content: "Old lint rule", Category: "convention", Scope: "team", AccessEntity: "team:acme/web"},
		{Content: "Paused idea", Scope: "user", Source: "inference"},
	}
	ids := make([]string, len(inputs))
	for i, in := range inputs {
		m, _, err := svc.Add(ctx, in)
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		ids[i] = m.ID
	}
	content := "We deploy with blue-green, never on Fridays"
	if _, err := svc.Update(ctx, ids[0], memory.Patch{Content: &content}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Transition(ctx, ids[3], memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Transition(ctx, ids[4], memory.ActionPause); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Relate(ctx, memory.RelateInput{Type: "replaces", FromMemory: ids[0], ToMemory: ids[2]}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Delete(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	// bob's own memory, which alice must not see or export.
	if _, _, err := svc.Add(as(bob), memory.Input{Content: "bob's private note"}); err != nil {
		t.Fatal(err)
	}
}

// export writes the file of what p sees, in every state, with history.
func export(t *testing.T, svc *memory.Service, p auth.Principal) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := transfer.NewWriter(&buf)
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	q := memory.ExportQuery{Filter: memory.Filter{States: memory.States}, History: true}
	_, err := svc.Export(as(p), q, func(n int) error {
		return w.WriteHeader(transfer.Header{Exporter: transfer.Exporter{Name: "codingbrain", Version: "test"},
			ExportedAt: at, OrgID: p.OrgID, Subject: p.Subject, History: true, Counts: transfer.Counts{Memories: &n}})
	}, w.Write)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return buf.Bytes()
}

func importFile(svc *memory.Service, p auth.Principal, mode memory.ConflictMode, file []byte) (memory.ImportReport, error) {
	return svc.Import(as(p), mode, transfer.NewReader(bytes.NewReader(file)).Next)
}

// TestRoundTrip: an export imported into an empty store exports again
// byte for byte the same — every field, state, time and history entry.
func TestRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) memory.Store) {
		src := newService(open(t))
		seed(t, src)
		first := export(t, src, alice)
		lines := strings.Split(strings.TrimSpace(string(first)), "\n")
		if len(lines) != 6 {
			t.Fatalf("export has %d lines, want a header and 5 memories:\n%s", len(lines), first)
		}
		if bytes.Contains(first, []byte("bob's private note")) {
			t.Fatal("alice's export holds bob's memory")
		}
		for _, want := range []string{`"state":"deleted"`, `"state":"archived"`, `"state":"paused"`, `"idempotency_key":"idem-1"`,
			`"action":"update"`, `"action":"archive"`, `"links":[{"to_memory":"`, `"type":"replaces"`, `"action":"delete"`, `"valid_to":"2027-01-01T00:00:00Z"`, `<short> & sweet`} {
			if !bytes.Contains(first, []byte(want)) {
				t.Errorf("export lacks %s:\n%s", want, first)
			}
		}

		dst := newService(open(t))
		rep, err := importFile(dst, alice, memory.OnConflictFail, first)
		if err != nil {
			t.Fatalf("import: %v (%+v)", err, rep)
		}
		if !rep.Committed || rep.Read != 5 || rep.Imported != 5 || len(rep.Skipped) != 0 || len(rep.Remapped) != 0 || rep.Links != 1 {
			t.Errorf("report %+v, want 5 read and imported", rep)
		}
		second := export(t, dst, alice)
		if !bytes.Equal(first, second) {
			t.Errorf("the second export differs from the first:\nfirst:  %s\nsecond: %s", first, second)
		}

		// The imported memories are live for the rest of the server: found
		// by search, listed, their history read.
		res, err := dst.Search(as(alice), memory.SearchQuery{Text: "blue-green"}, memory.ViaREST)
		if err != nil || len(res.Hits) != 1 {
			t.Errorf("search after import: %+v, %v", res, err)
		}
		// The entity graph was written: the same entities, mentioned as often.
		want, err := src.Entities(as(alice), memory.EntityQuery{Limit: 50})
		if err != nil || len(want) == 0 {
			t.Fatalf("entities of the source: %+v %v", want, err)
		}
		got, err := dst.Entities(as(alice), memory.EntityQuery{Limit: 50})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("entities after import:\n got %+v\nwant %+v (%v)", got, want, err)
		}
		// The idempotency key came along: a retried add returns the memory.
		m, created, err := dst.Add(as(alice), memory.Input{Content: "We deploy with blue-green, never on Fridays", Scope: "team",
			AccessEntity: "team:acme/web", IdempotencyKey: "idem-1"})
		if err != nil || created || m.Entity != "deploys" {
			t.Errorf("add with the imported idempotency key: %+v created=%v %v", m, created, err)
		}
	})
}

// TestConflictModes: importing an export into the store it came from.
func TestConflictModes(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) memory.Store) {
		svc := newService(open(t))
		seed(t, svc)
		file := export(t, svc, alice)
		before := export(t, svc, alice)

		rep, err := importFile(svc, alice, memory.OnConflictFail, file)
		var ie *memory.ImportError
		if !errors.As(err, &ie) || !errors.Is(err, memory.ErrConflict) || rep.Committed || rep.Imported != 0 {
			t.Fatalf("fail: %v %+v, want a conflict and nothing imported", err, rep)
		}
		if len(rep.Errors) != 5 || rep.Errors[0].Line != 2 || rep.Errors[0].Field != "id" || !strings.Contains(rep.Errors[0].Message, "already taken") {
			t.Errorf("fail: errors %+v, want one per memory line naming line and field id", rep.Errors)
		}

		for range 2 { // skip is idempotent
			rep, err = importFile(svc, alice, memory.OnConflictSkip, file)
			if err != nil || !rep.Committed || rep.Imported != 0 || len(rep.Skipped) != 5 {
				t.Fatalf("skip: %v %+v, want all 5 skipped", err, rep)
			}
			for _, s := range rep.Skipped {
				if s.Conflict != memory.ConflictID || s.Line < 2 {
					t.Errorf("skip: %+v", s)
				}
			}
		}
		if got := export(t, svc, alice); !bytes.Equal(got, before) {
			t.Errorf("skip changed the store")
		}

		// remap: every id is taken; the live copies then duplicate stored
		// content and are skipped, the deleted one is stored anew.
		rep, err = importFile(svc, alice, memory.OnConflictRemap, file)
		if err != nil || !rep.Committed {
			t.Fatalf("remap: %v %+v", err, rep)
		}
		if rep.Imported != 1 || len(rep.Remapped) != 1 || len(rep.Skipped) != 4 {
			t.Fatalf("remap: %+v, want the deleted memory remapped and 4 content duplicates skipped", rep)
		}
		for _, s := range rep.Skipped {
			if s.Conflict != memory.ConflictContent || s.ExistingID != s.ID {
				t.Errorf("remap skipped %+v, want a content duplicate of itself", s)
			}
		}
		rm := rep.Remapped[0]
		if rm.OldID == rm.NewID || rm.NewID == "" {
			t.Errorf("remapped %+v", rm)
		}
		hs, err := svc.History(as(alice), rm.NewID)
		if err != nil || len(hs) != 2 || hs[0].MemoryID != rm.NewID || hs[1].After == nil || hs[1].After.ID != rm.NewID {
			t.Errorf("history of the remapped memory: %+v %v, want its 2 entries under the new id", hs, err)
		}

		// An id taken by another memory, content new: remapped and stored.
		var b bytes.Buffer
		b.WriteString(`{"format":"codingbrain-export","version":1}` + "\n")
		fmt.Fprintf(&b, `{"id":%q,"content":"a brand new fact","scope":"user","source":"user","access_entity":"user:alice","state":"active","created_by":"alice","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`+"\n", rm.NewID)
		rep, err = importFile(svc, alice, memory.OnConflictRemap, b.Bytes())
		if err != nil || rep.Imported != 1 || len(rep.Remapped) != 1 || rep.Remapped[0].OldID != rm.NewID || rep.Remapped[0].Line != 2 {
			t.Errorf("remap of a taken id: %v %+v", err, rep)
		}
	})
}

// TestGrantRefusal: a memory of a team the importer cannot write refuses
// the whole import, naming the line; nothing is stored, nothing widened.
func TestGrantRefusal(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) memory.Store) {
		src := newService(open(t))
		seed(t, src)
		file := export(t, src, alice)

		dst := newService(open(t))
		// bob holds no grant for team:acme/web, and user:alice is not his.
		rep, err := importFile(dst, bob, memory.OnConflictSkip, file)
		if !errors.Is(err, memory.ErrForbidden) || rep.Committed || rep.Imported != 0 {
			t.Fatalf("bob's import: %v %+v, want forbidden and nothing imported", err, rep)
		}
		if len(rep.Errors) != 5 {
			t.Errorf("errors %+v, want one per memory line", rep.Errors)
		}
		for _, e := range rep.Errors {
			if e.Code != "forbidden" || e.Field != "access_entity" || e.Line < 2 || !strings.Contains(e.Message, "do not cover") {
				t.Errorf("error %+v", e)
			}
		}
		page, err := dst.List(as(auth.Principal{Subject: "admin", OrgID: "acme", Grants: []string{"org:acme"}}),
			memory.ListQuery{Filter: memory.Filter{States: memory.States}}, memory.ViaREST)
		if err != nil || len(page.Memories) != 0 {
			t.Errorf("after a refused import the store holds %d memories (%v)", len(page.Memories), err)
		}

		// Another org's importer: the team entity names another org.
		other := auth.Principal{Subject: "alice", OrgID: "globex", Grants: []string{"org:globex"}}
		if _, err := importFile(dst, other, memory.OnConflictSkip, file); !errors.Is(err, memory.ErrForbidden) {
			t.Errorf("import into another org: %v, want forbidden", err)
		}
	})
}

// TestMalformedLines: each bad line is reported with its number and
// field, and nothing is imported.
func TestMalformedLines(t *testing.T) {
	good := `{"id":"01GOOD","content":"fine","scope":"user","source":"user","access_entity":"user:alice","state":"active","created_by":"alice","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`
	cases := []struct {
		name  string
		file  string
		line  int
		field string
		msg   string
	}{
		{"no header", good + "\n", 1, "format", "first line must be the header"},
		{"other format", `{"format":"something-else","version":1}` + "\n", 1, "format", "is not"},
		{"newer version", `{"format":"codingbrain-export","version":2}` + "\n" + good + "\n", 1, "version", "newer than this server reads"},
		{"empty", "", 1, "format", "empty"},
		{"broken JSON", hdr + good + "\n" + `{"id":"x","content":` + "\n", 3, "line", "malformed JSON"},
		{"unknown field", hdr + strings.Replace(good, `"id"`, `"colour":"red","id"`, 1) + "\n", 2, "colour", "not a known field"},
		{"wrong type", hdr + strings.Replace(good, `"content":"fine"`, `"content":42`, 1) + "\n", 2, "content", "must be string"},
		{"bad state", hdr + strings.Replace(good, `"state":"active"`, `"state":"gone"`, 1) + "\n", 2, "state", "use one of: active, paused, archived, deleted"},
		{"bad time", hdr + strings.Replace(good, `"created_at":"2026-01-01T00:00:00Z"`, `"created_at":"yesterday"`, 1) + "\n", 2, "created_at", "RFC 3339"},
		{"bad category", hdr + strings.Replace(good, `"content"`, `"category":"misc","content"`, 1) + "\n", 2, "category", "use one of"},
		{"blank content", hdr + strings.Replace(good, `"content":"fine"`, `"content":"  "`, 1) + "\n", 2, "content", "required"},
		{"scope and entity disagree", hdr + strings.Replace(good, `"scope":"user"`, `"scope":"team"`, 1) + "\n", 2, "access_entity", "does not fit scope"},
		{"bad history", hdr + strings.Replace(good, `"updated_at"`, `"history":[{"actor":"alice","at":"2026-01-01T00:00:00Z"}],"updated_at"`, 1) + "\n", 2, "history[0].action", "required"},
		{"cut short", `{"format":"codingbrain-export","version":1,"counts":{"memories":3}}` + "\n" + good + "\n", 0, "counts.memories", "counts 3 memories but the file has 1"},
	}
	svc := newService(stores[0].open(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := importFile(svc, alice, memory.OnConflictFail, []byte(c.file))
			if err == nil || rep.Committed || rep.Imported != 0 {
				t.Fatalf("import: %v %+v, want it refused", err, rep)
			}
			if len(rep.Errors) == 0 {
				t.Fatalf("no errors reported: %v", err)
			}
			e := rep.Errors[0]
			if e.Line != c.line || e.Field != c.field || !strings.Contains(e.Message, c.msg) {
				t.Errorf("error %+v, want line %d field %s with %q", e, c.line, c.field, c.msg)
			}
		})
	}
	// Several bad lines: all reported, the good one not stored.
	file := hdr + good + "\n" + "{\n" + strings.Replace(good, `"01GOOD"`, `"01OTHER"`, 1)[:40] + "\n"
	rep, err := importFile(svc, alice, memory.OnConflictFail, []byte(file))
	if err == nil || len(rep.Errors) != 2 || rep.Errors[0].Line != 3 || rep.Errors[1].Line != 4 {
		t.Errorf("two bad lines: %v %+v", err, rep.Errors)
	}
	if _, err := svc.Get(as(alice), "01GOOD", memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("the good line of a refused import was stored: %v", err)
	}
}

const hdr = `{"format":"codingbrain-export","version":1}` + "\n"

// TestOpenMemoryZip imports the hand-written OpenMemory export in
// testdata: openmemory-export.zip holds memories.json (the readable copy
// beside it) and memories.jsonl.gz, as OpenMemory's
// POST /api/v1/backup/export writes them.
func TestOpenMemoryZip(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "openmemory-export.zip"))
	if err != nil {
		t.Fatal(err)
	}
	forEachStore(t, func(t *testing.T, open func(t testing.TB) memory.Store) {
		svc := newService(open(t))
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		items, err := transfer.OpenMemoryItems(data, "alice", now)
		if err != nil {
			t.Fatal(err)
		}
		next := func() func() (memory.ImportItem, error) {
			rest := slices.Clone(items)
			return func() (memory.ImportItem, error) {
				if len(rest) == 0 {
					return memory.ImportItem{}, errEOF
				}
				it := rest[0]
				rest = rest[1:]
				return it, nil
			}
		}
		rep, err := svc.Import(as(alice), memory.OnConflictSkip, next())
		if err != nil || rep.Imported != 4 {
			t.Fatalf("import: %v %+v, want 4 memories", err, rep)
		}
		m, err := svc.Get(as(alice), "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b01", memory.ViaREST)
		if err != nil {
			t.Fatal(err)
		}
		wantCreated := time.Date(2025, 3, 1, 9, 5, 12, 345678000, time.UTC)
		om, _ := m.Metadata["openmemory"].(map[string]any)
		if m.Content != "Prefers table-driven tests in Go" || m.App != "cursor" || m.Category != "testing" ||
			m.AccessEntity != "user:alice" || m.Scope != "user" || m.Source != "inference" || m.State != memory.StateActive ||
			!m.CreatedAt.Equal(wantCreated) || m.Tags["technology"] != true || m.Tags["testing"] != true ||
			m.Metadata["source_app"] != "cursor" || om["app"] != "cursor" {
			t.Errorf("mapped memory: %+v", m)
		}
		paused, err := svc.Get(as(alice), "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c02", memory.ViaREST)
		if err != nil || paused.State != memory.StatePaused || paused.App != "claude" ||
			!paused.UpdatedAt.Equal(time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)) {
			t.Errorf("paused memory: %+v %v", paused, err)
		}
		archived, err := svc.Get(as(alice), "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d03", memory.ViaREST)
		if err != nil || archived.State != memory.StateArchived || archived.Tags["work-preferences"] != true || archived.Category != "" {
			t.Errorf("archived memory: %+v %v", archived, err)
		}
		// The deleted one is stored deleted: not found, but exported with state=all.
		if _, err := svc.Get(as(alice), "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e04", memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
			t.Errorf("deleted memory: %v", err)
		}
		// A re-run with skip imports nothing more.
		rep, err = svc.Import(as(alice), memory.OnConflictSkip, next())
		if err != nil || rep.Imported != 0 || len(rep.Skipped) != 4 {
			t.Errorf("re-run: %v %+v", err, rep)
		}
	})
}

// TestOpenMemoryErrors: a zip without memories.json, or a memory with a
// bad state, is refused with the field named.
func TestOpenMemoryErrors(t *testing.T) {
	if _, err := transfer.OpenMemoryItems([]byte("not a zip"), "alice", time.Now()); err == nil || !strings.Contains(err.Error(), "not a zip") {
		t.Errorf("not a zip: %v", err)
	}
	var doc map[string]any
	raw, err := os.ReadFile(filepath.Join("testdata", "memories.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["memories"].([]any)[1].(map[string]any)["state"] = "frozen"
	items, err := transfer.OpenMemoryItems(zipOf(t, map[string]any{"export/memories.json": doc}), "alice", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ve *memory.ValidationError
	if len(items) != 4 || items[0].Err != nil || !errors.As(items[1].Err, &ve) || ve.Field != "memories[1].state" || items[1].Line != 2 {
		t.Errorf("items: %+v", items)
	}
	if _, err := transfer.OpenMemoryItems(zipOf(t, map[string]any{"other.json": doc}), "alice", time.Now()); err == nil ||
		!strings.Contains(err.Error(), "memories.json") {
		t.Errorf("zip without memories.json: %v", err)
	}
}

var errEOF = io.EOF

// zipOf builds a zip of JSON documents.
func zipOf(t *testing.T, files map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, v := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(w).Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRoundTripAcrossStores: an export of SQLite imported into PostgreSQL
// and back exports the same bytes each way (the times here are whole
// microseconds, which both keep).
func TestRoundTripAcrossStores(t *testing.T) {
	sqliteSvc := newService(stores[0].open(t))
	seed(t, sqliteSvc)
	first := export(t, sqliteSvc, alice)
	pg := newService(stores[1].open(t))
	if _, err := importFile(pg, alice, memory.OnConflictFail, first); err != nil {
		t.Fatal(err)
	}
	second := export(t, pg, alice)
	if !bytes.Equal(first, second) {
		t.Errorf("SQLite → PostgreSQL changed the export:\nSQLite:     %s\nPostgreSQL: %s", first, second)
	}
	back := newService(stores[0].open(t))
	if _, err := importFile(back, alice, memory.OnConflictFail, second); err != nil {
		t.Fatal(err)
	}
	if third := export(t, back, alice); !bytes.Equal(first, third) {
		t.Errorf("PostgreSQL → SQLite changed the export")
	}
}
