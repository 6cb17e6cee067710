package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// memoriesOf is the internal read the vector index loads from
// (retrieval.Source).
type memoriesOf interface {
	MemoriesOf(ctx context.Context, keys []memory.MemoryKey) ([]memory.Memory, error)
}

// testLookup: Lookup, the read of the memories the vector index found,
// returns only those the caller may see and the filter keeps — it is a
// second read path and must enforce access like every other — and the
// internal MemoriesOf reads memories of every org in any state by key.
func testLookup(t *testing.T, e *env) {
	lk, ok := e.store.(memory.Lookup)
	if !ok {
		t.Skip("store does not implement memory.Lookup")
	}
	mine := e.add(alice, memory.Input{Content: "alice's private note on retries", Scope: "user"})
	team := e.add(alice, memory.Input{Content: "backend team note on retries", Scope: "team", Category: "decision"})
	other := e.add(frank, memory.Input{Content: "frontend team note on retries", Scope: "team"})
	org := e.add(carol, memory.Input{Content: "org-wide note on retries", Scope: "org"})
	foreign := e.add(eve, memory.Input{Content: "globex note on retries", Scope: "org"})
	archived := e.add(alice, memory.Input{Content: "archived backend note", Scope: "team"})
	if _, err := e.svc.Transition(e.as(alice), archived.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	deleted := e.add(alice, memory.Input{Content: "deleted backend note", Scope: "team"})
	if _, err := e.svc.Delete(e.as(alice), deleted.ID); err != nil {
		t.Fatal(err)
	}
	all := []string{mine.ID, team.ID, other.ID, org.ID, foreign.ID, archived.ID, deleted.ID, "01NOSUCHMEMORY0000000000000"}

	look := func(who string, a memory.Access, f memory.Filter, want ...string) {
		t.Helper()
		got, err := lk.Lookup(e.as(alice), a, f, all)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		ids := make([]string, len(got))
		for i, m := range got {
			ids[i] = m.ID
			if m.Content == "" || m.OrgID == "" {
				t.Errorf("%s: memory %s read without its fields", who, m.ID)
			}
		}
		slices.Sort(ids)
		slices.Sort(want)
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", who, ids, want)
		}
	}
	// A team grant does not cover the org's memories; org:acme covers its
	// teams' but not alice's own.
	look("alice", memory.AccessFor(alice), memory.Filter{}, mine.ID, team.ID, archived.ID)
	look("frank", memory.AccessFor(frank), memory.Filter{}, other.ID)
	look("carol", memory.AccessFor(carol), memory.Filter{}, team.ID, other.ID, org.ID, archived.ID)
	look("bob", memory.AccessFor(bob), memory.Filter{})
	look("eve", memory.AccessFor(eve), memory.Filter{}, foreign.ID)
	look("alice, decisions", memory.AccessFor(alice), memory.Filter{Categories: []memory.Category{"decision"}}, team.ID)
	look("alice, archived", memory.AccessFor(alice), memory.Filter{States: []memory.State{memory.StateArchived}}, archived.ID)
	future := time.Now().Add(time.Hour)
	look("alice, created later", memory.AccessFor(alice), memory.Filter{CreatedAfter: &future})
	if got, err := lk.Lookup(e.as(alice), memory.AccessFor(alice), memory.Filter{}, nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v, %v", got, err)
	}

	mo, ok := e.store.(memoriesOf)
	if !ok {
		return
	}
	keys := []memory.MemoryKey{}
	for _, m := range []memory.Memory{org, foreign, deleted, mine} {
		keys = append(keys, memory.MemoryKey{OrgID: m.OrgID, ID: m.ID})
	}
	keys = append(keys, memory.MemoryKey{OrgID: "acme", ID: foreign.ID}, memory.MemoryKey{OrgID: "acme", ID: "nosuch"})
	got, err := mo.MemoriesOf(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	var gotKeys []string
	for i, m := range got {
		gotKeys = append(gotKeys, m.OrgID+"/"+m.ID)
		if i > 0 && !(memory.MemoryKey{OrgID: got[i-1].OrgID, ID: got[i-1].ID}).Less(memory.MemoryKey{OrgID: m.OrgID, ID: m.ID}) {
			t.Errorf("MemoriesOf not in key order: %v", gotKeys)
		}
		if m.ID == deleted.ID && m.State != memory.StateDeleted {
			t.Errorf("deleted memory read as %s", m.State)
		}
	}
	want := []string{"acme/" + mine.ID, "acme/" + org.ID, "acme/" + deleted.ID, "globex/" + foreign.ID}
	slices.Sort(gotKeys)
	slices.Sort(want)
	if fmt.Sprint(gotKeys) != fmt.Sprint(want) {
		t.Errorf("MemoriesOf: got %v, want %v (every org and state, a key of the wrong org finds nothing)", gotKeys, want)
	}
}
