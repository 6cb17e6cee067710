package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
)

// drainChanges reads the feed from c until a page is empty (growing the
// limit when a full page makes no progress, as changes.Follow does) and
// returns the highest Seq seen per memory id and the final cursor.
func drainChanges(t *testing.T, s *postgres.Store, c memory.ChangeCursor, limit int, seen map[string]int64) memory.ChangeCursor {
	t.Helper()
	n := limit
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		cs, next, err := s.Changes(t.Context(), c, n)
		if err != nil {
			t.Fatalf("changes after %+v: %v", c, err)
		}
		if len(cs) == 0 {
			return next
		}
		for _, ch := range cs {
			seen[ch.ID] = max(seen[ch.ID], ch.Seq)
		}
		if len(cs) == n && next.Seq <= c.Seq {
			n *= 2
		} else {
			n = limit
		}
		c = next
	}
	t.Fatal("the feed did not run dry in 30s")
	return c
}

// querier is a connection or a transaction.
type querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// rawUpdate edits a memory with plain SQL and returns the change_seq the
// trigger gave it.
func rawUpdate(ctx context.Context, q querier, id, content string) (seq int64, err error) {
	err = q.QueryRow(ctx, `UPDATE memories SET content = $2, content_hash = md5($2), updated_at = now()
		WHERE id = $1 RETURNING change_seq`, id, content).Scan(&seq)
	return seq, err
}

// rawInsert adds a memory with plain SQL and returns its change_seq.
func rawInsert(ctx context.Context, q querier, id, content string) (seq int64, err error) {
	err = q.QueryRow(ctx, `INSERT INTO memories (org_id, id, access_entity, state, scope, source,
			created_by, created_at, updated_at, content_hash, content)
		VALUES ('acme', $1, 'team:acme/a', 'active', 'team', 'user', 'alice', now(), now(), md5($2), $2)
		RETURNING change_seq`, id, content).Scan(&seq)
	return seq, err
}

// TestChangesOutOfOrderCommit: a transaction takes a lower seq, a second
// one a higher seq and commits first; the feed returns the second, and
// after the first commits, returns it too — although its seq is below the
// cursor's.
func TestChangesOutOfOrderCommit(t *testing.T) {
	url := pgtest.Database(t)
	s := openStore(t, url)
	ctx := t.Context()
	for _, m := range []memory.Memory{
		mem("01OLDER", "acme", "team:acme/a", "written by the slow transaction"),
		mem("01NEWER", "acme", "team:acme/a", "written by the fast transaction"),
	} {
		if _, _, err := s.Create(ctx, m, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int64{}
	cursor := drainChanges(t, s, memory.ChangeCursor{}, 10, seen)

	conn1, conn2 := connect(t, url), connect(t, url)
	tx1, err := conn1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	s1, err := rawUpdate(ctx, tx1, "01OLDER", "edited by the slow transaction")
	if err != nil {
		t.Fatal(err)
	}
	s1b, err := rawInsert(ctx, tx1, "01INSERTED", "inserted by the slow transaction")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := rawUpdate(ctx, conn2, "01NEWER", "edited by the fast transaction") // commits
	if err != nil {
		t.Fatal(err)
	}
	if s2 <= s1b || s1b <= s1 {
		t.Fatalf("seqs %d, %d, %d: want the slow transaction's below the fast one's", s1, s1b, s2)
	}

	cs, next, err := s.Changes(ctx, cursor, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != "01NEWER" || cs[0].Seq != s2 {
		t.Fatalf("with the slow transaction open: %+v, want only 01NEWER at %d", cs, s2)
	}
	if next.Seq != s2 {
		t.Errorf("cursor %+v, want seq %d", next, s2)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	cs, _, err = s.Changes(ctx, next, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range cs {
		got[c.ID] = c.Seq
	}
	if got["01OLDER"] != s1 || got["01INSERTED"] != s1b {
		t.Errorf("after the slow transaction committed: %+v; want 01OLDER at %d and 01INSERTED at %d", cs, s1, s1b)
	}
	for _, c := range cs {
		if c.ID == "01OLDER" && c.UpdatedAt.Before(time.Now().Add(-time.Hour)) {
			t.Errorf("01OLDER reported with its old updated_at %v", c.UpdatedAt)
		}
	}
}

// TestChangesConcurrentWriters runs writers whose transactions take seqs
// and commit in random order while a reader follows the feed with a small
// limit; at the end the reader has every memory at its final seq.
func TestChangesConcurrentWriters(t *testing.T) {
	url := pgtest.Database(t)
	s := openStore(t, url)
	ctx := t.Context()
	const writers, writes, memories = 6, 40, 20
	for i := range memories {
		if _, _, err := s.Create(ctx, mem(fmt.Sprintf("01M%02d", i), "acme", "team:acme/a", fmt.Sprintf("memory %d", i)), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int64{}
	var mu sync.Mutex // guards seen between the reader and the final check
	done := make(chan struct{})
	readerDone := make(chan memory.ChangeCursor)
	go func() {
		var c memory.ChangeCursor
		n := 5
		for {
			select {
			case <-done:
				readerDone <- c
				return
			default:
			}
			cs, next, err := s.Changes(ctx, c, n)
			if err != nil {
				t.Error(err)
				readerDone <- c
				return
			}
			mu.Lock()
			for _, ch := range cs {
				seen[ch.ID] = max(seen[ch.ID], ch.Seq)
			}
			mu.Unlock()
			if len(cs) == n && next.Seq <= c.Seq {
				n *= 2
			} else {
				n = 5
			}
			c = next
		}
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(context.WithoutCancel(ctx))
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range writes {
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					var err error
					if r.IntN(4) == 0 {
						_, err = rawInsert(ctx, tx, fmt.Sprintf("01W%dI%02d", w, i), fmt.Sprintf("insert %d of writer %d", i, w))
					} else {
						id := fmt.Sprintf("01M%02d", r.IntN(memories))
						_, err = rawUpdate(ctx, tx, id, fmt.Sprintf("update %d of writer %d", i, w))
					}
					// Hold the transaction open so that commits overtake
					// each other.
					time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	c := <-readerDone
	mu.Lock()
	defer mu.Unlock()
	drainChanges(t, s, c, 5, seen)

	rows, err := connect(t, url).Query(ctx, `SELECT id, change_seq FROM memories`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	var id string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error { want[id] = seq; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Errorf("the reader saw %d memories, the table has %d", len(seen), len(want))
	}
	for id, seq := range want {
		if seen[id] != seq {
			t.Errorf("memory %s: the reader's last change is seq %d, the table's %d", id, seen[id], seq)
		}
	}
}

// TestChangesLongTransaction: while a write transaction stays open, writes
// committed after it began are read again by every call. When they
// outnumber the limit, a full page makes no progress — the signal to ask
// with a larger limit, which does; and once the transaction ends, pages of
// the normal limit move on again.
func TestChangesLongTransaction(t *testing.T) {
	url := pgtest.Database(t)
	s := openStore(t, url)
	ctx := t.Context()
	long, err := connect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	if _, err := long.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil { // takes a transaction id
		t.Fatal(err)
	}
	for i := range 6 {
		if _, _, err := s.Create(ctx, mem(fmt.Sprintf("01L%d", i), "acme", "team:acme/a", fmt.Sprintf("long %d", i)), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	c := memory.ChangeCursor{}
	cs, c, err := s.Changes(ctx, c, 3)
	if err != nil || len(cs) != 3 {
		t.Fatalf("first page: %+v, %v", cs, err)
	}
	cs, next, err := s.Changes(ctx, c, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || next.Seq > c.Seq {
		t.Fatalf("second page with the transaction open: %+v, cursor %+v after %+v; want the first page again, no progress", cs, next, c)
	}
	cs, next, err = s.Changes(ctx, next, 6)
	if err != nil || len(cs) != 6 || next.Seq <= c.Seq {
		t.Fatalf("second page with twice the limit: %+v, cursor %+v, %v; want all six", cs, next, err)
	}
	if err := long.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, mem("01AFTER", "acme", "team:acme/a", "after the long transaction"), "alice"); err != nil {
		t.Fatal(err)
	}
	// The next full page may end below the cursor's seq, with the horizon
	// moved on: that is progress too, and the feed runs dry.
	seen := map[string]int64{}
	drainChanges(t, s, next, 3, seen)
	if _, ok := seen["01AFTER"]; !ok {
		t.Errorf("the write after the long transaction was not returned: %v", seen)
	}
}

// TestChangesPageEndsInRecheck: a full page that ends among rows read
// again must not let the cursor jump over a row it has not returned. Rows
// p1 and p2 are returned, then a slow transaction's row x (seq between p2
// and p3) commits; a long transaction held the horizon below all of them.
// The next page of two is p1 and p2 again; its cursor must still lead to x
// once the horizon has moved past x's transaction.
func TestChangesPageEndsInRecheck(t *testing.T) {
	url := pgtest.Database(t)
	s := openStore(t, url)
	ctx := t.Context()
	long, err := connect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	if _, err := long.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"01P1", "01P2"} {
		if _, _, err := s.Create(ctx, mem(id, "acme", "team:acme/a", "row "+id), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	slow, err := connect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	if _, err := rawInsert(ctx, slow, "01X", "written by the slow transaction"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, mem("01P3", "acme", "team:acme/a", "row 01P3"), "alice"); err != nil {
		t.Fatal(err)
	}
	cs, c, err := s.Changes(ctx, memory.ChangeCursor{}, 10)
	if err != nil || len(cs) != 3 {
		t.Fatalf("first read: %+v, %v; want p1, p2, p3", cs, err)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := long.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	cs, c, err = s.Changes(ctx, c, 2)
	if err != nil || len(cs) != 2 || cs[0].ID != "01P1" || cs[1].ID != "01P2" {
		t.Fatalf("second read: %+v, %v; want p1 and p2 again", cs, err)
	}
	seen := map[string]int64{}
	drainChanges(t, s, c, 2, seen)
	if _, ok := seen["01X"]; !ok {
		t.Errorf("the slow transaction's row was skipped: %v", seen)
	}
}

// TestChangesAcrossStores: two stores (two pools, as two replicas) on one
// database; a write through one is in the feed of the other.
func TestChangesAcrossStores(t *testing.T) {
	url := pgtest.Database(t)
	a, b := openStore(t, url), openStore(t, url)
	ctx := t.Context()
	end := drainChanges(t, b, memory.ChangeCursor{}, 10, map[string]int64{})
	m, _, err := a.Create(ctx, mem("01FROMA", "acme", "team:acme/a", "written through replica a"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	drainChanges(t, b, end, 10, seen)
	if _, ok := seen[m.ID]; !ok || len(seen) != 1 {
		t.Errorf("replica b's feed after a write through a: %v, want %s", seen, m.ID)
	}
}

// TestChangesCreateBatch: the trigger numbers every row a batch stores,
// and the rows it skips are not changes.
func TestChangesCreateBatch(t *testing.T) {
	s := openStore(t, pgtest.Database(t))
	ctx := t.Context()
	created, err := s.CreateBatch(ctx, []memory.Memory{
		mem("01B1", "acme", "team:acme/a", "batch one"),
		mem("01B2", "acme", "team:acme/a", "batch one"), // duplicate
		mem("01B3", "acme", "team:acme/a", "batch three"),
	}, "importer")
	if err != nil || !created[0] || created[1] || !created[2] {
		t.Fatalf("batch: %v, %v", created, err)
	}
	cs, _, err := s.Changes(ctx, memory.ChangeCursor{}, 10)
	if err != nil || len(cs) != 2 || cs[0].ID != "01B1" || cs[1].ID != "01B3" || cs[0].Seq >= cs[1].Seq {
		t.Errorf("changes of a batch: %+v, %v; want 01B1 then 01B3", cs, err)
	}
}

// TestChangeFeedMigration migrates a database that holds memories to the
// change feed: every memory gets a number, and the feed reads them all.
func TestChangeFeedMigration(t *testing.T) {
	url := pgtest.Database(t)
	embedded, err := postgres.EmbeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	init, err := fs.ReadFile(embedded, "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := openUnmigrated(t, url, fstest.MapFS{"0001_init.sql": {Data: init}})
	if _, err := old.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := old.Create(t.Context(), mem(fmt.Sprintf("01PRE%d", i), "acme", "team:acme/a", fmt.Sprintf("before the feed %d", i)), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, url) // migrates to the latest
	seen := map[string]int64{}
	drainChanges(t, s, memory.ChangeCursor{}, 2, seen)
	if len(seen) != 5 {
		t.Fatalf("feed after the migration: %v, want the 5 memories", seen)
	}
	seqs := map[int64]bool{}
	for _, seq := range seen {
		seqs[seq] = true
	}
	if len(seqs) != 5 {
		t.Errorf("backfilled seqs %v are not distinct", seen)
	}
	a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/a"}}
	if _, err := s.Update(t.Context(), a, "01PRE0", "alice", "update", func(m *memory.Memory) error {
		m.Content = "edited after the migration"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := map[string]int64{}
	cs, _, err := s.Changes(t.Context(), memory.ChangeCursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		after[c.ID] = c.Seq
	}
	for id, seq := range seen {
		if id != "01PRE0" && after[id] != seq {
			t.Errorf("%s: seq %d, was %d", id, after[id], seq)
		}
		if id == "01PRE0" && after[id] <= seq {
			t.Errorf("the update left 01PRE0 at seq %d (was %d)", after[id], seq)
		}
	}
	if cs[len(cs)-1].ID != "01PRE0" {
		t.Errorf("the updated memory is not the last change: %+v", cs)
	}
}
