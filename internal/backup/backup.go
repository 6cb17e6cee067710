// Package backup takes consistent backups of the system of record, restores
// them into either store, and verifies them by restoring them.
//
// # The archive
//
// One backup is one file: a tar stream, gzip-compressed, optionally
// encrypted with age to one or more X25519 recipients. It holds
// manifest.json first, then one JSONL file per table under data/. The
// manifest carries the archive format version, the schema version and kind
// of the store it was taken from, the binary's version, the creation time,
// and for each table its row count and the SHA-256 of its JSONL file, plus
// the SHA-256 and size of every file. Create dumps the tables into a
// scratch directory inside one snapshot (the snapshot stays open only for
// that), then compresses them into the archive; readers hash each file as
// it streams past and compare with the manifest.
//
// The JSONL is the portable, canonical encoding of each row (Rows): the
// same logical data gives the same bytes whichever store it was read from
// — rows in primary-key order, fields in a fixed order, object keys
// sorted, times in UTC with microseconds (what PostgreSQL keeps). A table's
// checksum is the SHA-256 of its JSONL, so checksums taken on SQLite and
// on PostgreSQL compare directly, and a restore is checked by dumping the
// restored store again and comparing with the manifest.
//
// # What is copied and what is rebuilt
//
// Copied: memories, their history, the access log, memory links (made by
// Relate, not derivable), API keys (hashes only), the audit log with its
// hash chain byte for byte, the erasure ledger and retention policies. Rebuilt after a restore, because they are
// functions of the copied rows and copying them would only add size and a
// second source of truth: the lexical index (triggers / a generated
// column), the change feed numbering (a restored store is a new timeline;
// every replica reloads at start), the entity graph (entities, mentions and
// stated edges are derived from live memories: RebuildGraph) and
// embeddings with the in-process vector index (recomputed by the
// embedding backfill with the embedder configured at restore time, which
// also makes a restore the natural moment to change models). Embeddings
// are the largest rows (1.5 KiB at 384 dimensions, more than the content
// of most memories); leaving them out keeps archives small and backups
// within their time budget, at the price of re-embedding on restore (see
// docs/runbooks/backup-restore.md for the figures). Short-lived state in
// Valkey is not backed up: it expires on its own.
//
// # Restore and the erasure hook
//
// Restore reads the whole archive first — decrypting, decompressing and
// checking every checksum against the manifest — into a scratch directory,
// and touches the target store only when all of it matched. It then loads
// every table in one transaction, rebuilds the graph, checks the result
// (row counts and checksums of what was loaded, foreign keys, the audit
// chain) and reports counts.
//
// RestoreOptions.Filter is the one hook for erasure: every row read from
// the archive passes through Filter.Keep before it is loaded, so a subject
// erased after the backup was taken (named by the erasure ledger kept
// beside the backups, internal/gdpr) never comes back, not even for the
// length of a transaction. Rows that reference a dropped memory (history,
// access log, links) are dropped with it. The post-restore checks then
// compare the store with the rows that were kept, and the report counts
// what the filter removed per table.
package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// FormatVersion is the version of the archive layout and row encoding this
// binary writes and reads.
const FormatVersion = 1

// Tables, in load order (referenced tables first).
const (
	TableMemories  = "memories"
	TableHistory   = "history"
	TableAccessLog = "access_log"
	TableLinks     = "memory_links"
	TableAPIKeys   = "api_keys"
	TableAudit     = "audit_log"
	TableErasures  = "gdpr_erasures"
	TableRetention = "retention_policies"
)

// Tables lists every table in an archive, in load order.
var Tables = []string{TableMemories, TableHistory, TableAccessLog, TableLinks, TableAPIKeys, TableAudit,
	TableErasures, TableRetention}

// Memory is a row of memories: the memory with its content hash and
// idempotency key, which the domain type keeps out of JSON.
type Memory struct {
	memory.Memory
	ContentHash    string `json:"content_hash"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// History is a row of history.
type History = memory.HistoryEntry

// AccessLog is a row of the access log.
type AccessLog struct {
	ID int64 `json:"id"`
	memory.AccessEntry
}

// Link is a row of memory_links.
type Link struct {
	OrgID string `json:"org_id"`
	memory.MemoryLink
}

// APIKey is a row of api_keys: the key with its secret hash (never the
// secret).
type APIKey struct {
	auth.APIKey
	SecretHash []byte `json:"secret_hash"`
}

// Audit is a row of the audit log with detail exactly as stored (the text
// its hash covers).
type Audit struct {
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	OrgID      string    `json:"org_id"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Outcome    string    `json:"outcome"`
	RemoteAddr string    `json:"remote_addr"`
	RequestID  string    `json:"request_id"`
	Detail     string    `json:"detail"`
	PrevHash   string    `json:"prev_hash"`
	Hash       string    `json:"hash"`
}

// Erasure is a row of the erasure ledger (no personal data: the subject
// is a hash).
type Erasure struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	SubjectHash string    `json:"subject_hash"`
	Policy      string    `json:"policy"`
	ErasedAt    time.Time `json:"erased_at"`
	ReceiptHash string    `json:"receipt_hash"`
	Receipt     string    `json:"receipt"`
}

// RetentionPolicy is a row of retention_policies.
type RetentionPolicy struct {
	OrgID                string    `json:"org_id"`
	AccessLogDays        int       `json:"access_log_days"`
	ArchiveUntouchedDays int       `json:"archive_untouched_days"`
	PurgeDeletedDays     int       `json:"purge_deleted_days"`
	UpdatedAt            time.Time `json:"updated_at"`
}

// Record converts a to the audit package's record (Detail decoded).
func (a Audit) Record() (audit.Record, error) {
	r := audit.Record{Seq: a.Seq, PrevHash: a.PrevHash, Hash: a.Hash}
	r.At, r.OrgID, r.Actor, r.Action, r.Target = a.At, a.OrgID, a.Actor, a.Action, a.Target
	r.Outcome, r.RemoteAddr, r.RequestID = a.Outcome, a.RemoteAddr, a.RequestID
	if a.Detail != "" && a.Detail != "{}" {
		if err := json.Unmarshal([]byte(a.Detail), &r.Detail); err != nil {
			return r, fmt.Errorf("decode audit detail of seq %d: %w", a.Seq, err)
		}
	}
	return r, nil
}

// Source is a store that can be backed up.
type Source interface {
	// Kind names the store: "sqlite" or "postgres".
	Kind() string
	// Snapshot calls fn with one consistent read-only view of the whole
	// store (SQLite: one read transaction; PostgreSQL: a REPEATABLE READ
	// READ ONLY transaction). Writers are not blocked.
	Snapshot(ctx context.Context, fn func(Snapshot) error) error
}

// Snapshot is a consistent view of a store, valid during Source.Snapshot.
type Snapshot interface {
	// SchemaVersion is the highest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	// Count returns the number of rows of table.
	Count(ctx context.Context, table string) (int64, error)
	// Dump calls emit with every row of table (a Memory, History,
	// AccessLog, Link, APIKey, Audit, Erasure or RetentionPolicy, by
	// table) in primary-key order: memories and links by (org_id, id…),
	// retention policies by org_id, the others by their id or seq.
	Dump(ctx context.Context, table string, emit func(row any) error) error
}

// NativeSnapshot is a Snapshot that can also write the store's own copy of
// the same point in time (SQLite: the online backup API through the
// snapshot's connection; PostgreSQL: pg_dump -Fc with the snapshot's
// exported id). The copy restores only into its own engine, with its own
// tools; Restore and Verify use the portable tables.
type NativeSnapshot interface {
	// WriteNative writes the copy into dir and returns its file name. It
	// returns an error wrapping ErrNoNative when the tool it needs is not
	// installed.
	WriteNative(ctx context.Context, dir string) (string, error)
}

// ErrNoNative: the store's native copy cannot be made here.
var ErrNoNative = errors.New("backup: no native copy")

// Loader is a store that a backup can be restored into.
type Loader interface {
	Source
	// Empty reports whether the store holds no rows in any table that a
	// backup restores (and no embeddings).
	Empty(ctx context.Context) (bool, error)
	// Load runs fn in one write transaction and commits when it returns
	// nil. With replace, every restored table (and the derived ones) is
	// emptied first, in the same transaction; a store that cannot do that
	// reports an error.
	Load(ctx context.Context, replace bool, fn func(Tx) error) error
	// RebuildGraph derives the entity graph from the live memories again.
	RebuildGraph(ctx context.Context) error
	// ForeignKeyProblems lists rows whose references do not resolve.
	ForeignKeyProblems(ctx context.Context) ([]string, error)
	// LatestSchemaVersion is the highest migration this binary carries.
	LatestSchemaVersion() int
}

// Tx writes rows inside Loader.Load.
type Tx interface {
	// Put inserts rows of table (all of the table's row type) exactly as
	// given, ids and times included.
	Put(ctx context.Context, table string, rows []any) error
}

// Errors callers branch on.
var (
	// ErrNotEmpty: the target store holds data and replace was not asked.
	ErrNotEmpty = errors.New("backup: the target store is not empty")
	// ErrNoBackup: the destination holds no backup.
	ErrNoBackup = errors.New("backup: no backup found")
)

// canonicalTime is the form every time takes in the archive.
func canonicalTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func canonicalTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := canonicalTime(*t)
	return &c
}

func canonicalMemory(m *memory.Memory) {
	m.CreatedAt, m.UpdatedAt = canonicalTime(m.CreatedAt), canonicalTime(m.UpdatedAt)
	m.ValidFrom, m.ValidTo = canonicalTimePtr(m.ValidFrom), canonicalTimePtr(m.ValidTo)
	if len(m.Evidence) == 0 {
		m.Evidence = nil
	}
	if len(m.Tags) == 0 {
		m.Tags = nil
	}
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
}

// Canonical returns row in its canonical form (times in UTC microseconds,
// empty collections nil), checking that its type fits table.
func Canonical(table string, row any) (any, error) {
	switch r := row.(type) {
	case Memory:
		if table == TableMemories {
			canonicalMemory(&r.Memory)
			r.Memory.ContentHash, r.Memory.IdempotencyKey = "", ""
			return r, nil
		}
	case History:
		if table == TableHistory {
			r.At = canonicalTime(r.At)
			if r.Before != nil {
				b := *r.Before
				canonicalMemory(&b)
				b.ContentHash, b.IdempotencyKey = "", ""
				r.Before = &b
			}
			if r.After != nil {
				a := *r.After
				canonicalMemory(&a)
				a.ContentHash, a.IdempotencyKey = "", ""
				r.After = &a
			}
			return r, nil
		}
	case AccessLog:
		if table == TableAccessLog {
			r.At = canonicalTime(r.At)
			return r, nil
		}
	case Link:
		if table == TableLinks {
			r.CreatedAt = canonicalTime(r.CreatedAt)
			return r, nil
		}
	case APIKey:
		if table == TableAPIKeys {
			r.CreatedAt = canonicalTime(r.CreatedAt)
			r.ExpiresAt, r.RevokedAt, r.LastUsedAt = canonicalTimePtr(r.ExpiresAt), canonicalTimePtr(r.RevokedAt), canonicalTimePtr(r.LastUsedAt)
			r.APIKey.SecretHash = nil
			if len(r.Grants) == 0 {
				r.Grants = nil
			}
			return r, nil
		}
	case Audit:
		if table == TableAudit {
			r.At = canonicalTime(r.At)
			return r, nil
		}
	case Erasure:
		if table == TableErasures {
			r.ErasedAt = canonicalTime(r.ErasedAt)
			return r, nil
		}
	case RetentionPolicy:
		if table == TableRetention {
			r.UpdatedAt = canonicalTime(r.UpdatedAt)
			return r, nil
		}
	}
	return nil, fmt.Errorf("backup: a %T is not a row of %s", row, table)
}

// encodeRow appends the canonical JSON line of row to buf.
func encodeRow(buf *bytes.Buffer, table string, row any) error {
	c, err := Canonical(table, row)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("encode %s row: %w", table, err)
	}
	return nil
}

// decodeRow decodes one JSONL line of table.
func decodeRow(table string, line []byte) (any, error) {
	var (
		row any
		err error
	)
	switch table {
	case TableMemories:
		var r Memory
		err = json.Unmarshal(line, &r)
		r.Memory.ContentHash, r.Memory.IdempotencyKey = r.ContentHash, r.IdempotencyKey
		row = r
	case TableHistory:
		var r History
		err = json.Unmarshal(line, &r)
		row = r
	case TableAccessLog:
		var r AccessLog
		err = json.Unmarshal(line, &r)
		row = r
	case TableLinks:
		var r Link
		err = json.Unmarshal(line, &r)
		row = r
	case TableAPIKeys:
		var r APIKey
		err = json.Unmarshal(line, &r)
		r.APIKey.SecretHash = r.SecretHash
		row = r
	case TableAudit:
		var r Audit
		err = json.Unmarshal(line, &r)
		row = r
	case TableErasures:
		var r Erasure
		err = json.Unmarshal(line, &r)
		row = r
	case TableRetention:
		var r RetentionPolicy
		err = json.Unmarshal(line, &r)
		row = r
	default:
		return nil, fmt.Errorf("unknown table %q", table)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s row: %w", table, err)
	}
	return row, nil
}

// tableSum accumulates a table's canonical encoding: its row count and
// SHA-256.
type tableSum struct {
	rows int64
	h    hash.Hash
	buf  bytes.Buffer
}

func newTableSum() *tableSum { return &tableSum{h: sha256.New()} }

// add encodes row, hashes it and returns the line (valid until the next add).
func (t *tableSum) add(table string, row any) ([]byte, error) {
	t.buf.Reset()
	if err := encodeRow(&t.buf, table, row); err != nil {
		return nil, err
	}
	t.h.Write(t.buf.Bytes())
	t.rows++
	return t.buf.Bytes(), nil
}

func (t *tableSum) sum() TableInfo {
	return TableInfo{Rows: t.rows, SHA256: hex.EncodeToString(t.h.Sum(nil))}
}

// Checksums dumps every table of snap and returns its row count and
// checksum, as a manifest records them.
func Checksums(ctx context.Context, snap Snapshot) (map[string]TableInfo, error) {
	out := map[string]TableInfo{}
	for _, table := range Tables {
		ts := newTableSum()
		if err := snap.Dump(ctx, table, func(row any) error { _, err := ts.add(table, row); return err }); err != nil {
			return nil, fmt.Errorf("dump %s: %w", table, err)
		}
		out[table] = ts.sum()
	}
	return out, nil
}
