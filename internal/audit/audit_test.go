package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
)

// memStore is an audit.Store in memory, as the stores behave.
type memStore struct {
	mu   sync.Mutex
	recs []audit.Record
	fail error
}

func (m *memStore) AppendAudit(_ context.Context, e audit.Event) (audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return audit.Record{}, m.fail
	}
	var seq int64
	prev := ""
	if n := len(m.recs); n > 0 {
		seq, prev = m.recs[n-1].Seq, m.recs[n-1].Hash
	}
	r, err := audit.Seal(e, seq+1, prev)
	if err != nil {
		return r, err
	}
	m.recs = append(m.recs, r)
	return r, nil
}

func (m *memStore) ListAudit(_ context.Context, org string, after int64, limit int) ([]audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Record
	for _, r := range m.recs {
		if r.OrgID == org && r.Seq > after && len(out) < max(limit, 1) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) AuditChain(_ context.Context, after int64, limit int) ([]audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Record
	for _, r := range m.recs {
		if r.Seq > after && len(out) < max(limit, 1) {
			out = append(out, r)
		}
	}
	return out, nil
}

var at = time.Date(2026, 3, 14, 9, 26, 53, 123456789, time.FixedZone("CET", 3600))

// TestCanonical pins the encoding that hashes cover: any change to it would
// break every chain already stored.
func TestCanonical(t *testing.T) {
	r, err := audit.Seal(audit.Event{
		At: at, OrgID: "acme", Actor: "alice", Action: audit.ActionMemoryDelete, Target: "memory:01<A>",
		RemoteAddr: "192.0.2.1", RequestID: "r1",
		Detail: map[string]any{"z": 1, "a": map[string]any{"y": "ä", "b": []any{true, nil, 2.5}}},
	}, 7, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.Canonical(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"memory.delete","actor":"alice","at":"2026-03-14T08:26:53.123456Z",` +
		`"detail":{"a":{"b":[true,null,2.5],"y":"ä"},"z":1},"org_id":"acme","outcome":"success",` +
		`"prev_hash":"` + audit.GenesisHash + `","remote_addr":"192.0.2.1","request_id":"r1","seq":7,"target":"memory:01<A>"}`
	if string(got) != want {
		t.Errorf("canonical encoding\n got %s\nwant %s", got, want)
	}
	sum := sha256.Sum256([]byte(want))
	if r.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %s is not the SHA-256 of the canonical encoding", r.Hash)
	}
	if r.Seq != 7 || r.PrevHash != audit.GenesisHash || r.Outcome != audit.OutcomeSuccess {
		t.Errorf("sealed record %+v", r)
	}
	if !r.At.Equal(at.Truncate(time.Microsecond)) || r.At.Location() != time.UTC {
		t.Errorf("at %v, want %v truncated to microseconds, in UTC", r.At, at)
	}
	// Empty detail is {} and the actor defaults to anonymous.
	r, _ = audit.Seal(audit.Event{At: at, Action: audit.ActionAuthFailure}, 1, "")
	got, _ = audit.Canonical(r)
	if !strings.Contains(string(got), `"actor":"anonymous","at":"2026-03-14T08:26:53.123456Z","detail":{},"org_id":""`) {
		t.Errorf("canonical encoding of a bare event: %s", got)
	}
}

func TestSealNormalizes(t *testing.T) {
	if _, err := audit.Seal(audit.Event{Action: "memory.explode"}, 1, ""); err == nil {
		t.Error("unknown action sealed")
	}
	long := strings.Repeat("é", audit.MaxFieldBytes) // 2 bytes each
	r, err := audit.Seal(audit.Event{Action: audit.ActionAuthFailure, Target: long, Actor: "a\x00b\xffc"}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Target) > audit.MaxFieldBytes || !strings.HasPrefix(long, r.Target) {
		t.Errorf("target of %d bytes not cut on a character boundary to %d", len(r.Target), audit.MaxFieldBytes)
	}
	if r.Actor != "a\uFFFDb\uFFFDc" {
		t.Errorf("actor %q: NUL and invalid UTF-8 not replaced", r.Actor)
	}
	if r.At.IsZero() {
		t.Error("no time filled in")
	}
	// Detail holds only JSON values afterwards, and reads back from its
	// stored text equal, so the hash can be recomputed.
	r, err = audit.Seal(audit.Event{Action: audit.ActionAuthFailure, Detail: map[string]any{
		"n": 3, "big": int64(1)<<62 + 1, "s": struct{ X int }{5}}}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Detail["n"] != json.Number("3") || r.Detail["big"] != json.Number("4611686018427387905") {
		t.Errorf("detail numbers %#v", r.Detail)
	}
	text, _ := audit.DetailJSON(r.Detail)
	back := r
	back.Detail = audit.StoredDetail(text)
	if h, _ := audit.ComputeHash(back); h != r.Hash {
		t.Errorf("detail %s does not hash the same after a round trip", text)
	}
	if d := audit.StoredDetail("not json"); d["unreadable"] != "not json" {
		t.Errorf("unreadable detail: %v", d)
	}
	if d := audit.StoredDetail(`{"a":1} {"b":2}`); d["unreadable"] == nil {
		t.Errorf("detail with trailing data read as %v", d)
	}
	huge := map[string]any{"x": strings.Repeat("x", 10000)}
	if r, err := audit.Seal(audit.Event{Action: audit.ActionAuthFailure, Detail: huge}, 1, ""); err != nil || r.Detail["truncated"] != true {
		t.Errorf("huge detail: %v, %v", r.Detail, err)
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	rep, err := audit.Verify(ctx, st)
	if err != nil || !rep.OK() || rep.Records != 0 || rep.HeadHash != audit.GenesisHash {
		t.Fatalf("empty chain: %+v, %v", rep, err)
	}
	const n = 2500 // more than two pages
	for i := range n {
		if _, err := st.AppendAudit(ctx, audit.Event{At: at.Add(time.Duration(i) * time.Second), OrgID: "acme",
			Actor: "alice", Action: audit.ActionMemoryDelete}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = audit.Verify(ctx, st)
	if err != nil || !rep.OK() || rep.Records != n || rep.HeadSeq != n || rep.HeadHash != st.recs[n-1].Hash {
		t.Fatalf("intact chain: %+v, %v", rep, err)
	}

	orig := st.recs[1500]
	st.recs[1500].Actor = "mallory"
	rep, _ = audit.Verify(ctx, st)
	if b := rep.Broken; b == nil || b.Seq != 1501 || b.Stored != orig.Hash || !strings.Contains(b.Problem, "hash") || rep.Records != 1500 {
		t.Errorf("changed record: %+v %v", rep, rep.Broken)
	}
	st.recs[1500].Hash, _ = audit.ComputeHash(st.recs[1500])
	rep, _ = audit.Verify(ctx, st)
	if b := rep.Broken; b == nil || b.Seq != 1502 || b.Expected != st.recs[1500].Hash || b.Stored != orig.Hash {
		t.Errorf("changed and rehashed record: %v", rep.Broken)
	}
	st.recs[1500] = orig
	st.recs = append(st.recs[:10], st.recs[11:]...)
	rep, _ = audit.Verify(ctx, st)
	if b := rep.Broken; b == nil || b.Seq != 12 || !strings.Contains(b.Problem, "11 to 11 are missing") {
		t.Errorf("deleted record: %v", rep.Broken)
	}
	if !strings.Contains(rep.Broken.String(), "seq 12") {
		t.Errorf("break reads %q", rep.Broken.String())
	}
	st.recs = st.recs[5:]
	rep, _ = audit.Verify(ctx, st)
	if b := rep.Broken; b == nil || b.Seq != 6 || rep.Records != 0 {
		t.Errorf("chain without its first records: %+v %v", rep, rep.Broken)
	}
}

func TestRecorder(t *testing.T) {
	st := &memStore{}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	rec := audit.NewRecorder(st, audit.RecorderOptions{Logger: log, Now: func() time.Time { return at }})

	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "alice", OrgID: "acme"})
	ctx = audit.WithRequest(ctx, "req-9", "192.0.2.5:41234")
	rec.Record(ctx, audit.Event{Action: audit.ActionMemoryDelete, Target: "memory:01A"})
	rec.Record(audit.WithRequest(context.Background(), "req-10", "[2001:db8::1]:80"),
		audit.Event{Action: audit.ActionAuthFailure, Outcome: audit.OutcomeDenied})
	// An explicit actor other than the principal keeps its own org.
	rec.Record(ctx, audit.Event{Action: audit.ActionSessionHijack, Actor: "bob", Outcome: audit.OutcomeDenied})
	if len(st.recs) != 3 {
		t.Fatalf("%d records", len(st.recs))
	}
	if r := st.recs[0]; r.Actor != "alice" || r.OrgID != "acme" || r.RequestID != "req-9" || r.RemoteAddr != "192.0.2.5" || !r.At.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("filled from the context: %+v", r)
	}
	if r := st.recs[1]; r.Actor != audit.ActorAnonymous || r.OrgID != "" || r.RemoteAddr != "2001:db8::1" {
		t.Errorf("anonymous event: %+v", r)
	}
	if r := st.recs[2]; r.Actor != "bob" || r.OrgID != "" {
		t.Errorf("explicit actor: %+v", r)
	}
	// A cancelled request context does not cancel the write.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	rec.Record(cctx, audit.Event{Action: audit.ActionMemoryDelete})
	if len(st.recs) != 4 {
		t.Error("event of a cancelled request not written")
	}

	// A failed write is logged with the event and counted, not returned.
	st.fail = errors.New("disk full")
	rec.Record(ctx, audit.Event{Action: audit.ActionMemoryDelete, Target: "memory:01B"})
	if rec.Failures() != 1 {
		t.Errorf("failures %d, want 1", rec.Failures())
	}
	line := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"msg":"audit write failed"`, `disk full`, `"action":"memory.delete"`, `"target":"memory:01B"`, `"actor":"alice"`} {
		if !strings.Contains(line, want) {
			t.Errorf("failure log %s lacks %s", line, want)
		}
	}

	recs, err := rec.List(ctx, "acme", 0, 10)
	if err != nil || len(recs) != 2 {
		t.Errorf("list: %d records, %v", len(recs), err)
	}

	var none *audit.Recorder
	none.Record(ctx, audit.Event{Action: audit.ActionMemoryDelete}) // no panic
	if _, err := none.List(ctx, "acme", 0, 1); !errors.Is(err, audit.ErrNoStore) {
		t.Errorf("list of a nil recorder: %v", err)
	}
}

func TestAuthFailureReason(t *testing.T) {
	for err, want := range map[error]string{
		auth.ErrNoCredentials:          "no_credentials",
		auth.ErrInvalidToken:           "invalid_token",
		auth.ErrInvalidDPoPProof:       "invalid_dpop_proof",
		auth.ErrDPoPBinding:            "dpop_binding",
		errors.New("verifier crashed"): "error",
	} {
		if got := audit.AuthFailureReason(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}
