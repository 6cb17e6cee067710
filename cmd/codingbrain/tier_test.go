package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestTierRun seeds a database with memories written 200 days ago (one of
// them archived since), one of them read since, and one written now, and
// checks that `tier run` moves exactly the archived and the untouched ones
// to the cold tier, that `tier status` counts them, and that a second run
// has nothing to do.
func TestTierRun(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := now.Add(-200 * 24 * time.Hour)
	svc := memory.NewService(s, memory.Options{Now: func() time.Time { return clock }})
	ctx := auth.WithPrincipal(t.Context(), auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"org:acme"}})
	var ids []string
	for i := range 4 {
		m, _, err := svc.Add(ctx, memory.Input{Content: fmt.Sprintf("tiering memory %d about queues", i), Scope: "org"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	clock = now.Add(-time.Hour)
	if _, err := svc.Transition(ctx, ids[0], memory.ActionArchive); err != nil { // archived: cold whatever its age
		t.Fatal(err)
	}
	if err := s.LogAccess(t.Context(), []memory.AccessEntry{{MemoryID: ids[1], OrgID: "acme", Actor: "bob", Via: "mcp", At: clock}}); err != nil {
		t.Fatal(err) // read an hour ago: touched, stays hot
	}
	if _, _, err := svc.Add(ctx, memory.Input{Content: "a fresh memory about queues", Scope: "org"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	out, _, err := runCmd(t, t.Context(), nil, "tier", "run", "--data-dir", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep memory.TierReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("tier run --json: %v\n%s", err, out)
	}
	if rep != (memory.TierReport{MovedCold: 3, Hot: 2, Cold: 3}) {
		t.Errorf("tier run = %+v; want 3 moved (archived, two untouched), 2 hot (read, fresh), 3 cold", rep)
	}
	out, _, err = runCmd(t, t.Context(), nil, "tier", "run", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "moved 0 memories") || !strings.Contains(out, "hot: 2\ncold: 3") {
		t.Errorf("second tier run: %v\n%s", err, out)
	}
	// status only counts, whatever tier_after_days says.
	out, _, err = runCmd(t, t.Context(), nil, "tier", "status", "--data-dir", dir, "--tier-after-days", "1")
	if err != nil || !strings.Contains(out, "hot: 2\ncold: 3") {
		t.Errorf("tier status: %v\n%s", err, out)
	}

	s, err = sqlite.Open(t.Context(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, id := range ids {
		m, err := s.Get(t.Context(), memory.AccessFor(auth.Principal{OrgID: "acme", Grants: []string{"org:acme"}}), id)
		if want := i != 1; err != nil || m.Cold != want {
			t.Errorf("memory %d: cold %v (%v), want %v", i, m.Cold, err, want)
		}
	}
}

func TestTierErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd(t, t.Context(), nil, "tier", "run", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("without a database: %v", err)
	}
	if _, _, err := runCmd(t, t.Context(), nil, "tier", "run", "--data-dir", dir, "--tier-after-days", "0"); err == nil ||
		!strings.Contains(err.Error(), "tier_after_days") {
		t.Errorf("tier_after_days 0: %v", err)
	}
	if _, _, err := runCmd(t, t.Context(), nil, "tier"); err == nil {
		t.Error("tier without a command succeeded")
	}
	if out, _, err := runCmd(t, t.Context(), nil, "tier", "-h"); err != nil || !strings.Contains(out, "cold tier") {
		t.Errorf("tier -h: %v\n%s", err, out)
	}
}
