package sqlite

import "context"

// ExecEmbeddingSQL runs stmt on the writer behind the store's back, for the
// contract suite (storetest.EmbeddingSQLExecer), and returns the rows it
// affected.
func (s *Store) ExecEmbeddingSQL(ctx context.Context, stmt string) (int64, error) {
	res, err := s.w.ExecContext(ctx, stmt)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
