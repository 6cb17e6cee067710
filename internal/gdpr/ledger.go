package gdpr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/codingbrain/codingbrain/internal/backup"
)

// The erasure ledger is how erasures outlive backups. Every erasure adds
// an entry — the org, the subject's Hash, the policy, the time and the
// receipt's hash; nothing that identifies the subject — to the table
// gdpr_erasures in the same transaction as the erasure, and appends it to
// LedgerFileName beside the backups. After a restore, ApplyLedger erases
// again every subject the ledger names: the entries in the restored
// database and those in the file, which also holds erasures made after the
// backup was taken (the database's copy of those was lost with it).

// LedgerFileName is the ledger's copy in a backup destination: one JSON
// Erasure per line.
const LedgerFileName = "erasure-ledger.jsonl"

// LedgerFile appends ledger entries to a JSON-lines file (the copy in the
// backup destination). It implements LedgerSink.
type LedgerFile struct {
	Path string
	mu   sync.Mutex
}

// Append adds e to the file, creating it (and its directory) if needed,
// and syncs it.
func (f *LedgerFile) Append(_ context.Context, e Erasure) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("erasure ledger: %w", err)
	}
	file, err := os.OpenFile(f.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("erasure ledger: %w", err)
	}
	if _, err := file.Write(append(line, '\n')); err != nil {
		file.Close()
		return fmt.Errorf("erasure ledger: %w", err)
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return fmt.Errorf("erasure ledger: %w", err)
	}
	return file.Close()
}

// ReadLedger reads a ledger file; a missing file is an empty ledger. A
// torn last line (a crash mid-append) is skipped; any other bad line is
// an error.
func ReadLedger(path string) ([]Erasure, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read erasure ledger: %w", err)
	}
	return parseLedger(b)
}

func parseLedger(b []byte) ([]Erasure, error) {
	var out []Erasure
	lines := bytes.Split(b, []byte("\n"))
	for i, ln := range lines {
		if len(bytes.TrimSpace(ln)) == 0 {
			continue
		}
		var e Erasure
		if err := json.Unmarshal(ln, &e); err != nil || e.ID == "" || e.OrgID == "" || len(e.SubjectHash) != 64 {
			if i == len(lines)-1 {
				break // a last line without its newline: an interrupted append
			}
			return nil, fmt.Errorf("read erasure ledger: line %d is not an erasure entry", i+1)
		}
		out = append(out, e)
	}
	return out, nil
}

// WriteLedger writes entries as a ledger file to w.
func WriteLedger(w io.Writer, entries []Erasure) error {
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// LedgerReport is what ApplyLedger did.
type LedgerReport struct {
	Entries int `json:"entries"` // distinct erasures in the ledger
	// Reapplied counts subjects found in the store and erased again.
	Reapplied int `json:"reapplied"`
	// Recorded counts entries added to the store's ledger.
	Recorded int `json:"recorded"`
}

// ApplyLedger makes the store forget every subject the ledger names: the
// entries already in the store, plus extra (read from the backup
// destination's ledger file). For each org with entries it hashes every
// candidate identifier (SubjectCandidates) and erases the ones whose hash
// is in the ledger, with the entry's policy; then it records the extra
// entries in the store's ledger. Run it after a restore, before serving.
func ApplyLedger(ctx context.Context, store Store, extra []Erasure, o Options) (LedgerReport, error) {
	var rep LedgerReport
	stored, err := store.Erasures(ctx, "")
	if err != nil {
		return rep, fmt.Errorf("apply erasure ledger: %w", err)
	}
	have := map[string]bool{}
	for _, e := range stored {
		have[e.ID] = true
	}
	all := append(append([]Erasure{}, stored...), extra...)
	byOrg := map[string]map[string]Erasure{} // org → subject hash → latest entry
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		if byOrg[e.OrgID] == nil {
			byOrg[e.OrgID] = map[string]Erasure{}
		}
		if prev, ok := byOrg[e.OrgID][e.SubjectHash]; !ok || e.ErasedAt.After(prev.ErasedAt) {
			byOrg[e.OrgID][e.SubjectHash] = e
		}
	}
	rep.Entries = len(seen)
	orgs := make([]string, 0, len(byOrg))
	for org := range byOrg {
		orgs = append(orgs, org)
	}
	sort.Strings(orgs)
	for _, org := range orgs {
		cands, err := store.SubjectCandidates(ctx, org)
		if err != nil {
			return rep, fmt.Errorf("apply erasure ledger: %w", err)
		}
		for _, c := range cands {
			subj := Subject{OrgID: org, ID: c}
			e, ok := byOrg[org][subj.Hash()]
			if !ok || subj.Validate() != nil {
				continue
			}
			so := o
			so.SharedMemories = e.Policy
			so.Ledger = nil // the entry is already in the ledger
			svc := New(store, so)
			if _, err := svc.Erase(ctx, EraseRequest{Subject: subj, Reason: "erasure ledger entry " + e.ID + " re-applied after a restore", RequestedBy: "erasure-ledger"}); err != nil {
				return rep, fmt.Errorf("apply erasure ledger: entry %s: %w", e.ID, err)
			}
			rep.Reapplied++
		}
	}
	for _, e := range extra {
		if have[e.ID] {
			continue
		}
		have[e.ID] = true
		if e.ErasedAt.IsZero() {
			e.ErasedAt = time.Now().UTC()
		}
		if err := store.RecordErasure(ctx, e); err != nil {
			return rep, fmt.Errorf("apply erasure ledger: %w", err)
		}
		rep.Recorded++
	}
	return rep, nil
}

// RestoreEraser re-applies the erasure ledger to a store a backup was just
// restored into: the ledger restored with
// the backup, and the copy in LedgerFile, which also holds the erasures
// made after the backup was taken. See ApplyLedger.
type RestoreEraser struct {
	// LedgerFile is the ledger's copy beside the backups (LedgerFileName
	// in the backup directory); "" or a missing file adds nothing.
	LedgerFile string
	// Options configure the erasures (the shared state is not touched: a
	// restore does not restore it).
	Options Options
}

// EraseAfterRestore re-applies the ledger to st, the store just restored
// into, and summarises what it did.
func (r RestoreEraser) EraseAfterRestore(ctx context.Context, st backup.Loader) (string, error) {
	gs, ok := st.(Store)
	if !ok {
		return "", fmt.Errorf("%w: the restored store keeps no erasure ledger", ErrNotErasable)
	}
	return ReapplyLedger(ctx, gs, r.LedgerFile, r.Options)
}

// ReapplyLedger runs ApplyLedger with the entries of the ledger file at
// path ("" or a missing file: none) and summarises what it did.
func ReapplyLedger(ctx context.Context, st Store, path string, o Options) (string, error) {
	var extra []Erasure
	if path != "" {
		var err error
		if extra, err = ReadLedger(path); err != nil {
			return "", err
		}
	}
	rep, err := ApplyLedger(ctx, st, extra, o)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("erasure ledger: %d erasures (%d in %s), %d subjects erased again",
		rep.Entries, len(extra), filepath.Base(path), rep.Reapplied), nil
}

// Ledger indexes erasures by org and subject hash. It is the row filter of
// a backup restore (backup.Filter): rows an erasure deleted outright are
// not loaded at all. What an erasure pseudonymizes cannot be done row by
// row; ApplyLedger after the load does that (and everything else again).
type Ledger map[string]map[string]Erasure

// NewLedger indexes entries; a subject's latest entry wins.
func NewLedger(entries []Erasure) Ledger {
	l := Ledger{}
	for _, e := range entries {
		if l[e.OrgID] == nil {
			l[e.OrgID] = map[string]Erasure{}
		}
		if prev, ok := l[e.OrgID][e.SubjectHash]; !ok || e.ErasedAt.After(prev.ErasedAt) {
			l[e.OrgID][e.SubjectHash] = e
		}
	}
	return l
}

func (l Ledger) erased(org, subject string) (Erasure, bool) {
	if len(l[org]) == 0 || subject == "" {
		return Erasure{}, false
	}
	e, ok := l[org][Subject{OrgID: org, ID: subject}.Hash()]
	return e, ok
}

// Keep implements backup.Filter: it drops an erased subject's private
// memories (and, under the delete policy, every memory they wrote), their
// access-log rows and their API keys.
func (l Ledger) Keep(_ string, row any) bool {
	switch r := row.(type) {
	case backup.Memory:
		if owner, ok := strings.CutPrefix(r.AccessEntity, "user:"); ok {
			if _, erased := l.erased(r.OrgID, owner); erased {
				return false
			}
		}
		if e, erased := l.erased(r.OrgID, r.CreatedBy); erased && e.Policy == SharedDelete {
			return false
		}
	case backup.AccessLog:
		if _, erased := l.erased(r.OrgID, r.Actor); erased {
			return false
		}
	case backup.APIKey:
		if _, erased := l.erased(r.OrgID, r.Subject); erased {
			return false
		}
	}
	return true
}
