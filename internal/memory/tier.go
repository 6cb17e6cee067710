package memory

import (
	"context"
	"time"
)

// Tiers: every memory is hot or cold. Hot memories are the ones search
// covers by default and the ones the in-process indexes (vector and
// lexical) hold; cold memories stay in the store, are found by a search
// only with SearchQuery.IncludeCold (through the store's lexical search,
// under the same access rules and filters), and cost the indexes nothing.
// A tiering job moves archived, deleted and long-untouched memories to the
// cold tier (Tiers.MoveCold); reading a cold memory by id (Service.Get) or
// writing it (any Store.Update but a delete) brings it back.

// Tier names.
const (
	TierHot  = "hot"
	TierCold = "cold"
)

// Tiers is implemented by stores that keep memories in a hot and a cold
// tier (both stores do). Like the change feed it is internal: MoveCold and
// TierCounts cover every org and are for the tiering job only.
type Tiers interface {
	// MoveCold moves up to limit hot memories to the cold tier: archived
	// and deleted ones, and live (active or paused) ones neither written
	// (updated_at) nor returned to a reader (access log) at or after
	// untouchedSince. It returns how many it moved. Each move is a write the
	// change feed reports (Change.Cold), without a history row: it changes
	// where a memory is kept, not the memory.
	MoveCold(ctx context.Context, untouchedSince time.Time, limit int) (int, error)
	// Warm moves the memories among ids that a may see back to the hot
	// tier and returns how many were cold.
	Warm(ctx context.Context, a Access, ids []string) (int, error)
	// TierCounts counts the memories of every org in each tier.
	TierCounts(ctx context.Context) (hot, cold int64, err error)
}

// warm brings a cold memory that was just read back to the hot tier. A
// failure does not fail the read: the memory is still returned, and the
// next read tries again.
func (s *Service) warm(ctx context.Context, a Access, m *Memory) {
	if !m.Cold || m.State == StateDeleted {
		return
	}
	t, ok := s.store.(Tiers)
	if !ok {
		return
	}
	if _, err := t.Warm(ctx, a, []string{m.ID}); err == nil {
		m.Cold = false
		s.written(ctx, *m, nil, false) // back in this replica's indexes at once
	}
}

// TierReport is what one tiering run did: how many memories it moved to
// the cold tier, and the memories in each tier afterwards.
type TierReport struct {
	MovedCold int   `json:"moved_cold"`
	Hot       int64 `json:"hot"`
	Cold      int64 `json:"cold"`
}

// DefaultTierBatch is how many memories one MoveCold of RunTiering moves.
const DefaultTierBatch = 1000

// RunTiering moves every memory MoveCold selects for untouchedSince to the
// cold tier, batch at a time (each batch is its own transaction, so
// writers wait for one batch at most; batch < 1 means DefaultTierBatch),
// then counts both tiers. It stops between batches when ctx ends; what it
// moved until then stays moved.
func RunTiering(ctx context.Context, t Tiers, untouchedSince time.Time, batch int) (TierReport, error) {
	if batch < 1 {
		batch = DefaultTierBatch
	}
	var r TierReport
	for {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		n, err := t.MoveCold(ctx, untouchedSince, batch)
		r.MovedCold += n
		if err != nil {
			return r, err
		}
		if n < batch {
			break
		}
	}
	var err error
	r.Hot, r.Cold, err = t.TierCounts(ctx)
	return r, err
}
