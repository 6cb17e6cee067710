package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.Tiers = (*Store)(nil)

// moveDeadCold moves up to ? archived or deleted hot memories to the cold
// tier.
const moveDeadCold = `UPDATE memories SET tier = 'cold' WHERE seq IN (
	SELECT seq FROM memories WHERE tier = 'hot' AND state IN ('archived', 'deleted') LIMIT ?)`

// moveUntouchedCold moves up to ? live hot memories written before the
// time and not in the access log since then to the cold tier. The partial
// index memories_hot_updated finds the candidates.
const moveUntouchedCold = `UPDATE memories SET tier = 'cold' WHERE seq IN (
	SELECT m.seq FROM memories m INDEXED BY memories_hot_updated
	WHERE m.tier = 'hot' AND m.updated_at < ?1 AND m.state IN ('active', 'paused')
	AND NOT EXISTS (SELECT 1 FROM access_log l WHERE l.memory_id = m.id AND l.at >= ?1)
	LIMIT ?2)`

// MoveCold moves up to limit hot memories to the cold tier, in one
// transaction: archived and deleted ones first, then live ones untouched
// since untouchedSince. See memory.Tiers.
func (s *Store) MoveCold(ctx context.Context, untouchedSince time.Time, limit int) (int, error) {
	limit = max(limit, 1)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, moveDeadCold, limit)
	if err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", err)
	}
	dead, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", err)
	}
	moved := int(dead)
	if moved < limit {
		res, err := tx.ExecContext(ctx, moveUntouchedCold, formatTime(untouchedSince), limit-moved)
		if err != nil {
			return 0, fmt.Errorf("move memories to the cold tier: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("move memories to the cold tier: %w", err)
		}
		moved += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("move memories to the cold tier: %w", err)
	}
	return moved, nil
}

// Warm moves the visible cold memories among ids back to the hot tier.
func (s *Store) Warm(ctx context.Context, a memory.Access, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	p, err := json.Marshal(ids)
	if err != nil {
		return 0, fmt.Errorf("move memories to the hot tier: %w", err)
	}
	var w where
	w.add("m.id IN (SELECT value FROM json_each(?))", string(p))
	w.access(a)
	w.add("m.tier = 'cold'")
	res, err := s.w.ExecContext(ctx, `UPDATE memories AS m SET tier = 'hot' WHERE `+w.String(), w.args...)
	if err != nil {
		return 0, fmt.Errorf("move memories to the hot tier: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("move memories to the hot tier: %w", err)
	}
	return int(n), nil
}

// TierCounts counts the memories of every org in each tier.
func (s *Store) TierCounts(ctx context.Context) (hot, cold int64, err error) {
	err = s.queryRow(ctx, `SELECT count(*) FILTER (WHERE tier = 'hot'), count(*) FILTER (WHERE tier = 'cold') FROM memories`).Scan(&hot, &cold)
	if err != nil {
		return 0, 0, fmt.Errorf("count memories per tier: %w", err)
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
