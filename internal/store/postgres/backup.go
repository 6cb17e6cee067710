package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/codingbrain/codingbrain/internal/backup"
)

var _ backup.Scratch = (*Store)(nil)

// Kind names the store in backup manifests.
func (s *Store) Kind() string { return "postgres" }

// LatestSchemaVersion is the highest migration this binary carries.
func (s *Store) LatestSchemaVersion() int {
	v, _ := latestVersion(s.migrations)
	return v
}

// Snapshot runs fn in a REPEATABLE READ READ ONLY transaction: one
// snapshot of the whole database, taken at its first statement, that
// blocks no writer.
func (s *Store) Snapshot(ctx context.Context, fn func(backup.Snapshot) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("snapshot: %w", s.dbErr(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(snapshot{tx: tx, connString: s.pool.Config().ConnString()})
}

// snapshot is a REPEATABLE READ READ ONLY transaction and how to reach its
// database again (for pg_dump of the same snapshot, WriteNative).
type snapshot struct {
	tx         pgx.Tx
	connString string
}

var _ backup.NativeSnapshot = snapshot{}

// passwordField finds the password of a key=value connection string.
var passwordField = regexp.MustCompile(`(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// WriteNative runs pg_dump -Fc on the snapshot this transaction exported
// (pg_export_snapshot), so the dump is the same point in time as the
// dumped tables, into dir/codingbrain.dump. The password goes to pg_dump in
// PGPASSWORD, not on its command line. Without pg_dump on PATH it returns
// ErrNoNative; pg_dump must be as new as the server.
func (sn snapshot) WriteNative(ctx context.Context, dir string) (string, error) {
	const name = "codingbrain.dump"
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		return "", fmt.Errorf("%w: pg_dump is not installed", backup.ErrNoNative)
	}
	var id string
	if err := sn.tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&id); err != nil {
		return "", fmt.Errorf("export the snapshot: %w", err)
	}
	cfg, err := pgconn.ParseConfig(sn.connString)
	if err != nil {
		return "", err
	}
	conn := sn.connString
	if u, err := url.Parse(conn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		conn = u.String()
	} else {
		conn = passwordField.ReplaceAllString(conn, "")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "--format=custom", "--no-owner", "--snapshot="+id,
		"--file="+filepath.Join(dir, name), "--dbname="+conn)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(out))
		if cfg.Password != "" {
			msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
		}
		return "", fmt.Errorf("pg_dump: %w: %s", err, msg)
	}
	return name, nil
}

func (sn snapshot) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := sn.tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (sn snapshot) Count(ctx context.Context, table string) (int64, error) {
	if !slices.Contains(backup.Tables, table) {
		return 0, fmt.Errorf("unknown table %q", table)
	}
	var n int64
	err := sn.tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n)
	return n, err
}

// dumpQueries read each table in the order backup.Snapshot requires; every
// key column is COLLATE "C", byte order, as SQLite sorts.
var dumpQueries = map[string]string{
	backup.TableMemories:  `SELECT ` + memoryColumns + `, m.tier = 'cold' FROM memories m ORDER BY m.org_id, m.id`,
	backup.TableHistory:   `SELECT id, memory_id, org_id, actor, action, at, before, after FROM history ORDER BY id`,
	backup.TableAccessLog: `SELECT id, memory_id, org_id, actor, app, via, query, at FROM access_log ORDER BY id`,
	backup.TableLinks: `SELECT org_id, src_id, dst_id, type, created_by, created_at FROM memory_links
		ORDER BY org_id, src_id, type, dst_id`,
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
	rows, err := sn.tx.Query(ctx, q)
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

func scanDumpRow(table string, rows pgx.Rows) (any, error) {
	switch table {
	case backup.TableMemories:
		var cold bool
		m, err := scanMemory(rows, &cold)
		m.Cold = cold // the tier travels as "cold" (absent when hot)
		return backup.Memory{Memory: m, ContentHash: m.ContentHash, IdempotencyKey: m.IdempotencyKey}, err
	case backup.TableHistory:
		return scanHistory(rows)
	case backup.TableAccessLog:
		var r backup.AccessLog
		err := rows.Scan(&r.ID, &r.MemoryID, &r.OrgID, &r.Actor, &r.App, &r.Via, &r.Query, &r.At)
		r.At = r.At.UTC()
		return r, err
	case backup.TableLinks:
		var r backup.Link
		err := rows.Scan(&r.OrgID, &r.From, &r.To, &r.Type, &r.CreatedBy, &r.CreatedAt)
		r.CreatedAt = r.CreatedAt.UTC()
		return r, err
	case backup.TableAPIKeys:
		k, err := scanAPIKey(rows)
		return backup.APIKey{APIKey: k, SecretHash: k.SecretHash}, err
	case backup.TableAudit:
		var r backup.Audit
		err := rows.Scan(&r.Seq, &r.At, &r.OrgID, &r.Actor, &r.Action, &r.Target, &r.Outcome,
			&r.RemoteAddr, &r.RequestID, &r.Detail, &r.PrevHash, &r.Hash)
		r.At = r.At.UTC()
		return r, err
	case backup.TableErasures:
		var r backup.Erasure
		err := rows.Scan(&r.ID, &r.OrgID, &r.SubjectHash, &r.Policy, &r.ErasedAt, &r.ReceiptHash, &r.Receipt)
		r.ErasedAt = r.ErasedAt.UTC()
		return r, err
	case backup.TableRetention:
		var r backup.RetentionPolicy
		err := rows.Scan(&r.OrgID, &r.AccessLogDays, &r.ArchiveUntouchedDays, &r.PurgeDeletedDays, &r.UpdatedAt)
		r.UpdatedAt = r.UpdatedAt.UTC()
		return r, err
	}
	return nil, fmt.Errorf("unknown table %q", table)
}

// Empty reports whether no restored table, and no embedding, holds a row.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM memories) OR EXISTS (SELECT 1 FROM api_keys)
		OR EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM embeddings)
		OR EXISTS (SELECT 1 FROM gdpr_erasures) OR EXISTS (SELECT 1 FROM retention_policies)`).Scan(&any)
	if err != nil {
		return false, fmt.Errorf("check the store is empty: %w", s.dbErr(err))
	}
	return !any, nil
}

// replaceStatements empty every table a restore writes or derives, in the
// load's transaction. The audit log's append-only triggers are disabled
// for the statement and enabled again before the load (this needs the
// table's owner, the role migrations run as); the server's log records the
// ALTER TABLE.
const replaceStatements = `ALTER TABLE audit_log DISABLE TRIGGER USER;
TRUNCATE memories, history, access_log, embeddings, entities, mentions, edges, memory_links, api_keys, audit_log,
	gdpr_erasures, retention_policies;
ALTER TABLE audit_log ENABLE TRIGGER USER`

// Load runs fn in one transaction (after emptying every table when
// replace), then moves the id sequences past the ids it loaded. Into an
// empty store it loads in bulk: the non-unique indexes are dropped first
// and built again after the rows are in (dropForBulk), in the same
// transaction.
func (s *Store) Load(ctx context.Context, replace bool, fn func(backup.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if replace {
			if _, err := tx.Exec(ctx, replaceStatements); err != nil {
				return fmt.Errorf("empty the store: %w", err)
			}
		}
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM memories)`).Scan(&empty); err != nil {
			return err
		}
		var recreate []string
		if empty {
			var err error
			if recreate, err = dropForBulk(ctx, tx); err != nil {
				return fmt.Errorf("drop indexes for the load: %w", err)
			}
		}
		if err := fn(loadTx{tx}); err != nil {
			return err
		}
		for _, q := range recreate {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("recreate %q: %w", q, err)
			}
		}
		for _, t := range []string{"history", "access_log"} {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), coalesce(max(id), 0) + 1, false) FROM `+t); err != nil {
				return fmt.Errorf("advance the id sequence of %s: %w", t, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load: %w", s.dbErr(err))
	}
	return nil
}

// dropForBulk drops the non-unique indexes of the tables a restore fills
// (on memories: the GIN indexes of the lexical index, the tags and the
// entity trigrams, which COPY would otherwise update row by row) in the
// load's transaction and returns their definitions, from pg_indexes, to
// run after the load. Unique indexes and primary keys stay, so duplicates
// and references are checked as rows arrive.
func dropForBulk(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		JOIN pg_class c ON c.relname = i.indexname
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
		JOIN pg_index x ON x.indexrelid = c.oid
		WHERE i.schemaname = current_schema() AND i.tablename IN ('memories', 'history', 'access_log')
		  AND NOT x.indisunique AND NOT x.indisprimary
		ORDER BY i.indexname`)
	if err != nil {
		return nil, err
	}
	type index struct{ name, def string }
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var i index
		err := r.Scan(&i.name, &i.def)
		return i, err
	})
	if err != nil {
		return nil, err
	}
	var recreate []string
	for _, i := range idx {
		if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{i.name}.Sanitize()); err != nil {
			return nil, err
		}
		recreate = append(recreate, i.def)
	}
	return recreate, nil
}

type loadTx struct{ tx pgx.Tx }

// loadColumns are the columns COPY writes for each table.
var loadColumns = map[string][]string{
	backup.TableMemories:  append(strings.Fields(strings.NewReplacer("m.", "", ",", " ").Replace(memoryColumns)), "tier"),
	backup.TableHistory:   {"id", "memory_id", "org_id", "actor", "action", "at", "before", "after"},
	backup.TableAccessLog: {"id", "memory_id", "org_id", "actor", "app", "via", "query", "at"},
	backup.TableLinks:     {"org_id", "src_id", "dst_id", "type", "created_by", "created_at"},
	backup.TableAPIKeys:   strings.Fields(strings.ReplaceAll(apiKeyColumns, ",", " ")),
	backup.TableAudit:     strings.Fields(strings.ReplaceAll(auditColumns, ",", " ")),
	backup.TableErasures:  {"id", "org_id", "subject_hash", "policy", "erased_at", "receipt_hash", "receipt"},
	backup.TableRetention: {"org_id", "access_log_days", "archive_untouched_days", "purge_deleted_days", "updated_at"},
}

// Put copies rows into table with COPY (row triggers run, so memories get
// their change-feed stamps; constraints are checked).
func (l loadTx) Put(ctx context.Context, table string, rows []any) error {
	cols, ok := loadColumns[table]
	if !ok {
		return fmt.Errorf("unknown table %q", table)
	}
	values := make([][]any, 0, len(rows))
	for _, row := range rows {
		args, err := loadArgs(table, row)
		if err != nil {
			return err
		}
		values = append(values, args)
	}
	if _, err := l.tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(values)); err != nil {
		return err
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
		var before, after []byte
		var err error
		if r.Before != nil {
			if before, err = marshalJSON(r.Before); err != nil {
				return nil, err
			}
		}
		if r.After != nil {
			if after, err = marshalJSON(r.After); err != nil {
				return nil, err
			}
		}
		return []any{r.ID, r.MemoryID, r.OrgID, r.Actor, r.Action, utc(r.At), before, after}, nil
	case backup.AccessLog:
		return []any{r.ID, r.MemoryID, r.OrgID, r.Actor, r.App, r.Via, r.Query, utc(r.At)}, nil
	case backup.Link:
		return []any{r.OrgID, r.From, r.To, r.Type, r.CreatedBy, utc(r.CreatedAt)}, nil
	case backup.APIKey:
		return []any{r.ID, r.OrgID, r.Subject, nonNilStrings(r.Scopes), nonNilStrings(r.Grants), r.App, r.SecretHash,
			utc(r.CreatedAt), r.CreatedBy, utcPtr(r.ExpiresAt), utcPtr(r.RevokedAt), utcPtr(r.LastUsedAt)}, nil
	case backup.Audit:
		return []any{r.Seq, utc(r.At), r.OrgID, r.Actor, r.Action, r.Target, r.Outcome, r.RemoteAddr,
			r.RequestID, r.Detail, r.PrevHash, r.Hash}, nil
	case backup.Erasure:
		return []any{r.ID, r.OrgID, r.SubjectHash, r.Policy, utc(r.ErasedAt), r.ReceiptHash, r.Receipt}, nil
	case backup.RetentionPolicy:
		return []any{r.OrgID, int32(r.AccessLogDays), int32(r.ArchiveUntouchedDays), int32(r.PurgeDeletedDays), utc(r.UpdatedAt)}, nil
	}
	return nil, fmt.Errorf("a %T is not a row of %s", row, table)
}

// ForeignKeyProblems is always empty: PostgreSQL checks every foreign key
// as rows are written, so a restore with a broken reference fails to load.
func (s *Store) ForeignKeyProblems(context.Context) ([]string, error) { return nil, nil }
