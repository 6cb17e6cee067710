package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/audit"
)

var _ audit.Store = (*Store)(nil)

// auditLockKey is the pg_advisory_xact_lock key that serializes audit
// appends on every replica. ("cb-aud" in ASCII.)
const auditLockKey int64 = 0x63622d617564

const auditColumns = `seq, at, org_id, actor, action, target, outcome, remote_addr, request_id, detail, prev_hash, hash`

// AppendAudit appends e to the audit chain. One transaction takes a
// transaction-scoped advisory lock, reads the last record and inserts the
// next: appends from every connection and replica queue on the lock, and
// each sees the record committed before it (under READ COMMITTED every
// statement takes a new snapshot, and the previous holder committed before
// the lock was released). The lock is released at commit or rollback.
func (s *Store) AppendAudit(ctx context.Context, e audit.Event) (audit.Record, error) {
	var r audit.Record
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
			return err
		}
		var (
			last     int64
			prevHash string
		)
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&last, &prevHash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if r, err = audit.Seal(e, last+1, prevHash); err != nil {
			return err
		}
		detail, err := audit.DetailJSON(r.Detail)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			r.Seq, r.At, r.OrgID, r.Actor, r.Action, r.Target, r.Outcome, r.RemoteAddr, r.RequestID,
			detail, r.PrevHash, r.Hash)
		return err
	})
	if err != nil {
		return audit.Record{}, fmt.Errorf("append audit: %w", s.dbErr(err))
	}
	return r, nil
}

// ListAudit returns one org's audit records after a seq, in seq order.
func (s *Store) ListAudit(ctx context.Context, orgID string, after int64, limit int) ([]audit.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log
		WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, orgID, after, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", s.dbErr(err))
	}
	recs, err := scanAudit(rows)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", s.dbErr(err))
	}
	return recs, nil
}

// AuditChain returns every org's audit records after a seq, in seq order.
func (s *Store) AuditChain(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("read audit chain: %w", s.dbErr(err))
	}
	recs, err := scanAudit(rows)
	if err != nil {
		return nil, fmt.Errorf("read audit chain: %w", s.dbErr(err))
	}
	return recs, nil
}

func scanAudit(rows pgx.Rows) ([]audit.Record, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Record, error) {
		var (
			r      audit.Record
			at     time.Time
			detail string
		)
		if err := row.Scan(&r.Seq, &at, &r.OrgID, &r.Actor, &r.Action, &r.Target, &r.Outcome,
			&r.RemoteAddr, &r.RequestID, &detail, &r.PrevHash, &r.Hash); err != nil {
			return r, err
		}
		r.At = at.UTC()
		// Text that is not a JSON object (written behind the store's back)
		// comes back so that Verify reports the record.
		r.Detail = audit.StoredDetail(detail)
		return r, nil
	})
}
