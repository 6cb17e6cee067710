package sqlite

import (
	"context"
	"fmt"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Apps lists the apps that wrote visible live (not deleted) memories, most
// memories first. Memories without an app are not counted.
func (s *Store) Apps(ctx context.Context, a memory.Access) ([]memory.AppCount, error) {
	var w where
	w.access(a)
	w.add("m.state <> 'deleted'")
	w.add("m.app <> ''")
	rows, err := s.query(ctx, `SELECT m.app, count(*) FROM memories m WHERE `+w.String()+`
		GROUP BY m.app ORDER BY count(*) DESC, m.app`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("count apps: %w", err)
	}
	defer rows.Close()
	apps := []memory.AppCount{}
	for rows.Next() {
		var c memory.AppCount
		if err := rows.Scan(&c.App, &c.Memories); err != nil {
			return nil, fmt.Errorf("count apps: %w", err)
		}
		apps = append(apps, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count apps: %w", err)
	}
	return apps, nil
}

// Stats counts visible memories. Total, ByCategory and ByScope count live
// memories (deleted ones excluded; memories without a category are not in
// ByCategory); ByState counts every state, deleted included.
func (s *Store) Stats(ctx context.Context, a memory.Access) (memory.Stats, error) {
	var w where
	w.access(a)
	rows, err := s.query(ctx, `SELECT m.state, m.category, m.scope, count(*) FROM memories m
		WHERE `+w.String()+` GROUP BY m.state, m.category, m.scope`, w.args...)
	if err != nil {
		return memory.Stats{}, fmt.Errorf("count memories: %w", err)
	}
	defer rows.Close()
	st := memory.Stats{ByState: map[string]int{}, ByCategory: map[string]int{}, ByScope: map[string]int{}}
	for rows.Next() {
		var state, category, scope string
		var n int
		if err := rows.Scan(&state, &category, &scope, &n); err != nil {
			return memory.Stats{}, fmt.Errorf("count memories: %w", err)
		}
		st.ByState[state] += n
		if state == string(memory.StateDeleted) {
			continue
		}
		st.Total += n
		st.ByScope[scope] += n
		if category != "" {
			st.ByCategory[category] += n
		}
	}
	if err := rows.Err(); err != nil {
		return memory.Stats{}, fmt.Errorf("count memories: %w", err)
	}
	return st, nil
}
