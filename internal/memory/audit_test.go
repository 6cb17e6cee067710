package memory_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// events collects what the service records.
type events struct {
	mu  sync.Mutex
	got []audit.Event
}

func (e *events) Record(ctx context.Context, ev audit.Event) {
	if p, ok := auth.PrincipalFrom(ctx); ok && ev.Actor == "" {
		ev.Actor, ev.OrgID = p.Subject, p.OrgID
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

func TestServiceAudit(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &events{}
	svc := memory.NewService(st, memory.Options{Audit: rec})
	ann := auth.WithPrincipal(t.Context(), auth.Principal{Subject: "ann", OrgID: "acme", Grants: []string{"team:acme/web"}})

	m, _, err := svc.Add(ann, memory.Input{Content: "web deploys on Fridays are frozen", Scope: "team"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 0 {
		t.Fatalf("an add was audited: %+v", rec.got)
	}
	// Writes outside the grants are refused and audited.
	_, _, err = svc.Add(ann, memory.Input{Content: "x", Scope: "team", AccessEntity: "team:acme/ops"})
	if !errors.Is(err, memory.ErrForbidden) {
		t.Fatalf("add outside grants: %v", err)
	}
	_, _, err = svc.Add(ann, memory.Input{Content: "x", Scope: "org"})
	if !errors.Is(err, memory.ErrForbidden) {
		t.Fatalf("add at org scope without an org grant: %v", err)
	}
	ops := "team:acme/ops"
	if _, err := svc.Update(ann, m.ID, memory.Patch{AccessEntity: &ops}); !errors.Is(err, memory.ErrForbidden) {
		t.Fatalf("move outside grants: %v", err)
	}
	// A delete is audited once it has happened; a failed one is not.
	if _, err := svc.Delete(ann, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Delete(ann, m.ID); !errors.Is(err, memory.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	want := []audit.Event{
		{Action: audit.ActionAccessForbidden, Target: "access_entity:team:acme/ops"},
		{Action: audit.ActionAccessForbidden, Target: "scope:org"},
		{Action: audit.ActionAccessForbidden, Target: "memory:" + m.ID},
		{Action: audit.ActionMemoryDelete, Target: "memory:" + m.ID},
	}
	if len(rec.got) != len(want) {
		t.Fatalf("recorded %+v, want %d events", rec.got, len(want))
	}
	for i, w := range want {
		g := rec.got[i]
		if g.Action != w.Action || g.Target != w.Target || g.Actor != "ann" || g.OrgID != "acme" {
			t.Errorf("event %d: %+v, want %s on %s by ann of acme", i, g, w.Action, w.Target)
		}
		if w.Action == audit.ActionAccessForbidden && (g.Outcome != audit.OutcomeDenied || g.Detail["reason"] != "grants") {
			t.Errorf("event %d: outcome %q, detail %v", i, g.Outcome, g.Detail)
		}
	}
	if d := rec.got[3].Detail; d["access_entity"] != "team:acme/web" {
		t.Errorf("delete detail %v", d)
	}
}
