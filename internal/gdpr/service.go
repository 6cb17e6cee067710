package gdpr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// Options configure a Service. Zero values take defaults.
type Options struct {
	// Shared is the shared state (MCP session bindings, rate-limit buckets,
	// replay caches); nil means none is searched.
	Shared kv.Store
	// Audit records exports and erasures (without the subject's identity).
	Audit *audit.Recorder
	// SharedMemories is the policy for memories the subject wrote that
	// others can see; SharedPseudonymize when empty.
	SharedMemories SharedPolicy
	// OnErased hears of memories an erasure deleted or rewrote, so that
	// in-process derived data (the vector index) drops them at once.
	OnErased func([]memory.MemoryKey)
	// Ledger, when set, also receives every erasure entry (the copy kept
	// beside the backups, so that restoring an older backup re-applies
	// later erasures). See Ledger.
	Ledger LedgerSink
	// Logger logs what an erasure removed, never the subject.
	Logger *slog.Logger
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// NewID makes erasure ids; ULIDs by default.
	NewID func() string
}

// LedgerSink keeps a copy of the erasure ledger outside the database.
type LedgerSink interface {
	Append(ctx context.Context, e Erasure) error
}

// Service exports and erases subjects' data.
type Service struct {
	store Store
	o     Options
}

// New returns a Service over store.
func New(store Store, o Options) *Service {
	if o.SharedMemories == "" {
		o.SharedMemories = SharedPseudonymize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = memory.NewULIDSource(o.Now)
	}
	return &Service{store: store, o: o}
}

// Policy is the configured shared-memory policy.
func (s *Service) Policy() SharedPolicy { return s.o.SharedMemories }

// Source names, in the order documents list them.
const (
	SourceMemoriesAuthored = "memories_authored"
	SourceMemoriesNaming   = "memories_naming"
	SourceHistory          = "history"
	SourceAccessLog        = "access_log"
	SourceAPIKeys          = "api_keys"
	SourceAPIKeysCreated   = "api_keys_created"
	SourceMemoryLinks      = "memory_links"
	SourceEntities         = "entities"
	SourceEmbeddings       = "embeddings"
	SourceLexical          = "lexical_index"
	SourceGraph            = "graph_mentions"
	SourceVectorIndex      = "vector_index"
	SourceSessions         = "sessions"
	SourceSharedKeys       = "shared_state_keys"
	SourceAudit            = "audit_log"
)

// contentRows decides, for the matcher, which candidate rows concern the
// subject, and how an erasure treats them.
type contentRows struct {
	private, sharedAuthored, naming []memory.Memory
	history                         []memory.HistoryEntry
	access                          []AccessRow
	keys, keysCreated               []auth.APIKey
	links                           []memory.MemoryLink
	entities                        []Entity
}

func classify(m matcher, rows Rows) contentRows {
	var c contentRows
	for _, mem := range rows.Memories {
		switch {
		case m.private(mem):
			c.private = append(c.private, mem)
		case m.authored(mem):
			c.sharedAuthored = append(c.sharedAuthored, mem)
		case m.mentions(mem):
			c.naming = append(c.naming, mem)
		}
	}
	for _, h := range rows.History {
		if m.historyMentions(h) {
			c.history = append(c.history, h)
		}
	}
	for _, a := range rows.AccessLog {
		if m.accessMentions(a) {
			c.access = append(c.access, a)
		}
	}
	for _, k := range rows.APIKeys {
		switch {
		case k.Subject == m.subject:
			c.keys = append(c.keys, k)
		case k.CreatedBy == m.subject:
			c.keysCreated = append(c.keysCreated, k)
		}
	}
	for _, l := range rows.Links {
		if l.CreatedBy == m.subject {
			c.links = append(c.links, l)
		}
	}
	for _, e := range rows.Entities {
		if m.in(e.Name) {
			c.entities = append(c.entities, e)
		}
	}
	return c
}

func (s *Service) read(ctx context.Context, subj Subject) (matcher, contentRows, error) {
	if err := subj.Validate(); err != nil {
		return matcher{}, contentRows{}, err
	}
	m := newMatcher(subj.ID)
	rows, err := s.store.SubjectRows(ctx, subj.OrgID, subj.ID, m.needles)
	if err != nil {
		return m, contentRows{}, fmt.Errorf("read subject data: %w", err)
	}
	return m, classify(m, rows), nil
}

// Receipt is the record of one erasure, returned to the caller and stored
// in the ledger. It names the subject only by hash and pseudonym.
type Receipt struct {
	ID            string         `json:"id"`
	OrgID         string         `json:"org_id"`
	SubjectHash   string         `json:"subject_hash"`
	Pseudonym     string         `json:"pseudonym"`
	Policy        SharedPolicy   `json:"policy"`
	Reason        string         `json:"reason"`
	RequestedBy   string         `json:"requested_by"`
	ErasedAt      time.Time      `json:"erased_at"`
	Removed       map[string]int `json:"removed"`
	Pseudonymized map[string]int `json:"pseudonymized"`
	// Hash is hex SHA-256 of the receipt's JSON with Hash empty.
	Hash string `json:"hash"`
}

// EraseRequest is one erasure.
type EraseRequest struct {
	Subject Subject
	// Reason is required: why the data is erased (a request reference).
	// Mentions of the subject in it are replaced by the pseudonym.
	Reason string
	// RequestedBy is who asked (the caller's subject).
	RequestedBy string
}

// EraseResult is an erasure's receipt and the check made right after it.
type EraseResult struct {
	Receipt Receipt     `json:"receipt"`
	Check   CheckResult `json:"check"`
}

// Erase removes the subject's personal data from the store in one
// transaction — private memories, shared memories by the policy, mentions
// by others (pseudonymized), history, access log, API keys, links and
// entities, with the lexical index, embeddings and graph going with their
// rows — then from the in-process vector index and the shared state, and
// records the receipt in the ledger and an audit record without the
// subject's identity. The check that follows is part of the result.
func (s *Service) Erase(ctx context.Context, req EraseRequest) (EraseResult, error) {
	subj := req.Subject
	if err := subj.Validate(); err != nil {
		return EraseResult{}, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return EraseResult{}, &memory.ValidationError{Field: "reason", Reason: "is required: say why the subject is erased (for example the request's reference)"}
	}
	m := newMatcher(subj.ID)
	pseud := subj.Pseudonym()
	requestedBy := req.RequestedBy
	if requestedBy == subj.ID {
		requestedBy = pseud
	}
	rc := Receipt{
		ID: s.o.NewID(), OrgID: subj.OrgID, SubjectHash: subj.Hash(), Pseudonym: pseud,
		Policy: s.o.SharedMemories, Reason: m.replace(req.Reason, pseud), RequestedBy: requestedBy,
		ErasedAt: s.o.Now().UTC().Truncate(time.Microsecond),
		Removed:  map[string]int{}, Pseudonymized: map[string]int{},
	}
	// Shared state first: the subject's sessions end before the store is
	// erased, so no session of theirs writes in between. It holds nothing
	// durable, so clearing it ahead of a store transaction that then fails
	// loses nothing (a retry finds the store as it was).
	removedKV, err := s.eraseShared(ctx, subj, m)
	if err != nil {
		return EraseResult{}, fmt.Errorf("erase subject: shared state: %w", err)
	}
	rc.Removed[SourceSessions] = removedKV.sessions
	rc.Removed[SourceSharedKeys] = removedKV.keys
	var touched []memory.MemoryKey
	err = s.store.EraseSubject(ctx, subj.OrgID, subj.ID, m.needles, func(rows Rows) (Plan, error) {
		c := classify(m, rows)
		p, keys := s.plan(m, pseud, c, &rc)
		touched = keys
		hash, body, err := sealReceipt(&rc)
		if err != nil {
			return Plan{}, err
		}
		p.Erasure = Erasure{ID: rc.ID, OrgID: rc.OrgID, SubjectHash: rc.SubjectHash, Policy: rc.Policy,
			ErasedAt: rc.ErasedAt, ReceiptHash: hash, Receipt: body}
		return p, nil
	})
	if err != nil {
		return EraseResult{}, fmt.Errorf("erase subject: %w", err)
	}
	if s.o.OnErased != nil && len(touched) > 0 {
		s.o.OnErased(touched)
	}
	if s.o.Ledger != nil {
		e := Erasure{ID: rc.ID, OrgID: rc.OrgID, SubjectHash: rc.SubjectHash, Policy: rc.Policy, ErasedAt: rc.ErasedAt, ReceiptHash: rc.Hash}
		if err := s.o.Ledger.Append(ctx, e); err != nil {
			// The database has the entry; backups taken from now on carry it.
			s.o.Logger.WarnContext(ctx, "erasure ledger copy not written", "erasure_id", rc.ID, "err", err)
		}
	}
	s.o.Audit.Record(ctx, audit.Event{
		Action: audit.ActionGDPRErase, OrgID: subj.OrgID, Actor: requestedBy, Target: "subject:" + rc.SubjectHash[:16],
		Detail: map[string]any{"erasure_id": rc.ID, "policy": string(rc.Policy), "receipt_hash": rc.Hash, "removed": total(rc.Removed), "pseudonymized": total(rc.Pseudonymized)},
	})
	s.o.Logger.InfoContext(ctx, "subject erased", "org_id", subj.OrgID, "erasure_id", rc.ID,
		"removed", total(rc.Removed), "pseudonymized", total(rc.Pseudonymized))
	check, err := s.Check(ctx, subj)
	if err != nil {
		return EraseResult{}, err
	}
	return EraseResult{Receipt: rc, Check: check}, nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// plan turns the classified rows into the store's changes and fills the
// receipt's counts. It returns the memories it deletes or rewrites.
func (s *Service) plan(m matcher, pseud string, c contentRows, rc *Receipt) (Plan, []memory.MemoryKey) {
	var p Plan
	var keys []memory.MemoryKey
	deleted := map[string]bool{}
	del := func(mem memory.Memory) {
		deleted[mem.ID] = true
		p.EraseMemories = append(p.EraseMemories, Tombstone(mem, pseud, rc.ErasedAt))
		keys = append(keys, memory.MemoryKey{OrgID: mem.OrgID, ID: mem.ID})
	}
	for _, mem := range c.private {
		del(mem)
	}
	rc.Removed[SourceMemoriesAuthored] = len(c.private)
	rewrite := c.naming
	if s.o.SharedMemories == SharedDelete {
		for _, mem := range c.sharedAuthored {
			del(mem)
		}
		rc.Removed[SourceMemoriesAuthored] += len(c.sharedAuthored)
	} else {
		rewrite = append(slices.Clip(rewrite), c.sharedAuthored...)
		rc.Pseudonymized[SourceMemoriesAuthored] = len(c.sharedAuthored)
	}
	rc.Pseudonymized[SourceMemoriesNaming] = len(c.naming)
	for _, mem := range rewrite {
		p.RewriteMemories = append(p.RewriteMemories, m.scrubMemory(mem, pseud))
		keys = append(keys, memory.MemoryKey{OrgID: mem.OrgID, ID: mem.ID})
	}
	// History: rows of deleted memories go with them; the subject's own
	// rows on kept memories are pseudonymized (they are the memory's
	// record of changes, and other people's edits depend on them), and so
	// are others' rows whose before/after mention the subject.
	rc.Removed[SourceHistory], rc.Pseudonymized[SourceHistory] = 0, 0
	for _, h := range c.history {
		if deleted[h.MemoryID] {
			rc.Removed[SourceHistory]++
			continue
		}
		p.RewriteHistory = append(p.RewriteHistory, m.scrubHistory(h, pseud))
		rc.Pseudonymized[SourceHistory]++
	}
	for _, a := range c.access {
		p.DeleteAccessLog = append(p.DeleteAccessLog, a.ID)
	}
	rc.Removed[SourceAccessLog] = len(c.access)
	for _, k := range c.keys {
		p.DeleteAPIKeys = append(p.DeleteAPIKeys, k.ID)
	}
	rc.Removed[SourceAPIKeys] = len(c.keys)
	for _, k := range c.keysCreated {
		k.CreatedBy = pseud
		p.RewriteAPIKeys = append(p.RewriteAPIKeys, k)
	}
	rc.Pseudonymized[SourceAPIKeysCreated] = len(c.keysCreated)
	for _, l := range c.links {
		if deleted[l.From] || deleted[l.To] {
			continue // goes with the memory
		}
		l.CreatedBy = pseud
		p.RewriteLinks = append(p.RewriteLinks, l)
	}
	rc.Pseudonymized[SourceMemoryLinks] = len(p.RewriteLinks)
	for _, e := range c.entities {
		p.DeleteEntities = append(p.DeleteEntities, e.ID)
	}
	rc.Removed[SourceEntities] = len(c.entities)
	return p, keys
}

// sealReceipt computes rc.Hash over the receipt's JSON without it, and
// returns the hash and the sealed receipt's JSON.
func sealReceipt(rc *Receipt) (string, []byte, error) {
	rc.Hash = ""
	body, err := json.Marshal(rc)
	if err != nil {
		return "", nil, fmt.Errorf("seal receipt: %w", err)
	}
	rc.Hash = sha256Hex(body)
	sealed, err := json.Marshal(rc)
	if err != nil {
		return "", nil, fmt.Errorf("seal receipt: %w", err)
	}
	return rc.Hash, sealed, nil
}

// VerifyReceipt reports whether a receipt's hash matches its content.
func VerifyReceipt(rc Receipt) bool {
	want := rc.Hash
	_, _, err := sealReceipt(&rc)
	return err == nil && rc.Hash == want
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
