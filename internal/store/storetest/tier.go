package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// testTiers is the contract of memory.Tiers: MoveCold moves archived,
// deleted and untouched memories (neither written nor read since the cut)
// to the cold tier, limit at a time; the change feed reports each move as
// Cold; search covers the hot tier unless IncludeCold is set, and then
// covers the cold tier with the same access rules and filters; reading or
// changing a cold memory brings it back, deleting it does not; Warm never
// touches a memory the caller may not see.
func testTiers(t *testing.T, e *env) {
	tiers, ok := e.store.(memory.Tiers)
	if !ok {
		t.Skip("the store does not implement memory.Tiers")
	}
	ctx := t.Context()
	nm := names{}
	old := e.add(alice, memory.Input{Content: "The ledger rounds half to even on settlement.", Category: "decision", Scope: "team", AccessEntity: "team:acme/backend"})
	oldConv := e.add(alice, memory.Input{Content: "Ledger entries are never updated in place.", Category: "convention", Scope: "team", AccessEntity: "team:acme/backend"})
	archived := e.add(alice, memory.Input{Content: "The ledger used to run on MySQL.", Scope: "team", AccessEntity: "team:acme/backend"})
	deleted := e.add(alice, memory.Input{Content: "The ledger export ran nightly at two.", Scope: "team", AccessEntity: "team:acme/backend"})
	read := e.add(alice, memory.Input{Content: "Ledger reconciliation runs every hour.", Scope: "team", AccessEntity: "team:acme/backend"})
	front := e.add(frank, memory.Input{Content: "The ledger page paginates by fifty rows.", Scope: "team", AccessEntity: "team:acme/frontend"})
	other := e.add(eve, memory.Input{Content: "The ledger of globex is kept in SAP.", Scope: "org", AccessEntity: "org:globex"})
	nm[old.ID], nm[oldConv.ID], nm[archived.ID], nm[deleted.ID] = "old", "oldConv", "archived", "deleted"
	nm[read.ID], nm[front.ID], nm[other.ID] = "read", "front", "other"

	e.clock.Advance(100 * 24 * time.Hour)
	cut := e.clock.Now().Add(-90 * 24 * time.Hour)
	fresh := e.add(alice, memory.Input{Content: "The ledger service moved to PostgreSQL 17.", Scope: "team", AccessEntity: "team:acme/backend"})
	nm[fresh.ID] = "fresh"
	if _, err := e.svc.Transition(e.as(alice), archived.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Delete(e.as(alice), deleted.ID); err != nil {
		t.Fatal(err)
	}
	// Returned to a reader after the cut: touched, so it stays hot.
	if hits := e.search(alice, memory.SearchQuery{Text: "reconciliation"}); !slices.Contains(hitIDs(hits), read.ID) {
		t.Fatalf("search reconciliation: %v", nm.of(hitIDs(hits)))
	}

	var cursor memory.ChangeCursor
	feed, hasFeed := e.store.(memory.ChangeFeed)
	if hasFeed {
		_, cursor = readFeed(t, feed, cursor)
	}

	// limit bounds one call; the rest comes with the next calls.
	moved := 0
	for _, limit := range []int{2, 100, 100} {
		n, err := tiers.MoveCold(ctx, cut, limit)
		if err != nil {
			t.Fatal(err)
		}
		if n > limit {
			t.Errorf("MoveCold(limit %d) moved %d", limit, n)
		}
		moved += n
	}
	wantCold := []string{old.ID, oldConv.ID, archived.ID, deleted.ID, front.ID, other.ID}
	if moved != len(wantCold) {
		t.Errorf("MoveCold moved %d memories, want %d (%v)", moved, len(wantCold), nm.of(wantCold))
	}
	if hot, cold, err := tiers.TierCounts(ctx); err != nil || hot != 2 || cold != 6 {
		t.Errorf("TierCounts = %d hot, %d cold, %v; want 2 hot (fresh, read), 6 cold", hot, cold, err)
	}
	if hasFeed {
		cs, _ := readFeed(t, feed, cursor)
		got := map[string]bool{}
		for _, c := range cs {
			if c.Cold {
				got[c.ID] = true
			}
		}
		for _, id := range wantCold {
			if !got[id] {
				t.Errorf("the change feed did not report %s moving to the cold tier (%d changes)", nm[id], len(cs))
			}
		}
		if got[fresh.ID] || got[read.ID] {
			t.Errorf("the change feed reports a hot memory as cold")
		}
	}

	// Search: the hot tier by default, both with IncludeCold.
	hot := hitIDs(e.search(alice, memory.SearchQuery{Text: "ledger"}))
	slices.Sort(hot)
	if want := sorted(fresh.ID, read.ID); !slices.Equal(hot, want) {
		t.Errorf("search ledger (hot) as alice = %v, want %v", nm.of(hot), nm.of(want))
	}
	hits := e.search(alice, memory.SearchQuery{Text: "ledger", IncludeCold: true, Limit: 50})
	all := hitIDs(hits)
	slices.Sort(all)
	if want := sorted(fresh.ID, read.ID, old.ID, oldConv.ID, archived.ID); !slices.Equal(all, want) {
		t.Errorf("search ledger include_cold as alice = %v, want %v (not deleted, frontend or globex)", nm.of(all), nm.of(want))
	}
	for _, h := range hits {
		if wantC := h.Memory.ID != fresh.ID && h.Memory.ID != read.ID; h.Memory.Cold != wantC {
			t.Errorf("hit %s: Cold = %v, want %v", nm[h.Memory.ID], h.Memory.Cold, wantC)
		}
	}
	// The same filters.
	got := hitIDs(e.search(alice, memory.SearchQuery{Text: "ledger", IncludeCold: true,
		Filter: memory.Filter{Categories: []memory.Category{"convention"}}}))
	if !slices.Equal(got, []string{oldConv.ID}) {
		t.Errorf("search ledger include_cold category=convention = %v, want [oldConv]", nm.of(got))
	}
	got = hitIDs(e.search(alice, memory.SearchQuery{Text: "ledger", IncludeCold: true,
		Filter: memory.Filter{States: []memory.State{memory.StateArchived}}}))
	if !slices.Equal(got, []string{archived.ID}) {
		t.Errorf("search ledger include_cold state=archived = %v, want [archived]", nm.of(got))
	}
	// The same access rules.
	for _, c := range []struct {
		p    auth.Principal
		want []string
	}{{frank, []string{front.ID}}, {eve, []string{other.ID}}, {bob, nil}, {carol, sorted(fresh.ID, read.ID, old.ID, oldConv.ID, archived.ID, front.ID)}} {
		got := hitIDs(e.search(c.p, memory.SearchQuery{Text: "ledger", IncludeCold: true, Limit: 50}))
		slices.Sort(got)
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("search ledger include_cold as %s = %v, want %v", c.p.Subject, nm.of(got), nm.of(c.want))
		}
	}
	if _, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: "ledger", IncludeCold: true, Mode: memory.ModeVector}, memory.ViaREST); !isField(err, "include_cold") {
		t.Errorf("include_cold with mode vector: %v, want a validation error naming include_cold", err)
	}

	// Reading a cold memory brings it back; another caller cannot.
	if n, err := tiers.Warm(ctx, memory.AccessFor(frank), []string{old.ID, other.ID}); err != nil || n != 0 {
		t.Errorf("Warm of memories frank may not see = %d, %v; want 0", n, err)
	}
	if _, err := e.svc.Get(e.as(frank), old.ID, memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("frank reads alice's cold memory: %v", err)
	}
	if m, err := e.store.Get(ctx, memory.AccessFor(alice), old.ID); err != nil || !m.Cold {
		t.Errorf("store Get of a cold memory: Cold = %v, %v; want true", m.Cold, err)
	}
	if m := e.get(alice, old.ID); m.Cold {
		t.Errorf("Get returned a cold memory still marked cold")
	}
	if m, err := e.store.Get(ctx, memory.AccessFor(alice), old.ID); err != nil || m.Cold {
		t.Errorf("after Get the memory is still cold (%v)", err)
	}
	// Changing one brings it back: an update, a restore.
	content := "Ledger entries are never updated in place; corrections are new entries."
	if _, err := e.svc.Update(e.as(alice), oldConv.ID, memory.Patch{Content: &content}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Transition(e.as(alice), archived.ID, memory.ActionRestore); err != nil {
		t.Fatal(err)
	}
	hot = hitIDs(e.search(alice, memory.SearchQuery{Text: "ledger", Limit: 50}))
	slices.Sort(hot)
	if want := sorted(fresh.ID, read.ID, old.ID, oldConv.ID, archived.ID); !slices.Equal(hot, want) {
		t.Errorf("search ledger (hot) after get, update and restore = %v, want %v", nm.of(hot), nm.of(want))
	}
	// Deleting a cold memory leaves it cold.
	if _, err := e.svc.Delete(e.as(frank), front.ID); err != nil {
		t.Fatal(err)
	}
	if m, err := e.store.Get(ctx, memory.AccessFor(frank), front.ID); err != nil || !m.Cold {
		t.Errorf("a deleted cold memory: Cold = %v, %v; want it left cold", m.Cold, err)
	}
	if hot, cold, err := tiers.TierCounts(ctx); err != nil || hot != 5 || cold != 3 {
		t.Errorf("TierCounts at the end = %d hot, %d cold, %v; want 5, 3", hot, cold, err)
	}
}

// readFeed reads the change feed after cursor until a page is not full
// (delivery is at least once: a store may report some changes again).
func readFeed(t *testing.T, feed memory.ChangeFeed, cursor memory.ChangeCursor) ([]memory.Change, memory.ChangeCursor) {
	t.Helper()
	var all []memory.Change
	for range 100 {
		cs, next, err := feed.Changes(t.Context(), cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cs...)
		cursor = next
		if len(cs) < 1000 {
			return all, cursor
		}
	}
	t.Fatal("the change feed did not drain")
	return nil, cursor
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// isField reports whether err is a validation error naming field.
func isField(err error, field string) bool {
	var v *memory.ValidationError
	return errors.As(err, &v) && v.Field == field
}

// testBackupTiers: an archive keeps each memory's tier ("cold" on the
// memories that are cold), and a restore puts every memory back in its
// tier, with identical checksums.
func testBackupTiers(t *testing.T, open func(t *testing.T) BackupStore) {
	ctx := t.Context()
	src, dst := open(t), open(t)
	ids := Seed(t, src)
	st, ok := src.(memory.Tiers)
	if !ok {
		t.Skip("the store does not implement memory.Tiers")
	}
	if _, err := st.MoveCold(ctx, time.Now().Add(24*time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}
	if n, err := st.Warm(ctx, a, []string{"01SEED0001"}); err != nil || n != 1 {
		t.Fatalf("warm: %d, %v", n, err)
	}
	hot, cold, err := st.TierCounts(ctx)
	if err != nil || hot != 1 || cold < 1 {
		t.Fatalf("tiers before the backup: %d hot, %d cold, %v", hot, cold, err)
	}
	want := checksums(t, src)
	CopyByBackup(t, src, dst)
	if got := checksums(t, dst); got[backup.TableMemories] != want[backup.TableMemories] {
		t.Errorf("restored memories %+v, want %+v", got[backup.TableMemories], want[backup.TableMemories])
	}
	dt := dst.(memory.Tiers)
	if h, c, err := dt.TierCounts(ctx); err != nil || h != hot || c != cold {
		t.Errorf("tiers after the restore: %d hot, %d cold, %v; want %d, %d", h, c, err, hot, cold)
	}
	if m, err := dst.Get(ctx, a, "01SEED0001"); err != nil || m.Cold {
		t.Errorf("the warm memory after the restore: cold %v, %v", m.Cold, err)
	}
	if m, err := dst.Get(ctx, a, ids[1]); err != nil || !m.Cold {
		t.Errorf("a cold memory after the restore: cold %v, %v", m.Cold, err)
	}
}
