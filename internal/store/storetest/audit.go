package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
)

// AuditTamperer is implemented, in test builds, by stores whose audit rows
// the suite may change behind the store's back, as someone with direct
// access to the database would. ExecAuditSQL runs stmt, one statement that
// reads the same on SQLite and PostgreSQL; with bypass it switches off
// audit_log's append-only triggers around it (in one transaction), else
// the triggers must make any UPDATE or DELETE of audit_log fail.
type AuditTamperer interface {
	ExecAuditSQL(ctx context.Context, stmt string, bypass bool) error
}

// testAudit checks a store that implements audit.Store: appends form one
// chain (seq 1, 2, …; each prev_hash the hash before), records read back
// as appended, ListAudit keeps to one org, concurrent appends stay linear,
// Verify accepts the chain, and — with AuditTamperer — the log is
// append-only and every kind of tampering is found at the right seq.
func testAudit(t *testing.T, e *env) {
	st, ok := e.store.(audit.Store)
	if !ok {
		t.Skip("store does not implement audit.Store")
	}
	ctx := t.Context()

	rep, err := audit.Verify(ctx, st)
	if err != nil || !rep.OK() || rep.Records != 0 || rep.HeadSeq != 0 || rep.HeadHash != audit.GenesisHash {
		t.Fatalf("verify of an empty chain: %+v, %v", rep, err)
	}

	var appended []audit.Record
	add := func(ev audit.Event) audit.Record {
		t.Helper()
		r, err := st.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatalf("append %+v: %v", ev, err)
		}
		appended = append(appended, r)
		return r
	}
	at := func() time.Time { return e.clock.Advance(time.Millisecond) }

	first := add(audit.Event{At: at(), Action: audit.ActionAuthFailure, Target: "GET /api/v1/memories",
		Outcome: audit.OutcomeDenied, RemoteAddr: "192.0.2.7", RequestID: "req-1",
		Detail: map[string]any{"reason": "invalid_token"}})
	if first.Seq != 1 || first.PrevHash != audit.GenesisHash || first.Actor != audit.ActorAnonymous || first.OrgID != "" {
		t.Errorf("first record: seq %d, prev_hash %s, actor %q, org %q; want 1, genesis, anonymous, no org",
			first.Seq, first.PrevHash, first.Actor, first.OrgID)
	}
	add(audit.Event{At: at(), OrgID: "acme", Actor: "alice", Action: audit.ActionMemoryDelete, Target: "memory:01A"})
	add(audit.Event{At: at(), OrgID: "globex", Actor: "eve", Action: audit.ActionAccessForbidden,
		Outcome: audit.OutcomeDenied, Detail: map[string]any{"missing_scope": "memories:delete"}})
	// Nanoseconds are cut to microseconds; detail keeps nested objects,
	// numbers, HTML-like and non-ASCII text as they were.
	ns := at().Add(123456789 * time.Nanosecond)
	odd := add(audit.Event{At: ns.In(time.FixedZone("CET", 3600)), OrgID: "acme", Actor: "bob",
		Action: audit.ActionAccessForbidden, Outcome: audit.OutcomeDenied, Target: "access_entity:<team:acme/ops>",
		Detail: map[string]any{"n": 3, "f": 2.5, "big": int64(1) << 53, "ok": false, "none": nil,
			"nested": map[string]any{"z": "ä & <b>", "a": []any{1, "two"}}}})
	if want := ns.UTC().Truncate(time.Microsecond); !odd.At.Equal(want) || odd.At.Location() != time.UTC {
		t.Errorf("at %v, want %v in UTC", odd.At, want)
	}
	for range 3 {
		add(audit.Event{At: at(), OrgID: "acme", Actor: "carol", Action: audit.ActionSessionHijack,
			Outcome: audit.OutcomeDenied, Target: "mcp_session:abc"})
	}
	if _, err := st.AppendAudit(ctx, audit.Event{At: at(), OrgID: "acme", Actor: "alice", Action: "memory.explode"}); err == nil {
		t.Error("append with an unknown action: no error")
	}
	for i, r := range appended {
		if r.Seq != int64(i+1) {
			t.Errorf("record %d has seq %d", i, r.Seq)
		}
		if i > 0 && r.PrevHash != appended[i-1].Hash {
			t.Errorf("seq %d: prev_hash %s, want the hash of seq %d, %s", r.Seq, r.PrevHash, i, appended[i-1].Hash)
		}
		if h, err := audit.ComputeHash(r); err != nil || h != r.Hash {
			t.Errorf("seq %d: hash %s, recomputed %s (%v)", r.Seq, r.Hash, h, err)
		}
	}

	// The whole chain, in pages, reads back as appended.
	var chain []audit.Record
	for after := int64(0); ; {
		page, err := st.AuditChain(ctx, after, 3)
		if err != nil {
			t.Fatalf("audit chain after %d: %v", after, err)
		}
		if len(page) > 3 {
			t.Fatalf("audit chain page of %d records, limit 3", len(page))
		}
		chain = append(chain, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Seq
	}
	wantRecords(t, "audit chain", chain, appended)

	// ListAudit: one org, in seq order, after a cursor.
	var acme []audit.Record
	for _, r := range appended {
		if r.OrgID == "acme" {
			acme = append(acme, r)
		}
	}
	got, err := st.ListAudit(ctx, "acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantRecords(t, "list acme", got, acme)
	got, err = st.ListAudit(ctx, "acme", acme[1].Seq, 2)
	if err != nil {
		t.Fatal(err)
	}
	wantRecords(t, "list acme after its second record, limit 2", got, acme[2:4])
	if got, err := st.ListAudit(ctx, "initech", 0, 100); err != nil || len(got) != 0 {
		t.Errorf("list of an org without records: %d records, %v", len(got), err)
	}
	if got, err := st.ListAudit(ctx, "globex", 0, 100); err != nil || len(got) != 1 || got[0].Actor != "eve" {
		t.Errorf("list globex: %+v, %v", got, err)
	}

	rep, err = audit.Verify(ctx, st)
	last := appended[len(appended)-1]
	if err != nil || !rep.OK() || rep.Records != int64(len(appended)) || rep.HeadSeq != last.Seq || rep.HeadHash != last.Hash {
		t.Fatalf("verify: %+v (broken %v), %v; want ok with %d records, head %d %s",
			rep, rep.Broken, err, len(appended), last.Seq, last.Hash)
	}

	// Concurrent appends queue: the chain stays linear and gapless.
	const writers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := st.AppendAudit(ctx, audit.Event{OrgID: "acme", Actor: fmt.Sprintf("w%d", w),
					Action: audit.ActionMemoryDelete, Target: fmt.Sprintf("memory:%d-%d", w, i)})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent append: %v", err)
	}
	total := int64(len(appended) + writers*each)
	rep, err = audit.Verify(ctx, st)
	if err != nil || !rep.OK() || rep.Records != total || rep.HeadSeq != total {
		t.Fatalf("verify after concurrent appends: %+v (broken %v), %v; want ok with %d records", rep, rep.Broken, err, total)
	}

	tam, ok := e.store.(AuditTamperer)
	if !ok {
		t.Log("store does not implement AuditTamperer; tamper checks skipped")
		return
	}
	testAuditTamper(t, st, tam, appended, total)
}

// testAuditTamper changes audit rows behind the store's back and checks
// that the triggers refuse it, and that Verify finds what got through.
func testAuditTamper(t *testing.T, st audit.Store, tam AuditTamperer, recs []audit.Record, total int64) {
	ctx := t.Context()
	victim := recs[1] // alice's memory.delete, in the middle of the chain
	next := recs[2]
	exec := func(stmt string, bypass bool) {
		t.Helper()
		if err := tam.ExecAuditSQL(ctx, stmt, bypass); err != nil {
			t.Fatalf("%s (bypass %v): %v", stmt, bypass, err)
		}
	}
	verify := func(what string) audit.Report {
		t.Helper()
		rep, err := audit.Verify(ctx, st)
		if err != nil {
			t.Fatalf("verify %s: %v", what, err)
		}
		return rep
	}
	wantOK := func(what string) {
		t.Helper()
		if rep := verify(what); !rep.OK() || rep.Records != total {
			t.Fatalf("verify %s: %+v (broken %v); want ok with %d records", what, rep, rep.Broken, total)
		}
	}
	wantBroken := func(what string, seq int64, problem, expected, stored string, intact int64) {
		t.Helper()
		rep := verify(what)
		b := rep.Broken
		switch {
		case b == nil:
			t.Errorf("verify %s: ok with %d records; want a break at seq %d", what, rep.Records, seq)
		case b.Seq != seq || !strings.Contains(b.Problem, problem) || b.Expected != expected || b.Stored != stored:
			t.Errorf("verify %s: break %v; want seq %d, %q, expected %s, stored %s", what, b, seq, problem, expected, stored)
		case rep.Records != intact:
			t.Errorf("verify %s: %d intact records before the break at %d, want %d", what, rep.Records, seq, intact)
		}
	}
	where := fmt.Sprintf(" WHERE seq = %d", victim.Seq)

	// The database refuses changes and deletions.
	for _, stmt := range []string{
		"UPDATE audit_log SET actor = 'mallory'" + where,
		"DELETE FROM audit_log" + where,
		"DELETE FROM audit_log",
	} {
		if err := tam.ExecAuditSQL(ctx, stmt, false); err == nil {
			t.Errorf("%s: no error; audit_log must be append-only", stmt)
		}
	}
	wantOK("after refused changes")

	// A changed field breaks the record's own hash.
	exec("UPDATE audit_log SET actor = 'mallory'"+where, true)
	forged := victim
	forged.Actor = "mallory"
	forgedHash, err := audit.ComputeHash(forged)
	if err != nil {
		t.Fatal(err)
	}
	wantBroken("with a changed actor", victim.Seq, "hash does not match", forgedHash, victim.Hash, victim.Seq-1)
	exec("UPDATE audit_log SET actor = 'alice'"+where, true)
	wantOK("with the actor restored")

	// Rehashing the changed record moves the break to the next link.
	exec(fmt.Sprintf("UPDATE audit_log SET actor = 'mallory', hash = '%s'", forgedHash)+where, true)
	wantBroken("with a changed and rehashed record", next.Seq, "prev_hash", forgedHash, victim.Hash, victim.Seq)
	exec(fmt.Sprintf("UPDATE audit_log SET actor = 'alice', hash = '%s'", victim.Hash)+where, true)
	wantOK("with the record restored")

	// A changed time or detail, and detail that is not JSON at all.
	for _, set := range []string{
		"detail = '{\"reason\":\"forged\"}'",
		"detail = 'not json'",
		"target = 'memory:01B'",
		"outcome = 'denied'",
		"org_id = 'globex'",
	} {
		exec("UPDATE audit_log SET "+set+where, true)
		rep := verify("with " + set)
		if rep.Broken == nil || rep.Broken.Seq != victim.Seq || rep.Broken.Stored != victim.Hash {
			t.Errorf("verify with %s: %+v (broken %v); want a break at seq %d", set, rep, rep.Broken, victim.Seq)
		}
	}
	detail, err := audit.DetailJSON(victim.Detail)
	if err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf("UPDATE audit_log SET detail = '%s', target = '%s', outcome = '%s', org_id = '%s'",
		detail, victim.Target, victim.Outcome, victim.OrgID)+where, true)
	wantOK("with the fields restored")

	// A deleted record leaves a gap.
	exec("DELETE FROM audit_log"+where, true)
	wantBroken("with a deleted record", next.Seq, "missing", fmt.Sprintf("seq %d", victim.Seq), fmt.Sprintf("seq %d", next.Seq), victim.Seq-1)
}

// wantRecords checks that got are want, field by field.
func wantRecords(t *testing.T, what string, got, want []audit.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if d := diffRecord(want[i], got[i]); d != "" {
			t.Errorf("%s: record %d (seq %d) differs: %s", what, i, want[i].Seq, d)
		}
	}
}

func diffRecord(want, got audit.Record) string {
	var d []string
	check := func(field string, eq bool, w, g any) {
		if !eq {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("seq", got.Seq == want.Seq, want.Seq, got.Seq)
	check("at", got.At.Equal(want.At) && got.At.Location() == time.UTC, want.At, got.At)
	check("org_id", got.OrgID == want.OrgID, want.OrgID, got.OrgID)
	check("actor", got.Actor == want.Actor, want.Actor, got.Actor)
	check("action", got.Action == want.Action, want.Action, got.Action)
	check("target", got.Target == want.Target, want.Target, got.Target)
	check("outcome", got.Outcome == want.Outcome, want.Outcome, got.Outcome)
	check("remote_addr", got.RemoteAddr == want.RemoteAddr, want.RemoteAddr, got.RemoteAddr)
	check("request_id", got.RequestID == want.RequestID, want.RequestID, got.RequestID)
	gd, _ := audit.DetailJSON(got.Detail)
	wd, _ := audit.DetailJSON(want.Detail)
	check("detail", gd == wd, wd, gd)
	check("prev_hash", got.PrevHash == want.PrevHash, want.PrevHash, got.PrevHash)
	check("hash", got.Hash == want.Hash, want.Hash, got.Hash)
	return strings.Join(d, "; ")
}
