package gdpr

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/backup"
	"github.com/codingbrain/codingbrain/internal/memory"
)

func TestMatcher(t *testing.T) {
	m := newMatcher("Alice_Smith")
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"ask alice_smith", true},
		{"user:Alice_Smith", true},
		{"alice-smith owns it", true}, // the entity form
		{"ALICE SMITH", false},        // a space is not a separator of the identifier
		{"malice_smith", false},
		{"alice_smiths", false},
		{"", false},
	} {
		if got := m.in(tc.text); got != tc.want {
			t.Errorf("in(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if got := m.replace("Alice_Smith told alice-smith, not malice_smith", "P"); got != "P told P, not malice_smith" {
		t.Errorf("replace: %q", got)
	}
	mem := memory.Memory{Content: "see alice_smith", CreatedBy: "Alice_Smith", Tags: map[string]any{"owner": "alice_smith", "alice_smith": 1.0},
		Evidence: []string{"PR by alice_smith"}}
	got := m.scrubMemory(mem, "P")
	if got.Content != "see P" || got.CreatedBy != "P" || got.Tags["owner"] != "P" || got.Tags["P"] != 1.0 || got.Evidence[0] != "PR by P" {
		t.Errorf("scrubMemory: %+v", got)
	}
	if got.ContentHash != memory.ContentHash("see P") || m.mentions(got) {
		t.Errorf("scrubbed memory still mentions the subject or has a stale hash: %+v", got)
	}
}

func TestSubject(t *testing.T) {
	a, b := Subject{OrgID: "acme", ID: "alice"}, Subject{OrgID: "globex", ID: "alice"}
	if a.Hash() == b.Hash() || len(a.Hash()) != 64 || a.Pseudonym() != "erased-"+a.Hash()[:16] {
		t.Errorf("hashes: %s %s %s", a.Hash(), b.Hash(), a.Pseudonym())
	}
	for _, bad := range []Subject{{OrgID: "acme"}, {ID: "alice"}, {OrgID: "acme", ID: "a"}, {OrgID: "acme", ID: "al\x00ice"}} {
		if bad.Validate() == nil {
			t.Errorf("%+v is valid", bad)
		}
	}
	if _, err := ParseSharedPolicy("keep"); err == nil {
		t.Error("policy keep accepted")
	}
}

func TestReceipt(t *testing.T) {
	rc := Receipt{ID: "1", OrgID: "acme", SubjectHash: Subject{OrgID: "acme", ID: "alice"}.Hash(), Removed: map[string]int{"history": 2}}
	if _, _, err := sealReceipt(&rc); err != nil {
		t.Fatal(err)
	}
	if !VerifyReceipt(rc) {
		t.Fatal("a sealed receipt does not verify")
	}
	rc.Removed["history"] = 3
	if VerifyReceipt(rc) {
		t.Error("a changed receipt verifies")
	}
}

func TestLedgerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backups", LedgerFileName)
	if got, err := ReadLedger(path); err != nil || len(got) != 0 {
		t.Fatalf("missing ledger: %v, %v", got, err)
	}
	f := &LedgerFile{Path: path}
	e := Erasure{ID: "01A", OrgID: "acme", SubjectHash: Subject{OrgID: "acme", ID: "alice"}.Hash(), Policy: SharedPseudonymize, ErasedAt: time.Unix(1, 0).UTC(), ReceiptHash: "h"}
	for _, id := range []string{"01A", "01B"} {
		e.ID = id
		if err := f.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-append leaves a torn last line: it is skipped.
	fh, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString(`{"id":"01C","org_`)
	fh.Close()
	got, err := ReadLedger(path)
	if err != nil || len(got) != 2 || got[1].ID != "01B" || got[0].SubjectHash != e.SubjectHash {
		t.Fatalf("ledger: %+v, %v", got, err)
	}
	// Damage in the middle is an error, not silently skipped.
	os.WriteFile(path, []byte("{\"id\":\"x\"}\n"+`{"id":"01B"}`+"\n"), 0o600)
	if _, err := ReadLedger(path); err == nil {
		t.Error("a bad line in the middle was accepted")
	}
}

func TestLedgerFilter(t *testing.T) {
	acme := Subject{OrgID: "acme", ID: "alice"}
	frank := Subject{OrgID: "acme", ID: "frank"}
	l := NewLedger([]Erasure{
		{ID: "1", OrgID: "acme", SubjectHash: acme.Hash(), Policy: SharedPseudonymize},
		{ID: "2", OrgID: "acme", SubjectHash: frank.Hash(), Policy: SharedDelete},
	})
	mem := func(org, by, access string) backup.Memory {
		return backup.Memory{Memory: memory.Memory{OrgID: org, CreatedBy: by, AccessEntity: access}}
	}
	for _, tc := range []struct {
		row  any
		keep bool
	}{
		{mem("acme", "alice", "user:alice"), false},
		{mem("acme", "alice", "team:acme/x"), true}, // pseudonymized after the load
		{mem("acme", "frank", "team:acme/x"), false},
		{mem("acme", "dave", "user:dave"), true},
		{mem("globex", "alice", "user:alice"), true}, // another person
		{backup.AccessLog{AccessEntry: memory.AccessEntry{OrgID: "acme", Actor: "alice"}}, false},
		{backup.APIKey{APIKey: auth.APIKey{OrgID: "acme", Subject: "alice"}}, false},
		{backup.APIKey{APIKey: auth.APIKey{OrgID: "acme", Subject: "svc:ci"}}, true},
	} {
		if got := l.Keep("", tc.row); got != tc.keep {
			t.Errorf("Keep(%+v) = %v, want %v", tc.row, got, tc.keep)
		}
	}
}

func TestNamesOwner(t *testing.T) {
	for key, want := range map[string]bool{
		"ratelimit:read:p:acme/alice":     true,
		"cache:acme/alice:search":         true,
		"ratelimit:read:p:acme/alice2":    false,
		"ratelimit:read:p:acme/alice-bot": false,
		"ratelimit:read:p:bacme/alice":    false,
		"ratelimit:read:p:acme/bob":       false,
		"x:acme/alicex:acme/alice":        true,
	} {
		if got := namesOwner(key, "acme/alice"); got != want {
			t.Errorf("namesOwner(%q) = %v, want %v", key, got, want)
		}
	}
}
