package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// BackupStore is what the backup contract needs of a store: the backup
// interfaces and the write paths that fill every table.
type BackupStore interface {
	backup.Scratch
	memory.Store
	memory.GraphStore
	auth.KeyStore
	audit.Store
	RecordErasure(ctx context.Context, e gdpr.Erasure) error
	SetRetentionPolicy(ctx context.Context, p gdpr.RetentionPolicy) error
}

// CopyByBackup backs src up into a temporary directory and restores that
// archive into dst, with the default options, and returns the backup's
// result.
func CopyByBackup(t testing.TB, src backup.Source, dst backup.Loader) backup.Result {
	t.Helper()
	ctx := t.Context()
	dir := backup.Dir{Path: t.TempDir()}
	res, err := backup.Create(ctx, src, dir, backup.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dir.Open(ctx, res.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := backup.Restore(ctx, rc, dst, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return res
}

// Seed fills every table a backup copies: memories of two orgs (one updated,
// one archived, one with tags, evidence, metadata, validity and an
// idempotency key), their history, access-log rows, a link, an API key,
// audit records, an erasure ledger entry and a retention policy. It returns the ids of the memories.
func Seed(t testing.TB, st BackupStore) []string {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC)
	var ids []string
	add := func(id, org, entity, content string, edit func(*memory.Memory)) memory.Memory {
		m := memory.Memory{ID: id, OrgID: org, Content: content, Scope: memory.Scope("team"), Source: memory.Source("user"),
			AccessEntity: entity, State: memory.StateActive, CreatedBy: "alice", CreatedAt: at, UpdatedAt: at,
			Category: memory.Category("decision"), Entity: "billing-service"}
		if edit != nil {
			edit(&m)
		}
		stored, _, err := st.Create(ctx, m, "alice")
		if err != nil {
			t.Fatalf("seed %s: %v", id, err)
		}
		ids = append(ids, id)
		at = at.Add(time.Minute)
		return stored
	}
	until := at.Add(48 * time.Hour)
	add("01SEED0001", "acme", "team:acme/backend", "We chose PostgreSQL for the billing ledger because of serializable transactions.", func(m *memory.Memory) {
		m.Tags = map[string]any{"lang": "go", "priority": 2.5, "relation:depends_on": "postgres"}
		m.Evidence = []string{"ADR-7", "PR#42"}
		m.Metadata = map[string]any{"source": map[string]any{"tool": "cli", "n": 3.0}}
		m.ValidFrom, m.ValidTo = &at, &until
		m.IdempotencyKey = "idem-1"
		m.ArtifactRef, m.ArtifactType = "github.com/acme/billing", memory.ArtifactType("repo")
	})
	add("01SEED0002", "acme", "team:acme/backend", "Convention: wrap every error with the verb and noun of the failing call & keep <angle> brackets.", nil)
	add("01SEED0003", "acme", "team:acme/frontend", "The checkout page must render under 200ms on a mid-range phone.", nil)
	add("01SEED0004", "globex", "team:globex/platform", "Runbook: when the ingress alert fires, drain the node and page the on-call.", nil)
	add("01SEED0005", "globex", "team:globex/platform", "Deprecated: the old cron scheduler, replaced by the queue workers.", nil)

	a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}
	if _, err := st.Update(ctx, a, "01SEED0002", "bob", "update", func(m *memory.Memory) error {
		m.Content += " Always."
		m.ContentHash = memory.ContentHash(m.Content)
		m.UpdatedAt = at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	g := memory.Access{OrgID: "globex", Entities: []string{"team:globex/platform"}}
	if _, err := st.Update(ctx, g, "01SEED0005", "carol", "archive", func(m *memory.Memory) error {
		m.State = memory.StateArchived
		m.UpdatedAt = at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.LogAccess(ctx, []memory.AccessEntry{
		{MemoryID: "01SEED0001", OrgID: "acme", Actor: "alice", Via: "mcp", Query: "ledger", At: at},
		{MemoryID: "01SEED0004", OrgID: "globex", Actor: "dave", App: "cursor", Via: "rest", At: at.Add(time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.LinkMemories(ctx, a, memory.MemoryLink{From: "01SEED0002", To: "01SEED0001", Type: "supports", CreatedBy: "alice", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	exp := at.Add(90 * 24 * time.Hour)
	if err := st.CreateAPIKey(ctx, auth.APIKey{ID: "k1seed", OrgID: "acme", Subject: "svc:ci", Scopes: []string{"memories:read"},
		Grants: []string{"team:acme/backend"}, SecretHash: make([]byte, 32), CreatedAt: at, CreatedBy: "alice", ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	for i, act := range []string{audit.ActionMemoryDelete, audit.ActionAPIKeyCreate, audit.ActionAuthFailure} {
		if _, err := st.AppendAudit(ctx, audit.Event{At: at.Add(time.Duration(i) * time.Second), OrgID: "acme", Actor: "alice",
			Action: act, Target: fmt.Sprintf("memory:%d", i), Outcome: audit.OutcomeSuccess, Detail: map[string]any{"n": i, "why": "a<b"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RecordErasure(ctx, gdpr.Erasure{ID: "er-1", OrgID: "acme", SubjectHash: strings.Repeat("ab", 32),
		Policy: gdpr.SharedPolicy("delete"), ErasedAt: at, ReceiptHash: strings.Repeat("cd", 32), Receipt: []byte(`{"memories":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRetentionPolicy(ctx, gdpr.RetentionPolicy{OrgID: "globex", AccessLogDays: 30, PurgeDeletedDays: 90}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// RunBackup is the backup contract: a store dumps every table in the
// canonical encoding, restores an archive of itself into an empty store of
// its kind with identical checksums, refuses a store that holds data,
// rebuilds the graph, and drops filtered memories with what references
// them. open returns a new, empty, migrated store.
func RunBackup(t *testing.T, open func(t *testing.T) BackupStore) {
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		src, dst := open(t), open(t)
		Seed(t, src)
		want := checksums(t, src)
		for table, ti := range want {
			if ti.Rows == 0 {
				t.Errorf("seed left %s empty", table)
			}
		}
		dir := backup.Dir{Path: t.TempDir()}
		res, err := backup.Create(ctx, src, dir, backup.CreateOptions{AppVersion: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Manifest.Store != src.Kind() || res.Manifest.SchemaVersion != src.LatestSchemaVersion() {
			t.Errorf("manifest store %q schema %d", res.Manifest.Store, res.Manifest.SchemaVersion)
		}
		for table, ti := range want {
			if res.Manifest.Tables[table] != ti {
				t.Errorf("manifest %s = %+v, the store's checksum %+v", table, res.Manifest.Tables[table], ti)
			}
		}
		rc, err := dir.Open(ctx, res.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		rep, err := backup.Restore(ctx, rc, dst, backup.RestoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Loaded[backup.TableMemories] != 5 || rep.Loaded[backup.TableAudit] != 3 {
			t.Errorf("loaded %v", rep.Loaded)
		}
		got := checksums(t, dst)
		for table := range want {
			if got[table] != want[table] {
				t.Errorf("restored %s = %+v, want %+v", table, got[table], want[table])
			}
		}
		a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}
		for _, q := range []string{"ledger serializable", "wrap error"} {
			w, _ := src.Search(ctx, a, memory.SearchQuery{Text: q})
			g, err := dst.Search(ctx, a, memory.SearchQuery{Text: q})
			if err != nil || !slices.Equal(hitIDs(w), hitIDs(g)) || len(g) == 0 {
				t.Errorf("search %q: restored %v (%v), source %v", q, hitIDs(g), err, hitIDs(w))
			}
		}
		rel, err := dst.RelatedMemories(ctx, a, "01SEED0002", 10)
		if err != nil || len(rel) == 0 {
			t.Errorf("related memories after restore (graph rebuilt, link kept): %+v, %v", rel, err)
		}
		ents, err := dst.Entities(ctx, a, memory.EntityQuery{Names: []string{"billing-service"}})
		if err != nil || len(ents) != 1 {
			t.Errorf("entities after restore: %+v, %v", ents, err)
		}
		if k, err := dst.APIKeyByID(ctx, "k1seed"); err != nil || len(k.SecretHash) != 32 || k.ExpiresAt == nil {
			t.Errorf("api key after restore: %+v, %v", k, err)
		}
		// New writes continue the restored ids and the audit chain.
		if _, err := dst.AppendAudit(ctx, audit.Event{At: time.Now(), Actor: "ops", Action: audit.ActionBackupRestore, Outcome: audit.OutcomeSuccess}); err != nil {
			t.Fatal(err)
		}
		if r, err := audit.Verify(ctx, dst); err != nil || r.Broken != nil || r.Records != 4 {
			t.Errorf("audit chain after restore and append: %+v, %v", r, err)
		}
		if _, err := dst.Update(ctx, a, "01SEED0001", "alice", "update", func(m *memory.Memory) error { m.UpdatedAt = time.Now(); return nil }); err != nil {
			t.Errorf("update after restore: %v", err)
		}
		if err := dst.LogAccess(ctx, []memory.AccessEntry{{MemoryID: "01SEED0001", OrgID: "acme", Actor: "x", Via: "rest", At: time.Now()}}); err != nil {
			t.Errorf("log access after restore: %v", err)
		}

		// A store that holds data is refused before anything is read.
		rc2, _ := dir.Open(ctx, res.Name)
		defer rc2.Close()
		if _, err := backup.Restore(ctx, rc2, dst, backup.RestoreOptions{}); !errors.Is(err, backup.ErrNotEmpty) {
			t.Errorf("restore into a store with data: %v, want ErrNotEmpty", err)
		}
	})

	t.Run("Native", func(t *testing.T) {
		src := open(t)
		Seed(t, src)
		dir := backup.Dir{Path: t.TempDir()}
		res, err := backup.Create(ctx, src, dir, backup.CreateOptions{Native: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Notes) > 0 {
			t.Skipf("no native copy here: %v", res.Notes)
		}
		var native string
		for name := range res.Manifest.Files {
			if strings.HasPrefix(name, "native/") {
				native = name
			}
		}
		if native == "" {
			t.Fatalf("no native copy in the manifest: %v", res.Manifest.Files)
		}
		rc, _ := dir.Open(ctx, res.Name)
		defer rc.Close()
		x, err := backup.Extract(rc, nil, t.TempDir(), src.LatestSchemaVersion())
		if err != nil {
			t.Fatal(err)
		}
		defer x.Remove()
		b, err := os.ReadFile(x.Path(native))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("SQLite format 3\x00")) && !bytes.HasPrefix(b, []byte("PGDMP")) {
			t.Errorf("%s is neither an SQLite database nor a pg_dump archive: %q", native, b[:min(len(b), 16)])
		}
		if fi := res.Manifest.Files[native]; fi.Size != int64(len(b)) {
			t.Errorf("%s: %d bytes, manifest %d", native, len(b), fi.Size)
		}
		// The archive with its native copy restores and verifies as usual.
		rep := backup.Verify(ctx, dir, backup.VerifyOptions{OpenScratch: func(ctx context.Context) (backup.Scratch, func() error, error) {
			return open(t), func() error { return nil }, nil
		}})
		if rep.Status != backup.StatusOK {
			t.Errorf("verify: %+v", rep.Checks)
		}
	})

	t.Run("Tiers", func(t *testing.T) { testBackupTiers(t, open) })

	t.Run("Filter", func(t *testing.T) {
		src, dst := open(t), open(t)
		Seed(t, src)
		dir := backup.Dir{Path: t.TempDir()}
		res, err := backup.Create(ctx, src, dir, backup.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := dir.Open(ctx, res.Name)
		defer rc.Close()
		rep, err := backup.Restore(ctx, rc, dst, backup.RestoreOptions{Filter: dropMemory("01SEED0001")})
		if err != nil {
			t.Fatal(err)
		}
		// The memory, its history row, its access-log row and the link to it.
		want := map[string]int64{backup.TableMemories: 1, backup.TableHistory: 1, backup.TableAccessLog: 1, backup.TableLinks: 1}
		for table, n := range want {
			if rep.Filtered[table] != n {
				t.Errorf("filtered %s = %d, want %d (%v)", table, rep.Filtered[table], n, rep.Filtered)
			}
		}
		a := memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}}
		if _, err := dst.Get(ctx, a, "01SEED0001"); !errors.Is(err, memory.ErrNotFound) {
			t.Errorf("a filtered memory was restored: %v", err)
		}
		if hits, _ := dst.Search(ctx, a, memory.SearchQuery{Text: "ledger"}); len(hits) != 0 {
			t.Errorf("a filtered memory is searchable: %v", hitIDs(hits))
		}
	})
}

type dropMemory string

func (d dropMemory) Keep(table string, row any) bool {
	m, ok := row.(backup.Memory)
	return !ok || m.ID != string(d)
}

func checksums(t *testing.T, st backup.Source) map[string]backup.TableInfo {
	t.Helper()
	var out map[string]backup.TableInfo
	err := st.Snapshot(context.Background(), func(s backup.Snapshot) error {
		var err error
		out, err = backup.Checksums(context.Background(), s)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
