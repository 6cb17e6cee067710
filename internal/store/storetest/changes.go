package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// feedReader reads a memory.ChangeFeed for a test, keeping its cursor and
// the highest Seq returned so far.
type feedReader struct {
	t      *testing.T
	e      *env
	feed   memory.ChangeFeed
	cursor memory.ChangeCursor
	maxSeq int64
}

// read reads one page after r's cursor and checks it: at most limit
// changes, Seq strictly increasing. It moves the cursor and returns the
// changes with a Seq above every Seq returned before (the feed may repeat
// older ones), and how many changes the page had.
func (r *feedReader) read(limit int) (fresh []memory.Change, n int) {
	r.t.Helper()
	cs, next, err := r.feed.Changes(r.e.t.Context(), r.cursor, limit)
	if err != nil {
		r.t.Fatalf("changes after %+v: %v", r.cursor, err)
	}
	if len(cs) > limit {
		r.t.Errorf("changes after %+v with limit %d: %d changes", r.cursor, limit, len(cs))
	}
	if len(cs) == 0 && next != r.cursor {
		r.t.Errorf("an empty page moved the cursor from %+v to %+v", r.cursor, next)
	}
	for i, c := range cs {
		if i > 0 && c.Seq <= cs[i-1].Seq {
			r.t.Errorf("changes out of order: seq %d after %d", c.Seq, cs[i-1].Seq)
		}
		if c.Seq > r.maxSeq {
			fresh = append(fresh, c)
		}
	}
	for _, c := range fresh {
		r.maxSeq = max(r.maxSeq, c.Seq)
	}
	r.cursor = next
	return fresh, len(cs)
}

// drain reads pages of limit until one is empty and returns the new
// changes, in order. (A store may repeat changes for a while, as
// PostgreSQL does while a write transaction anywhere on the server is
// open; hence a deadline rather than a number of pages.)
func (r *feedReader) drain(limit int) []memory.Change {
	r.t.Helper()
	var all []memory.Change
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		fresh, n := r.read(limit)
		if n == 0 {
			return all
		}
		all = append(all, fresh...)
	}
	r.t.Fatalf("the feed did not run dry in 30s")
	return nil
}

// wantChange checks that cs is exactly one change of m, as m is now.
func wantChange(t *testing.T, what string, cs []memory.Change, m memory.Memory) {
	t.Helper()
	if len(cs) != 1 {
		t.Errorf("%s: %d new changes %+v, want one of %s", what, len(cs), cs, m.ID)
		return
	}
	c := cs[0]
	if c.ID != m.ID || c.OrgID != m.OrgID || c.State != m.State || !c.UpdatedAt.Equal(m.UpdatedAt) ||
		c.UpdatedAt.Location() != time.UTC {
		t.Errorf("%s: change %+v, want memory %s of %s, %s, updated %v (UTC)", what, c, m.ID, m.OrgID, m.State, m.UpdatedAt)
	}
}

func testChangeFeed(t *testing.T, e *env) {
	feed, ok := e.store.(memory.ChangeFeed)
	if !ok {
		t.Skip("the store has no change feed")
	}
	ctx := e.as(alice)
	r := &feedReader{t: t, e: e, feed: feed}

	// An empty feed returns the cursor it was given.
	cs, next, err := feed.Changes(t.Context(), memory.ChangeCursor{}, 10)
	if err != nil || len(cs) != 0 || next != (memory.ChangeCursor{}) {
		t.Fatalf("changes of an empty store: %+v, cursor %+v, %v; want none and the zero cursor", cs, next, err)
	}

	// Each write is one new change, with a higher Seq, saying what the
	// memory is now.
	m1 := e.add(alice, memory.Input{Content: "feed: first memory"})
	wantChange(t, "after create", r.drain(10), m1)
	m2 := e.add(alice, memory.Input{Content: "feed: second memory"})
	wantChange(t, "after a second create", r.drain(10), m2)

	e.clock.Advance(time.Second)
	m1, err = e.svc.Update(ctx, m1.ID, memory.Patch{Content: ptr("feed: first memory, edited")})
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, "after update", r.drain(10), m1)

	e.clock.Advance(time.Second)
	m2, err = e.svc.Transition(ctx, m2.ID, memory.ActionPause)
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, "after pause", r.drain(10), m2)

	e.clock.Advance(time.Second)
	m1, err = e.svc.Delete(ctx, m1.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, "after delete", r.drain(10), m1)

	// Writes that change nothing are not changes: a duplicate add, a
	// rejected update, an illegal transition.
	if _, created, err := e.svc.Add(ctx, memory.Input{Content: "FEED:  second memory"}); err != nil || created {
		t.Fatalf("duplicate add: created=%v, %v", created, err)
	}
	if _, err := e.svc.Update(ctx, m2.ID, memory.Patch{Category: ptr(memory.Category("opinion"))}); err == nil {
		t.Fatal("rejected update: no error")
	}
	if _, err := e.svc.Transition(ctx, m2.ID, memory.ActionPause); err == nil {
		t.Fatal("pausing a paused memory: no error")
	}
	if cs := r.drain(10); len(cs) != 0 {
		t.Errorf("writes that changed nothing made changes %+v", cs)
	}

	// The cursor from the end returns nothing new, and the same cursor,
	// until the next write.
	end := r.cursor
	for i := range 3 {
		cs, next, err := feed.Changes(t.Context(), end, 10)
		if err != nil || len(cs) != 0 || next != end {
			t.Errorf("read %d at the end: %+v, cursor %+v, %v; want none and %+v", i, cs, next, err, end)
		}
	}

	// The feed is not filtered by access: it reports every org's memories.
	mb := e.add(bob, memory.Input{Content: "feed: bob's own memory"})
	me := e.add(eve, memory.Input{Content: "feed: another tenant's memory"})
	cs = r.drain(10)
	if len(cs) != 2 || cs[0].ID != mb.ID || cs[1].ID != me.ID || cs[1].OrgID != "globex" {
		t.Errorf("changes of bob's and another org's memories: %+v, want %s then %s of globex", cs, mb.ID, me.ID)
	}

	// Paging: several writes between reads come in Seq order, limit at a
	// time, and a memory written twice is reported with its last write.
	var want []memory.Memory
	for i := range 7 {
		want = append(want, e.add(alice, memory.Input{Content: fmt.Sprintf("feed: paged memory %d", i)}))
	}
	e.clock.Advance(time.Second)
	if want[2], err = e.svc.Transition(ctx, want[2].ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	want = append(want[:2], append(want[3:], want[2])...) // its change is now the last
	got := r.drain(3)
	if len(got) != len(want) {
		t.Fatalf("paged through %d changes %+v, want %d", len(got), got, len(want))
	}
	for i, m := range want {
		wantChange(t, fmt.Sprintf("paged change %d", i), got[i:i+1], m)
	}

	// The zero cursor reads every memory's latest change from the start.
	all := &feedReader{t: t, e: e, feed: feed}
	latest := map[string]memory.Change{}
	for _, c := range all.drain(4) {
		latest[c.ID] = c
	}
	if n := len(latest); n != 2+2+7 {
		t.Errorf("from the start: changes of %d memories, want %d", n, 2+2+7)
	}
	if c := latest[m1.ID]; c.State != memory.StateDeleted {
		t.Errorf("from the start: %s is %s, want deleted", m1.ID, c.State)
	}
	if c := latest[m2.ID]; c.State != memory.StatePaused {
		t.Errorf("from the start: %s is %s, want paused", m2.ID, c.State)
	}
}
