package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Apps lists the apps that wrote visible live (not deleted) memories, most
// memories first, ties by name. Memories without an app are not counted.
func (s *Store) Apps(ctx context.Context, a memory.Access) ([]memory.AppCount, error) {
	var w where
	w.access(a)
	w.add("m.state <> 'deleted'")
	w.add("m.app <> ''")
	rows, err := s.pool.Query(ctx, `SELECT m.app, count(*) FROM memories m WHERE `+w.String()+`
		GROUP BY m.app ORDER BY count(*) DESC, m.app COLLATE "C"`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("count apps: %w", s.dbErr(err))
	}
	apps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.AppCount, error) {
		var c memory.AppCount
		err := r.Scan(&c.App, &c.Memories)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count apps: %w", s.dbErr(err))
	}
	if apps == nil {
		apps = []memory.AppCount{}
	}
	return apps, nil
}

// Stats counts visible memories. Total, ByCategory and ByScope count live
// memories (deleted ones excluded; memories without a category are not in
// ByCategory); ByState counts every state, deleted included.
func (s *Store) Stats(ctx context.Context, a memory.Access) (memory.Stats, error) {
	var w where
	w.access(a)
	rows, err := s.pool.Query(ctx, `SELECT m.state, m.category, m.scope, count(*) FROM memories m
		WHERE `+w.String()+` GROUP BY m.state, m.category, m.scope`, w.args...)
	if err != nil {
		return memory.Stats{}, fmt.Errorf("count memories: %w", s.dbErr(err))
	}
	st := memory.Stats{ByState: map[string]int{}, ByCategory: map[string]int{}, ByScope: map[string]int{}}
	var state, category, scope string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&state, &category, &scope, &n}, func() error {
		st.ByState[state] += n
		if state == string(memory.StateDeleted) {
			return nil
		}
		st.Total += n
		st.ByScope[scope] += n
		if category != "" {
			st.ByCategory[category] += n
		}
		return nil
	})
	if err != nil {
		return memory.Stats{}, fmt.Errorf("count memories: %w", s.dbErr(err))
	}
	return st, nil
}

// LogAccess appends access-log rows with one COPY, so a batch is written
// whole or not at all. NUL characters (a search text may hold them; text
// columns cannot) are replaced by U+FFFD.
func (s *Store) LogAccess(ctx context.Context, entries []memory.AccessEntry) error {
	if len(entries) == 0 {
		return nil
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"access_log"},
		[]string{"org_id", "memory_id", "actor", "app", "via", "query", "at"},
		pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
			e := entries[i]
			return []any{e.OrgID, e.MemoryID, noNULText(e.Actor), noNULText(e.App), noNULText(e.Via), noNULText(e.Query), e.At}, nil
		}))
	if err != nil {
		return fmt.Errorf("log access: %w", s.dbErr(err))
	}
	return nil
}

// CountAccessLog counts the access-log rows of an org. The contract suite
// uses it to check that reads are logged.
func (s *Store) CountAccessLog(ctx context.Context, orgID string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM access_log WHERE org_id = $1`, orgID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count access log: %w", s.dbErr(err))
	}
	return n, nil
}

var nulReplacer = strings.NewReplacer("\x00", "\uFFFD")

func noNULText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return nulReplacer.Replace(s)
}
