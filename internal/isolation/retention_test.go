package isolation

import (
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestRetentionPurge: the retention purge applies each org's policy to
// that org only. acme keeps access-log rows, untouched memories and deleted
// memories for a day, globex for ever; years later the purge archives
// acme's live memories, removes its deleted ones and its access log, and
// leaves every memory, access-log row and history entry of globex as it
// was. On SQLite and PostgreSQL.
func TestRetentionPurge(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); retentionPurge(t, newWorld(t)) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); retentionPurge(t, newWorldOn(t, openPostgres(t))) })
}

func retentionPurge(t *testing.T, w *world) {
	w.subjectState(t) // reads and searches in both orgs
	globexCounts := func() map[string]map[string]int {
		out := map[string]map[string]int{}
		for _, sub := range subjects {
			out[sub] = w.exportCounts(t, w.principal("ada@globex"), sub)
		}
		return out
	}
	before := globexCounts()
	if before["ada"][gdpr.SourceAccessLog] == 0 {
		t.Fatalf("globex's ada has no access-log rows to keep: %v", before["ada"])
	}
	ada := w.principal("ada@acme")
	r := w.do(t, "PUT", "/api/v1/admin/retention", ada.token, map[string]any{"access_log_days": 1, "archive_untouched_days": 1, "purge_deleted_days": 1})
	if r.status != http.StatusOK {
		t.Fatalf("ada@acme: set retention: %d %s", r.status, r.body)
	}
	purger, err := gdpr.NewPurger(w.store.(gdpr.RetentionStore), w.store, gdpr.PurgerOptions{
		Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	n, err := purger.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("retention purge: %v", err)
	}
	for _, e := range w.entries {
		if e.m.OrgID == "globex" {
			w.unchanged(t, e, "acme's retention purge")
		}
	}
	if after := globexCounts(); !maps.EqualFunc(before, after, maps.Equal) {
		for sub := range before {
			if !maps.Equal(before[sub], after[sub]) {
				t.Errorf("acme's retention purge changed what globex holds of %s: %v → %v", sub, before[sub], after[sub])
			}
		}
	}
	// And it did purge acme: the boundary is not an idle purge.
	acme := memory.Access{OrgID: "acme", Prefixes: []string{"user:", "team:", "project:", "org:"}}
	for _, e := range w.entries {
		if e.m.OrgID != "acme" {
			continue
		}
		m, err := w.store.Get(t.Context(), acme, e.m.ID)
		switch {
		case e.m.State == memory.StateDeleted && err == nil:
			t.Errorf("acme's deleted memory %s outlived a one-day policy", e.m.ID)
		case e.m.State != memory.StateDeleted && (err != nil || m.State != memory.StateArchived):
			t.Errorf("acme's memory %s after a one-day policy: %s %v, want archived", e.m.ID, m.State, err)
		}
	}
	if n[gdpr.PurgeAccessLog] == 0 || n[gdpr.PurgeDeletedMemories] == 0 || n[gdpr.PurgeArchived] == 0 {
		t.Errorf("acme's retention purge did %v, want access-log rows, deleted and untouched memories", n)
	}
}
