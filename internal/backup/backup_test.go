package backup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "codingbrain.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: pgtest.Database(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func sums(t *testing.T, src backup.Source) map[string]backup.TableInfo {
	t.Helper()
	var out map[string]backup.TableInfo
	if err := src.Snapshot(t.Context(), func(s backup.Snapshot) error {
		var err error
		out, err = backup.Checksums(t.Context(), s)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func roundTrip(t *testing.T, src, dst storetest.BackupStore) {
	ctx := t.Context()
	storetest.Seed(t, src)
	res := storetest.CopyByBackup(t, src, dst)
	want, got := sums(t, src), sums(t, dst)
	for table := range want {
		if got[table] != want[table] || res.Manifest.Tables[table] != want[table] {
			t.Errorf("%s: restored %+v, source %+v, manifest %+v", table, got[table], want[table], res.Manifest.Tables[table])
		}
	}
	for _, q := range []struct {
		a    memory.Access
		text string
	}{
		{memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}, "ledger transactions"},
		{memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}, "error verb"},
		{memory.Access{OrgID: "acme", Prefixes: []string{"team:acme/"}}, "checkout phone"},
		{memory.Access{OrgID: "globex", Entities: []string{"team:globex/platform"}}, "drain node"},
	} {
		w, err1 := src.Search(ctx, q.a, memory.SearchQuery{Text: q.text})
		g, err2 := dst.Search(ctx, q.a, memory.SearchQuery{Text: q.text})
		if err1 != nil || err2 != nil || len(w) == 0 || !slices.Equal(ids(w), ids(g)) {
			t.Errorf("search %q: restored %v (%v), source %v (%v)", q.text, ids(g), err2, ids(w), err1)
		}
	}
}

func ids(hs []memory.Hit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Memory.ID)
	}
	return out
}

// TestCrossStore: an archive of either store restores into the other with
// the same checksums and the same search results.
func TestCrossStore(t *testing.T) {
	t.Run("SQLiteToPostgres", func(t *testing.T) { roundTrip(t, openSQLite(t), openPostgres(t)) })
	t.Run("PostgresToSQLite", func(t *testing.T) { roundTrip(t, openPostgres(t), openSQLite(t)) })
}

// TestConcurrentWrites: a backup taken while writers add and update
// memories restores to a consistent state: the store matches the
// manifest, every memory has its create history row and every history row
// its memory.
func TestConcurrentWrites(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T) storetest.BackupStore
	}{
		{"SQLite", func(t *testing.T) storetest.BackupStore { return openSQLite(t) }},
		{"Postgres", func(t *testing.T) storetest.BackupStore { return openPostgres(t) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			src := c.open(t)
			storetest.Seed(t, src)
			var (
				wg      sync.WaitGroup
				stop    atomic.Bool
				written atomic.Int64
				werr    atomic.Value
			)
			started := make(chan struct{})
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}
					for i := 0; !stop.Load(); i++ {
						at := time.Now().UTC()
						m := memory.Memory{ID: fmt.Sprintf("01W%d%07d", w, i), OrgID: "acme", Content: fmt.Sprintf("writer %d note %d about queues", w, i),
							Scope: "team", Source: "user", AccessEntity: "team:acme/backend", State: memory.StateActive,
							CreatedBy: "w", CreatedAt: at, UpdatedAt: at}
						if _, _, err := src.Create(ctx, m, "w"); err != nil {
							werr.Store(err)
							return
						}
						if _, err := src.Update(ctx, a, m.ID, "w", "update", func(m *memory.Memory) error { m.UpdatedAt = time.Now(); return nil }); err != nil {
							werr.Store(err)
							return
						}
						if written.Add(1) == 20 {
							close(started)
						}
					}
				}()
			}
			<-started
			dir := backup.Dir{Path: t.TempDir()}
			res, err := backup.Create(ctx, src, dir, backup.CreateOptions{})
			stop.Store(true)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if e := werr.Load(); e != nil {
				t.Fatalf("writer: %v", e)
			}
			dst := openSQLite(t)
			rc, _ := dir.Open(ctx, res.Name)
			defer rc.Close()
			if _, err := backup.Restore(ctx, rc, dst, backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			got := sums(t, dst)
			for table, ti := range res.Manifest.Tables {
				if got[table] != ti {
					t.Errorf("%s: restored %+v, manifest %+v", table, got[table], ti)
				}
			}
			// Each writer iteration is two transactions (create, update):
			// a snapshot sees whole transactions, so every memory has its
			// create row and at most one update row, never an update
			// without its create.
			mems, hist := res.Manifest.Tables[backup.TableMemories].Rows, res.Manifest.Tables[backup.TableHistory].Rows
			if mems <= 5 || hist < mems || hist > 2*mems {
				t.Errorf("%d memories and %d history rows in a snapshot taken during writes", mems, hist)
			}
			t.Logf("snapshot of %d memories while %d were written", mems-5, written.Load())
			if err := backup.CheckStore(ctx, dst, nil); err != nil {
				t.Error(err)
			}
		})
	}
}

// blindSearch is a real store whose search finds nothing: a lexical index
// that lost its entries.
type blindSearch struct{ *sqlite.Store }

func (blindSearch) Search(context.Context, memory.Access, memory.SearchQuery) ([]memory.Hit, error) {
	return nil, nil
}

// TestVerifyCanaryFails: when search in the restored store does not find
// the sampled memories, verify reports the canary check failed, the backup
// bad (exit 1), and the alert names it.
func TestVerifyCanaryFails(t *testing.T) {
	ctx := t.Context()
	src := openSQLite(t)
	storetest.Seed(t, src)
	dir := backup.Dir{Path: t.TempDir()}
	if _, err := backup.Create(ctx, src, dir, backup.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := backup.Verify(ctx, dir, backup.VerifyOptions{
		OpenScratch: func(ctx context.Context) (backup.Scratch, func() error, error) {
			s := openSQLite(t)
			return blindSearch{s}, func() error { return nil }, nil
		},
	})
	if rep.ExitCode() != backup.ExitBad || rep.Checks[len(rep.Checks)-1].Name != backup.CheckCanary ||
		rep.Checks[len(rep.Checks)-1].Status != backup.StatusFailed {
		t.Fatalf("exit %d, checks %+v", rep.ExitCode(), rep.Checks)
	}
	var got []backup.Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a backup.Alert
		json.NewDecoder(r.Body).Decode(&a)
		got = append(got, a)
	}))
	defer srv.Close()
	if err := backup.PostAlert(ctx, srv.Client(), srv.URL, rep); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CommonLabels["verdict"] != backup.StatusBad || got[0].Report.Checks[len(rep.Checks)-1].Name != backup.CheckCanary {
		t.Errorf("alert %+v", got)
	}
	// The same archive with a working search verifies.
	ok := backup.Verify(ctx, dir, backup.VerifyOptions{
		OpenScratch: func(ctx context.Context) (backup.Scratch, func() error, error) {
			return openSQLite(t), func() error { return nil }, nil
		},
	})
	if ok.ExitCode() != backup.ExitOK || ok.Canaries == 0 {
		t.Errorf("exit %d, %d canaries, checks %+v", ok.ExitCode(), ok.Canaries, ok.Checks)
	}
}

func TestRetention(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	var objs []backup.Object
	for _, s := range []string{
		"2026-03-02T02:00:00Z", "2026-03-02T14:00:00Z", // Monday, twice
		"2026-03-03T02:00:00Z", "2026-03-04T02:00:00Z",
		"2026-02-20T02:00:00Z", "2026-02-10T02:00:00Z", "2026-01-01T02:00:00Z",
	} {
		objs = append(objs, backup.Object{Name: backup.ArchiveName(at(s), false), At: at(s)})
	}
	keep := backup.Retention{Daily: 2, Weekly: 3}.Keep(objs)
	want := map[string]string{
		backup.ArchiveName(at("2026-03-04T02:00:00Z"), false): "newest",
		backup.ArchiveName(at("2026-03-03T02:00:00Z"), false): "daily",
		backup.ArchiveName(at("2026-02-20T02:00:00Z"), false): "weekly",
		backup.ArchiveName(at("2026-02-10T02:00:00Z"), false): "weekly",
	}
	if len(keep) != len(want) {
		t.Errorf("kept %v, want %v", keep, want)
	}
	for n, why := range want {
		if keep[n] != why {
			t.Errorf("%s kept as %q, want %q (all: %v)", n, keep[n], why, keep)
		}
	}
}

// pruningTarget is a directory in which, the first time an archive is
// opened, a newer backup is written and retention removes the one being
// read — what serve's independent backup and verify schedules can do.
type pruningTarget struct {
	backup.Dir
	t    *testing.T
	src  backup.Source
	once sync.Once
}

func (p *pruningTarget) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	p.once.Do(func() {
		if _, err := backup.Create(ctx, p.src, p.Dir, backup.CreateOptions{Now: func() time.Time { return time.Now().Add(time.Minute) }}); err != nil {
			p.t.Fatal(err)
		}
		if err := p.Dir.Remove(ctx, name); err != nil {
			p.t.Fatal(err)
		}
	})
	return p.Dir.Open(ctx, name)
}

// TestVerifyArchivePrunedMeanwhile: verify of the newest archive, removed
// by a newer backup's retention while it is read, verifies the newer one.
func TestVerifyArchivePrunedMeanwhile(t *testing.T) {
	ctx := t.Context()
	src := openSQLite(t)
	storetest.Seed(t, src)
	target := &pruningTarget{Dir: backup.Dir{Path: t.TempDir()}, t: t, src: src}
	first, err := backup.Create(ctx, src, target.Dir, backup.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := backup.Verify(ctx, target, backup.VerifyOptions{
		OpenScratch: func(ctx context.Context) (backup.Scratch, func() error, error) {
			return openSQLite(t), func() error { return nil }, nil
		},
	})
	if rep.ExitCode() != backup.ExitOK || rep.Archive == first.Name {
		t.Fatalf("exit %d for %s (the pruned one was %s), checks %+v", rep.ExitCode(), rep.Archive, first.Name, rep.Checks)
	}
}
