package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// insertMemory writes every column of memoryColumns, in the same order, and
// the access tokens.
const insertMemory = `INSERT INTO memories (id, org_id, access_entity, state, category, scope, app,
	entity, artifact_ref, artifact_type, source, created_by, created_at, updated_at,
	valid_from, valid_to, content_hash, idempotency_key, tags, evidence, metadata, content, acl)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// updateMemory rewrites every column but id and org_id, in memoryColumns
// order, and the access tokens, for the id given last.
const updateMemory = `UPDATE memories SET access_entity = ?, state = ?, category = ?, scope = ?, app = ?,
	entity = ?, artifact_ref = ?, artifact_type = ?, source = ?, created_by = ?, created_at = ?, updated_at = ?,
	valid_from = ?, valid_to = ?, content_hash = ?, idempotency_key = ?, tags = ?, evidence = ?, metadata = ?, content = ?,
	acl = ? WHERE id = ?`

// warmMemory moves a memory written by Update back to the hot tier
// (tier.go). It changes no row of a hot memory, so the change trigger does
// not fire for it.
const warmMemory = `UPDATE memories SET tier = 'hot' WHERE id = ? AND tier = 'cold'`

const insertHistory = `INSERT INTO history (memory_id, org_id, actor, action, at, before, after)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// isUnique reports whether err is a UNIQUE constraint violation.
func isUnique(err error) bool {
	var e *driver.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// getOne reads the memory matching w, or reports sql.ErrNoRows.
func getOne(ctx context.Context, q queryer, w *where) (memory.Memory, error) {
	return scanMemory(q.QueryRowContext(ctx,
		`SELECT `+memoryColumns+` FROM memories m WHERE `+w.String(), w.args...))
}

// Create stores m and its "create" history row in one transaction, unless
// its idempotency key or its content (among live memories of the same
// access entity) is already stored: then it returns that memory. Reusing an
// idempotency key for other content or another access entity is
// memory.ErrConflict.
func (s *Store) Create(ctx context.Context, m memory.Memory, actor string) (memory.Memory, bool, error) {
	args, err := canonical(&m)
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	after, err := marshalJSON(m)
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	defer tx.Rollback()

	if m.IdempotencyKey != "" {
		w := where{}
		w.add("m.org_id = ? AND m.idempotency_key = ?", m.OrgID, m.IdempotencyKey)
		prev, err := getOne(ctx, tx, &w)
		switch {
		case err == nil:
			if prev.ContentHash != m.ContentHash || prev.AccessEntity != m.AccessEntity {
				return memory.Memory{}, false, fmt.Errorf("%w: idempotency key %q was used for a different memory", memory.ErrConflict, m.IdempotencyKey)
			}
			return prev, false, nil
		case !errors.Is(err, sql.ErrNoRows):
			return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
		}
	}
	w := where{}
	w.add("m.org_id = ? AND m.access_entity = ? AND m.content_hash = ? AND m.state <> 'deleted'",
		m.OrgID, m.AccessEntity, m.ContentHash)
	prev, err := getOne(ctx, tx, &w)
	switch {
	case err == nil:
		return prev, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}

	res, err := tx.ExecContext(ctx, insertMemory, args...)
	if err != nil {
		if isUnique(err) {
			return memory.Memory{}, false, fmt.Errorf("%w: memory %s already exists", memory.ErrConflict, m.ID)
		}
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	if err := s.writeGraph(ctx, tx, m, seq, true); err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	if _, err := tx.ExecContext(ctx, insertHistory,
		m.ID, m.OrgID, actor, "create", formatTime(m.CreatedAt), nil, after); err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	return m, true, nil
}

// Get returns one visible memory, in any state.
func (s *Store) Get(ctx context.Context, a memory.Access, id string) (memory.Memory, error) {
	var w where
	w.add("m.id = ?", id)
	w.access(a)
	var cold bool
	m, err := scanMemory(s.queryRow(ctx, `SELECT `+memoryColumns+`, m.tier = 'cold' FROM memories m WHERE `+w.String(), w.args...), &cold)
	m.Cold = cold
	if errors.Is(err, sql.ErrNoRows) {
		return memory.Memory{}, fmt.Errorf("get memory %s: %w", id, memory.ErrNotFound)
	}
	if err != nil {
		return memory.Memory{}, fmt.Errorf("get memory %s: %w", id, err)
	}
	return m, nil
}

// Update loads a visible memory, lets change modify it and writes it with a
// history row, in one IMMEDIATE transaction. An error from change is
// returned as it is, and nothing is written. change may not alter ID or
// OrgID. The content hash is recomputed from the content; a resulting live
// duplicate in the same access entity is memory.ErrConflict. change runs
// inside the write transaction, on the store's only writer connection: it
// must be quick and must not call the store.
func (s *Store) Update(ctx context.Context, a memory.Access, id, actor, action string, change func(*memory.Memory) error) (memory.Memory, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	defer tx.Rollback()

	var w where
	w.add("m.id = ?", id)
	w.access(a)
	m, err := getOne(ctx, tx, &w)
	if errors.Is(err, sql.ErrNoRows) {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, memory.ErrNotFound)
	}
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	before, err := marshalJSON(m) // before change can touch the maps m shares
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	prevUpdated, prevState := m.UpdatedAt, m.State
	if err := change(&m); err != nil {
		return memory.Memory{}, err
	}
	if m.ID != id || m.OrgID != a.OrgID {
		return memory.Memory{}, fmt.Errorf("update memory %s: the change altered id or org_id", id)
	}
	m.ContentHash = memory.ContentHash(m.Content)
	args, err := canonical(&m)
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	after, err := marshalJSON(m)
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, updateMemory, append(args[2:], id)...); err != nil {
		if isUnique(err) {
			return memory.Memory{}, fmt.Errorf("%w: memory %s: another live memory in %s has the same content",
				memory.ErrConflict, id, m.AccessEntity)
		}
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	if m.State != memory.StateDeleted { // a write brings a cold memory back
		if _, err := tx.ExecContext(ctx, warmMemory, id); err != nil {
			return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
		}
	}
	at := m.UpdatedAt
	if !at.After(prevUpdated) { // the change did not stamp the memory
		at = time.Now().UTC()
	}
	if _, err := tx.ExecContext(ctx, insertHistory, id, m.OrgID, actor, action, formatTime(at), before, after); err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	if memory.Live(prevState) || memory.Live(m.State) {
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM memories WHERE id = ?`, id).Scan(&seq); err != nil {
			return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
		}
		if err := s.writeGraph(ctx, tx, m, seq, false); err != nil {
			return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	return m, nil
}

// History returns the history of a visible memory (in any state), oldest
// first.
func (s *Store) History(ctx context.Context, a memory.Access, id string) ([]memory.HistoryEntry, error) {
	var w where
	w.add("m.id = ?", id)
	w.access(a)
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM memories m WHERE `+w.String(), w.args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read history of memory %s: %w", id, memory.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read history of memory %s: %w", id, err)
	}
	rows, err := s.query(ctx, `SELECT h.id, h.memory_id, h.org_id, h.actor, h.action, h.at, h.before, h.after
		FROM history h JOIN memories m ON m.id = h.memory_id
		WHERE `+w.String()+` ORDER BY h.id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("read history of memory %s: %w", id, err)
	}
	defer rows.Close()
	var hs []memory.HistoryEntry
	for rows.Next() {
		h, err := scanHistory(rows)
		if err != nil {
			return nil, fmt.Errorf("read history of memory %s: %w", id, err)
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history of memory %s: %w", id, err)
	}
	return hs, nil
}
