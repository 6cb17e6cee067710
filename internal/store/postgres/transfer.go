package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.Transfer = (*Store)(nil)

// Export reads the memories a may see that q selects, in id order, inside
// one read-only REPEATABLE READ transaction (one snapshot): their count
// first, then pages of memory.ExportPage with their history when q.History.
func (s *Store) Export(ctx context.Context, a memory.Access, q memory.ExportQuery,
	start func(count int) error, page func([]memory.Exported) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("export memories: %w", s.dbErr(err))
	}
	defer tx.Rollback(ctx)
	var w where
	w.access(a)
	w.filter(q.Filter)
	if q.Since != nil {
		w.add("m.updated_at >= " + w.arg(*q.Since))
	}
	var count int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM memories m WHERE `+w.String(), w.args...).Scan(&count); err != nil {
		return fmt.Errorf("export memories: %w", s.dbErr(err))
	}
	if err := start(count); err != nil {
		return err
	}
	after := ""
	for {
		pw := where{conds: w.conds, args: append([]any{}, w.args...)}
		pw.add("m.id > " + pw.arg(after))
		limit := pw.arg(memory.ExportPage)
		rows, err := tx.Query(ctx, `SELECT `+memoryColumns+` FROM memories m WHERE `+pw.String()+
			` ORDER BY m.id LIMIT `+limit, pw.args...)
		if err != nil {
			return fmt.Errorf("export memories: %w", s.dbErr(err))
		}
		ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Memory, error) { return scanMemory(r) })
		if err != nil {
			return fmt.Errorf("export memories: %w", s.dbErr(err))
		}
		if len(ms) == 0 {
			return nil
		}
		out := make([]memory.Exported, len(ms))
		for i, m := range ms {
			out[i].Memory = m
		}
		if q.History {
			if err := s.historyOf(ctx, tx, a.OrgID, out); err != nil {
				return err
			}
		}
		if err := s.linksOf(ctx, tx, a, out); err != nil {
			return err
		}
		if err := page(out); err != nil {
			return err
		}
		if len(ms) < memory.ExportPage {
			return nil
		}
		after = ms[len(ms)-1].ID
	}
}

// historyOf fills in the history of each memory of page, oldest first.
func (s *Store) historyOf(ctx context.Context, tx pgx.Tx, org string, page []memory.Exported) error {
	ids := make([]string, len(page))
	at := make(map[string]int, len(page))
	for i, e := range page {
		ids[i] = e.Memory.ID
		at[e.Memory.ID] = i
	}
	rows, err := tx.Query(ctx, `SELECT h.id, h.memory_id, h.org_id, h.actor, h.action, h.at, h.before, h.after
		FROM history h WHERE h.org_id = $1 AND h.memory_id = ANY($2) ORDER BY h.memory_id, h.id`, org, ids)
	if err != nil {
		return fmt.Errorf("export history: %w", s.dbErr(err))
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.HistoryEntry, error) { return scanHistory(r) })
	if err != nil {
		return fmt.Errorf("export history: %w", s.dbErr(err))
	}
	for _, h := range hs {
		if i, ok := at[h.MemoryID]; ok {
			page[i].History = append(page[i].History, h)
		}
	}
	return nil
}

// linksOf fills in the outgoing links of each memory of page whose
// target a may see, in (type, target) order.
func (s *Store) linksOf(ctx context.Context, tx pgx.Tx, a memory.Access, page []memory.Exported) error {
	ids := make([]string, len(page))
	at := make(map[string]int, len(page))
	for i, e := range page {
		ids[i] = e.Memory.ID
		at[e.Memory.ID] = i
	}
	var w where
	w.access(a)
	w.add("l.org_id = " + w.arg(a.OrgID) + " AND l.src_id = ANY(" + w.arg(ids) + ") AND l.org_id = m.org_id AND l.dst_id = m.id")
	rows, err := tx.Query(ctx, `SELECT l.src_id, l.dst_id, l.type, l.created_by, l.created_at
		FROM memory_links l, memories m WHERE `+w.String()+` ORDER BY l.src_id, l.type, l.dst_id`, w.args...)
	if err != nil {
		return fmt.Errorf("export links: %w", s.dbErr(err))
	}
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.MemoryLink, error) {
		var l memory.MemoryLink
		err := r.Scan(&l.From, &l.To, &l.Type, &l.CreatedBy, &l.CreatedAt)
		l.CreatedAt = l.CreatedAt.UTC()
		return l, err
	})
	if err != nil {
		return fmt.Errorf("export links: %w", s.dbErr(err))
	}
	for _, l := range links {
		if i, ok := at[l.From]; ok {
			page[i].Links = append(page[i].Links, l)
		}
	}
	return nil
}

// Import runs fn in one transaction.
func (s *Store) Import(ctx context.Context, fn func(memory.ImportTx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("import memories: %w", s.dbErr(err))
	}
	defer tx.Rollback(ctx) // a no-op after Commit
	// The graph's statements run once per chunk with the rows of the
	// chunk; after five runs PostgreSQL would switch to a generic plan,
	// which for these array parameters is a nested loop over the rows this
	// transaction already wrote (measured: a 10,000-memory import went
	// from 2 s to minutes). Plan each run for its parameters instead.
	if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
		return fmt.Errorf("import memories: %w", s.dbErr(err))
	}
	if err := fn(&importTx{s: s, tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("import memories: %w", s.dbErr(err))
	}
	return nil
}

type importTx struct {
	s  *Store
	tx pgx.Tx
}

// insertImported inserts a memory (memoryColumns order) unless it
// conflicts with any unique index.
const insertImported = `INSERT INTO memories (org_id, id, access_entity, state, category, scope, app,
	entity, artifact_ref, artifact_type, source, created_by, created_at, updated_at,
	valid_from, valid_to, content_hash, idempotency_key, evidence, tags, metadata, content)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
	ON CONFLICT DO NOTHING`

// importConflict says which unique index refused a memory ($1 org, $2 id,
// $3 idempotency key, $4 access entity, $5 content hash).
const importConflict = `SELECT
	EXISTS (SELECT 1 FROM memories WHERE org_id = $1 AND id = $2),
	$3::text IS NOT NULL AND EXISTS (SELECT 1 FROM memories WHERE org_id = $1 AND idempotency_key = $3),
	coalesce((SELECT id FROM memories WHERE org_id = $1 AND access_entity = $4 AND content_hash = $5
		AND state <> 'deleted'), '')`

// Put inserts the records in one round trip, finds out in a second why
// any were refused, and writes the history and graph of those stored in a
// third.
func (t *importTx) Put(ctx context.Context, recs []memory.ImportRecord, actor string) ([]memory.PutResult, error) {
	out := make([]memory.PutResult, len(recs))
	ms := make([]memory.Memory, len(recs))
	b := &pgx.Batch{}
	for i, rec := range recs {
		ms[i] = rec.Memory
		args, err := canonical(&ms[i])
		if err != nil {
			return nil, fmt.Errorf("import memory %s: %w", ms[i].ID, err)
		}
		b.Queue(insertImported, args...)
	}
	br := t.tx.SendBatch(ctx, b)
	for i := range recs {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return nil, fmt.Errorf("import memories: %w", t.s.dbErr(err))
		}
		out[i].Stored = tag.RowsAffected() == 1
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("import memories: %w", t.s.dbErr(err))
	}

	b = &pgx.Batch{}
	var refused []int
	for i, m := range ms {
		if !out[i].Stored {
			var key any
			if m.IdempotencyKey != "" {
				key = m.IdempotencyKey
			}
			b.Queue(importConflict, m.OrgID, m.ID, key, m.AccessEntity, m.ContentHash)
			refused = append(refused, i)
		}
	}
	if len(refused) > 0 {
		br := t.tx.SendBatch(ctx, b)
		for _, i := range refused {
			var idTaken, keyTaken bool
			var existing string
			if err := br.QueryRow().Scan(&idTaken, &keyTaken, &existing); err != nil {
				br.Close()
				return nil, fmt.Errorf("import memories: %w", t.s.dbErr(err))
			}
			switch {
			case idTaken:
				out[i].Conflict = memory.ConflictID
			case keyTaken:
				out[i].Conflict = memory.ConflictKey
			default:
				out[i].Conflict, out[i].Existing = memory.ConflictContent, existing
			}
		}
		if err := br.Close(); err != nil {
			return nil, fmt.Errorf("import memories: %w", t.s.dbErr(err))
		}
	}

	b = &pgx.Batch{}
	var g graphRows
	n := 0
	now := utc(time.Now())
	for i, m := range ms {
		if !out[i].Stored {
			continue
		}
		g.add(m)
		hs := recs[i].History
		if len(hs) == 0 {
			after, err := marshalJSON(m)
			if err != nil {
				return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
			}
			b.Queue(insertHistory, m.OrgID, m.ID, actor, "import", now, nil, after)
			n++
			continue
		}
		for _, h := range hs {
			var before, after []byte
			var err error
			if h.Before != nil {
				if before, err = marshalJSON(h.Before); err != nil {
					return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
				}
			}
			if h.After != nil {
				if after, err = marshalJSON(h.After); err != nil {
					return nil, fmt.Errorf("import memory %s: %w", m.ID, err)
				}
			}
			b.Queue(insertHistory, m.OrgID, m.ID, h.Actor, h.Action, utc(h.At), before, after)
			n++
		}
	}
	n += queueImportGraph(b, &g)
	if err := sendBatch(ctx, t.tx, b, n); err != nil {
		return nil, fmt.Errorf("import memories: %w", t.s.dbErr(err))
	}
	return out, nil
}

// PutLinks writes each link whose two memories a may see, in any state,
// unless it exists, in one round trip.
func (t *importTx) PutLinks(ctx context.Context, a memory.Access, links []memory.MemoryLink) (int, error) {
	b := &pgx.Batch{}
	for _, l := range links {
		var w where
		org := w.arg(a.OrgID)
		src, dst := w.arg(l.From), w.arg(l.To)
		typ, by, at := w.arg(l.Type), w.arg(l.CreatedBy), w.arg(utc(l.CreatedAt))
		var vis where
		vis.args = w.args
		vis.access(a)
		visible := vis.String()
		b.Queue(`INSERT INTO memory_links (org_id, src_id, dst_id, type, created_by, created_at)
			SELECT `+org+`, `+src+`, `+dst+`, `+typ+`, `+by+`, `+at+`
			WHERE EXISTS (SELECT 1 FROM memories m WHERE m.id = `+src+` AND `+visible+`)
			AND EXISTS (SELECT 1 FROM memories m WHERE m.id = `+dst+` AND `+visible+`)
			ON CONFLICT DO NOTHING`, vis.args...)
	}
	br := t.tx.SendBatch(ctx, b)
	n := 0
	for range links {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return n, fmt.Errorf("import links: %w", t.s.dbErr(err))
		}
		n += int(tag.RowsAffected())
	}
	if err := br.Close(); err != nil {
		return n, fmt.Errorf("import links: %w", t.s.dbErr(err))
	}
	return n, nil
}

// The graph of imported memories is written without graph.go's guard (the
// memory exists with that content): the rows were inserted by this very
// transaction, so the guard only costs — at 100,000 memories in one
// transaction its lookups dominated the import for minutes.
const (
	importMentions = `INSERT INTO mentions (org_id, entity_id, memory_id, kind, display)
		SELECT u.o, (SELECT e.id FROM entities e WHERE e.org_id = u.o AND e.name = u.n), u.id, u.k, u.d
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u (o, id, h, ae, n, k, d)`
	importEdges = `INSERT INTO edges (org_id, src, dst, kind, memory_id)
		SELECT u.o, (SELECT e.id FROM entities e WHERE e.org_id = u.o AND e.name = u.s),
			(SELECT e.id FROM entities e WHERE e.org_id = u.o AND e.name = u.t), u.k, u.id
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u (o, id, h, ae, s, t, k)`
)

// queueImportGraph queues the names, mentions and edges of the stored
// memories g holds, and returns how many statements it queued.
func queueImportGraph(b *pgx.Batch, g *graphRows) int {
	n := 0
	if len(g.names[0]) > 0 {
		b.Queue(insertAllEntities, g.names[0], g.names[4])
		n++
	}
	if len(g.mentions[0]) > 0 {
		b.Queue(importMentions, anys(g.mentions[:])...)
		n++
	}
	if len(g.edges[0]) > 0 {
		b.Queue(importEdges, anys(g.edges[:])...)
		n++
	}
	return n
}
