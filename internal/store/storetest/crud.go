package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

func testCRUD(t *testing.T, e *env) {
	cest := time.FixedZone("CEST", 2*60*60)
	validFrom := time.Date(2025, 6, 1, 14, 0, 0, 123456000, cest)
	validTo := validFrom.Add(90 * 24 * time.Hour)
	in := memory.Input{
		Content:      "  Use pgx v5 for PostgreSQL access;\n database/sql only in tests.  ",
		Category:     "decision",
		Scope:        "team",
		ArtifactType: "service",
		ArtifactRef:  "github.com/acme/billing",
		Entity:       "billing-service",
		Source:       "inference",
		Evidence:     []string{"ADR-0012", "PR#481"},
		Tags:         map[string]any{"lang": "go", "priority": 2.0, "reviewed": true},
		Metadata:     map[string]any{"agent": "claude-code", "files": []any{"db.go", "pool.go"}, "review": map[string]any{"by": "dave"}},
		AccessEntity: "team:acme/backend",
		App:          "claude-code",
		ValidFrom:    &validFrom,
		ValidTo:      &validTo,
	}
	now := e.clock.Advance(time.Millisecond)
	m, created, err := e.svc.Add(e.as(alice), in)
	if err != nil || !created {
		t.Fatalf("add: created=%v err=%v", created, err)
	}
	want := memory.Memory{
		ID: m.ID, OrgID: "acme", Content: "Use pgx v5 for PostgreSQL access;\n database/sql only in tests.",
		Category: "decision", Scope: "team", ArtifactType: "service", ArtifactRef: "github.com/acme/billing",
		Entity: "billing-service", Source: "inference", Evidence: []string{"ADR-0012", "PR#481"},
		Tags: in.Tags, Metadata: in.Metadata, AccessEntity: "team:acme/backend", App: "claude-code",
		State: memory.StateActive, CreatedBy: "alice", CreatedAt: now, UpdatedAt: now,
		ValidFrom: &validFrom, ValidTo: &validTo,
	}
	if m.ID == "" {
		t.Fatal("add returned an empty id")
	}
	wantSameMemory(t, "memory returned by add", want, m)
	wantSameMemory(t, "memory read by its author", want, e.get(alice, m.ID))
	wantSameMemory(t, "memory read by a teammate", want, e.get(dave, m.ID))
	wantSameMemory(t, "memory read through an org grant", want, e.get(carol, m.ID))

	// Update changes the patched fields, stamps updated_at, keeps the rest.
	later := e.clock.Advance(time.Hour)
	newTo := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	u, err := e.svc.Update(e.as(dave), m.ID, memory.Patch{
		Content:  ptr("Use pgx v5 everywhere, also in tests."),
		Tags:     &map[string]any{"lang": "go", "superseded": "ADR-0031"},
		Evidence: &[]string{"ADR-0031"},
		Entity:   ptr("billing"),
		ValidTo:  &newTo,
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	want.Content = "Use pgx v5 everywhere, also in tests."
	want.Tags = map[string]any{"lang": "go", "superseded": "ADR-0031"}
	want.Evidence = []string{"ADR-0031"}
	want.Entity = "billing"
	want.ValidTo = &newTo
	want.UpdatedAt = later
	wantSameMemory(t, "memory returned by update", want, u)
	wantSameMemory(t, "memory read after update", want, e.get(alice, m.ID))

	// Clearing collections.
	u, err = e.svc.Update(e.as(alice), m.ID, memory.Patch{Tags: &map[string]any{}, Evidence: &[]string{}, Metadata: &map[string]any{}})
	if err != nil {
		t.Fatalf("update clearing collections: %v", err)
	}
	got := e.get(alice, m.ID)
	if len(got.Tags) != 0 || len(got.Evidence) != 0 || len(got.Metadata) != 0 || len(u.Tags) != 0 {
		t.Errorf("after clearing: tags %v evidence %v metadata %v, want all empty", got.Tags, got.Evidence, got.Metadata)
	}

	// A memory with only the required fields reads back with empty optionals.
	minimal := e.add(bob, memory.Input{Content: "minimal"})
	gotMin := e.get(bob, minimal.ID)
	if gotMin.Scope != "user" || gotMin.AccessEntity != "user:bob" || gotMin.Source != "user" ||
		gotMin.ValidFrom != nil || gotMin.ValidTo != nil || gotMin.Category != "" || len(gotMin.Tags) != 0 {
		t.Errorf("minimal memory read back as %+v", gotMin)
	}

	if _, err := e.svc.Get(e.as(alice), "01NOSUCHMEMORY0000000000000", memory.ViaREST); err == nil {
		t.Error("get of an unknown id: no error")
	} else {
		wantErr(t, "get of an unknown id", err, memory.ErrNotFound)
	}
	if _, err := e.svc.Update(e.as(alice), "01NOSUCHMEMORY0000000000000", memory.Patch{Content: ptr("x")}); err == nil {
		t.Error("update of an unknown id: no error")
	} else {
		wantErr(t, "update of an unknown id", err, memory.ErrNotFound)
	}
}

func testValidation(t *testing.T, e *env) {
	ctx := e.as(alice)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(-time.Hour)
	cases := []struct {
		field string
		in    memory.Input
	}{
		{"content", memory.Input{Content: "  \n\t "}},
		{"content", memory.Input{Content: strings.Repeat("x", memory.MaxContentBytes+1)}},
		{"category", memory.Input{Content: "c", Category: "opinion"}},
		{"scope", memory.Input{Content: "c", Scope: "galaxy"}},
		{"artifact_type", memory.Input{Content: "c", ArtifactType: "spaceship"}},
		{"source", memory.Input{Content: "c", Source: "rumour"}},
		{"evidence[1]", memory.Input{Content: "c", Evidence: []string{"ADR-1", " "}}},
		{"tags", memory.Input{Content: "c", Tags: map[string]any{"bad key!": "x"}}},
		{"tags.obj", memory.Input{Content: "c", Tags: map[string]any{"obj": map[string]any{"a": 1.0}}}},
		{"access_entity", memory.Input{Content: "c", AccessEntity: "nobody"}},
		{"access_entity", memory.Input{Content: "c", Scope: "team", AccessEntity: "user:alice"}},
		{"valid_to", memory.Input{Content: "c", ValidFrom: &from, ValidTo: &to}},
		{"idempotency_key", memory.Input{Content: "c", IdempotencyKey: strings.Repeat("k", 129)}},
		{"entity", memory.Input{Content: "c", Entity: strings.Repeat("e", memory.MaxRefLen+1)}},
	}
	for _, c := range cases {
		_, _, err := e.svc.Add(ctx, c.in)
		wantField(t, fmt.Sprintf("add with bad %s", c.field), err, c.field)
	}
	if got := e.listAll(carol, memory.ListQuery{Filter: memory.Filter{States: memory.States}}); len(got) != 0 {
		t.Errorf("invalid adds stored %d memories", len(got))
	}

	_, err := e.svc.List(ctx, memory.ListQuery{Sort: "size"}, memory.ViaREST)
	wantField(t, "list with bad sort", err, "sort")
	_, err = e.svc.List(ctx, memory.ListQuery{Limit: memory.MaxListLimit + 1}, memory.ViaREST)
	wantField(t, "list with limit too large", err, "limit")
	_, err = e.svc.List(ctx, memory.ListQuery{Cursor: "not-a-cursor"}, memory.ViaREST)
	wantField(t, "list with bad cursor", err, "cursor")
	_, err = e.svc.List(ctx, memory.ListQuery{Filter: memory.Filter{States: []memory.State{"lost"}}}, memory.ViaREST)
	var ve *memory.ValidationError
	if !errors.As(err, &ve) || !strings.HasSuffix(ve.Field, "state") {
		t.Errorf("list with bad state filter: got %v, want a validation error on the state filter", err)
	}
	_, err = e.svc.Search(ctx, memory.SearchQuery{Text: "x", Filter: memory.Filter{Categories: []memory.Category{"opinion"}}}, memory.ViaREST)
	if !errors.As(err, &ve) || !strings.HasSuffix(ve.Field, "category") {
		t.Errorf("search with bad category filter: got %v, want a validation error on the category filter", err)
	}
	_, err = e.svc.Search(ctx, memory.SearchQuery{Text: "   "}, memory.ViaREST)
	wantField(t, "search with blank query", err, "query")
	_, err = e.svc.Search(ctx, memory.SearchQuery{Text: "x", Limit: memory.MaxSearchLimit + 1}, memory.ViaREST)
	wantField(t, "search with limit too large", err, "limit")

	// A rejected update writes nothing: not the row, not a history row.
	m := e.add(alice, memory.Input{Content: "original content"})
	_, err = e.svc.Update(ctx, m.ID, memory.Patch{Content: ptr("changed"), Category: ptr(memory.Category("opinion"))})
	wantField(t, "update with bad category", err, "category")
	if got := e.get(alice, m.ID); got.Content != "original content" || got.Category != "" {
		t.Errorf("rejected update changed the memory: %+v", got)
	}
	if hs := e.history(alice, m.ID); len(hs) != 1 {
		t.Errorf("rejected update left %d history rows, want 1", len(hs))
	}
	// Moving a memory to an entity the caller has no grant for is forbidden.
	_, err = e.svc.Update(ctx, m.ID, memory.Patch{Scope: ptr(memory.Scope("team")), AccessEntity: ptr("team:acme/frontend")})
	wantErr(t, "update into an ungranted access entity", err, memory.ErrForbidden)
	if got := e.get(alice, m.ID); got.AccessEntity != "user:alice" {
		t.Errorf("forbidden update moved the memory to %s", got.AccessEntity)
	}
}

func testStateTransitions(t *testing.T, e *env) {
	ctx := e.as(alice)
	// setup brings a new memory into a state.
	setup := map[memory.State]func(id string) error{
		memory.StateActive: func(string) error { return nil },
		memory.StatePaused: func(id string) error {
			_, err := e.svc.Transition(ctx, id, memory.ActionPause)
			return err
		},
		memory.StateArchived: func(id string) error {
			_, err := e.svc.Transition(ctx, id, memory.ActionArchive)
			return err
		},
		memory.StateDeleted: func(id string) error {
			_, err := e.svc.Delete(ctx, id)
			return err
		},
	}
	cases := []struct {
		from   memory.State
		action memory.Action
		to     memory.State // "" for an illegal transition
		err    error
	}{
		{memory.StateActive, memory.ActionPause, memory.StatePaused, nil},
		{memory.StateActive, memory.ActionArchive, memory.StateArchived, nil},
		{memory.StateActive, memory.ActionRestore, "", memory.ErrConflict},
		{memory.StatePaused, memory.ActionPause, "", memory.ErrConflict},
		{memory.StatePaused, memory.ActionArchive, memory.StateArchived, nil},
		{memory.StatePaused, memory.ActionRestore, memory.StateActive, nil},
		{memory.StateArchived, memory.ActionPause, "", memory.ErrConflict},
		{memory.StateArchived, memory.ActionArchive, "", memory.ErrConflict},
		{memory.StateArchived, memory.ActionRestore, memory.StateActive, nil},
		{memory.StateDeleted, memory.ActionPause, "", memory.ErrNotFound},
		{memory.StateDeleted, memory.ActionRestore, "", memory.ErrNotFound},
	}
	for i, c := range cases {
		what := fmt.Sprintf("%s from %s", c.action, c.from)
		m := e.add(alice, memory.Input{Content: fmt.Sprintf("transition case %d", i)})
		if err := setup[c.from](m.ID); err != nil {
			t.Fatalf("%s: setup: %v", what, err)
		}
		before := len(e.history(alice, m.ID))
		e.clock.Advance(time.Second)
		got, err := e.svc.Transition(ctx, m.ID, c.action)
		if c.err != nil {
			wantErr(t, what, err, c.err)
			if n := len(e.history(alice, m.ID)); n != before {
				t.Errorf("%s: failed transition wrote history (%d rows, was %d)", what, n, before)
			}
			if c.from != memory.StateDeleted {
				if cur := e.get(alice, m.ID); cur.State != c.from {
					t.Errorf("%s: failed transition left state %s", what, cur.State)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if got.State != c.to || !got.UpdatedAt.Equal(e.clock.Now()) {
			t.Errorf("%s: got state %s updated %v, want %s at %v", what, got.State, got.UpdatedAt, c.to, e.clock.Now())
		}
		if cur := e.get(alice, m.ID); cur.State != c.to {
			t.Errorf("%s: stored state %s, want %s", what, cur.State, c.to)
		}
		hs := e.history(alice, m.ID)
		if last := hs[len(hs)-1]; last.Action != string(c.action) || last.Before == nil || last.After == nil ||
			last.Before.State != c.from || last.After.State != c.to {
			t.Errorf("%s: last history row %+v", what, last)
		}
	}

	_, err := e.svc.Transition(ctx, "01NOSUCHMEMORY0000000000000", memory.ActionPause)
	wantErr(t, "pause an unknown memory", err, memory.ErrNotFound)
	_, err = e.svc.Transition(ctx, "x", "explode")
	wantField(t, "unknown action", err, "action")

	// An archived memory cannot be edited until it is restored.
	m := e.add(alice, memory.Input{Content: "archived then edited"})
	if _, err := e.svc.Transition(ctx, m.ID, memory.ActionArchive); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Update(ctx, m.ID, memory.Patch{Content: ptr("edited")})
	wantErr(t, "update of an archived memory", err, memory.ErrConflict)
	if _, err := e.svc.Transition(ctx, m.ID, memory.ActionRestore); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Update(ctx, m.ID, memory.Patch{Content: ptr("edited")}); err != nil {
		t.Errorf("update after restore: %v", err)
	}
}

func testSoftDelete(t *testing.T, e *env) {
	ctx := e.as(alice)
	m := e.add(alice, memory.Input{Content: "the staging database is reset nightly", Category: "runbook"})
	keep := e.add(alice, memory.Input{Content: "the staging cluster runs in eu-west-1", Category: "runbook"})
	deletedAt := e.clock.Advance(time.Minute)
	d, err := e.svc.Delete(ctx, m.ID)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if d.State != memory.StateDeleted || !d.UpdatedAt.Equal(deletedAt) {
		t.Errorf("delete returned state %s updated %v", d.State, d.UpdatedAt)
	}
	_, err = e.svc.Get(ctx, m.ID, memory.ViaREST)
	wantErr(t, "get after delete", err, memory.ErrNotFound)
	_, err = e.svc.Delete(ctx, m.ID)
	wantErr(t, "second delete", err, memory.ErrNotFound)
	_, err = e.svc.Update(ctx, m.ID, memory.Patch{Content: ptr("resurrected")})
	wantErr(t, "update after delete", err, memory.ErrNotFound)

	hs := e.history(alice, m.ID)
	if len(hs) != 2 || hs[0].Action != "create" || hs[1].Action != "delete" || hs[1].Actor != "alice" ||
		hs[1].After == nil || hs[1].After.State != memory.StateDeleted || !hs[1].At.Equal(deletedAt) {
		t.Errorf("history after delete: %+v", hs)
	}

	if got := ids(e.listAll(alice, memory.ListQuery{})); !sameSet(got, []string{keep.ID}) {
		t.Errorf("list after delete: %v, want only %s", got, keep.ID)
	}
	got := e.listAll(alice, memory.ListQuery{Filter: memory.Filter{States: []memory.State{memory.StateDeleted}}})
	if len(got) != 1 || got[0].ID != m.ID || got[0].State != memory.StateDeleted {
		t.Errorf("list of deleted: %v, want %s", ids(got), m.ID)
	}
	res, err := e.svc.Search(ctx, memory.SearchQuery{Text: "staging"}, memory.ViaREST)
	hits := res.Hits
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(hitIDs(hits), []string{keep.ID}) {
		t.Errorf("search after delete: %v, want only %s", hitIDs(hits), keep.ID)
	}
	// Other readers do not see the deleted memory either.
	_, err = e.svc.Get(e.as(bob), m.ID, memory.ViaREST)
	wantErr(t, "get of another's deleted memory", err, memory.ErrNotFound)
}

func testHistory(t *testing.T, e *env) {
	created := e.clock.Advance(time.Millisecond)
	m := e.addNow(alice, memory.Input{Content: "payments retries use exponential backoff", Scope: "team"})
	updated := e.clock.Advance(time.Minute)
	if _, err := e.svc.Update(e.as(dave), m.ID, memory.Patch{Content: ptr("payments retries use capped exponential backoff")}); err != nil {
		t.Fatal(err)
	}
	paused := e.clock.Advance(time.Minute)
	if _, err := e.svc.Transition(e.as(carol), m.ID, memory.ActionPause); err != nil {
		t.Fatal(err)
	}

	hs := e.history(carol, m.ID)
	if len(hs) != 3 {
		t.Fatalf("history has %d rows, want 3: %+v", len(hs), hs)
	}
	want := []struct {
		actor, action         string
		at                    time.Time
		beforeNil             bool
		beforeContent, after  string
		beforeState, afterSta memory.State
	}{
		{"alice", "create", created, true, "", "payments retries use exponential backoff", "", memory.StateActive},
		{"dave", "update", updated, false, "payments retries use exponential backoff", "payments retries use capped exponential backoff", memory.StateActive, memory.StateActive},
		{"carol", "pause", paused, false, "payments retries use capped exponential backoff", "payments retries use capped exponential backoff", memory.StateActive, memory.StatePaused},
	}
	for i, w := range want {
		h := hs[i]
		if h.MemoryID != m.ID || h.OrgID != "acme" || h.Actor != w.actor || h.Action != w.action || !h.At.Equal(w.at) {
			t.Errorf("history[%d] = %s %s by %s at %v, want %s by %s at %v", i, h.MemoryID, h.Action, h.Actor, h.At, w.action, w.actor, w.at)
		}
		if i > 0 && h.ID <= hs[i-1].ID {
			t.Errorf("history ids not increasing: %d after %d", h.ID, hs[i-1].ID)
		}
		if (h.Before == nil) != w.beforeNil {
			t.Errorf("history[%d].Before = %v, want nil=%v", i, h.Before, w.beforeNil)
		}
		if h.Before != nil && (h.Before.Content != w.beforeContent || h.Before.State != w.beforeState) {
			t.Errorf("history[%d].Before = %q %s, want %q %s", i, h.Before.Content, h.Before.State, w.beforeContent, w.beforeState)
		}
		if h.After == nil || h.After.Content != w.after || h.After.State != w.afterSta || h.After.ID != m.ID {
			t.Errorf("history[%d].After = %+v, want %q %s", i, h.After, w.after, w.afterSta)
		}
	}
	_, err := e.svc.History(e.as(bob), m.ID)
	wantErr(t, "history as a caller without access", err, memory.ErrNotFound)
	_, err = e.svc.History(e.as(eve), m.ID)
	wantErr(t, "history from another org", err, memory.ErrNotFound)
	_, err = e.svc.History(e.as(alice), "01NOSUCHMEMORY0000000000000")
	wantErr(t, "history of an unknown memory", err, memory.ErrNotFound)
}

func testDedup(t *testing.T, e *env) {
	ctx := e.as(alice)
	first := e.add(alice, memory.Input{Content: "Run  go test -race before merging", Category: "workflow"})
	e.clock.Advance(time.Millisecond)
	again, created, err := e.svc.Add(ctx, memory.Input{Content: "  run go TEST\t-race\nbefore merging "})
	if err != nil || created || again.ID != first.ID || again.Content != first.Content {
		t.Errorf("duplicate add: created=%v id=%s content=%q err=%v, want existing %s", created, again.ID, again.Content, err, first.ID)
	}
	// The same content in another access entity is another memory.
	team := e.add(alice, memory.Input{Content: "Run go test -race before merging", Scope: "team"})
	if team.ID == first.ID {
		t.Error("same content in another access entity returned the existing memory")
	}
	// Another user's identical private memory is separate, and bob learns
	// nothing about alice's.
	bobs := e.add(bob, memory.Input{Content: "Run go test -race before merging"})
	if bobs.ID == first.ID || bobs.CreatedBy != "bob" {
		t.Errorf("bob's add returned %+v", bobs)
	}
	if got := e.listAll(alice, memory.ListQuery{}); len(got) != 2 {
		t.Errorf("alice sees %d memories, want 2", len(got))
	}
	// A paused memory still blocks a duplicate.
	if _, err := e.svc.Transition(ctx, first.ID, memory.ActionPause); err != nil {
		t.Fatal(err)
	}
	if again, created, err := e.svc.Add(ctx, memory.Input{Content: "run go test -race before merging"}); err != nil || created || again.ID != first.ID {
		t.Errorf("duplicate of a paused memory: created=%v id=%s err=%v", created, again.ID, err)
	}
	// After deletion the content can be added again, as a new memory.
	if _, err := e.svc.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	readded := e.add(alice, memory.Input{Content: "Run go test -race before merging"})
	if readded.ID == first.ID {
		t.Error("content of a deleted memory was not added again")
	}
	// Editing a memory into a duplicate of a live one is a conflict.
	other := e.add(alice, memory.Input{Content: "squash commits when merging"})
	_, err = e.svc.Update(ctx, other.ID, memory.Patch{Content: ptr("RUN go test -race before merging")})
	wantErr(t, "update into a duplicate", err, memory.ErrConflict)
	if got := e.get(alice, other.ID); got.Content != "squash commits when merging" {
		t.Errorf("conflicting update changed content to %q", got.Content)
	}

	// Concurrent identical adds store one memory.
	results := make(chan memory.Memory, 8)
	errs := make(chan error, 8)
	created1 := make(chan bool, 8)
	for range 8 {
		go func() {
			m, c, err := e.svc.Add(e.as(dave), memory.Input{Content: "deploys freeze on fridays", Scope: "team"})
			results <- m
			errs <- err
			created1 <- c
		}()
	}
	seen, nCreated := map[string]bool{}, 0
	for range 8 {
		m, err, c := <-results, <-errs, <-created1
		if err != nil {
			t.Errorf("concurrent duplicate add: %v", err)
			continue
		}
		seen[m.ID] = true
		if c {
			nCreated++
		}
	}
	if len(seen) != 1 || nCreated != 1 {
		t.Errorf("8 concurrent identical adds gave %d ids and %d creations, want 1 and 1", len(seen), nCreated)
	}
}

func testIdempotency(t *testing.T, e *env) {
	in := memory.Input{Content: "the api gateway terminates TLS", IdempotencyKey: "req-7f3a"}
	first, created, err := e.svc.Add(e.as(alice), in)
	if err != nil || !created {
		t.Fatalf("first add: created=%v err=%v", created, err)
	}
	e.clock.Advance(time.Second)
	again, created, err := e.svc.Add(e.as(alice), in)
	if err != nil || created || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("retried add: created=%v id=%s err=%v, want %s", created, again.ID, err, first.ID)
	}
	_, _, err = e.svc.Add(e.as(alice), memory.Input{Content: "the gateway does not terminate TLS", IdempotencyKey: "req-7f3a"})
	wantErr(t, "same key, different content", err, memory.ErrConflict)
	// A key is no way into another user's memory.
	_, _, err = e.svc.Add(e.as(bob), in)
	wantErr(t, "another user's key with the same content", err, memory.ErrConflict)
	// Keys are per org.
	other, created, err := e.svc.Add(e.as(eve), in)
	if err != nil || !created || other.ID == first.ID {
		t.Errorf("same key in another org: created=%v id=%s err=%v", created, other.ID, err)
	}
	if got := e.listAll(alice, memory.ListQuery{}); len(got) != 1 {
		t.Errorf("alice has %d memories after retries, want 1", len(got))
	}
	if hs := e.history(alice, first.ID); len(hs) != 1 {
		t.Errorf("retries wrote %d history rows, want 1", len(hs))
	}
}
