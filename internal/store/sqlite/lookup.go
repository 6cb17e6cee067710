package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Lookup returns the visible memories among ids that match f, in any
// order; see memory.Lookup. Access and filters are conditions of the
// statement, as in Search. The ids go in as one JSON parameter, so the
// statement text stays the same for any number of them.
func (s *Store) Lookup(ctx context.Context, a memory.Access, f memory.Filter, ids []string) ([]memory.Memory, error) {
	if len(ids) == 0 {
		return []memory.Memory{}, nil
	}
	p, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("look up memories: %w", err)
	}
	w := where{}
	w.add("m.id IN (SELECT value FROM json_each(?))", string(p))
	w.add("m.tier = 'hot'")
	w.access(a)
	w.filter(f)
	return s.readMemories(ctx, "look up memories", `SELECT `+memoryColumns+` FROM memories m WHERE `+w.String(), w.args...)
}

// MemoriesOf returns the memories named by keys, in any state, in key
// order; missing ones are left out. Like the change feed it reads every
// org: it is for in-process derived data (the vector index) only.
func (s *Store) MemoriesOf(ctx context.Context, keys []memory.MemoryKey) ([]memory.Memory, error) {
	if len(keys) == 0 {
		return []memory.Memory{}, nil
	}
	p, err := keysParam(keys)
	if err != nil {
		return nil, fmt.Errorf("read memories: %w", err)
	}
	rows, err := s.query(ctx, `SELECT `+memoryColumns+`, m.tier = 'cold' FROM memories m
		WHERE (m.org_id, m.id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))
		ORDER BY m.org_id, m.id`, p)
	if err != nil {
		return nil, fmt.Errorf("read memories: %w", err)
	}
	defer rows.Close()
	out := []memory.Memory{}
	for rows.Next() {
		var cold bool
		m, err := scanMemory(rows, &cold)
		if err != nil {
			return nil, fmt.Errorf("read memories: %w", err)
		}
		m.Cold = cold
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read memories: %w", err)
	}
	return out, nil
}

func (s *Store) readMemories(ctx context.Context, what, query string, args ...any) ([]memory.Memory, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []memory.Memory{}
	for rows.Next() {
		m, err := scanMemory(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
