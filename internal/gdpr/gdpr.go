// Package gdpr carries out data subjects' rights over what Coding Brain
// stores about them: the subject access export (everything about a subject
// in an org, as one machine-readable document), erasure (one operation over
// the system of record, the derived indexes and the shared state, with a
// receipt and a scan proving that nothing remains), the erasure ledger that
// makes restored backups forget erased subjects again, and per-org
// retention policies with the purge that applies them.
//
// A subject is the `sub` of a principal within one org. What "about a
// subject" means is defined once, by the subject's matcher (match.go): the
// identifier columns that hold a subject exactly (created_by, actor,
// subject, the access entity user:<sub>), and every text field in which the
// subject's identifier occurs as a word (content, entity, artifact ref,
// tags, evidence, metadata, search queries, entity names). Export, erasure
// and the check use the same definition, so the check finds exactly what an
// erasure must remove. docs/privacy.md lists every stored column and key and
// how each is reached.
//
// Stores implement Store: they select candidate rows (a superset, by SQL
// substring tests) and apply an erasure Plan in one transaction; the rules —
// which rows concern the subject, what is deleted and what is
// pseudonymized — are here, in one place for both stores.
package gdpr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// Subject names a data subject: the subject identifier (a principal's
// `sub`) within one org. Everything here is scoped to one org; the same
// identifier in another org is another subject.
type Subject struct {
	OrgID string `json:"org_id"`
	ID    string `json:"subject"`
}

// MaxSubjectBytes bounds a subject identifier.
const MaxSubjectBytes = 256

// Validate reports a *memory.ValidationError naming the bad field.
func (s Subject) Validate() error {
	if s.OrgID == "" {
		return &memory.ValidationError{Field: "org_id", Reason: "is required"}
	}
	if strings.TrimSpace(s.ID) == "" {
		return &memory.ValidationError{Field: "subject", Reason: "is required"}
	}
	if len(s.ID) > MaxSubjectBytes {
		return &memory.ValidationError{Field: "subject", Reason: fmt.Sprintf("must be at most %d bytes", MaxSubjectBytes)}
	}
	if len([]rune(strings.TrimSpace(s.ID))) < 2 {
		return &memory.ValidationError{Field: "subject", Reason: "must be at least 2 characters (shorter identifiers would match inside unrelated words)"}
	}
	for _, r := range s.ID {
		if unicode.IsControl(r) {
			return &memory.ValidationError{Field: "subject", Reason: "must not contain control characters"}
		}
	}
	return nil
}

// Hash is the subject's key in the erasure ledger and in audit records:
// hex SHA-256 of a domain tag, the org and the subject. It is deterministic
// and needs no key, so that a database restored from any backup — which
// may predate every other piece of state — can still recognise the subject
// (see docs/privacy.md for why not a keyed hash).
func (s Subject) Hash() string {
	sum := sha256.Sum256([]byte("codingbrain/gdpr/v1\x00" + s.OrgID + "\x00" + s.ID))
	return hex.EncodeToString(sum[:])
}

// Pseudonym is the stable stand-in for the subject in data that is kept
// after erasure (authorship of shared memories, mentions by others):
// "erased-" and the first 16 hex digits of Hash.
func (s Subject) Pseudonym() string { return "erased-" + s.Hash()[:16] }

// SharedPolicy says what erasure does with memories the subject wrote that
// others can see (team, project, org access entities).
type SharedPolicy string

// Shared-memory policies.
const (
	// SharedDelete removes them like the subject's private memories.
	SharedDelete SharedPolicy = "delete"
	// SharedPseudonymize keeps them, with the subject's identifier replaced
	// by Subject.Pseudonym wherever it occurs (authorship, history, text).
	SharedPseudonymize SharedPolicy = "pseudonymize"
)

// SharedPolicies lists the allowed policies.
var SharedPolicies = []SharedPolicy{SharedDelete, SharedPseudonymize}

// ParseSharedPolicy checks a configured policy ("" is pseudonymize).
func ParseSharedPolicy(s string) (SharedPolicy, error) {
	switch SharedPolicy(s) {
	case "":
		return SharedPseudonymize, nil
	case SharedDelete, SharedPseudonymize:
		return SharedPolicy(s), nil
	}
	return "", &memory.ValidationError{Field: "gdpr_shared_memories", Reason: fmt.Sprintf("%q is not allowed; use delete or pseudonymize", s)}
}

// AccessRow is one access-log row with its id.
type AccessRow struct {
	ID int64 `json:"id"`
	memory.AccessEntry
}

// Entity is one row of the entity table.
type Entity struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Rows are stored rows of one org that may concern a subject: each store
// selects them with simple substring tests (a superset); the subject's
// matcher decides.
type Rows struct {
	Memories  []memory.Memory       // every memory with a candidate field
	History   []memory.HistoryEntry // history rows by the subject or mentioning it, and every row of Memories
	AccessLog []AccessRow
	APIKeys   []auth.APIKey // keys of the subject or made by it
	Links     []memory.MemoryLink
	Entities  []Entity
}

// Plan is what an erasure changes in the store, in one transaction.
type Plan struct {
	// EraseMemories are tombstones (see Tombstone) written over memories
	// the erasure removes; their history, access log, embeddings, graph
	// rows and links are deleted.
	EraseMemories   []memory.Memory
	RewriteMemories []memory.Memory // whole new values; their embeddings are dropped and their graph rewritten
	DeleteHistory   []int64
	RewriteHistory  []memory.HistoryEntry // ID, Actor, Before, After are written
	DeleteAccessLog []int64
	DeleteAPIKeys   []string
	RewriteAPIKeys  []auth.APIKey       // ID and CreatedBy are written
	RewriteLinks    []memory.MemoryLink // From, Type, To identify; CreatedBy is written
	DeleteEntities  []int64
	Erasure         Erasure // recorded in the ledger
}

// Tombstone is what an erased memory's row becomes: state deleted, no
// content or other fields, the pseudonym as author and its own access
// entity user:<pseudonym> (visible to no one), updated now. The row is
// kept, not deleted, so that the change feed reports the deletion and every
// replica's in-process indexes drop the memory; it holds no personal data,
// and the retention purge (purge_deleted_days) removes it like any deleted
// memory.
func Tombstone(m memory.Memory, pseudonym string, now time.Time) memory.Memory {
	return memory.Memory{
		ID: m.ID, OrgID: m.OrgID, Scope: m.Scope, Source: m.Source, State: memory.StateDeleted,
		AccessEntity: "user:" + pseudonym, CreatedBy: pseudonym, CreatedAt: m.CreatedAt, UpdatedAt: now,
		ContentHash: memory.ContentHash(""),
	}
}

// Erasure is one entry of the erasure ledger: which subject (by hash only)
// was erased in which org, when, under which policy, and the hash of the
// receipt. It holds no personal data.
type Erasure struct {
	ID          string       `json:"id"`
	OrgID       string       `json:"org_id"`
	SubjectHash string       `json:"subject_hash"`
	Policy      SharedPolicy `json:"policy"`
	ErasedAt    time.Time    `json:"erased_at"`
	ReceiptHash string       `json:"receipt_hash"`
	Receipt     []byte       `json:"-"` // the receipt as JSON
}

// Store is what gdpr needs from the system of record. Both stores
// implement it.
type Store interface {
	// SubjectRows returns candidate rows of org for the needles (lower
	// case): rows whose identifier columns equal subject, or whose text
	// contains a needle (case-insensitively, as far as the database folds
	// case). Memories are returned in every state.
	SubjectRows(ctx context.Context, orgID, subject string, needles []string) (Rows, error)
	// EraseSubject reads SubjectRows and applies the plan decide makes
	// from them, in one transaction: all of it or, on any error, nothing.
	EraseSubject(ctx context.Context, orgID, subject string, needles []string, decide func(Rows) (Plan, error)) error
	// Erasures returns the ledger, oldest first: one org's entries, or
	// every org's for "".
	Erasures(ctx context.Context, orgID string) ([]Erasure, error)
	// RecordErasure adds an entry to the ledger unless one with its id
	// exists (a ledger replayed into a restored store).
	RecordErasure(ctx context.Context, e Erasure) error
	// SubjectCandidates lists the identifiers of org that may be subjects
	// (authors, actors, key subjects, user access entities, entity names),
	// for matching ledger hashes after a restore.
	SubjectCandidates(ctx context.Context, orgID string) ([]string, error)
}

// ErrNotErasable is returned when the store or its configuration cannot
// carry out the operation (no shared state where one is needed, …).
var ErrNotErasable = errors.New("gdpr: not supported by this store")
