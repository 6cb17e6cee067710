package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Lookup returns the visible memories among ids that match f, in any
// order; see memory.Lookup. Access and filters are conditions of the
// statement, as in Search.
func (s *Store) Lookup(ctx context.Context, a memory.Access, f memory.Filter, ids []string) ([]memory.Memory, error) {
	if len(ids) == 0 {
		return []memory.Memory{}, nil
	}
	var w where
	w.add("m.id = ANY(" + w.arg(ids) + ")")
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
	orgs, ids := keyArrays(keys)
	rows, err := s.pool.Query(ctx, `SELECT `+memoryColumns+`, m.tier = 'cold' FROM memories m
		WHERE (m.org_id, m.id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
		ORDER BY m.org_id, m.id`, orgs, ids)
	if err != nil {
		return nil, fmt.Errorf("read memories: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Memory, error) {
		var cold bool
		m, err := scanMemory(r, &cold)
		m.Cold = cold
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("read memories: %w", s.dbErr(err))
	}
	if out == nil {
		out = []memory.Memory{}
	}
	return out, nil
}

func (s *Store) readMemories(ctx context.Context, what, query string, args ...any) ([]memory.Memory, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Memory, error) { return scanMemory(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, s.dbErr(err))
	}
	if out == nil {
		out = []memory.Memory{}
	}
	return out, nil
}
