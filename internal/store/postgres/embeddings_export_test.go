package postgres

import "context"

// ExecEmbeddingSQL runs stmt behind the store's back, for the contract
// suite (storetest.EmbeddingSQLExecer), and returns the rows it affected.
func (s *Store) ExecEmbeddingSQL(ctx context.Context, stmt string) (int64, error) {
	tag, err := s.pool.Exec(ctx, stmt)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
