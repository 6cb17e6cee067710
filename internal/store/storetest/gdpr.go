package storetest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// gdprWorld is a store seeded with a subject (alice of acme) and everyone
// else: alice's private and team memories, dave's memories that name her,
// her reads, her API key and the key she made, her link, the entity named
// after her, and an alice of another org (globex) who is another subject.
type gdprWorld struct {
	e                      *env
	gs                     gdpr.Store
	private, team, naming  memory.Memory
	daves                  []memory.Memory
	globexAlice            memory.Memory
	aliceKey, aliceMadeKey auth.APIKey
	shared                 *kv.Memory
	aliceAcme, aliceGlobex gdpr.Subject
	everyoneElseBefore     []string
}

func newGDPRWorld(t *testing.T, e *env) *gdprWorld {
	gs, ok := e.store.(gdpr.Store)
	if !ok {
		t.Skip("the store does not implement gdpr.Store")
	}
	w := &gdprWorld{e: e, gs: gs, shared: kv.NewMemory(nil),
		aliceAcme: gdpr.Subject{OrgID: "acme", ID: "alice"}, aliceGlobex: gdpr.Subject{OrgID: "globex", ID: "alice"}}
	w.private = e.add(alice, memory.Input{Content: "my own note about the payments retry budget", Scope: "user"})
	w.team = e.add(alice, memory.Input{Content: "the backend deploys through the blue-green pipeline",
		AccessEntity: "team:acme/backend", Scope: "team", Tags: map[string]any{"area": "deploy"}, App: "cursor"})
	w.naming = e.add(dave, memory.Input{Content: "Ask Alice before touching the ledger schema",
		AccessEntity: "team:acme/backend", Scope: "team", Entity: "alice"})
	w.daves = []memory.Memory{
		e.add(dave, memory.Input{Content: "the malice detector flags odd payloads", AccessEntity: "team:acme/backend", Scope: "team"}),
		e.add(dave, memory.Input{Content: "ledger writes are idempotent by request id", AccessEntity: "team:acme/backend", Scope: "team"}),
	}
	// dave edits alice's team memory: a history row by dave whose before
	// names alice as author.
	if _, err := e.svc.Update(e.as(dave), w.team.ID, memory.Patch{Content: ptr("the backend deploys through the blue-green pipeline, canary first")}); err != nil {
		t.Fatal(err)
	}
	// alice reads (access log rows by her).
	if _, err := e.svc.Search(e.as(alice), memory.SearchQuery{Text: "ledger"}, memory.ViaMCP); err != nil {
		t.Fatal(err)
	}
	// dave searches for alice by name.
	if _, err := e.svc.Search(e.as(dave), memory.SearchQuery{Text: "alice"}, memory.ViaREST); err != nil {
		t.Fatal(err)
	}
	if gst, ok := e.store.(memory.GraphStore); ok {
		if _, _, err := gst.LinkMemories(e.t.Context(), memory.Access{OrgID: "acme", Entities: []string{"team:acme/backend"}},
			memory.MemoryLink{From: w.daves[0].ID, To: w.daves[1].ID, Type: "related", CreatedBy: "alice", CreatedAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if ks, ok := e.store.(auth.KeyStore); ok {
		_, k, err := auth.NewAPIKey(auth.Principal{Subject: "alice", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesRead}}, e.clock.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		k.CreatedBy = "carol"
		w.aliceKey = k
		_, k2, err := auth.NewAPIKey(auth.Principal{Subject: "svc:bot", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesRead}}, e.clock.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		k2.CreatedBy = "alice"
		w.aliceMadeKey = k2
		for _, k := range []auth.APIKey{k, k2} {
			if err := ks.CreateAPIKey(e.t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
	}
	ga := principal("alice", "globex", "org:globex")
	w.globexAlice = e.add(ga, memory.Input{Content: "globex alice keeps her own notes", AccessEntity: "org:globex", Scope: "org"})
	_ = w.shared.Set(e.t.Context(), "mcp:session:s1", []byte(`{"user":"acme/alice"}`), time.Hour)
	_ = w.shared.Set(e.t.Context(), "mcp:session:s2", []byte(`{"user":"acme/dave"}`), time.Hour)
	_ = w.shared.Set(e.t.Context(), "mcp:session:s3", []byte(`{"user":"globex/alice"}`), time.Hour)
	w.everyoneElseBefore = w.visible(carol)
	return w
}

// visible lists the ids p can see in every state.
func (w *gdprWorld) visible(p auth.Principal) []string {
	var ids []string
	for _, m := range w.e.listAll(p, memory.ListQuery{Filter: memory.Filter{States: memory.States}, Limit: 200}) {
		ids = append(ids, m.ID)
	}
	return ids
}

func (w *gdprWorld) service(policy gdpr.SharedPolicy) *gdpr.Service {
	return gdpr.New(w.gs, gdpr.Options{Shared: w.shared, SharedMemories: policy, Now: w.e.clock.Now})
}

// testGDPR is the contract of gdpr.Store: export finds everything about
// the subject and nothing of anyone else; erasure removes it in one
// transaction (a failure part-way leaves it all), the check then finds
// nothing, everyone else's data is intact; the ledger records it without
// the subject and re-applies it to data that comes back.
func testGDPR(t *testing.T, e *env) {
	w := newGDPRWorld(t, e)
	ctx := t.Context()
	svc := w.service(gdpr.SharedPseudonymize)

	x, err := svc.Export(ctx, w.aliceAcme)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ms []memory.Memory) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		slices.Sort(out)
		return out
	}
	wantIDs := []string{w.private.ID, w.team.ID}
	slices.Sort(wantIDs)
	if got := ids(x.MemoriesAuthored); !slices.Equal(got, wantIDs) {
		t.Errorf("export: authored %v, want %v", got, wantIDs)
	}
	if got := ids(x.MemoriesNaming); !slices.Equal(got, []string{w.naming.ID}) {
		t.Errorf("export: naming %v, want only %s (not the malice memory, not globex)", got, w.naming.ID)
	}
	if len(x.AccessLog) == 0 || len(x.History) == 0 || len(x.Entities) == 0 || len(x.Sessions) != 1 {
		t.Errorf("export: %d access rows, %d history rows, %d entities, %d sessions; want some of each and 1 session",
			len(x.AccessLog), len(x.History), len(x.Entities), len(x.Sessions))
	}
	for _, a := range x.AccessLog {
		if a.OrgID != "acme" {
			t.Errorf("export: access row of org %s", a.OrgID)
		}
	}
	if _, ok := e.store.(auth.KeyStore); ok && (len(x.APIKeys) != 1 || len(x.APIKeysCreated) != 1) {
		t.Errorf("export: %d keys, %d keys made, want 1 and 1", len(x.APIKeys), len(x.APIKeysCreated))
	}
	for _, m := range x.Manifest {
		if m.Searched == "" {
			t.Errorf("manifest entry %s says nothing of what was searched", m.Source)
		}
	}
	before, err := svc.Check(ctx, w.aliceAcme)
	if err != nil || before.Clean {
		t.Fatalf("check before erasure: %+v, %v; want findings", before, err)
	}

	t.Run("FailurePartWayLeavesEverything", func(t *testing.T) {
		// A plan whose last step fails, after its deletes ran.
		err := w.gs.EraseSubject(ctx, "acme", "alice", []string{"alice"}, func(r gdpr.Rows) (gdpr.Plan, error) {
			bad := w.globexAlice
			now := e.clock.Now()
			return gdpr.Plan{EraseMemories: []memory.Memory{gdpr.Tombstone(w.private, "p", now), gdpr.Tombstone(w.team, "p", now)},
				RewriteMemories: []memory.Memory{bad}}, nil
		})
		if err == nil {
			t.Fatal("a plan rewriting another org's memory was applied")
		}
		after, err := svc.Check(ctx, w.aliceAcme)
		if err != nil {
			t.Fatal(err)
		}
		if total(after.Found) != total(before.Found) {
			t.Errorf("after a failed erasure the check finds %v, want all of %v", after.Found, before.Found)
		}
		if _, err := e.svc.Get(e.as(alice), w.private.ID, memory.ViaREST); err != nil {
			t.Errorf("private memory after a failed erasure: %v", err)
		}
	})

	// Derived data on every replica follows the change feed: read it up to
	// now, so that what the erasure changed shows next.
	feed, hasFeed := e.store.(memory.ChangeFeed)
	var cursor memory.ChangeCursor
	if hasFeed {
		for {
			cs, next, err := feed.Changes(ctx, cursor, 1000)
			if err != nil {
				t.Fatal(err)
			}
			cursor = next
			if len(cs) == 0 {
				break
			}
		}
	}
	res, err := svc.Erase(ctx, gdpr.EraseRequest{Subject: w.aliceAcme, Reason: "ticket 42 from alice", RequestedBy: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if hasFeed {
		cs, _, err := feed.Changes(ctx, cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]memory.State{}
		for _, c := range cs {
			states[c.ID] = c.State
		}
		if states[w.private.ID] != memory.StateDeleted || states[w.team.ID] != memory.StateActive || states[w.naming.ID] != memory.StateActive {
			t.Errorf("the change feed after the erasure reports %v; want the erased memory deleted and the rewritten ones changed, so every replica's indexes follow", states)
		}
	}
	if !res.Check.Clean {
		t.Errorf("check after erasure: %+v", res.Check)
	}
	if !gdpr.VerifyReceipt(res.Receipt) || res.Receipt.Reason != "ticket 42 from "+w.aliceAcme.Pseudonym() {
		t.Errorf("receipt does not verify or keeps the subject: %+v", res.Receipt)
	}
	if _, err := e.svc.Get(e.as(alice), w.private.ID, memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("private memory after erasure: %v, want not found", err)
	}
	team, err := e.svc.Get(e.as(dave), w.team.ID, memory.ViaREST)
	if err != nil || team.CreatedBy != w.aliceAcme.Pseudonym() {
		t.Errorf("team memory after erasure (pseudonymize): %+v, %v", team, err)
	}
	naming, err := e.svc.Get(e.as(dave), w.naming.ID, memory.ViaREST)
	if err != nil || naming.Entity == "alice" || naming.Content != "Ask "+w.aliceAcme.Pseudonym()+" before touching the ledger schema" {
		t.Errorf("dave's memory naming alice after erasure: %+v, %v", naming, err)
	}
	for _, m := range w.daves {
		got, err := e.svc.Get(e.as(dave), m.ID, memory.ViaREST)
		if err != nil || got.Content != m.Content {
			t.Errorf("dave's unrelated memory %s changed: %+v, %v", m.ID, got, err)
		}
	}
	if got, err := e.svc.Get(e.as(principal("alice", "globex", "org:globex")), w.globexAlice.ID, memory.ViaREST); err != nil || got.CreatedBy != "alice" {
		t.Errorf("globex alice's memory after acme alice's erasure: %+v, %v", got, err)
	}
	gc, err := svc.Check(ctx, w.aliceGlobex)
	if err != nil || gc.Clean || gc.Found[gdpr.SourceSessions] != 1 {
		t.Errorf("globex alice after acme alice's erasure: %+v, %v; want her memory and session", gc, err)
	}
	after := w.visible(carol)
	wantAfter := slices.DeleteFunc(slices.Clone(w.everyoneElseBefore), func(id string) bool { return id == w.private.ID })
	if !slices.Equal(after, wantAfter) {
		t.Errorf("carol sees %v after erasure, want %v (only the private memory gone)", after, wantAfter)
	}
	if ks, ok := e.store.(auth.KeyStore); ok {
		if _, err := ks.APIKeyByID(ctx, w.aliceKey.ID); !errors.Is(err, auth.ErrAPIKeyNotFound) {
			t.Errorf("alice's key after erasure: %v", err)
		}
		if k, err := ks.APIKeyByID(ctx, w.aliceMadeKey.ID); err != nil || k.CreatedBy != w.aliceAcme.Pseudonym() {
			t.Errorf("key alice made after erasure: %+v, %v", k, err)
		}
	}
	hits, err := e.svc.Search(e.as(carol), memory.SearchQuery{Text: "alice"}, memory.ViaREST)
	if err != nil || len(hits.Hits) != 0 {
		t.Errorf("search for alice after erasure: %+v, %v", hits.Hits, err)
	}
	ents, err := e.svc.Entities(e.as(carol), memory.EntityQuery{})
	if err == nil {
		for _, en := range ents {
			if en.Name == "alice" {
				t.Errorf("entity alice still listed after erasure")
			}
		}
	}

	led, err := w.gs.Erasures(ctx, "acme")
	if err != nil || len(led) != 1 || led[0].SubjectHash != w.aliceAcme.Hash() || led[0].ReceiptHash != res.Receipt.Hash {
		t.Fatalf("ledger after erasure: %+v, %v", led, err)
	}
	if other, _ := w.gs.Erasures(ctx, "globex"); len(other) != 0 {
		t.Errorf("globex ledger: %+v", other)
	}

	t.Run("LedgerReapplies", func(t *testing.T) {
		// alice's data comes back (as from a backup taken before the
		// erasure): the ledger makes the store forget it again.
		back := e.add(alice, memory.Input{Content: "a note restored from an old backup", Scope: "user"})
		rep, err := gdpr.ApplyLedger(ctx, w.gs, nil, gdpr.Options{Now: e.clock.Now})
		if err != nil || rep.Reapplied != 1 {
			t.Fatalf("apply ledger: %+v, %v", rep, err)
		}
		if _, err := e.svc.Get(e.as(alice), back.ID, memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
			t.Errorf("restored memory after the ledger: %v", err)
		}
		c, err := svc.Check(ctx, w.aliceAcme)
		if err != nil || !c.Clean {
			t.Errorf("check after the ledger: %+v, %v", c, err)
		}
		// An entry from a backup destination's file is recorded once.
		extra := gdpr.Erasure{ID: "01EXTRAENTRY", OrgID: "acme", SubjectHash: gdpr.Subject{OrgID: "acme", ID: "bob"}.Hash(),
			Policy: gdpr.SharedDelete, ErasedAt: e.clock.Now(), ReceiptHash: "x"}
		for range 2 {
			if _, err := gdpr.ApplyLedger(ctx, w.gs, []gdpr.Erasure{extra}, gdpr.Options{Now: e.clock.Now}); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		all, _ := w.gs.Erasures(ctx, "")
		for _, en := range all {
			if en.ID == extra.ID {
				n++
			}
		}
		if n != 1 {
			t.Errorf("extra ledger entry recorded %d times, want 1", n)
		}
	})

	t.Run("DeletePolicy", func(t *testing.T) {
		m := e.add(frank, memory.Input{Content: "frontend builds use the shared cache", AccessEntity: "team:acme/frontend", Scope: "team"})
		res, err := w.service(gdpr.SharedDelete).Erase(ctx, gdpr.EraseRequest{Subject: gdpr.Subject{OrgID: "acme", ID: "frank"}, Reason: "left the company", RequestedBy: "carol"})
		if err != nil || !res.Check.Clean || res.Receipt.Policy != gdpr.SharedDelete {
			t.Fatalf("erase frank: %+v, %v", res, err)
		}
		if _, err := e.svc.Get(e.as(carol), m.ID, memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
			t.Errorf("frank's team memory under the delete policy: %v", err)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		var ve *memory.ValidationError
		if _, err := svc.Erase(ctx, gdpr.EraseRequest{Subject: w.aliceAcme}); !errors.As(err, &ve) || ve.Field != "reason" {
			t.Errorf("erase without reason: %v", err)
		}
		if _, err := svc.Export(ctx, gdpr.Subject{OrgID: "acme"}); !errors.As(err, &ve) || ve.Field != "subject" {
			t.Errorf("export without subject: %v", err)
		}
	})
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// testRetention is the contract of gdpr.RetentionStore: policies read back
// and replace each other per org; the purge removes old access-log rows,
// archives untouched memories and removes old deleted ones, in that org
// only.
func testRetention(t *testing.T, e *env) {
	rs, ok := e.store.(gdpr.RetentionStore)
	if !ok {
		t.Skip("the store does not implement gdpr.RetentionStore")
	}
	ctx := t.Context()
	if p, err := rs.RetentionPolicy(ctx, "acme"); err != nil || p != (gdpr.RetentionPolicy{OrgID: "acme"}) {
		t.Fatalf("policy before any is set: %+v, %v", p, err)
	}
	old := e.add(alice, memory.Input{Content: "an old decision nobody touched"})
	gone := e.add(alice, memory.Input{Content: "a memory deleted long ago"})
	if _, err := e.svc.Delete(e.as(alice), gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(e.as(alice), old.ID, memory.ViaMCP); err != nil { // an access-log row
		t.Fatal(err)
	}
	foreign := e.add(eve, memory.Input{Content: "globex keeps everything"})
	if _, err := e.svc.Get(e.as(eve), foreign.ID, memory.ViaMCP); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Advance(40 * 24 * time.Hour)
	fresh := e.add(alice, memory.Input{Content: "a fresh convention"})

	pol := gdpr.RetentionPolicy{OrgID: "acme", AccessLogDays: 30, ArchiveUntouchedDays: 30, PurgeDeletedDays: 30, UpdatedAt: now}
	if err := rs.SetRetentionPolicy(ctx, gdpr.RetentionPolicy{OrgID: "acme", AccessLogDays: 1, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := rs.SetRetentionPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	if got, err := rs.RetentionPolicy(ctx, "acme"); err != nil || got != pol {
		t.Fatalf("policy reads back %+v, %v; want %+v", got, err, pol)
	}
	if all, err := rs.RetentionPolicies(ctx); err != nil || len(all) != 1 {
		t.Fatalf("policies: %+v, %v", all, err)
	}
	p, err := gdpr.NewPurger(rs, e.store, gdpr.PurgerOptions{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if done[gdpr.PurgeAccessLog] != 1 || done[gdpr.PurgeArchived] != 1 || done[gdpr.PurgeDeletedMemories] != 1 {
		t.Errorf("purge did %v, want 1 access row, 1 archive, 1 deleted memory", done)
	}
	for kind, want := range map[string]float64{gdpr.PurgeAccessLog: 1, gdpr.PurgeArchived: 1, gdpr.PurgeDeletedMemories: 1} {
		if got := testutil.ToFloat64(p.Counter().WithLabelValues(kind)); got != want {
			t.Errorf("codingbrain_retention_purged_rows_total{kind=%q} = %v, want %v", kind, got, want)
		}
	}
	if m, err := e.svc.Get(e.as(alice), old.ID, memory.ViaREST); err != nil || m.State != memory.StateArchived {
		t.Errorf("untouched memory after purge: %+v, %v", m, err)
	}
	if m, err := e.svc.Get(e.as(alice), fresh.ID, memory.ViaREST); err != nil || m.State != memory.StateActive {
		t.Errorf("fresh memory after purge: %+v, %v", m, err)
	}
	if _, err := e.svc.Get(e.as(alice), gone.ID, memory.ViaREST); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("old deleted memory after purge: %v", err)
	}
	if m, err := e.svc.Get(e.as(eve), foreign.ID, memory.ViaREST); err != nil || m.State != memory.StateActive {
		t.Errorf("other org's memory after purge: %+v, %v", m, err)
	}
	if c, ok := e.store.(AccessLogCounter); ok {
		if n, _ := c.CountAccessLog(ctx, "globex"); n == 0 {
			t.Error("the purge removed another org's access log")
		}
	}
	if again, err := p.RunOnce(ctx); err != nil || again[gdpr.PurgeAccessLog]+again[gdpr.PurgeArchived]+again[gdpr.PurgeDeletedMemories] != 0 {
		t.Errorf("second purge did %v, %v; want nothing", again, err)
	}
	var ve *memory.ValidationError
	if err := (gdpr.RetentionPolicy{OrgID: "acme", AccessLogDays: -1}).Validate(); !errors.As(err, &ve) || ve.Field != "access_log_days" {
		t.Errorf("negative days: %v", err)
	}
}

// ErasureFailure checks atomicity against a failure inside the database:
// inject installs one (such as a trigger that fails on the Nth delete of
// a table the erasure deletes from, with a message saying "injected
// failure"), heal removes it. The erasure that
// meets the failure must leave every row of the subject in the store (the
// shared state, cleared first, holds nothing durable), and a retry after
// heal must complete with a clean check. The store is closed at the end.
func ErasureFailure(t *testing.T, st memory.Store, inject, heal func(t *testing.T)) {
	e := newEnv(t, func(*testing.T) memory.Store { return st })
	w := newGDPRWorld(t, e)
	svc := w.service(gdpr.SharedPseudonymize)
	ctx := t.Context()
	stored := func(c gdpr.CheckResult) map[string]int {
		out := map[string]int{}
		for k, v := range c.Found {
			if k != gdpr.SourceSessions && k != gdpr.SourceSharedKeys {
				out[k] = v
			}
		}
		return out
	}
	before, err := svc.Check(ctx, w.aliceAcme)
	if err != nil {
		t.Fatal(err)
	}
	inject(t)
	if _, err := svc.Erase(ctx, gdpr.EraseRequest{Subject: w.aliceAcme, Reason: "a request", RequestedBy: "carol"}); err == nil ||
		!strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("erasure with the failure injected: %v, want the injected failure", err)
	}
	after, err := svc.Check(ctx, w.aliceAcme)
	if err != nil {
		t.Fatal(err)
	}
	if b, a := stored(before), stored(after); !maps.Equal(b, a) {
		t.Errorf("after the failed erasure the store holds %v of the subject, want all of %v", a, b)
	}
	if led, _ := w.gs.Erasures(ctx, "acme"); len(led) != 0 {
		t.Errorf("a failed erasure left a ledger entry: %+v", led)
	}
	if _, err := e.svc.Get(e.as(alice), w.private.ID, memory.ViaREST); err != nil {
		t.Errorf("private memory after the failed erasure: %v", err)
	}
	heal(t)
	res, err := svc.Erase(ctx, gdpr.EraseRequest{Subject: w.aliceAcme, Reason: "retry", RequestedBy: "carol"})
	if err != nil || !res.Check.Clean {
		t.Fatalf("retry: %+v, %v", res, err)
	}
}
