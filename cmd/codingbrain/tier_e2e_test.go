package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestServeScheduledTiering runs serve with --tier-schedule on a data
// directory holding a memory written 200 days ago and a fresh one: the
// job moves the old one to the cold tier (logged, counted in the metrics),
// a REST search finds it only with include_cold, marked cold, and reading
// it by id brings it back (counted as a move to hot), after which the
// default search finds it.
func TestServeScheduledTiering(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	s, err := sqlite.Open(t.Context(), filepath.Join(dataDir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now().Add(-200 * 24 * time.Hour)
	svc := memory.NewService(s, memory.Options{Now: func() time.Time { return clock }})
	ctx := auth.WithPrincipal(t.Context(), auth.Principal{Subject: "admin", OrgID: "local", Scopes: auth.AllScopes, Grants: []string{"org:local"}})
	old, _, err := svc.Add(ctx, memory.Input{Content: "The nightly reconciliation compares ledgers at 02:00.", Scope: "org"})
	if err != nil {
		t.Fatal(err)
	}
	clock = time.Now()
	if _, _, err := svc.Add(ctx, memory.Input{Content: "Reconciliation alerts page the payments on-call.", Scope: "org"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	maddr := freeAddr(t)
	srv := startServer(t, bin, dataDir, "--tier-schedule", "@every 1s", "--metrics-addr", maddr)
	deadline := time.After(e2eTimeout)
	for !strings.Contains(srv.out.String(), "tiering done") {
		select {
		case <-deadline:
			t.Fatalf("no tiering run after %s:\n%s", e2eTimeout, srv.out.String())
		case <-srv.exited:
			t.Fatalf("server exited: %v\n%s", srv.err, srv.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	metric := func(name string) string {
		_, body := get(t, "http://"+maddr+"/metrics", "")
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return m[1]
	}
	if got := metric(`codingbrain_tier_moves_total{direction="cold"}`); got != "1" {
		t.Errorf("moves to cold = %q, want 1", got)
	}
	if h, c := metric(`codingbrain_tier_memories{tier="hot"}`), metric(`codingbrain_tier_memories{tier="cold"}`); h != "1" || c != "1" {
		t.Errorf("tier gauges: hot %q, cold %q; want 1 and 1", h, c)
	}

	c := client.New(srv.url, srv.admin)
	res, err := c.Search(t.Context(), client.SearchRequest{Query: "reconciliation ledgers"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Hits {
		if h.Memory.ID == old.ID {
			t.Errorf("the default search found the cold memory")
		}
	}
	res, err = c.Search(t.Context(), client.SearchRequest{Query: "reconciliation ledgers", IncludeCold: true})
	if err != nil || !foundAs(res.Hits, old.ID, true) {
		t.Fatalf("include_cold search: %+v, %v; want the old memory, marked cold", res.Hits, err)
	}
	if m, err := c.Get(t.Context(), old.ID); err != nil || m.Cold {
		t.Fatalf("get the cold memory: cold %v, %v", m.Cold, err)
	}
	if got := metric(`codingbrain_tier_moves_total{direction="hot"}`); got != "1" {
		t.Errorf("moves to hot = %q, want 1", got)
	}
	// The indexes take it back at once on this replica (and through the
	// change feed on others); the vector may follow a moment later.
	res, err = c.Search(t.Context(), client.SearchRequest{Query: "reconciliation ledgers", Mode: memory.ModeLexical})
	if err != nil || !foundAs(res.Hits, old.ID, false) {
		t.Errorf("lexical search after the read: %+v, %v; want the memory back, hot", res.Hits, err)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("serve exited with %v", err)
	}
}

// foundAs reports whether hits hold the memory id, with Cold as given.
func foundAs(hits []memory.Hit, id string, cold bool) bool {
	for _, h := range hits {
		if h.Memory.ID == id {
			return h.Memory.Cold == cold
		}
	}
	return false
}
