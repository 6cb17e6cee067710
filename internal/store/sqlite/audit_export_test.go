package sqlite

import (
	"context"
	"fmt"
)

// ExecAuditSQL runs stmt behind the store's back, for the contract suite's
// tamper tests (storetest.AuditTamperer). With bypass it first drops the
// append-only triggers of audit_log and afterwards creates them again, in
// the same transaction, as anyone who can write the database file can.
func (s *Store) ExecAuditSQL(ctx context.Context, stmt string, bypass bool) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	type trigger struct{ name, sql string }
	var triggers []trigger
	if bypass {
		rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'audit_log'`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t trigger
			if err := rows.Scan(&t.name, &t.sql); err != nil {
				rows.Close()
				return err
			}
			triggers = append(triggers, t)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(triggers) == 0 {
			return fmt.Errorf("audit_log has no triggers to bypass")
		}
		for _, t := range triggers {
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER "`+t.name+`"`); err != nil {
				return err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return err
	}
	for _, t := range triggers {
		if _, err := tx.ExecContext(ctx, t.sql); err != nil {
			return err
		}
	}
	return tx.Commit()
}
