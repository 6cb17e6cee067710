package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.Transfer = (*Store)(nil)

// Export reads the memories a may see that q selects, in id order, inside
// one read transaction (a WAL snapshot): their count first, then pages of
// memory.ExportPage with their history when q.History.
func (s *Store) Export(ctx context.Context, a memory.Access, q memory.ExportQuery,
	start func(count int) error, page func([]memory.Exported) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("export memories: %w", err)
	}
	defer tx.Rollback()
	var w where
	w.access(a)
	w.filter(q.Filter)
	if q.Since != nil {
		w.add("m.updated_at >= ?", formatTime(*q.Since))
	}
	var count int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM memories m WHERE `+w.String(), w.args...).Scan(&count); err != nil {
		return fmt.Errorf("export memories: %w", err)
	}
	if err := start(count); err != nil {
		return err
	}
	after := ""
	for {
		args := append(append([]any{}, w.args...), after, memory.ExportPage)
		rows, err := tx.QueryContext(ctx, `SELECT `+memoryColumns+`, m.seq FROM memories m WHERE `+w.String()+
			` AND m.id > ? ORDER BY m.id LIMIT ?`, args...)
		if err != nil {
			return fmt.Errorf("export memories: %w", err)
		}
		var out []memory.Exported
		var seqs []int64
		for rows.Next() {
			var seq int64
			m, err := scanMemory(rows, &seq)
			if err != nil {
				rows.Close()
				return fmt.Errorf("export memories: %w", err)
			}
			out = append(out, memory.Exported{Memory: m})
			seqs = append(seqs, seq)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("export memories: %w", err)
		}
		if len(out) == 0 {
			return nil
		}
		if q.History {
			if err := historyOf(ctx, tx, out); err != nil {
				return err
			}
		}
		if err := linksOf(ctx, tx, a, out); err != nil {
			return err
		}
		if err := page(out); err != nil {
			return err
		}
		if len(out) < memory.ExportPage {
			return nil
		}
		after = out[len(out)-1].Memory.ID
	}
}

// historyOf fills in the history of each memory of page, oldest first.
func historyOf(ctx context.Context, tx *sql.Tx, page []memory.Exported) error {
	ids := make([]string, len(page))
	at := make(map[string]int, len(page))
	for i, e := range page {
		ids[i] = e.Memory.ID
		at[e.Memory.ID] = i
	}
	rows, err := tx.QueryContext(ctx, `SELECT h.id, h.memory_id, h.org_id, h.actor, h.action, h.at, h.before, h.after
		FROM history h WHERE h.memory_id IN (SELECT value FROM json_each(?)) ORDER BY h.memory_id, h.id`, jsonArg(ids))
	if err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHistory(rows)
		if err != nil {
			return fmt.Errorf("export history: %w", err)
		}
		if i, ok := at[h.MemoryID]; ok {
			page[i].History = append(page[i].History, h)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	return nil
}

// linksOf fills in the outgoing links of each memory of page whose
// target a may see, in (type, target) order.
func linksOf(ctx context.Context, tx *sql.Tx, a memory.Access, page []memory.Exported) error {
	ids := make([]string, len(page))
	at := make(map[string]int, len(page))
	for i, e := range page {
		ids[i] = e.Memory.ID
		at[e.Memory.ID] = i
	}
	var w where
	w.access(a)
	// The joins are pinned (CROSS JOIN) to start from the page's ids: left
	// to itself the planner scanned every memory of the org for each page,
	// which made a 100,000-memory export quadratic.
	rows, err := tx.QueryContext(ctx, `SELECT s.id, m.id, l.type, l.created_by, l.created_at
		FROM json_each(?) j CROSS JOIN memories s CROSS JOIN memory_links l CROSS JOIN memories m
		WHERE s.id = j.value AND l.src_seq = s.seq AND m.seq = l.dst_seq AND `+w.String()+`
		ORDER BY s.id, l.type, m.id`, append([]any{jsonArg(ids)}, w.args...)...)
	if err != nil {
		return fmt.Errorf("export links: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l memory.MemoryLink
		var created string
		if err := rows.Scan(&l.From, &l.To, &l.Type, &l.CreatedBy, &created); err != nil {
			return fmt.Errorf("export links: %w", err)
		}
		if l.CreatedAt, err = parseTime(created); err != nil {
			return fmt.Errorf("export links: %w", err)
		}
		if i, ok := at[l.From]; ok {
			page[i].Links = append(page[i].Links, l)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export links: %w", err)
	}
	return nil
}

// Import runs fn in one write transaction on the store's writer.
func (s *Store) Import(ctx context.Context, fn func(memory.ImportTx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("import memories: %w", err)
	}
	defer tx.Rollback()
	if err := fn(&importTx{s: s, tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("import memories: %w", err)
	}
	return nil
}

type importTx struct {
	s  *Store
	tx *sql.Tx
	// insert and history are prepared on first use, once per import:
	// parsing them for every memory took a third of the time.
	insert, insertHist *sql.Stmt
}

// stmts prepares the import's statements in its transaction.
func (t *importTx) stmts(ctx context.Context) error {
	if t.insert != nil {
		return nil
	}
	var err error
	if t.insert, err = t.tx.PrepareContext(ctx, insertMemory); err != nil {
		return fmt.Errorf("import memories: %w", err)
	}
	if t.insertHist, err = t.tx.PrepareContext(ctx, insertHistory); err != nil {
		return fmt.Errorf("import memories: %w", err)
	}
	return nil
}

// Put inserts each record, its history and its graph, unless its id, its
// idempotency key or (among live memories of its access entity) its
// content is taken.
func (t *importTx) Put(ctx context.Context, recs []memory.ImportRecord, actor string) ([]memory.PutResult, error) {
	if err := t.stmts(ctx); err != nil {
		return nil, err
	}
	out := make([]memory.PutResult, len(recs))
	for i, rec := range recs {
		m := rec.Memory
		args, err := canonical(&m)
		if err != nil {
			return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		res, err := t.insert.ExecContext(ctx, args...)
		if isUnique(err) {
			if out[i], err = t.conflict(ctx, m); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		if err := t.s.writeGraph(ctx, t.tx, m, seq, true); err != nil {
			return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		if err := t.history(ctx, m, rec.History, actor); err != nil {
			return nil, err
		}
		out[i].Stored = true
	}
	return out, nil
}

// history writes the history of an imported memory as it came, or one
// "import" row when it came without.
func (t *importTx) history(ctx context.Context, m memory.Memory, hs []memory.HistoryEntry, actor string) error {
	if len(hs) == 0 {
		after, err := marshalJSON(m)
		if err != nil {
			return fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		_, err = t.insertHist.ExecContext(ctx, m.ID, m.OrgID, actor, "import", formatTime(time.Now()), nil, after)
		if err != nil {
			return fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		return nil
	}
	for _, h := range hs {
		var before, after any
		for _, p := range []struct {
			snap *memory.Memory
			dst  *any
		}{{h.Before, &before}, {h.After, &after}} {
			if p.snap == nil {
				continue
			}
			js, err := marshalJSON(p.snap)
			if err != nil {
				return fmt.Errorf("import memory %s: %w", m.ID, err)
			}
			*p.dst = js
		}
		if _, err := t.insertHist.ExecContext(ctx, m.ID, m.OrgID, h.Actor, h.Action, formatTime(h.At), before, after); err != nil {
			return fmt.Errorf("import memory %s: %w", m.ID, err)
		}
	}
	return nil
}

// conflict finds out which unique index refused m: its id (anywhere: ids
// are unique across orgs here), its idempotency key in the org, or a live
// memory of its access entity with its content.
func (t *importTx) conflict(ctx context.Context, m memory.Memory) (memory.PutResult, error) {
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM memories WHERE id = ?`, m.ID).Scan(&n); err != nil {
		return memory.PutResult{}, fmt.Errorf("import memory %s: %w", m.ID, err)
	}
	if n > 0 {
		return memory.PutResult{Conflict: memory.ConflictID}, nil
	}
	if m.IdempotencyKey != "" {
		err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM memories WHERE org_id = ? AND idempotency_key = ?`,
			m.OrgID, m.IdempotencyKey).Scan(&n)
		if err != nil {
			return memory.PutResult{}, fmt.Errorf("import memory %s: %w", m.ID, err)
		}
		if n > 0 {
			return memory.PutResult{Conflict: memory.ConflictKey}, nil
		}
	}
	var existing string
	err := t.tx.QueryRowContext(ctx, `SELECT id FROM memories WHERE org_id = ? AND access_entity = ? AND content_hash = ?
		AND state <> 'deleted'`, m.OrgID, m.AccessEntity, m.ContentHash).Scan(&existing)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return memory.PutResult{}, fmt.Errorf("import memory %s: %w", m.ID, err)
	}
	if err != nil {
		return memory.PutResult{}, fmt.Errorf("import memory %s: a unique index refused it for no reason found", m.ID)
	}
	return memory.PutResult{Conflict: memory.ConflictContent, Existing: existing}, nil
}

// PutLinks writes each link whose two memories a may see, in any state,
// unless it exists.
func (t *importTx) PutLinks(ctx context.Context, a memory.Access, links []memory.MemoryLink) (int, error) {
	var w where
	w.access(a)
	seq := `(SELECT m.seq FROM memories m WHERE m.id = ? AND ` + w.String() + `)`
	stmt, err := t.tx.PrepareContext(ctx, `INSERT INTO memory_links (src_seq, dst_seq, type, created_by, created_at)
		SELECT s, d, ?, ?, ? FROM (SELECT `+seq+` AS s, `+seq+` AS d)
		WHERE s IS NOT NULL AND d IS NOT NULL
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("import links: %w", err)
	}
	defer stmt.Close()
	n := 0
	for _, l := range links {
		args := append([]any{l.Type, l.CreatedBy, formatTime(l.CreatedAt), l.From}, w.args...)
		args = append(append(args, l.To), w.args...)
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return n, fmt.Errorf("import links: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
		}
	}
	return n, nil
}
