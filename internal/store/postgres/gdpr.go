package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
)

var (
	_ gdpr.Store          = (*Store)(nil)
	_ gdpr.RetentionStore = (*Store)(nil)
)

// needleCond is "text contains one of needles" for lower-case needles,
// with parameters from $first on. The text is taken in the database's
// default collation: identifier columns are "C", whose lower() folds ASCII
// only.
func needleCond(text string, needles []string, first int) (string, []any) {
	if len(needles) == 0 {
		return "false", nil
	}
	conds := make([]string, len(needles))
	args := make([]any, len(needles))
	for i, n := range needles {
		conds[i] = `strpos(lower((` + text + `) COLLATE "default"), $` + strconv.Itoa(first+i) + `) > 0`
		args[i] = n
	}
	return "(" + strings.Join(conds, " OR ") + ")", args
}

// memoryText is every text column of a memory the subject may appear in.
const memoryText = `m.content || ' ' || m.entity || ' ' || m.artifact_ref || ' ' || m.app || ' ' || m.access_entity
	|| ' ' || coalesce(m.tags::text, '') || ' ' || coalesce(array_to_string(m.evidence, ' '), '')
	|| ' ' || coalesce(m.metadata::text, '')`

// SubjectRows returns the org's candidate rows for a subject (gdpr.Store).
func (s *Store) SubjectRows(ctx context.Context, orgID, subject string, needles []string) (gdpr.Rows, error) {
	rows, err := subjectRows(ctx, s.pool, orgID, subject, needles)
	return rows, s.dbErr(err)
}

func subjectRows(ctx context.Context, q querier, org, subject string, needles []string) (gdpr.Rows, error) {
	var out gdpr.Rows
	each := func(what, query string, args []any, scan func(pgx.Rows) error) error {
		rows, err := q.Query(ctx, query, args...)
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
	cond, nargs := needleCond(memoryText, needles, 4)
	err := each("memories", `SELECT `+memoryColumns+` FROM memories m
		WHERE m.org_id = $1 AND (m.created_by = $2 OR m.access_entity = $3 OR `+cond+`) ORDER BY m.id`,
		append([]any{org, subject, "user:" + subject}, nargs...), func(r pgx.Rows) error {
			m, err := scanMemory(r)
			out.Memories = append(out.Memories, m)
			return err
		})
	if err != nil {
		return out, err
	}
	cond, nargs = needleCond(`h.actor || ' ' || coalesce(h.before::text, '') || ' ' || coalesce(h.after::text, '')`, needles, 3)
	err = each("history", `SELECT h.id, h.memory_id, h.org_id, h.actor, h.action, h.at, h.before, h.after
		FROM history h WHERE h.org_id = $1 AND (h.actor = $2 OR `+cond+`) ORDER BY h.id`,
		append([]any{org, subject}, nargs...), func(r pgx.Rows) error {
			h, err := scanHistory(r)
			out.History = append(out.History, h)
			return err
		})
	if err != nil {
		return out, err
	}
	cond, nargs = needleCond(`a.actor || ' ' || a.query`, needles, 3)
	err = each("access log", `SELECT a.id, a.memory_id, a.org_id, a.actor, a.app, a.via, a.query, a.at
		FROM access_log a WHERE a.org_id = $1 AND (a.actor = $2 OR `+cond+`) ORDER BY a.id`,
		append([]any{org, subject}, nargs...), func(r pgx.Rows) error {
			var a gdpr.AccessRow
			err := r.Scan(&a.ID, &a.MemoryID, &a.OrgID, &a.Actor, &a.App, &a.Via, &a.Query, &a.At)
			a.At = a.At.UTC()
			out.AccessLog = append(out.AccessLog, a)
			return err
		})
	if err != nil {
		return out, err
	}
	err = each("api keys", `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE org_id = $1 AND (subject = $2 OR created_by = $2) ORDER BY created_at, id`,
		[]any{org, subject}, func(r pgx.Rows) error {
			k, err := scanAPIKey(r)
			out.APIKeys = append(out.APIKeys, k)
			return err
		})
	if err != nil {
		return out, err
	}
	err = each("memory links", `SELECT src_id, dst_id, type, created_by, created_at FROM memory_links
		WHERE org_id = $1 AND created_by = $2 ORDER BY src_id, type, dst_id`,
		[]any{org, subject}, func(r pgx.Rows) error {
			var l memory.MemoryLink
			err := r.Scan(&l.From, &l.To, &l.Type, &l.CreatedBy, &l.CreatedAt)
			l.CreatedAt = l.CreatedAt.UTC()
			out.Links = append(out.Links, l)
			return err
		})
	if err != nil {
		return out, err
	}
	cond, nargs = needleCond(`e.name`, needles, 2)
	err = each("entities", `SELECT e.id, e.name FROM entities e WHERE e.org_id = $1 AND `+cond+` ORDER BY e.id`,
		append([]any{org}, nargs...), func(r pgx.Rows) error {
			var e gdpr.Entity
			err := r.Scan(&e.ID, &e.Name)
			out.Entities = append(out.Entities, e)
			return err
		})
	return out, err
}

// EraseSubject reads the subject's rows and applies decide's plan in one
// transaction (gdpr.Store). The memories of the org are locked against
// writes (SHARE ROW EXCLUSIVE on memories: reads go on) while it runs, so
// that no memory naming the subject commits between the read and the
// erasure; any failure rolls everything back.
func (s *Store) EraseSubject(ctx context.Context, orgID, subject string, needles []string, decide func(gdpr.Rows) (gdpr.Plan, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("erase subject: %w", s.dbErr(err))
	}
	defer tx.Rollback(ctx) // a no-op after Commit
	for _, t := range []string{"memories", "history", "access_log", "api_keys", "memory_links"} {
		if _, err := tx.Exec(ctx, `LOCK TABLE `+t+` IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("erase subject: %w", s.dbErr(err))
		}
	}
	rows, err := subjectRows(ctx, tx, orgID, subject, needles)
	if err != nil {
		return s.dbErr(err)
	}
	p, err := decide(rows)
	if err != nil {
		return err
	}
	if err := applyPlan(ctx, tx, orgID, p); err != nil {
		return fmt.Errorf("erase subject: %w", s.dbErr(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("erase subject: %w", s.dbErr(err))
	}
	return nil
}

func applyPlan(ctx context.Context, tx pgx.Tx, org string, p gdpr.Plan) error {
	exec := func(query string, args ...any) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	}
	if len(p.EraseMemories) > 0 {
		ids := make([]string, len(p.EraseMemories))
		for i, m := range p.EraseMemories {
			if m.OrgID != org {
				return fmt.Errorf("erase memory %s: another org", m.ID)
			}
			ids[i] = m.ID
			args, err := canonical(&m)
			if err != nil {
				return fmt.Errorf("erase memory %s: %w", m.ID, err)
			}
			if err := exec(updateMemory, args...); err != nil {
				return fmt.Errorf("erase memory %s: %w", m.ID, err)
			}
		}
		for _, q := range []string{
			`DELETE FROM history WHERE org_id = $1 AND memory_id = ANY($2)`,
			`DELETE FROM access_log WHERE org_id = $1 AND memory_id = ANY($2)`,
			`DELETE FROM embeddings WHERE org_id = $1 AND memory_id = ANY($2)`,
			`DELETE FROM mentions WHERE org_id = $1 AND memory_id = ANY($2)`,
			`DELETE FROM edges WHERE org_id = $1 AND memory_id = ANY($2)`,
			`DELETE FROM memory_links WHERE org_id = $1 AND (src_id = ANY($2) OR dst_id = ANY($2))`,
		} {
			if err := exec(q, org, ids); err != nil {
				return fmt.Errorf("erase memories: %w", err)
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
		if err := exec(updateMemory, args...); err != nil {
			if isUnique(err) {
				return fmt.Errorf("rewrite memory %s: %w: its pseudonymized content duplicates another live memory in %s", m.ID, memory.ErrConflict, m.AccessEntity)
			}
			return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
		}
		// The stored vector was computed from the old text.
		if err := exec(`DELETE FROM embeddings WHERE org_id = $1 AND memory_id = $2`, org, m.ID); err != nil {
			return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
		}
		if memory.Live(m.State) {
			if err := writeGraph(ctx, tx, m, false); err != nil {
				return fmt.Errorf("rewrite memory %s: %w", m.ID, err)
			}
		}
	}
	if len(p.DeleteHistory) > 0 {
		if err := exec(`DELETE FROM history WHERE org_id = $1 AND id = ANY($2)`, org, p.DeleteHistory); err != nil {
			return fmt.Errorf("delete history: %w", err)
		}
	}
	for _, h := range p.RewriteHistory {
		var before, after []byte
		var err error
		if h.Before != nil {
			if before, err = marshalJSON(h.Before); err != nil {
				return fmt.Errorf("rewrite history %d: %w", h.ID, err)
			}
		}
		if h.After != nil {
			if after, err = marshalJSON(h.After); err != nil {
				return fmt.Errorf("rewrite history %d: %w", h.ID, err)
			}
		}
		if err := exec(`UPDATE history SET actor = $3, before = $4, after = $5 WHERE org_id = $1 AND id = $2`,
			org, h.ID, h.Actor, before, after); err != nil {
			return fmt.Errorf("rewrite history %d: %w", h.ID, err)
		}
	}
	if len(p.DeleteAccessLog) > 0 {
		if err := exec(`DELETE FROM access_log WHERE org_id = $1 AND id = ANY($2)`, org, p.DeleteAccessLog); err != nil {
			return fmt.Errorf("delete access log: %w", err)
		}
	}
	if len(p.DeleteAPIKeys) > 0 {
		if err := exec(`DELETE FROM api_keys WHERE org_id = $1 AND id = ANY($2)`, org, p.DeleteAPIKeys); err != nil {
			return fmt.Errorf("delete api keys: %w", err)
		}
	}
	for _, k := range p.RewriteAPIKeys {
		if err := exec(`UPDATE api_keys SET created_by = $3 WHERE org_id = $1 AND id = $2`, org, k.ID, k.CreatedBy); err != nil {
			return fmt.Errorf("rewrite api key %s: %w", k.ID, err)
		}
	}
	for _, l := range p.RewriteLinks {
		if err := exec(`UPDATE memory_links SET created_by = $5 WHERE org_id = $1 AND src_id = $2 AND type = $3 AND dst_id = $4`,
			org, l.From, l.Type, l.To, l.CreatedBy); err != nil {
			return fmt.Errorf("rewrite memory link: %w", err)
		}
	}
	if len(p.DeleteEntities) > 0 {
		if err := exec(`DELETE FROM entities WHERE org_id = $1 AND id = ANY($2)`, org, p.DeleteEntities); err != nil {
			return fmt.Errorf("delete entities: %w", err)
		}
	}
	return insertErasure(ctx, tx, p.Erasure)
}

func insertErasure(ctx context.Context, tx pgx.Tx, e gdpr.Erasure) error {
	if _, err := tx.Exec(ctx, insertErasureSQL, erasureArgs(e)...); err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	return nil
}

const insertErasureSQL = `INSERT INTO gdpr_erasures (id, org_id, subject_hash, policy, erased_at, receipt_hash, receipt)
	VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`

func erasureArgs(e gdpr.Erasure) []any {
	return []any{e.ID, e.OrgID, e.SubjectHash, string(e.Policy), utc(e.ErasedAt), e.ReceiptHash, string(e.Receipt)}
}

// RecordErasure adds a ledger entry unless its id is there (gdpr.Store).
func (s *Store) RecordErasure(ctx context.Context, e gdpr.Erasure) error {
	if _, err := s.pool.Exec(ctx, insertErasureSQL, erasureArgs(e)...); err != nil {
		return fmt.Errorf("record erasure: %w", s.dbErr(err))
	}
	return nil
}

// Erasures returns the ledger, oldest first (gdpr.Store).
func (s *Store) Erasures(ctx context.Context, orgID string) ([]gdpr.Erasure, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, subject_hash, policy, erased_at, receipt_hash, receipt
		FROM gdpr_erasures WHERE $1 = '' OR org_id = $1 ORDER BY erased_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read erasure ledger: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (gdpr.Erasure, error) {
		var e gdpr.Erasure
		var policy, receipt string
		err := r.Scan(&e.ID, &e.OrgID, &e.SubjectHash, &policy, &e.ErasedAt, &e.ReceiptHash, &receipt)
		e.Policy, e.Receipt, e.ErasedAt = gdpr.SharedPolicy(policy), []byte(receipt), e.ErasedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read erasure ledger: %w", s.dbErr(err))
	}
	if out == nil {
		out = []gdpr.Erasure{}
	}
	return out, nil
}

// SubjectCandidates lists identifiers of the org that may name subjects
// (gdpr.Store).
func (s *Store) SubjectCandidates(ctx context.Context, orgID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT created_by FROM memories WHERE org_id = $1
		UNION SELECT substr(access_entity, 6) FROM memories WHERE org_id = $1 AND access_entity LIKE 'user:%'
		UNION SELECT entity FROM memories WHERE org_id = $1 AND entity <> ''
		UNION SELECT actor FROM history WHERE org_id = $1
		UNION SELECT actor FROM access_log WHERE org_id = $1
		UNION SELECT subject FROM api_keys WHERE org_id = $1
		UNION SELECT created_by FROM api_keys WHERE org_id = $1
		UNION SELECT created_by FROM memory_links WHERE org_id = $1
		UNION SELECT name FROM entities WHERE org_id = $1
		ORDER BY 1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read subject candidates: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read subject candidates: %w", s.dbErr(err))
	}
	return out, nil
}

// RetentionPolicy returns the org's policy, or the zero policy
// (gdpr.RetentionStore).
func (s *Store) RetentionPolicy(ctx context.Context, orgID string) (gdpr.RetentionPolicy, error) {
	p := gdpr.RetentionPolicy{OrgID: orgID}
	err := s.pool.QueryRow(ctx, `SELECT access_log_days, archive_untouched_days, purge_deleted_days, updated_at
		FROM retention_policies WHERE org_id = $1`, orgID).Scan(&p.AccessLogDays, &p.ArchiveUntouchedDays, &p.PurgeDeletedDays, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read retention policy: %w", s.dbErr(err))
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, nil
}

// SetRetentionPolicy stores the org's policy (gdpr.RetentionStore).
func (s *Store) SetRetentionPolicy(ctx context.Context, p gdpr.RetentionPolicy) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO retention_policies (org_id, access_log_days, archive_untouched_days, purge_deleted_days, updated_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET access_log_days = excluded.access_log_days,
		archive_untouched_days = excluded.archive_untouched_days, purge_deleted_days = excluded.purge_deleted_days,
		updated_at = excluded.updated_at`,
		p.OrgID, p.AccessLogDays, p.ArchiveUntouchedDays, p.PurgeDeletedDays, utc(p.UpdatedAt)); err != nil {
		return fmt.Errorf("set retention policy: %w", s.dbErr(err))
	}
	return nil
}

// RetentionPolicies lists every stored policy (gdpr.RetentionStore).
func (s *Store) RetentionPolicies(ctx context.Context) ([]gdpr.RetentionPolicy, error) {
	rows, err := s.pool.Query(ctx, `SELECT org_id, access_log_days, archive_untouched_days, purge_deleted_days, updated_at
		FROM retention_policies ORDER BY org_id`)
	if err != nil {
		return nil, fmt.Errorf("read retention policies: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (gdpr.RetentionPolicy, error) {
		var p gdpr.RetentionPolicy
		err := r.Scan(&p.OrgID, &p.AccessLogDays, &p.ArchiveUntouchedDays, &p.PurgeDeletedDays, &p.UpdatedAt)
		p.UpdatedAt = p.UpdatedAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read retention policies: %w", s.dbErr(err))
	}
	return out, nil
}

// PurgeAccessLog deletes the org's access-log rows before a time
// (gdpr.RetentionStore).
func (s *Store) PurgeAccessLog(ctx context.Context, orgID string, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM access_log WHERE org_id = $1 AND at < $2`, orgID, before)
	if err != nil {
		return 0, fmt.Errorf("purge access log: %w", s.dbErr(err))
	}
	return tag.RowsAffected(), nil
}

// PurgeDeleted removes the org's deleted memories last changed before a
// time, with everything that references them (gdpr.RetentionStore).
func (s *Store) PurgeDeleted(ctx context.Context, orgID string, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM memories WHERE org_id = $1 AND state = 'deleted' AND updated_at < $2`, orgID, before)
	if err != nil {
		return 0, fmt.Errorf("purge deleted memories: %w", s.dbErr(err))
	}
	return tag.RowsAffected(), nil
}

// UntouchedMemories lists live memories of the org last updated before a
// time, oldest first (gdpr.RetentionStore).
func (s *Store) UntouchedMemories(ctx context.Context, orgID string, before time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM memories WHERE org_id = $1 AND state IN ('active', 'paused')
		AND updated_at < $2 ORDER BY updated_at, id LIMIT $3`, orgID, before, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("read untouched memories: %w", s.dbErr(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read untouched memories: %w", s.dbErr(err))
	}
	return ids, nil
}
