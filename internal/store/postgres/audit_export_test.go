package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ExecAuditSQL runs stmt behind the store's back, for the contract suite's
// tamper tests (storetest.AuditTamperer). With bypass it first disables the
// append-only triggers of audit_log and afterwards enables them again, in
// the same transaction, as the table's owner can.
func (s *Store) ExecAuditSQL(ctx context.Context, stmt string, bypass bool) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if bypass {
			if _, err := tx.Exec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return err
		}
		if bypass {
			_, err := tx.Exec(ctx, `ALTER TABLE audit_log ENABLE TRIGGER USER`)
			return err
		}
		return nil
	})
}
