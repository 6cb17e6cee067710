package postgres

import "context"

// ExecGraphSQL runs stmt on the pool behind the store's back, for the
// graph migration test.
func (s *Store) ExecGraphSQL(ctx context.Context, stmt string, args ...any) error {
	_, err := s.pool.Exec(ctx, stmt, args...)
	return err
}
