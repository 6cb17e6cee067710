package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// createMemory inserts a memory (memoryColumns order, $1-$22) and its
// "create" history row ($23 actor, $24 at, $25 after) in one statement,
// hence one transaction. If the row conflicts with any unique index (the
// id, a live memory with the same content in the access entity, or the
// idempotency key in the org), nothing is written and no row is affected.
const createMemory = `WITH ins AS (
	INSERT INTO memories (org_id, id, access_entity, state, category, scope, app,
		entity, artifact_ref, artifact_type, source, created_by, created_at, updated_at,
		valid_from, valid_to, content_hash, idempotency_key, evidence, tags, metadata, content)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
	ON CONFLICT DO NOTHING
	RETURNING org_id, id)
INSERT INTO history (org_id, memory_id, actor, action, at, before, after)
SELECT org_id, id, $23, 'create', $24, NULL, $25 FROM ins`

// updateMemory rewrites every column but org_id and id (memoryColumns
// order, $3-$22) of the memory ($1 org, $2 id).
const updateMemory = `UPDATE memories SET access_entity = $3, state = $4, category = $5, scope = $6, app = $7,
	entity = $8, artifact_ref = $9, artifact_type = $10, source = $11, created_by = $12,
	created_at = $13, updated_at = $14, valid_from = $15, valid_to = $16, content_hash = $17,
	idempotency_key = $18, evidence = $19, tags = $20, metadata = $21, content = $22
	WHERE org_id = $1 AND id = $2`

// warmMemory moves a memory written by Update back to the hot tier
// (tier.go). It changes no row of a hot memory.
const warmMemory = `UPDATE memories SET tier = 'hot' WHERE org_id = $1 AND id = $2 AND tier = 'cold'`

const insertHistory = `INSERT INTO history (org_id, memory_id, actor, action, at, before, after)
	VALUES ($1, $2, $3, $4, $5, $6, $7)`

// createAttempts bounds how often Create retries when the memory it
// collided with changes (is deleted or edited) before it can be read.
const createAttempts = 5

// Create stores m and its "create" history row in one transaction, unless
// its idempotency key or its content (among live memories of the same
// access entity) is already stored: then it returns that memory. Reusing an
// idempotency key for other content or another access entity is
// memory.ErrConflict, and so is an id that is taken.
//
// The insert does nothing on a conflict with any unique index; the
// conflicting memory is then read by key, then by content. Concurrent
// identical creates thus store one memory: the others wait for its
// transaction and then read it.
func (s *Store) Create(ctx context.Context, m memory.Memory, actor string) (memory.Memory, bool, error) {
	args, err := canonical(&m)
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	after, err := marshalJSON(m)
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", err)
	}
	args = append(args, actor, m.CreatedAt, after)
	for range createAttempts {
		tag, err := s.create(ctx, m, args)
		if err != nil {
			return memory.Memory{}, false, fmt.Errorf("create memory: %w", s.dbErr(err))
		}
		if tag.RowsAffected() == 1 {
			return m, true, nil
		}
		prev, found, err := s.existing(ctx, m)
		if err != nil || found {
			return prev, false, err
		}
	}
	return memory.Memory{}, false, fmt.Errorf("create memory: %w: memory %s keeps colliding with concurrent changes", memory.ErrConflict, m.ID)
}

// create runs createMemory and, in the same implicit transaction (one
// batch, one round trip), the statements that write m's graph; those do
// nothing when the insert did nothing.
func (s *Store) create(ctx context.Context, m memory.Memory, args []any) (pgconn.CommandTag, error) {
	b := &pgx.Batch{}
	b.Queue(createMemory, args...)
	n := queueGraph(b, m, true)
	br := s.pool.SendBatch(ctx, b)
	tag, err := br.Exec()
	if err == nil {
		err = execN(br, n)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// existing finds the memory a create of m collided with: the one with its
// idempotency key, else the live one with its content, else (the id is
// taken) ErrConflict. found is false when the collision is gone and the
// insert should be tried again.
func (s *Store) existing(ctx context.Context, m memory.Memory) (prev memory.Memory, found bool, err error) {
	if m.IdempotencyKey != "" {
		prev, err = scanMemory(s.pool.QueryRow(ctx, `SELECT `+memoryColumns+` FROM memories m
			WHERE m.org_id = $1 AND m.idempotency_key = $2`, m.OrgID, m.IdempotencyKey))
		switch {
		case err == nil:
			if prev.ContentHash != m.ContentHash || prev.AccessEntity != m.AccessEntity {
				return memory.Memory{}, false, fmt.Errorf("%w: idempotency key %q was used for a different memory", memory.ErrConflict, m.IdempotencyKey)
			}
			return prev, true, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return memory.Memory{}, false, fmt.Errorf("create memory: %w", s.dbErr(err))
		}
	}
	prev, err = scanMemory(s.pool.QueryRow(ctx, `SELECT `+memoryColumns+` FROM memories m
		WHERE m.org_id = $1 AND m.access_entity = $2 AND m.content_hash = $3 AND m.state <> 'deleted'`,
		m.OrgID, m.AccessEntity, m.ContentHash))
	switch {
	case err == nil:
		return prev, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", s.dbErr(err))
	}
	var taken bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM memories WHERE org_id = $1 AND id = $2)`,
		m.OrgID, m.ID).Scan(&taken); err != nil {
		return memory.Memory{}, false, fmt.Errorf("create memory: %w", s.dbErr(err))
	}
	if taken {
		return memory.Memory{}, false, fmt.Errorf("%w: memory %s already exists", memory.ErrConflict, m.ID)
	}
	return memory.Memory{}, false, nil
}

// Get returns one visible memory, in any state.
func (s *Store) Get(ctx context.Context, a memory.Access, id string) (memory.Memory, error) {
	var w where
	w.add("m.id = " + w.arg(id))
	w.access(a)
	var cold bool
	m, err := scanMemory(s.pool.QueryRow(ctx, `SELECT `+memoryColumns+`, m.tier = 'cold' FROM memories m WHERE `+w.String(), w.args...), &cold)
	m.Cold = cold
	if errors.Is(err, pgx.ErrNoRows) {
		return memory.Memory{}, fmt.Errorf("get memory %s: %w", id, memory.ErrNotFound)
	}
	if err != nil {
		return memory.Memory{}, fmt.Errorf("get memory %s: %w", id, s.dbErr(err))
	}
	return m, nil
}

// Update loads a visible memory with its row locked, lets change modify it
// and writes it with a history row, in one transaction. An error from
// change is returned as it is, and nothing is written. change may not alter
// ID or OrgID. The content hash is recomputed from the content; a resulting
// live duplicate in the same access entity is memory.ErrConflict.
func (s *Store) Update(ctx context.Context, a memory.Access, id, actor, action string, change func(*memory.Memory) error) (memory.Memory, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
	}
	defer tx.Rollback(ctx) // a no-op after Commit

	var w where
	w.add("m.id = " + w.arg(id))
	w.access(a)
	m, err := scanMemory(tx.QueryRow(ctx, `SELECT `+memoryColumns+` FROM memories m WHERE `+w.String()+` FOR UPDATE`, w.args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, memory.ErrNotFound)
	}
	if err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
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
	if _, err := tx.Exec(ctx, updateMemory, args...); err != nil {
		if isUnique(err) {
			return memory.Memory{}, fmt.Errorf("%w: memory %s: another live memory in %s has the same content",
				memory.ErrConflict, id, m.AccessEntity)
		}
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
	}
	if m.State != memory.StateDeleted { // a write brings a cold memory back
		if _, err := tx.Exec(ctx, warmMemory, m.OrgID, id); err != nil {
			return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
		}
	}
	at := m.UpdatedAt
	if !at.After(prevUpdated) { // the change did not stamp the memory
		at = utc(time.Now())
	}
	if _, err := tx.Exec(ctx, insertHistory, m.OrgID, id, actor, action, at, before, after); err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
	}
	if memory.Live(prevState) || memory.Live(m.State) {
		if err := writeGraph(ctx, tx, m, false); err != nil {
			return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, s.dbErr(err))
	}
	return m, nil
}

// History returns the history of a visible memory (in any state), oldest
// first.
func (s *Store) History(ctx context.Context, a memory.Access, id string) ([]memory.HistoryEntry, error) {
	var w where
	w.add("m.id = " + w.arg(id))
	w.access(a)
	rows, err := s.pool.Query(ctx, `SELECT h.id, h.memory_id, h.org_id, h.actor, h.action, h.at, h.before, h.after
		FROM memories m JOIN history h ON h.org_id = m.org_id AND h.memory_id = m.id
		WHERE `+w.String()+` ORDER BY h.id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("read history of memory %s: %w", id, s.dbErr(err))
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.HistoryEntry, error) { return scanHistory(r) })
	if err != nil {
		return nil, fmt.Errorf("read history of memory %s: %w", id, s.dbErr(err))
	}
	if len(hs) > 0 {
		return hs, nil
	}
	// No rows: the memory is not visible, or (written by hand) has no history.
	var visible bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM memories m WHERE `+w.String()+`)`,
		w.args...).Scan(&visible); err != nil {
		return nil, fmt.Errorf("read history of memory %s: %w", id, s.dbErr(err))
	}
	if !visible {
		return nil, fmt.Errorf("read history of memory %s: %w", id, memory.ErrNotFound)
	}
	return []memory.HistoryEntry{}, nil
}

// CreateBatch stores memories in one transaction, each as Create stores
// one (with its "create" history row), sent to the server in one round
// trip. It is the bulk path for import and restore, which validate the
// memories first (as memory.Service.Add does). A memory that duplicates a
// live one (same org, access entity and content, also earlier in the
// batch), or whose id or idempotency key is taken, is skipped: created[i]
// reports whether ms[i] was stored. An error rolls the whole batch back.
func (s *Store) CreateBatch(ctx context.Context, ms []memory.Memory, actor string) (created []bool, err error) {
	batch := &pgx.Batch{}
	names := queueNames(batch, ms)
	var g graphRows
	for _, m := range ms {
		args, err := canonical(&m)
		if err != nil {
			return nil, fmt.Errorf("create memories: %w", err)
		}
		after, err := marshalJSON(m)
		if err != nil {
			return nil, fmt.Errorf("create memories: %w", err)
		}
		batch.Queue(createMemory, append(args, actor, m.CreatedAt, after)...)
		g.add(m)
	}
	graph := g.queue(batch) // after every memory: guarded by the memories stored
	created = make([]bool, len(ms))
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, batch)
		if err := execN(br, names); err != nil {
			br.Close()
			return err
		}
		for i := range ms {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			created[i] = tag.RowsAffected() == 1
		}
		if err := execN(br, graph); err != nil {
			br.Close()
			return err
		}
		return br.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("create memories: %w", s.dbErr(err))
	}
	return created, nil
}
