package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
)

var (
	_ gdpr.Store          = (*Store)(nil)
	_ gdpr.RetentionStore = (*Store)(nil)
)

// rowsQueryer is the read pool or a transaction.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// needleCond is "text contains one of needles", for lower-case needles.
// SQLite's lower() folds ASCII only: the gdpr matcher, which decides, folds
// all of Unicode, so a subject written in non-ASCII capitals in one place
// and lower case in another is missed here (docs/privacy.md).
func needleCond(text string, needles []string) (string, []any) {
	if len(needles) == 0 {
		return "0", nil
	}
	conds := make([]string, len(needles))
	args := make([]any, len(needles))
	for i, n := range needles {
		conds[i] = "instr(lower(" + text + "), ?) > 0"
		args[i] = n
	}
	return "(" + strings.Join(conds, " OR ") + ")", args
}

// memoryText is every text column of a memory the subject may appear in.
const memoryText = `m.content || ' ' || m.entity || ' ' || m.artifact_ref || ' ' || m.app || ' ' || m.access_entity
	|| ' ' || coalesce(m.tags, '') || ' ' || coalesce(m.evidence, '') || ' ' || coalesce(m.metadata, '')`

// SubjectRows returns the org's candidate rows for a subject (gdpr.Store).
func (s *Store) SubjectRows(ctx context.Context, orgID, subject string, needles []string) (gdpr.Rows, error) {
	return subjectRows(ctx, s.r, orgID, subject, needles)
}

func subjectRows(ctx context.Context, q rowsQueryer, org, subject string, needles []string) (gdpr.Rows, error) {
	var out gdpr.Rows
	each := func(what, query string, args []any, scan func(*sql.Rows) error) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read subject %s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("read subject %s: %w", what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read subject %s: %w", what, err)
		}
		return nil
	}
	cond, nargs := needleCond(memoryText, needles)
	err := each("memories", `SELECT `+memoryColumns+` FROM memories m
		WHERE m.org_id = ? AND (m.created_by = ? OR m.access_entity = ? OR `+cond+`) ORDER BY m.id`,
		append([]any{org, subject, "user:" + subject}, nargs...), func(r *sql.Rows) error {
			m, err := scanMemory(r)
			out.Memories = append(out.Memories, m)
			return err
		})
	if err != nil {
		return out, err
	}
	cond, nargs = needleCond(`h.actor || ' ' || coalesce(h.before, '') || ' ' || coalesce(h.after, '')`, needles)
	err = each("history", `SELECT h.id, h.memory_id, h.org_id, h.actor, h.action, h.at, h.before, h.after
		FROM history h WHERE h.org_id = ? AND (h.actor = ? OR `+cond+`) ORDER BY h.id`,
		append([]any{org, subject}, nargs...), func(r *sql.Rows) error {
			h, err := scanHistory(r)
			out.History = append(out.History, h)
			return err
		})
	if err != nil {
		return out, err
	}
	cond, nargs = needleCond(`a.actor || ' ' || a.query`, needles)
	err = each("access log", `SELECT a.id, a.memory_id, a.org_id, a.actor, a.app, a.via, a.query, a.at
		FROM access_log a WHERE a.org_id = ? AND (a.actor = ? OR `+cond+`) ORDER BY a.id`,
		append([]any{org, subject}, nargs...), func(r *sql.Rows) error {
			var a gdpr.AccessRow
			var at string
			if err := r.Scan(&a.ID, &a.MemoryID, &a.OrgID, &a.Actor, &a.App, &a.Via, &a.Query, &at); err != nil {
				return err
			}
			var err error
			a.At, err = parseTime(at)
			out.AccessLog = append(out.AccessLog, a)
			return err
		})
	if err != nil {
		return out, err
	}
	err = each("api keys", `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE org_id = ? AND (subject = ? OR created_by = ?) ORDER BY created_at, id`,
		[]any{org, subject, subject}, func(r *sql.Rows) error {
			k, err := scanAPIKey(r)
			out.APIKeys = append(out.APIKeys, k)
			return err
		})
	if err != nil {
		return out, err
	}
	err = each("memory links", `SELECT src.id, dst.id, l.type, l.created_by, l.created_at
		FROM memory_links l JOIN memories src ON src.seq = l.src_seq JOIN memories dst ON dst.seq = l.dst_seq
		WHERE src.org_id = ? AND l.created_by = ? ORDER BY src.id, l.type, dst.id`,
		[]any{org, subject}, func(r *sql.Rows) error {
			var l memory.MemoryLink
			var at string
			if err := r.Scan(&l.From, &l.To, &l.Type, &l.CreatedBy, &at); err != nil {
				return err
			}
			var err error
			l.CreatedAt, err = parseTime(at)
			out.Links = append(out.Links, l)
			return err
		})
	if err != nil {
		return out, err
	}
	cond, nargs = needleCond(`e.name`, needles)
	err = each("entities", `SELECT e.id, e.name FROM entities e WHERE e.org_id = ? AND `+cond+` ORDER BY e.id`,
		append([]any{org}, nargs...), func(r *sql.Rows) error {
			var e gdpr.Entity
			err := r.Scan(&e.ID, &e.Name)
			out.Entities = append(out.Entities, e)
			return err
		})
	return out, err
}

// EraseSubject reads the subject's rows and applies decide's plan in one
// IMMEDIATE transaction (gdpr.Store): nothing else writes in between, and
// any failure leaves everything as it was.
func (s *Store) EraseSubject(ctx context.Context, orgID, subject string, needles []string, decide func(gdpr.Rows) (gdpr.Plan, error)) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("erase subject: %w", err)
	}
	defer tx.Rollback()
	rows, err := subjectRows(ctx, tx, orgID, subject, needles)
	if err != nil {
		return err
	}
	p, err := decide(rows)
	if err != nil {
		return err
	}
	if err := s.applyPlan(ctx, tx, orgID, p); err != nil {
		return fmt.Errorf("erase subject: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("erase subject: %w", err)
	}
	return nil
}

func (s *Store) applyPlan(ctx context.Context, tx *sql.Tx, org string, p gdpr.Plan) error {
	exec := func(query string, args ...any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	for _, m := range p.EraseMemories {
		if m.OrgID != org {
			return fmt.Errorf("erase memory %s: another org", m.ID)
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM memories WHERE org_id = ? AND id = ?`, org, m.ID).Scan(&seq); err != nil {
			return fmt.Errorf("erase memory %s: %w", m.ID, err)
		}
		args, err := canonical(&m)
		if err != nil {
			return fmt.Errorf("erase memory %s: %w", m.ID, err)
		}
		if err := exec(updateMemory, append(args[2:], m.ID)...); err != nil {
			return fmt.Errorf("erase memory %s: %w", m.ID, err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM history WHERE memory_id = ?`, []any{m.ID}},
			{`DELETE FROM access_log WHERE memory_id = ?`, []any{m.ID}},
			{`DELETE FROM embeddings WHERE org_id = ? AND memory_id = ?`, []any{org, m.ID}},
			{`DELETE FROM mentions WHERE memory_seq = ?`, []any{seq}},
			{`DELETE FROM edges WHERE memory_seq = ?`, []any{seq}},
			{`DELETE FROM memory_links WHERE src_seq = ? OR dst_seq = ?`, []any{seq, seq}},
		} {
			if err := exec(q.sql, q.args...); err != nil {
				return fmt.Errorf("erase memory %s: %w", m.ID, err)
			}
		}
	}
	for _, m := range p.RewriteMemories {
		if m.OrgID != org {
			return fmt.Errorf("rewrite memory %s: another org", m.ID)
		}
		args, err := canonical(&m)
		if err != nil {
			return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
		}
		if err := exec(updateMemory, append(args[2:], m.ID)...); err != nil {
			if isUnique(err) {
				return fmt.Errorf("rewrite memory %s: %w: its pseudonymized content duplicates another live memory in %s", m.ID, memory.ErrConflict, m.AccessEntity)
			}
			return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
		}
		// The stored vector was computed from the old text.
		if err := exec(`DELETE FROM embeddings WHERE org_id = ? AND memory_id = ?`, org, m.ID); err != nil {
			return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
		}
		if memory.Live(m.State) {
			var seq int64
			if err := tx.QueryRowContext(ctx, `SELECT seq FROM memories WHERE id = ?`, m.ID).Scan(&seq); err != nil {
				return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
			}
			if err := s.writeGraph(ctx, tx, m, seq, false); err != nil {
				return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
			}
		}
	}
	for _, id := range p.DeleteHistory {
		if err := exec(`DELETE FROM history WHERE org_id = ? AND id = ?`, org, id); err != nil {
			return fmt.Errorf("delete history %d: %w", id, err)
		}
	}
	for _, h := range p.RewriteHistory {
		before, after, err := historyJSON(h)
		if err != nil {
			return err
		}
		if err := exec(`UPDATE history SET actor = ?, before = ?, after = ? WHERE org_id = ? AND id = ?`,
			h.Actor, before, after, org, h.ID); err != nil {
			return fmt.Errorf("rewrite history %d: %w", h.ID, err)
		}
	}
	for _, id := range p.DeleteAccessLog {
		if err := exec(`DELETE FROM access_log WHERE org_id = ? AND id = ?`, org, id); err != nil {
			return fmt.Errorf("delete access log %d: %w", id, err)
		}
	}
	for _, id := range p.DeleteAPIKeys {
		if err := exec(`DELETE FROM api_keys WHERE org_id = ? AND id = ?`, org, id); err != nil {
			return fmt.Errorf("delete api key %s: %w", id, err)
		}
	}
	for _, k := range p.RewriteAPIKeys {
		if err := exec(`UPDATE api_keys SET created_by = ? WHERE org_id = ? AND id = ?`, k.CreatedBy, org, k.ID); err != nil {
			return fmt.Errorf("rewrite api key %s: %w", k.ID, err)
		}
	}
	for _, l := range p.RewriteLinks {
		if err := exec(`UPDATE memory_links SET created_by = ?
			WHERE src_seq = (SELECT seq FROM memories WHERE org_id = ? AND id = ?) AND type = ?
			AND dst_seq = (SELECT seq FROM memories WHERE org_id = ? AND id = ?)`,
			l.CreatedBy, org, l.From, l.Type, org, l.To); err != nil {
			return fmt.Errorf("rewrite memory link: %w", err)
		}
	}
	for _, id := range p.DeleteEntities {
		if err := exec(`DELETE FROM entities WHERE org_id = ? AND id = ?`, org, id); err != nil {
			return fmt.Errorf("delete entity %d: %w", id, err)
		}
	}
	return insertErasure(ctx, tx, p.Erasure)
}

func historyJSON(h memory.HistoryEntry) (before, after any, err error) {
	if h.Before != nil {
		if before, err = marshalJSON(h.Before); err != nil {
			return nil, nil, fmt.Errorf("rewrite history %d: %w", h.ID, err)
		}
	}
	if h.After != nil {
		if after, err = marshalJSON(h.After); err != nil {
			return nil, nil, fmt.Errorf("rewrite history %d: %w", h.ID, err)
		}
	}
	return before, after, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertErasure(ctx context.Context, x execer, e gdpr.Erasure) error {
	if _, err := x.ExecContext(ctx, `INSERT INTO gdpr_erasures (id, org_id, subject_hash, policy, erased_at, receipt_hash, receipt)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.OrgID, e.SubjectHash, string(e.Policy), formatTime(e.ErasedAt), e.ReceiptHash, string(e.Receipt)); err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	return nil
}

// RecordErasure adds a ledger entry unless its id is there (gdpr.Store).
func (s *Store) RecordErasure(ctx context.Context, e gdpr.Erasure) error {
	return insertErasure(ctx, s.w, e)
}

// Erasures returns the ledger, oldest first (gdpr.Store).
func (s *Store) Erasures(ctx context.Context, orgID string) ([]gdpr.Erasure, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, org_id, subject_hash, policy, erased_at, receipt_hash, receipt
		FROM gdpr_erasures WHERE ? = '' OR org_id = ? ORDER BY erased_at, id`, orgID, orgID)
	if err != nil {
		return nil, fmt.Errorf("read erasure ledger: %w", err)
	}
	defer rows.Close()
	out := []gdpr.Erasure{}
	for rows.Next() {
		var e gdpr.Erasure
		var policy, at, receipt string
		if err := rows.Scan(&e.ID, &e.OrgID, &e.SubjectHash, &policy, &at, &e.ReceiptHash, &receipt); err != nil {
			return nil, fmt.Errorf("read erasure ledger: %w", err)
		}
		e.Policy, e.Receipt = gdpr.SharedPolicy(policy), []byte(receipt)
		if e.ErasedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read erasure ledger: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read erasure ledger: %w", err)
	}
	return out, nil
}

// SubjectCandidates lists identifiers of the org that may name subjects
// (gdpr.Store).
func (s *Store) SubjectCandidates(ctx context.Context, orgID string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT created_by FROM memories WHERE org_id = ?1
		UNION SELECT substr(access_entity, 6) FROM memories WHERE org_id = ?1 AND access_entity LIKE 'user:%'
		UNION SELECT entity FROM memories WHERE org_id = ?1 AND entity <> ''
		UNION SELECT actor FROM history WHERE org_id = ?1
		UNION SELECT actor FROM access_log WHERE org_id = ?1
		UNION SELECT subject FROM api_keys WHERE org_id = ?1
		UNION SELECT created_by FROM api_keys WHERE org_id = ?1
		UNION SELECT l.created_by FROM memory_links l JOIN memories m ON m.seq = l.src_seq WHERE m.org_id = ?1
		UNION SELECT name FROM entities WHERE org_id = ?1
		ORDER BY 1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read subject candidates: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("read subject candidates: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RetentionPolicy returns the org's policy, or the zero policy
// (gdpr.RetentionStore).
func (s *Store) RetentionPolicy(ctx context.Context, orgID string) (gdpr.RetentionPolicy, error) {
	p := gdpr.RetentionPolicy{OrgID: orgID}
	var at string
	err := s.r.QueryRowContext(ctx, `SELECT access_log_days, archive_untouched_days, purge_deleted_days, updated_at
		FROM retention_policies WHERE org_id = ?`, orgID).Scan(&p.AccessLogDays, &p.ArchiveUntouchedDays, &p.PurgeDeletedDays, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read retention policy: %w", err)
	}
	if p.UpdatedAt, err = parseTime(at); err != nil {
		return p, fmt.Errorf("read retention policy: %w", err)
	}
	return p, nil
}

// SetRetentionPolicy stores the org's policy (gdpr.RetentionStore).
func (s *Store) SetRetentionPolicy(ctx context.Context, p gdpr.RetentionPolicy) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO retention_policies (org_id, access_log_days, archive_untouched_days, purge_deleted_days, updated_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id) DO UPDATE SET access_log_days = excluded.access_log_days,
		archive_untouched_days = excluded.archive_untouched_days, purge_deleted_days = excluded.purge_deleted_days,
		updated_at = excluded.updated_at`,
		p.OrgID, p.AccessLogDays, p.ArchiveUntouchedDays, p.PurgeDeletedDays, formatTime(p.UpdatedAt)); err != nil {
		return fmt.Errorf("set retention policy: %w", err)
	}
	return nil
}

// RetentionPolicies lists every stored policy (gdpr.RetentionStore).
func (s *Store) RetentionPolicies(ctx context.Context) ([]gdpr.RetentionPolicy, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT org_id, access_log_days, archive_untouched_days, purge_deleted_days, updated_at
		FROM retention_policies ORDER BY org_id`)
	if err != nil {
		return nil, fmt.Errorf("read retention policies: %w", err)
	}
	defer rows.Close()
	var out []gdpr.RetentionPolicy
	for rows.Next() {
		var p gdpr.RetentionPolicy
		var at string
		if err := rows.Scan(&p.OrgID, &p.AccessLogDays, &p.ArchiveUntouchedDays, &p.PurgeDeletedDays, &at); err != nil {
			return nil, fmt.Errorf("read retention policies: %w", err)
		}
		if p.UpdatedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read retention policies: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PurgeAccessLog deletes the org's access-log rows before a time
// (gdpr.RetentionStore).
func (s *Store) PurgeAccessLog(ctx context.Context, orgID string, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM access_log WHERE org_id = ? AND at < ?`, orgID, formatTime(before))
	if err != nil {
		return 0, fmt.Errorf("purge access log: %w", err)
	}
	return res.RowsAffected()
}

// PurgeDeleted removes the org's deleted memories last changed before a
// time, with everything that references them (gdpr.RetentionStore).
func (s *Store) PurgeDeleted(ctx context.Context, orgID string, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM memories WHERE org_id = ? AND state = 'deleted' AND updated_at < ?`, orgID, formatTime(before))
	if err != nil {
		return 0, fmt.Errorf("purge deleted memories: %w", err)
	}
	return res.RowsAffected()
}

// UntouchedMemories lists live memories of the org last updated before a
// time, oldest first (gdpr.RetentionStore).
func (s *Store) UntouchedMemories(ctx context.Context, orgID string, before time.Time, limit int) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM memories WHERE org_id = ? AND state IN ('active', 'paused')
		AND updated_at < ? ORDER BY updated_at, id LIMIT ?`, orgID, formatTime(before), max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("read untouched memories: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read untouched memories: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
