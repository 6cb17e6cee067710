package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/codingbrain/codingbrain/internal/audit"
)

var _ audit.Store = (*Store)(nil)

const auditColumns = `seq, at, org_id, actor, action, target, outcome, remote_addr, request_id, detail, prev_hash, hash`

// AppendAudit appends e to the audit chain. The writer connection's
// transactions begin IMMEDIATE, so reading the last record and inserting
// the next happen under SQLite's one write lock: appends from every process
// on the file form one linear chain.
func (s *Store) AppendAudit(ctx context.Context, e audit.Event) (audit.Record, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return audit.Record{}, fmt.Errorf("append audit: %w", err)
	}
	defer tx.Rollback()
	var (
		last     int64
		prevHash string
	)
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&last, &prevHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return audit.Record{}, fmt.Errorf("append audit: %w", err)
	}
	r, err := audit.Seal(e, last+1, prevHash)
	if err != nil {
		return audit.Record{}, err
	}
	detail, err := audit.DetailJSON(r.Detail)
	if err != nil {
		return audit.Record{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Seq, formatTime(r.At), r.OrgID, r.Actor, r.Action, r.Target, r.Outcome, r.RemoteAddr, r.RequestID,
		detail, r.PrevHash, r.Hash); err != nil {
		return audit.Record{}, fmt.Errorf("append audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return audit.Record{}, fmt.Errorf("append audit: %w", err)
	}
	return r, nil
}

// ListAudit returns one org's audit records after a seq, in seq order.
func (s *Store) ListAudit(ctx context.Context, orgID string, after int64, limit int) ([]audit.Record, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_log
		WHERE org_id = ? AND seq > ? ORDER BY seq LIMIT ?`, orgID, after, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return scanAudit(rows)
}

// AuditChain returns every org's audit records after a seq, in seq order.
func (s *Store) AuditChain(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_log
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("read audit chain: %w", err)
	}
	return scanAudit(rows)
}

func scanAudit(rows *sql.Rows) ([]audit.Record, error) {
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var (
			r          audit.Record
			at, detail string
		)
		if err := rows.Scan(&r.Seq, &at, &r.OrgID, &r.Actor, &r.Action, &r.Target, &r.Outcome,
			&r.RemoteAddr, &r.RequestID, &detail, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		// A value that does not parse (written behind the store's back)
		// is returned as something whose hash cannot match, so that
		// Verify reports the record instead of failing to read the chain.
		r.At, _ = parseTime(at)
		r.Detail = audit.StoredDetail(detail)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}
