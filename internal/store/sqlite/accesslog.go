package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// accessLogBatch is how many rows one INSERT statement writes.
const accessLogBatch = 100

// LogAccess appends access-log rows in one transaction.
func (s *Store) LogAccess(ctx context.Context, entries []memory.AccessEntry) error {
	if len(entries) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("log access: %w", err)
	}
	defer tx.Rollback()
	for start := 0; start < len(entries); start += accessLogBatch {
		batch := entries[start:min(start+accessLogBatch, len(entries))]
		values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", len(batch)), ", ")
		args := make([]any, 0, 7*len(batch))
		for _, e := range batch {
			args = append(args, e.MemoryID, e.OrgID, e.Actor, e.App, e.Via, e.Query, formatTime(e.At))
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO access_log (memory_id, org_id, actor, app, via, query, at) VALUES `+values, args...); err != nil {
			return fmt.Errorf("log access: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("log access: %w", err)
	}
	return nil
}

// CountAccessLog counts the access-log rows of an org. The contract suite
// uses it to check that reads are logged.
func (s *Store) CountAccessLog(ctx context.Context, orgID string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM access_log WHERE org_id = ?`, orgID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count access log: %w", err)
	}
	return n, nil
}
