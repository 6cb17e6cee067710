package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.ChangeFeed = (*Store)(nil)

// changesQuery reads one page of the change feed and the horizon of its own
// snapshot, in one statement (so both see the same snapshot): $1 the
// cursor's seq, $2 its horizon (NULL for none), $3 the limit.
//
// The page is the first $3 rows, by change_seq, of two disjoint sets, each
// read through its own index: recheck, the rows at or below the cursor's
// seq written by transactions that may have been open when the cursor was
// made (change_xid >= horizon; few, unless a write transaction stays open
// for long); and fresh, the rows above the cursor's seq. recheck is
// materialized so that its plan stays a scan of the change_xid index,
// whatever the parameters.
//
// The LEFT JOIN returns the horizon on a row of NULLs when the page is
// empty.
const changesQuery = `WITH snap AS MATERIALIZED (
		SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon),
	recheck AS MATERIALIZED (
		SELECT change_seq, org_id, id, state, updated_at, tier FROM memories
		WHERE change_xid >= $2::xid8 AND change_seq <= $1::bigint),
	fresh AS (
		SELECT change_seq, org_id, id, state, updated_at, tier FROM memories
		WHERE change_seq > $1::bigint
		ORDER BY change_seq LIMIT $3::int),
	page AS (
		SELECT * FROM (
			(SELECT * FROM recheck ORDER BY change_seq LIMIT $3::int)
			UNION ALL
			SELECT * FROM fresh) u
		ORDER BY change_seq LIMIT $3::int)
	SELECT snap.horizon, p.change_seq, p.org_id, p.id, p.state, p.updated_at, p.tier = 'cold'
	FROM snap LEFT JOIN page p ON true
	ORDER BY p.change_seq`

// Changes returns committed changes to memories after the cursor, by
// change_seq, at most limit, and the next cursor. See memory.ChangeFeed.
//
// Why it never misses a commit. change_seq is drawn when a row is written,
// not when its transaction commits, so a transaction holding a lower number
// can commit after a higher number was returned; reading change_seq >
// cursor alone would skip it for ever. The cursor's Horizon is the xmin of
// the snapshot of the read that made the cursor: no transaction with a
// lower id was running when that snapshot was taken — each had committed
// (and the read saw its rows) or rolled back. So every write that read
// could not see, whether its transaction was open then or began later, has
// change_xid >= Horizon, and the next read, which returns change_seq >
// cursor.Seq OR change_xid >= cursor.Horizon, includes it whatever its
// number. The invariant, kept by every read: each row version the read
// could see whose change_seq is at most the cursor's Seq has been returned,
// by this read or an earlier one.
//
// The price is repetition: rows of transactions that were open or recent
// at the previous read are returned again (delivery is at least once).
// They are few, unless a write transaction stays open for long — anywhere
// on the server, as xmin is cluster-wide — and holds the horizon back.
//
// The next cursor is {highest change_seq returned, xmin of this read},
// with two refinements. When the page is full its Seq is the page's last
// change_seq, even below after.Seq (the page ended among rows read again):
// the rest of them is then above the cursor and comes next time, where
// keeping after.Seq would lose any of them that had been invisible once the
// horizon moved past it. And when the page is empty the cursor is after
// itself: nothing visible is unreturned, and an idle feed keeps its cursor.
func (s *Store) Changes(ctx context.Context, after memory.ChangeCursor, limit int) ([]memory.Change, memory.ChangeCursor, error) {
	limit = max(limit, 1)
	var horizon any // NULL: no recheck (the zero cursor)
	if after.Horizon > 0 {
		horizon = after.Horizon
	}
	rows, err := s.pool.Query(ctx, changesQuery, after.Seq, horizon, limit)
	if err != nil {
		return nil, after, fmt.Errorf("read changes: %w", s.dbErr(err))
	}
	var (
		xmin    uint64
		changes []memory.Change
		c       struct {
			seq            *int64
			org, id, state *string
			updatedAt      *time.Time
			cold           *bool
		}
	)
	_, err = pgx.ForEachRow(rows, []any{&xmin, &c.seq, &c.org, &c.id, &c.state, &c.updatedAt, &c.cold}, func() error {
		if c.seq != nil { // else the empty page's row of NULLs
			changes = append(changes, memory.Change{
				Seq: *c.seq, ID: *c.id, OrgID: *c.org, State: memory.State(*c.state), UpdatedAt: c.updatedAt.UTC(),
				Cold: *c.cold,
			})
		}
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("read changes: %w", s.dbErr(err))
	}
	if len(changes) == 0 {
		return []memory.Change{}, after, nil
	}
	next := memory.ChangeCursor{Seq: changes[len(changes)-1].Seq, Horizon: xmin}
	if len(changes) < limit {
		next.Seq = max(next.Seq, after.Seq)
	}
	return changes, next, nil
}
