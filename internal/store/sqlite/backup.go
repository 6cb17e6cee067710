package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/codingbrain/codingbrain/internal/backup"

	driver "modernc.org/sqlite"
)

var _ backup.Scratch = (*Store)(nil)

// Kind names the store in backup manifests.
func (s *Store) Kind() string { return "sqlite" }

// LatestSchemaVersion is the highest migration this binary carries.
func (s *Store) LatestSchemaVersion() int { return latestVersion() }

// Snapshot runs fn in one read transaction on a read connection: in WAL
// mode it sees the database as of its first read, for as long as it lasts,
// and blocks no writer. (The WAL cannot be checkpointed past the snapshot
// meanwhile, so it grows while a backup runs.)
func (s *Store) Snapshot(ctx context.Context, fn func(backup.Snapshot) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer tx.Rollback()
	return fn(snapshot{tx: tx, conn: conn})
}

// snapshot is a read transaction and the connection it runs on (for the
// online backup of the same snapshot, WriteNative).
type snapshot struct {
	tx   *sql.Tx
	conn *sql.Conn
}

var _ backup.NativeSnapshot = snapshot{}

// WriteNative copies the database as the snapshot sees it into
// dir/codingbrain.db with SQLite's online backup API, run on the
// snapshot's own connection: the copy is the same point in time as the
// dumped tables, and writers are not blocked.
func (sn snapshot) WriteNative(ctx context.Context, dir string) (string, error) {
	const name = "codingbrain.db"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	dst := (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, name))}).String()
	err := sn.conn.Raw(func(dc any) error {
		bc, ok := dc.(interface {
			NewBackup(string) (*driver.Backup, error)
		})
		if !ok {
			return fmt.Errorf("%w: the driver has no backup API", backup.ErrNoNative)
		}
		b, err := bc.NewBackup(dst)
		if err != nil {
			return err
		}
		// One step copies every page under the snapshot's read lock; in
		// several steps, a write by another connection between them would
		// restart the copy.
		if _, err := b.Step(-1); err != nil {
			_ = b.Finish() // the Step error is the one to report
			return err
		}
		return b.Finish()
	})
	if err != nil {
		return "", fmt.Errorf("online backup: %w", err)
	}
	return name, nil
}

func (sn snapshot) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := sn.tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (sn snapshot) Count(ctx context.Context, table string) (int64, error) {
	if !slices.Contains(backup.Tables, table) {
		return 0, fmt.Errorf("unknown table %q", table)
	}
	var n int64
	err := sn.tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n)
	return n, err
}

// dumpQueries read each table in the order backup.Snapshot requires.
var dumpQueries = map[string]string{
	backup.TableMemories:  `SELECT ` + memoryColumns + `, m.tier = 'cold' FROM memories m ORDER BY m.org_id, m.id`,
	backup.TableHistory:   `SELECT id, memory_id, org_id, actor, action, at, before, after FROM history ORDER BY id`,
	backup.TableAccessLog: `SELECT id, memory_id, org_id, actor, app, via, query, at FROM access_log ORDER BY id`,
	backup.TableLinks: `SELECT s.org_id, s.id, d.id, l.type, l.created_by, l.created_at
		FROM memory_links l JOIN memories s ON s.seq = l.src_seq JOIN memories d ON d.seq = l.dst_seq
		ORDER BY s.org_id, s.id, l.type, d.id`,
	backup.TableAPIKeys: `SELECT ` + apiKeyColumns + ` FROM api_keys ORDER BY id`,
	backup.TableAudit:   `SELECT ` + auditColumns + ` FROM audit_log ORDER BY seq`,
	backup.TableErasures: `SELECT id, org_id, subject_hash, policy, erased_at, receipt_hash, receipt
		FROM gdpr_erasures ORDER BY id`,
	backup.TableRetention: `SELECT org_id, access_log_days, archive_untouched_days, purge_deleted_days, updated_at
		FROM retention_policies ORDER BY org_id`,
}

func (sn snapshot) Dump(ctx context.Context, table string, emit func(any) error) error {
	q, ok := dumpQueries[table]
	if !ok {
		return fmt.Errorf("unknown table %q", table)
	}
	rows, err := sn.tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		row, err := scanDumpRow(table, rows)
		if err != nil {
			return err
		}
		if err := emit(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

func scanDumpRow(table string, rows *sql.Rows) (any, error) {
	switch table {
	case backup.TableMemories:
		var cold bool
		m, err := scanMemory(rows, &cold)
		m.Cold = cold // the tier travels as "cold" (absent when hot)
		return backup.Memory{Memory: m, ContentHash: m.ContentHash, IdempotencyKey: m.IdempotencyKey}, err
	case backup.TableHistory:
		return scanHistory(rows)
	case backup.TableAccessLog:
		var (
			r  backup.AccessLog
			at string
		)
		if err := rows.Scan(&r.ID, &r.MemoryID, &r.OrgID, &r.Actor, &r.App, &r.Via, &r.Query, &at); err != nil {
			return nil, err
		}
		var err error
		r.At, err = parseTime(at)
		return r, err
	case backup.TableLinks:
		var (
			r  backup.Link
			at string
		)
		if err := rows.Scan(&r.OrgID, &r.From, &r.To, &r.Type, &r.CreatedBy, &at); err != nil {
			return nil, err
		}
		var err error
		r.CreatedAt, err = parseTime(at)
		return r, err
	case backup.TableAPIKeys:
		k, err := scanAPIKey(rows)
		return backup.APIKey{APIKey: k, SecretHash: k.SecretHash}, err
	case backup.TableAudit:
		var (
			r  backup.Audit
			at string
		)
		if err := rows.Scan(&r.Seq, &at, &r.OrgID, &r.Actor, &r.Action, &r.Target, &r.Outcome,
			&r.RemoteAddr, &r.RequestID, &r.Detail, &r.PrevHash, &r.Hash); err != nil {
			return nil, err
		}
		var err error
		r.At, err = parseTime(at)
		return r, err
	case backup.TableErasures:
		var (
			r  backup.Erasure
			at string
		)
		if err := rows.Scan(&r.ID, &r.OrgID, &r.SubjectHash, &r.Policy, &at, &r.ReceiptHash, &r.Receipt); err != nil {
			return nil, err
		}
		var err error
		r.ErasedAt, err = parseTime(at)
		return r, err
	case backup.TableRetention:
		var (
			r  backup.RetentionPolicy
			at string
		)
		if err := rows.Scan(&r.OrgID, &r.AccessLogDays, &r.ArchiveUntouchedDays, &r.PurgeDeletedDays, &at); err != nil {
			return nil, err
		}
		var err error
		r.UpdatedAt, err = parseTime(at)
		return r, err
	}
	return nil, fmt.Errorf("unknown table %q", table)
}

// Empty reports whether no restored table, and no embedding, holds a row.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any int
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM memories) OR EXISTS (SELECT 1 FROM api_keys)
		OR EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM embeddings)
		OR EXISTS (SELECT 1 FROM gdpr_erasures) OR EXISTS (SELECT 1 FROM retention_policies)`).Scan(&any)
	if err != nil {
		return false, fmt.Errorf("check the store is empty: %w", err)
	}
	return any == 0, nil
}

// Load runs fn in one write transaction. Replacing the data of an SQLite
// store is not done in place (the audit log refuses deletes): restore into
// a new file and move the old one aside instead.
//
// It loads in bulk: the transaction first drops the triggers on memories
// (lexical index, change feed) and the non-unique indexes of the loaded
// tables, keeping their SQL as sqlite_master has it, and after fn
// recreates them from that SQL, rebuilds the lexical index in one pass and
// numbers the change feed in rowid order as migration 0002 does. Unique
// indexes stay, so duplicates are refused as rows arrive. At 100,000
// memories this is several times faster than maintaining the index row by
// row, and the result is the same.
func (s *Store) Load(ctx context.Context, replace bool, fn func(backup.Tx) error) error {
	if replace {
		return errors.New("load: an SQLite store is replaced by restoring into a new file, not in place")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer tx.Rollback()
	var empty int
	if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM memories)`).Scan(&empty); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	var deferred []string
	if empty == 1 {
		if deferred, err = dropForBulk(ctx, tx); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	if err := fn(loadTx{tx}); err != nil {
		return err
	}
	if len(deferred) > 0 {
		for _, q := range []string{
			`UPDATE memories SET change_seq = seq`,
			`UPDATE change_counter SET seq = (SELECT coalesce(max(change_seq), 0) FROM memories) WHERE id = 1`,
			`INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("load: %w", err)
			}
		}
		for _, q := range deferred {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("load: recreate %q: %w", q, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("load: commit: %w", err)
	}
	return nil
}

// dropForBulk drops the triggers on memories and the non-unique indexes of
// the tables a backup loads, and returns the statements that recreate them.
func dropForBulk(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT m.type, m.name, m.sql FROM sqlite_master m
		WHERE (m.type = 'trigger' AND m.tbl_name = 'memories')
		   OR (m.type = 'index' AND m.sql IS NOT NULL AND m.tbl_name IN ('memories', 'history', 'access_log')
		       AND NOT EXISTS (SELECT 1 FROM pragma_index_list(m.tbl_name) l WHERE l.name = m.name AND l."unique"))
		ORDER BY m.type, m.name`)
	if err != nil {
		return nil, err
	}
	type object struct{ kind, name, sql string }
	var objs []object
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.kind, &o.name, &o.sql); err != nil {
			rows.Close()
			return nil, err
		}
		objs = append(objs, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var recreate []string
	for _, o := range objs {
		if _, err := tx.ExecContext(ctx, `DROP `+strings.ToUpper(o.kind)+` "`+o.name+`"`); err != nil {
			return nil, err
		}
		recreate = append(recreate, o.sql)
	}
	return recreate, nil
}

type loadTx struct{ tx *sql.Tx }

// loadStatements insert one row of each table, every column given.
var loadStatements = map[string]string{
	backup.TableMemories:  loadMemory,
	backup.TableHistory:   `INSERT INTO history (id, memory_id, org_id, actor, action, at, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	backup.TableAccessLog: `INSERT INTO access_log (id, memory_id, org_id, actor, app, via, query, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	backup.TableLinks: `INSERT INTO memory_links (src_seq, dst_seq, type, created_by, created_at)
		SELECT s.seq, d.seq, ?, ?, ? FROM memories s, memories d
		WHERE s.org_id = ? AND s.id = ? AND d.org_id = s.org_id AND d.id = ?`,
	backup.TableAPIKeys: `INSERT INTO api_keys (` + apiKeyColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	backup.TableAudit:   `INSERT INTO audit_log (` + auditColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	backup.TableErasures: `INSERT INTO gdpr_erasures (id, org_id, subject_hash, policy, erased_at, receipt_hash, receipt)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
	backup.TableRetention: `INSERT INTO retention_policies (org_id, access_log_days, archive_untouched_days, purge_deleted_days, updated_at)
		VALUES (?, ?, ?, ?, ?)`,
}

func (l loadTx) Put(ctx context.Context, table string, rows []any) error {
	q, ok := loadStatements[table]
	if !ok {
		return fmt.Errorf("unknown table %q", table)
	}
	stmt, err := l.tx.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, row := range rows {
		args, err := loadArgs(table, row)
		if err != nil {
			return err
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("%s row %s: %w", table, rowName(row), err)
		}
		if n, err := res.RowsAffected(); err == nil && n != 1 {
			return fmt.Errorf("%s row %s references a memory that is not in the backup", table, rowName(row))
		}
	}
	return nil
}

func loadArgs(table string, row any) ([]any, error) {
	switch r := row.(type) {
	case backup.Memory:
		m := r.Memory
		m.ContentHash, m.IdempotencyKey = r.ContentHash, r.IdempotencyKey
		args, err := canonical(&m)
		return append(args, tierOf(m)), err
	case backup.History:
		var before, after any
		for _, f := range []struct {
			src any
			dst *any
			ok  bool
		}{{r.Before, &before, r.Before != nil}, {r.After, &after, r.After != nil}} {
			if !f.ok {
				continue
			}
			s, err := marshalJSON(f.src)
			if err != nil {
				return nil, err
			}
			*f.dst = s
		}
		return []any{r.ID, r.MemoryID, r.OrgID, r.Actor, r.Action, formatTime(r.At), before, after}, nil
	case backup.AccessLog:
		return []any{r.ID, r.MemoryID, r.OrgID, r.Actor, r.App, r.Via, r.Query, formatTime(r.At)}, nil
	case backup.Link:
		return []any{r.Type, r.CreatedBy, formatTime(r.CreatedAt), r.OrgID, r.From, r.To}, nil
	case backup.APIKey:
		scopes, err := json.Marshal(nonNilStrings(r.Scopes))
		if err != nil {
			return nil, err
		}
		grants, err := json.Marshal(nonNilStrings(r.Grants))
		if err != nil {
			return nil, err
		}
		return []any{r.ID, r.OrgID, r.Subject, string(scopes), string(grants), r.App, r.SecretHash,
			formatTime(r.CreatedAt), r.CreatedBy, nullTime(r.ExpiresAt), nullTime(r.RevokedAt), nullTime(r.LastUsedAt)}, nil
	case backup.Audit:
		return []any{r.Seq, formatTime(r.At), r.OrgID, r.Actor, r.Action, r.Target, r.Outcome, r.RemoteAddr,
			r.RequestID, r.Detail, r.PrevHash, r.Hash}, nil
	case backup.Erasure:
		return []any{r.ID, r.OrgID, r.SubjectHash, r.Policy, formatTime(r.ErasedAt), r.ReceiptHash, r.Receipt}, nil
	case backup.RetentionPolicy:
		return []any{r.OrgID, r.AccessLogDays, r.ArchiveUntouchedDays, r.PurgeDeletedDays, formatTime(r.UpdatedAt)}, nil
	}
	return nil, fmt.Errorf("a %T is not a row of %s", row, table)
}

// rowName identifies a row in an error message (never its content).
func rowName(row any) string {
	switch r := row.(type) {
	case backup.Memory:
		return r.OrgID + "/" + r.ID
	case backup.History:
		return fmt.Sprintf("%d (memory %s)", r.ID, r.MemoryID)
	case backup.AccessLog:
		return fmt.Sprintf("%d (memory %s)", r.ID, r.MemoryID)
	case backup.Link:
		return r.OrgID + "/" + r.From + "->" + r.To
	case backup.APIKey:
		return r.ID
	case backup.Audit:
		return fmt.Sprintf("seq %d", r.Seq)
	case backup.Erasure:
		return r.ID
	case backup.RetentionPolicy:
		return r.OrgID
	}
	return "?"
}

// ForeignKeyProblems runs PRAGMA foreign_key_check and describes at most
// 20 violations.
func (s *Store) ForeignKeyProblems(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			table, parent string
			rowid         sql.NullInt64
			fkid          int
		)
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return nil, err
		}
		if len(out) < 20 {
			out = append(out, fmt.Sprintf("%s row %d references a missing %s row", table, rowid.Int64, parent))
		}
	}
	return out, rows.Err()
}

// loadMemory is insertMemory with the tier.
const loadMemory = `INSERT INTO memories (id, org_id, access_entity, state, category, scope, app,
	entity, artifact_ref, artifact_type, source, created_by, created_at, updated_at,
	valid_from, valid_to, content_hash, idempotency_key, tags, evidence, metadata, content, acl, tier)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
