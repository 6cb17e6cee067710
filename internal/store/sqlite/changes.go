package sqlite

import (
	"context"
	"fmt"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.ChangeFeed = (*Store)(nil)

// Changes returns committed changes to memories after the cursor, by
// change_seq, at most limit, and the next cursor. See memory.ChangeFeed.
//
// SQLite serializes write transactions across every process on the file,
// and change_seq is taken from a counter inside the writing transaction
// (migration 0002), so numbers are committed in order: once a read has seen
// number n, no commit can later appear below it. change_seq > cursor is
// therefore complete, and the cursor's Horizon is not used (it stays 0).
// Reads go through the read-only pool, so they see commits of other
// processes as soon as they are made.
func (s *Store) Changes(ctx context.Context, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error) {
	limit = max(limit, 1)
	rows, err := s.query(ctx, `SELECT change_seq, id, org_id, state, updated_at, tier = 'cold' FROM memories
		WHERE change_seq > ? ORDER BY change_seq LIMIT ?`, after.Seq, limit)
	if err != nil {
		return nil, after, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	changes := []memory.Change{}
	for rows.Next() {
		var c memory.Change
		var state, updatedAt string
		if err := rows.Scan(&c.Seq, &c.ID, &c.OrgID, &state, &updatedAt, &c.Cold); err != nil {
			return nil, after, fmt.Errorf("read changes: %w", err)
		}
		c.State = memory.State(state)
		if c.UpdatedAt, err = parseTime(updatedAt); err != nil {
			return nil, after, fmt.Errorf("read changes: %w", err)
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("read changes: %w", err)
	}
	if len(changes) == 0 {
		return changes, after, nil
	}
	return changes, memory.ChangeCursor{Seq: changes[len(changes)-1].Seq}, nil
}
