package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.Tiers = (*Store)(nil)

// moveDeadCold moves up to $1 archived or deleted hot memories to the cold
// tier.
const moveDeadCold = `UPDATE memories m SET tier = 'cold' FROM (
	SELECT org_id, id FROM memories WHERE tier = 'hot' AND state IN ('archived', 'deleted')
	LIMIT $1 FOR UPDATE SKIP LOCKED) c
	WHERE m.org_id = c.org_id AND m.id = c.id`

// moveUntouchedCold moves up to $2 live hot memories written before $1 and
// not in the access log since then to the cold tier. The partial index
// memories_hot_updated finds the candidates; rows being written by others
// are left for the next run (SKIP LOCKED).
const moveUntouchedCold = `UPDATE memories m SET tier = 'cold' FROM (
	SELECT h.org_id, h.id FROM memories h
	WHERE h.tier = 'hot' AND h.updated_at < $1 AND h.state IN ('active', 'paused')
	AND NOT EXISTS (SELECT 1 FROM access_log l WHERE l.org_id = h.org_id AND l.memory_id = h.id AND l.at >= $1)
	LIMIT $2 FOR UPDATE SKIP LOCKED) c
	WHERE m.org_id = c.org_id AND m.id = c.id`

// MoveCold moves up to limit hot memories to the cold tier, in one
// transaction: archived and deleted ones first, then live ones untouched
// since untouchedSince. See memory.Tiers.
func (s *Store) MoveCold(ctx context.Context, untouchedSince time.Time, limit int) (int, error) {
	limit = max(limit, 1)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", s.dbErr(err))
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, moveDeadCold, limit)
	if err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", s.dbErr(err))
	}
	moved := int(tag.RowsAffected())
	if moved < limit {
		tag, err := tx.Exec(ctx, moveUntouchedCold, untouchedSince, limit-moved)
		if err != nil {
			return 0, fmt.Errorf("move memories to the cold tier: %w", s.dbErr(err))
		}
		moved += int(tag.RowsAffected())
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", s.dbErr(err))
	}
	return moved, nil
}

// Warm moves the visible cold memories among ids back to the hot tier.
func (s *Store) Warm(ctx context.Context, a memory.Access, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var w where
	w.add("m.id = ANY(" + w.arg(ids) + ")")
	w.access(a)
	w.add("m.tier = 'cold'")
	tag, err := s.pool.Exec(ctx, `UPDATE memories m SET tier = 'hot' WHERE `+w.String(), w.args...)
	if err != nil {
		return 0, fmt.Errorf("move memories to the hot tier: %w", s.dbErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// TierCounts counts the memories of every org in each tier.
func (s *Store) TierCounts(ctx context.Context) (hot, cold int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tier = 'hot'), count(*) FILTER (WHERE tier = 'cold') FROM memories`).Scan(&hot, &cold)
	if err != nil {
		return 0, 0, fmt.Errorf("count memories per tier: %w", s.dbErr(err))
	}
	return hot, cold, nil
}

// tierOf is the tier column's value for m.
func tierOf(m memory.Memory) string {
	if m.Cold {
		return memory.TierCold
	}
	return memory.TierHot
}
