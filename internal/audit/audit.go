// Package audit is Coding Brain's append-only audit log: security-relevant
// events (failed authentication, forbidden access, MCP session hijack
// attempts, deletions, and later exports, erasures, backups and admin
// actions) kept in the system of record as one hash chain.
//
// # Records and the chain
//
// Every event becomes a Record with a sequence number Seq (1, 2, 3, … over
// the whole server, every org together, without gaps) and two hashes:
// PrevHash, the Hash of the record before it (GenesisHash for the first),
// and Hash, the lowercase hex SHA-256 of the record's canonical encoding
// (Canonical), which covers PrevHash. Changing, removing or inserting a
// record anywhere breaks the chain at that point, and Verify finds the
// first broken link. Removing records from the end leaves a shorter chain
// that still verifies; to catch that, keep the head that Verify reports
// (seq and hash) somewhere the database's administrators cannot write.
//
// # Canonical encoding
//
// Canonical(r) is a JSON object with exactly these keys, in this (byte)
// order, without insignificant whitespace and without HTML escaping (Go's
// encoding/json with SetEscapeHTML(false), then the trailing newline
// removed):
//
//	action, actor, at, detail, org_id, outcome, prev_hash, remote_addr,
//	request_id, seq, target
//
// at is the time in UTC formatted with time.RFC3339Nano (trailing zeros of
// the fraction dropped), after truncation to whole microseconds (what
// PostgreSQL keeps). seq is a JSON integer. detail is a JSON object whose
// keys are sorted at every level ({} when there is no detail); numbers
// keep the literal text they were stored with. Every other value is a JSON
// string. Strings are valid UTF-8 without NUL (Seal replaces invalid bytes
// and NUL with U+FFFD) and at most MaxFieldBytes long.
//
// Stores keep detail as the text of that JSON object, not as jsonb, so
// that a record reads back exactly as it was hashed.
//
// # What goes in
//
// Actor is the principal's subject, or ActorAnonymous when the caller is
// not authenticated. OrgID is the org the event belongs to ("" when the
// caller has none, as for a failed authentication: such records are seen
// by operators through the chain, not by any org). Action is one of the
// Action constants. Detail holds small facts that explain the event (a
// missing scope, the reason a token was refused, the tool name) — never a
// token, key, password, session id or memory content: the log cannot be
// erased, so it must not hold secrets or personal content.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Action names what happened. The set is closed: Seal refuses any other.
type Action = string

// Actions. Add new ones here (and to Actions), never reuse a name for
// something else: records keep their action forever.
const (
	// ActionAuthFailure: a request to an authenticated endpoint came
	// without credentials or with credentials that were not accepted (401).
	ActionAuthFailure Action = "auth.failure"
	// ActionAccessForbidden: an authenticated caller lacked a scope, or
	// its grants did not cover what it tried to write (403).
	ActionAccessForbidden Action = "access.forbidden"
	// ActionSessionHijack: a request named an MCP session that another
	// principal opened (403).
	ActionSessionHijack Action = "mcp.session_hijack"
	// ActionMemoryDelete: a memory was deleted.
	ActionMemoryDelete Action = "memory.delete"
	// ActionAPIKeyCreate and ActionAPIKeyRevoke: an API key was made or
	// revoked through the admin API.
	ActionAPIKeyCreate Action = "admin.apikey_create"
	ActionAPIKeyRevoke Action = "admin.apikey_revoke"
	// ActionGDPRExport and ActionGDPRErase: a subject's data was exported
	// or erased; the target names the subject by hash only
	// (subject:<first 16 hex digits of gdpr.Subject.Hash>).
	ActionGDPRExport Action = "gdpr.export"
	ActionGDPRErase  Action = "gdpr.erase"
	// ActionBackupCreate and ActionBackupRestore: a backup was taken or
	// restored (planned).
	ActionBackupCreate  Action = "backup.create"
	ActionBackupRestore Action = "backup.restore"
	// ActionMemoryExport and ActionMemoryImport: a caller exported or
	// imported memories (GET /api/v1/export, POST /api/v1/import).
	ActionMemoryExport Action = "memory.export"
	ActionMemoryImport Action = "memory.import"
	// ActionRetentionSet: an org's retention policy was changed.
	ActionRetentionSet Action = "admin.retention_set"
)

// Actions lists every action.
var Actions = []Action{
	ActionAuthFailure, ActionAccessForbidden, ActionSessionHijack, ActionMemoryDelete,
	ActionAPIKeyCreate, ActionAPIKeyRevoke, ActionGDPRExport, ActionGDPRErase,
	ActionBackupCreate, ActionBackupRestore, ActionMemoryExport, ActionMemoryImport,
	ActionRetentionSet,
}

// Outcomes.
const (
	OutcomeSuccess = "success" // the action was carried out
	OutcomeDenied  = "denied"  // the action was refused
)

// ActorAnonymous is the actor of events without an authenticated caller.
const ActorAnonymous = "anonymous"

// GenesisHash is the PrevHash of the first record.
var GenesisHash = strings.Repeat("0", 64)

// MaxFieldBytes bounds every string field of a record (longer values,
// such as an attacker's very long URL, are cut).
const MaxFieldBytes = 512

// maxDetailBytes bounds the encoded detail.
const maxDetailBytes = 4096

// Event is something that happened.
type Event struct {
	At         time.Time      `json:"at" jsonschema:"when it happened (UTC, microseconds)"`
	OrgID      string         `json:"org_id" jsonschema:"the org it belongs to; empty for a caller without one"`
	Actor      string         `json:"actor" jsonschema:"the caller's subject, or anonymous"`
	Action     Action         `json:"action" jsonschema:"auth.failure, access.forbidden, mcp.session_hijack, memory.delete, admin.apikey_create, admin.apikey_revoke, gdpr.export, gdpr.erase, backup.create, backup.restore, memory.export, memory.import or admin.retention_set"`
	Target     string         `json:"target,omitempty" jsonschema:"what it was done to, such as memory:<id> or GET /api/v1/memories"`
	Outcome    string         `json:"outcome" jsonschema:"success or denied"`
	RemoteAddr string         `json:"remote_addr,omitempty" jsonschema:"the client's address as the server saw it"`
	RequestID  string         `json:"request_id,omitempty" jsonschema:"the X-Request-ID of the request"`
	Detail     map[string]any `json:"detail,omitempty" jsonschema:"facts that explain the event; never secrets"`
}

// Record is an Event in the chain.
type Record struct {
	Seq int64 `json:"seq" jsonschema:"position in the server's audit chain: 1, 2, 3, … without gaps"`
	Event
	PrevHash string `json:"prev_hash" jsonschema:"hash of the record before (64 zeros for the first)"`
	Hash     string `json:"hash" jsonschema:"hex SHA-256 of the record's canonical encoding, which covers prev_hash"`
}

// Store keeps the chain. Appends are serialized by the store, so the chain
// is linear: each record's PrevHash is the Hash of the record with the
// previous Seq.
type Store interface {
	// AppendAudit seals e (see Seal) as the record after the current last
	// one and stores it, in one transaction that no other append
	// interleaves with. It returns the record as stored.
	AppendAudit(ctx context.Context, e Event) (Record, error)
	// ListAudit returns the records of one org with Seq > after, in Seq
	// order, at most limit (below 1 means 1).
	ListAudit(ctx context.Context, orgID string, after int64, limit int) ([]Record, error)
	ChainReader
}

// ChainReader reads the whole chain.
type ChainReader interface {
	// AuditChain returns the records of every org with Seq > after, in Seq
	// order, at most limit (below 1 means 1).
	AuditChain(ctx context.Context, after int64, limit int) ([]Record, error)
}

// Seal turns e into the record with the given seq after a record whose
// hash is prevHash ("" means GenesisHash): it checks the action, fills
// what is missing (At = now, Actor = ActorAnonymous, Outcome =
// OutcomeSuccess), normalizes every field as the canonical encoding needs,
// and computes the hash. Stores call it inside their append transaction
// and store the record's fields as they are, detail as DetailJSON.
func Seal(e Event, seq int64, prevHash string) (Record, error) {
	if !slices.Contains(Actions, e.Action) {
		return Record{}, fmt.Errorf("audit: unknown action %q", e.Action)
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if e.Actor == "" {
		e.Actor = ActorAnonymous
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
	}
	for _, f := range []*string{&e.OrgID, &e.Actor, &e.Target, &e.Outcome, &e.RemoteAddr, &e.RequestID} {
		*f = cleanString(*f)
	}
	detail, err := normalizeDetail(e.Detail)
	if err != nil {
		return Record{}, err
	}
	e.Detail = detail
	if prevHash == "" {
		prevHash = GenesisHash
	}
	r := Record{Seq: seq, Event: e, PrevHash: prevHash}
	if r.Hash, err = ComputeHash(r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// cleanString makes s valid UTF-8 without NUL, at most MaxFieldBytes long.
func cleanString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= MaxFieldBytes {
		return s
	}
	n := MaxFieldBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// normalizeDetail round-trips d through JSON, so that it holds only JSON
// values (numbers as json.Number) and encodes the same way every time. An
// empty detail is nil.
func normalizeDetail(d map[string]any) (map[string]any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	b, err := marshal(d)
	if err != nil {
		return nil, fmt.Errorf("audit: encode detail: %w", err)
	}
	if len(b) > maxDetailBytes {
		return map[string]any{"truncated": true, "bytes": json.Number(fmt.Sprint(len(b)))}, nil
	}
	return ParseDetail(string(b))
}

// DetailJSON is the canonical text of a record's detail ("{}" when empty),
// as stores keep it.
func DetailJSON(d map[string]any) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	b, err := marshal(d)
	if err != nil {
		return "", fmt.Errorf("audit: encode detail: %w", err)
	}
	return string(b), nil
}

// ParseDetail reads a stored detail; "{}" and "" are nil.
func ParseDetail(s string) (map[string]any, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var d map[string]any
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("audit: decode detail: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("audit: decode detail: data after the object")
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

// StoredDetail reads a detail as a store kept it. Text that is not a JSON
// object (which Seal never writes) comes back as {"unreadable": text}: the
// record then fails Verify instead of stopping it.
func StoredDetail(s string) map[string]any {
	d, err := ParseDetail(s)
	if err != nil {
		return map[string]any{"unreadable": s}
	}
	return d
}

// canonicalRecord has the fields of the canonical encoding in key order.
type canonicalRecord struct {
	Action     string         `json:"action"`
	Actor      string         `json:"actor"`
	At         string         `json:"at"`
	Detail     map[string]any `json:"detail"`
	OrgID      string         `json:"org_id"`
	Outcome    string         `json:"outcome"`
	PrevHash   string         `json:"prev_hash"`
	RemoteAddr string         `json:"remote_addr"`
	RequestID  string         `json:"request_id"`
	Seq        int64          `json:"seq"`
	Target     string         `json:"target"`
}

// Canonical is the encoding of r that its Hash covers (see the package
// documentation). r.Hash itself is not part of it.
func Canonical(r Record) ([]byte, error) {
	d := r.Detail
	if d == nil {
		d = map[string]any{}
	}
	b, err := marshal(canonicalRecord{
		Action: r.Action, Actor: r.Actor, At: r.At.UTC().Format(time.RFC3339Nano), Detail: d,
		OrgID: r.OrgID, Outcome: r.Outcome, PrevHash: r.PrevHash, RemoteAddr: r.RemoteAddr,
		RequestID: r.RequestID, Seq: r.Seq, Target: r.Target,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: canonical encoding of record %d: %w", r.Seq, err)
	}
	return b, nil
}

// ComputeHash is the hex SHA-256 of Canonical(r).
func ComputeHash(r Record) (string, error) {
	b, err := Canonical(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// marshal encodes v without HTML escaping and without the trailing newline.
// Map keys come out sorted.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
