package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// The entity graph (migration 0006; the model is described in
// memory/graph.go). Writes: writeGraph runs in every memory write
// transaction. Reads: every statement joins the memories that carry a
// mention or an edge and applies the caller's access to them (where.access,
// alias m), so entities, edges and weights come only from visible memories.
//
// Lists of names are passed as one JSON array parameter read with
// json_each, so a statement's text does not depend on how many names it
// gets and the statement cache keeps serving it. A join that looks names up
// is a CROSS JOIN with json_each first: SQLite then loops over the names
// and searches the index (org_id, name) for each, where it would otherwise
// scan the org's entities.

var _ memory.GraphStore = (*Store)(nil)

// jsonArg encodes a list parameter for json_each.
func jsonArg(v any) string {
	s, err := marshalJSON(v)
	if err != nil { // strings and numbers always encode
		panic(err)
	}
	return s
}

// writeGraph replaces the mentions and edges of the memory at seq with
// what m contributes to the graph (nothing unless m is live). create says
// the memory is new and has none yet.
func (s *Store) writeGraph(ctx context.Context, tx *sql.Tx, m memory.Memory, seq int64, create bool) error {
	if !create {
		if err := s.execGraph(ctx, tx, deleteMentions, seq); err != nil {
			return fmt.Errorf("write graph: %w", err)
		}
		if err := s.execGraph(ctx, tx, deleteEdges, seq); err != nil {
			return fmt.Errorf("write graph: %w", err)
		}
	}
	if !memory.Live(m.State) {
		return nil
	}
	mentions, rels := memory.ExtractGraph(m)
	if len(mentions) == 0 {
		return nil
	}
	names := make([]string, len(mentions))
	rows := make([][3]string, len(mentions))
	for i, x := range mentions {
		names[i] = x.Name
		rows[i] = [3]string{x.Name, x.Kind, x.Display}
	}
	if err := s.execGraph(ctx, tx, insertEntities, m.OrgID, jsonArg(names)); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	if err := s.execGraph(ctx, tx, insertMentions, seq, jsonArg(rows), m.OrgID); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	if len(rels) == 0 {
		return nil
	}
	edges := make([][3]string, len(rels))
	for i, r := range rels {
		edges[i] = [3]string{r.From, r.To, r.Type}
	}
	if err := s.execGraph(ctx, tx, insertEdges, seq, jsonArg(edges), m.OrgID, m.OrgID); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return nil
}

// Graph writes run in every memory write transaction; Open prepares
// them on the writer connection once, so that they skip SQLite's parser and
// planner (on the one connection, a statement cannot be prepared while a
// transaction holds it).
const (
	deleteMentions = `DELETE FROM mentions WHERE memory_seq = ?`
	deleteEdges    = `DELETE FROM edges WHERE memory_seq = ?`
	insertEntities = `INSERT INTO entities (org_id, name)
		SELECT ?, value FROM json_each(?) WHERE true
		ON CONFLICT (org_id, name) DO NOTHING`
	insertMentions = `INSERT INTO mentions (entity_id, memory_seq, kind, display)
		SELECT e.id, ?, j.value ->> 1, j.value ->> 2
		FROM json_each(?) j CROSS JOIN entities e ON e.org_id = ? AND e.name = j.value ->> 0`
	insertEdges = `INSERT INTO edges (src, dst, kind, memory_seq)
		SELECT s.id, d.id, j.value ->> 2, ?
		FROM json_each(?) j
		CROSS JOIN entities s ON s.org_id = ? AND s.name = j.value ->> 0
		CROSS JOIN entities d ON d.org_id = ? AND d.name = j.value ->> 1`
)

// prepareGraph prepares the graph's write statements on the writer. A
// schema without the graph's tables (opened WithoutMigrate) leaves them
// unprepared, and writes run the text instead.
func (s *Store) prepareGraph(ctx context.Context) {
	s.graphStmts = map[string]*sql.Stmt{}
	for _, q := range []string{deleteMentions, deleteEdges, insertEntities, insertMentions, insertEdges} {
		if st, err := s.w.PrepareContext(ctx, q); err == nil {
			s.graphStmts[q] = st
		}
	}
}

// execGraph runs a graph write statement in tx, prepared when it can be.
func (s *Store) execGraph(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	var err error
	if st := s.graphStmts[query]; st != nil {
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else {
		_, err = tx.ExecContext(ctx, query, args...)
	}
	return err
}

// graphPage is how many memories a backfill or rebuild writes at a time.
const graphPage = 500

// backfillPage writes the graph of the memories after seq, in seq order,
// at most graphPage of them, in tx (a memory that is not live loses any
// graph it has); it returns the seq of the last and whether it was the
// last page.
func (s *Store) backfillPage(ctx context.Context, tx *sql.Tx, after int64) (int64, bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+memoryColumns+`, m.seq FROM memories m
		WHERE m.seq > ? ORDER BY m.seq LIMIT ?`, after, graphPage)
	if err != nil {
		return 0, false, err
	}
	type item struct {
		seq int64
		m   memory.Memory
	}
	var page []item
	for rows.Next() {
		var it item
		if it.m, err = scanMemory(rows, &it.seq); err != nil {
			rows.Close()
			return 0, false, err
		}
		page = append(page, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(page) == 0 {
		return 0, true, err
	}
	for _, it := range page {
		if err := s.writeGraph(ctx, tx, it.m, it.seq, false); err != nil {
			return 0, false, err
		}
	}
	return page[len(page)-1].seq, len(page) < graphPage, nil
}

// backfillGraph writes the graph of every memory in tx: the hook of the
// migration that creates the graph's tables, in its transaction.
func (s *Store) backfillGraph(ctx context.Context, tx *sql.Tx) error {
	var after int64
	for {
		var done bool
		var err error
		if after, done, err = s.backfillPage(ctx, tx, after); err != nil {
			return fmt.Errorf("backfill graph: %w", err)
		}
		if done {
			return nil
		}
	}
}

// migrationHooks run Go code in a migration's transaction, after its SQL.
var migrationHooks = map[string]func(*Store, context.Context, *sql.Tx) error{
	"0006_entity_graph": (*Store).backfillGraph,
}

// RebuildGraph writes the mentions and edges of every memory again from
// the memories, graphPage memories to a transaction, so that it never
// holds the writer for long: for reindex, and for memories an older binary
// wrote after the migration (a rolling deploy). Each memory's graph is
// replaced whole in one transaction.
func (s *Store) RebuildGraph(ctx context.Context) error {
	var after int64
	for {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("rebuild graph: %w", err)
		}
		next, done, err := s.backfillPage(ctx, tx, after)
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err != nil {
			return fmt.Errorf("rebuild graph: %w", err)
		}
		if done {
			return nil
		}
		after = next
	}
}

// sortKinds orders kinds as memory.EntityKinds does.
func sortKinds(csv string) []string {
	kinds := strings.Split(csv, ",")
	slices.SortFunc(kinds, func(a, b string) int {
		return slices.Index(memory.EntityKinds, a) - slices.Index(memory.EntityKinds, b)
	})
	return kinds
}

// Entities returns visible entities (memory.GraphStore).
func (s *Store) Entities(ctx context.Context, a memory.Access, q memory.EntityQuery) ([]memory.Entity, error) {
	var w where
	w.access(a)
	args := []any{a.OrgID}
	cond := ""
	limit := q.Limit
	switch {
	case len(q.Names) > 0:
		cond = ` AND e.name IN (SELECT value FROM json_each(?))`
		args = append(args, jsonArg(q.Names))
		limit = len(q.Names)
	case q.Prefix != "":
		if end, ok := prefixEnd(q.Prefix); ok {
			cond = ` AND e.name >= ? AND e.name < ?`
			args = append(args, q.Prefix, end)
		} else {
			cond = ` AND e.name >= ?`
			args = append(args, q.Prefix)
		}
	}
	if q.Kind != "" {
		cond += ` AND x.kind = ?`
		args = append(args, q.Kind)
	}
	// Named entities, or a prefix: from the entities to their mentions;
	// else from the visible memories to what they mention.
	from := `entities e CROSS JOIN mentions x ON x.entity_id = e.id CROSS JOIN memories m ON m.seq = x.memory_seq`
	if len(q.Names) == 0 && q.Prefix == "" {
		from = `memories m CROSS JOIN mentions x ON x.memory_seq = m.seq CROSS JOIN entities e ON e.id = x.entity_id`
	}
	args = append(append(args, w.args...), max(limit, 1))
	rows, err := s.query(ctx, `SELECT e.name, min(x.display), group_concat(DISTINCT x.kind), count(*)
		FROM `+from+`
		WHERE e.org_id = ?`+cond+` AND `+w.String()+`
		GROUP BY e.id ORDER BY count(*) DESC, e.name LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("read entities: %w", err)
	}
	defer rows.Close()
	out := []memory.Entity{}
	for rows.Next() {
		var e memory.Entity
		var kinds string
		if err := rows.Scan(&e.Name, &e.Display, &kinds, &e.Memories); err != nil {
			return nil, fmt.Errorf("read entities: %w", err)
		}
		e.Kinds = sortKinds(kinds)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read entities: %w", err)
	}
	return out, nil
}

// edgeTypeFilter splits a type filter into the derived types it admits
// and an SQL condition on a stored edge's kind (alias g). An empty filter
// admits everything.
func edgeTypeFilter(types []string) (derived []string, stored string, args []any) {
	if len(types) == 0 {
		return []string{memory.EdgeCoMention, memory.EdgeTagCooccurrence}, "1", nil
	}
	var alts []string
	var kinds []string
	for _, t := range types {
		switch t {
		case memory.EdgeCoMention, memory.EdgeTagCooccurrence:
			derived = append(derived, t)
		case memory.EdgeRelation:
			alts = append(alts, `g.kind LIKE 'relation:%'`)
		default:
			kinds = append(kinds, t)
		}
	}
	if len(kinds) > 0 {
		alts = append(alts, `g.kind IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonArg(kinds))
	}
	if len(alts) == 0 {
		return derived, "0", nil
	}
	return derived, "(" + strings.Join(alts, " OR ") + ")", args
}

// Edges returns the visible edges touching q.From (memory.GraphStore).
func (s *Store) Edges(ctx context.Context, a memory.Access, q memory.EdgeQuery) ([]memory.Edge, error) {
	if len(q.From) == 0 {
		return []memory.Edge{}, nil
	}
	var w where
	w.access(a)
	derived, stored, storedArgs := edgeTypeFilter(q.Types)
	toDerived, toSrc, toDst := "", "", ""
	var toArgs []any
	if len(q.To) > 0 {
		toDerived = ` AND x2.entity_id IN (SELECT id FROM t)`
		toSrc, toDst = ` AND g.dst IN (SELECT id FROM t)`, ` AND g.src IN (SELECT id FROM t)`
		toArgs = []any{jsonArg(q.To)}
	}
	// f: the entities asked about; t: the other ends allowed.
	query := `WITH f AS MATERIALIZED (
			SELECT id, name FROM entities WHERE org_id = ?1 AND name IN (SELECT value FROM json_each(?2))),
		t AS MATERIALIZED (
			SELECT id FROM entities WHERE org_id = ?1 AND name IN (SELECT value FROM json_each(?3))),
		pairs AS (
			SELECT f.name AS a, x2.entity_id AS b,
				CASE WHEN x1.kind = 'tag' AND x2.kind = 'tag' THEN 'tag_cooccurrence' ELSE 'co_mention' END AS type
			FROM f
			CROSS JOIN mentions x1 ON x1.entity_id = f.id
			CROSS JOIN memories m ON m.seq = x1.memory_seq
			CROSS JOIN mentions x2 ON x2.memory_seq = x1.memory_seq AND x2.entity_id <> x1.entity_id
			WHERE ` + w.String() + toDerived + `)
		SELECT p.a, e.name, p.type, count(*)
		FROM pairs p CROSS JOIN entities e ON e.id = p.b
		WHERE p.type IN (SELECT value FROM json_each(?))
		GROUP BY p.a, p.b, p.type
		UNION ALL
		SELECT s.name, d.name, g.kind, count(*)
		FROM edges g
		CROSS JOIN memories m ON m.seq = g.memory_seq
		CROSS JOIN entities s ON s.id = g.src
		CROSS JOIN entities d ON d.id = g.dst
		WHERE g.src IN (SELECT id FROM f) AND ` + stored + toSrc + ` AND ` + w.String() + `
		GROUP BY g.src, g.dst, g.kind
		UNION ALL
		SELECT s.name, d.name, g.kind, count(*)
		FROM edges g
		CROSS JOIN memories m ON m.seq = g.memory_seq
		CROSS JOIN entities s ON s.id = g.src
		CROSS JOIN entities d ON d.id = g.dst
		WHERE g.dst IN (SELECT id FROM f) AND g.src NOT IN (SELECT id FROM f) AND ` + stored + toDst + ` AND ` + w.String() + `
		GROUP BY g.src, g.dst, g.kind`
	to := "[]"
	if len(toArgs) > 0 {
		to = toArgs[0].(string)
	}
	args := []any{a.OrgID, jsonArg(q.From), to}
	args = append(args, w.args...)
	args = append(args, jsonArg(derived))
	args = append(args, storedArgs...)
	args = append(args, w.args...)
	args = append(args, storedArgs...)
	args = append(args, w.args...)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read edges: %w", err)
	}
	defer rows.Close()
	out := []memory.Edge{}
	for rows.Next() {
		var e memory.Edge
		if err := rows.Scan(&e.From, &e.To, &e.Type, &e.Weight); err != nil {
			return nil, fmt.Errorf("read edges: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read edges: %w", err)
	}
	return out, nil
}

// RelatedMemories ranks the memories related to a visible one
// (memory.GraphStore): shared entities, each weighted by its kind over
// the number of visible memories that mention it, and explicit links.
func (s *Store) RelatedMemories(ctx context.Context, a memory.Access, id string, limit int) ([]memory.RelatedMemory, error) {
	var w where
	w.access(a)
	acc := w.String()
	query := `WITH src AS MATERIALIZED (
			SELECT m.seq FROM memories m WHERE m.id = ? AND ` + acc + `),
		hits AS (
			SELECT y.memory_seq AS seq, y.display, mine.kind,
				count(*) OVER (PARTITION BY y.entity_id) AS df
			FROM mentions mine
			CROSS JOIN mentions y ON y.entity_id = mine.entity_id AND y.memory_seq <> mine.memory_seq
			CROSS JOIN memories m ON m.seq = y.memory_seq
			WHERE mine.memory_seq = (SELECT seq FROM src) AND ` + acc + `),
		shared AS (
			SELECT seq, sum(CASE kind WHEN 'tag' THEN 0.5 ELSE 1.0 END / (df + 1)) AS score,
				group_concat(display, char(31)) AS names, NULL AS links
			FROM hits GROUP BY seq),
		links AS (
			SELECT l.dst_seq AS seq, l.type || char(30) || '1' AS link FROM memory_links l WHERE l.src_seq = (SELECT seq FROM src)
			UNION ALL
			SELECT l.src_seq, l.type || char(30) || '0' FROM memory_links l WHERE l.dst_seq = (SELECT seq FROM src)),
		linked AS (
			SELECT seq, 2.0 * count(*) AS score, NULL AS names, group_concat(link, char(31)) AS links
			FROM links GROUP BY seq),
		cand AS (
			SELECT seq, sum(score) AS score, max(names) AS names, max(links) AS links
			FROM (SELECT * FROM shared UNION ALL SELECT * FROM linked)
			GROUP BY seq)
		SELECT ` + memoryColumns + `, c.score, c.names, c.links
		FROM cand c CROSS JOIN memories m ON m.seq = c.seq
		WHERE m.state IN ('active', 'paused') AND ` + acc + `
		ORDER BY c.score DESC, m.id LIMIT ?`
	args := append([]any{id}, w.args...)
	args = append(args, w.args...)
	args = append(args, w.args...)
	args = append(args, limit)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("related memories of %s: %w", id, err)
	}
	defer rows.Close()
	out := []memory.RelatedMemory{}
	for rows.Next() {
		var r memory.RelatedMemory
		var names, links sql.NullString
		if r.Memory, err = scanMemory(rows, &r.Score, &names, &links); err != nil {
			return nil, fmt.Errorf("related memories of %s: %w", id, err)
		}
		r.Shared, r.Links = relatedDetails(names.String, links.String)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("related memories of %s: %w", id, err)
	}
	return out, nil
}

// relatedDetails decodes the shared names and links of a related memory:
// items separated by \x1f, a link's type and direction by \x1e.
func relatedDetails(names, links string) ([]string, []memory.LinkType) {
	var shared []string
	if names != "" {
		shared = strings.Split(names, "\x1f")
		slices.Sort(shared)
		shared = slices.Compact(shared)
	}
	var lts []memory.LinkType
	if links != "" {
		for _, l := range strings.Split(links, "\x1f") {
			t, dir, _ := strings.Cut(l, "\x1e")
			lts = append(lts, memory.LinkType{Type: t, Outgoing: dir == "1"})
		}
		slices.SortFunc(lts, func(a, b memory.LinkType) int { return strings.Compare(a.Type, b.Type) })
	}
	return shared, lts
}

// aggregateColumns maps an aggregation to the memory column it groups by.
var aggregateColumns = map[string]string{
	"category": "m.category", "scope": "m.scope", "artifact": "m.artifact_ref",
	"entity": "m.entity", "app": "m.app", "state": "m.state",
}

// Aggregate counts visible memories by one field (memory.GraphStore).
func (s *Store) Aggregate(ctx context.Context, a memory.Access, q memory.AggregateQuery) ([]memory.Bucket, error) {
	var w where
	w.access(a)
	w.filter(q.Filter)
	var query string
	var args []any
	if col, ok := aggregateColumns[q.By]; ok {
		query = `SELECT ` + col + `, count(*) FROM memories m WHERE ` + w.String() + ` AND ` + col + ` <> ''
			GROUP BY ` + col + ` ORDER BY count(*) DESC, ` + col + ` LIMIT ?`
		args = append(w.args, q.Limit)
	} else if q.By == "tag" {
		query = `SELECT k, count(*) FROM (
				SELECT j.key AS k FROM memories m, json_each(m.tags) j WHERE ` + w.String() + `
				UNION ALL
				SELECT j.key || '=' || j.value FROM memories m, json_each(m.tags) j
				WHERE ` + w.String() + ` AND j.type = 'text')
			GROUP BY k ORDER BY count(*) DESC, k LIMIT ?`
		args = append(append(append([]any{}, w.args...), w.args...), q.Limit)
	} else {
		return nil, &memory.ValidationError{Field: "by", Reason: fmt.Sprintf("%q is not an aggregation", q.By)}
	}
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate by %s: %w", q.By, err)
	}
	defer rows.Close()
	out := []memory.Bucket{}
	for rows.Next() {
		var b memory.Bucket
		if err := rows.Scan(&b.Key, &b.Memories); err != nil {
			return nil, fmt.Errorf("aggregate by %s: %w", q.By, err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate by %s: %w", q.By, err)
	}
	return out, nil
}

// TagCooccurrence counts pairs of tags on visible memories
// (memory.GraphStore).
func (s *Store) TagCooccurrence(ctx context.Context, a memory.Access, tag string, limit int) ([]memory.TagPair, error) {
	var w where
	w.access(a)
	// With a tag: from its mentions to their memories; else from the
	// visible memories to their tags. A key stands for all its values.
	from := `memories m
		CROSS JOIN mentions xa ON xa.memory_seq = m.seq`
	cond, group := ` AND ea.name < eb.name`, `xa.entity_id, xb.entity_id`
	args := []any{}
	if tag != "" {
		from = `mentions xa
		CROSS JOIN memories m ON m.seq = xa.memory_seq`
		cond = ` AND xa.entity_id IN (SELECT id FROM entities WHERE org_id = ? AND name = ?)`
		args = append(args, a.OrgID, tag)
		if !strings.Contains(tag, "=") {
			cond = ` AND xa.entity_id IN (SELECT id FROM entities WHERE org_id = ? AND (name = ? OR (name > ? AND name < ?)))`
			args = append(args, tag+"=", tag+">")
			group = `xb.entity_id`
		}
	}
	args = append(append(args, w.args...), limit)
	rows, err := s.query(ctx, `SELECT min(xa.display), min(xb.display), count(*) AS n
		FROM `+from+`
		CROSS JOIN mentions xb ON xb.memory_seq = xa.memory_seq AND xb.entity_id <> xa.entity_id AND xb.kind = 'tag'
		CROSS JOIN entities ea ON ea.id = xa.entity_id
		CROSS JOIN entities eb ON eb.id = xb.entity_id
		WHERE xa.kind = 'tag'`+cond+` AND `+w.String()+`
		GROUP BY `+group+`
		ORDER BY n DESC, min(ea.name), min(eb.name) LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("tag co-occurrence: %w", err)
	}
	defer rows.Close()
	out := []memory.TagPair{}
	for rows.Next() {
		var p memory.TagPair
		if err := rows.Scan(&p.Tag, &p.Other, &p.Memories); err != nil {
			return nil, fmt.Errorf("tag co-occurrence: %w", err)
		}
		if tag != "" && !strings.Contains(tag, "=") {
			p.Tag = tag
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tag co-occurrence: %w", err)
	}
	return out, nil
}

// LinkMemories stores a link between two visible live memories
// (memory.GraphStore).
func (s *Store) LinkMemories(ctx context.Context, a memory.Access, l memory.MemoryLink) (memory.MemoryLink, bool, error) {
	var w where
	w.access(a)
	seq := `(SELECT m.seq FROM memories m WHERE m.id = ? AND m.state IN ('active', 'paused') AND ` + w.String() + `)`
	ends := append(append([]any{l.From}, w.args...), append([]any{l.To}, w.args...)...)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO memory_links (src_seq, dst_seq, type, created_by, created_at)
		SELECT s, d, ?, ?, ? FROM (SELECT `+seq+` AS s, `+seq+` AS d)
		WHERE s IS NOT NULL AND d IS NOT NULL
		ON CONFLICT DO NOTHING`, append([]any{l.Type, l.CreatedBy, formatTime(l.CreatedAt)}, ends...)...)
	if err != nil {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		if err := tx.Commit(); err != nil {
			return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", err)
		}
		l.CreatedAt = l.CreatedAt.UTC()
		return l, true, nil
	}
	var at string
	err = tx.QueryRowContext(ctx, `SELECT l.created_by, l.created_at FROM memory_links l
		WHERE l.src_seq = `+seq+` AND l.dst_seq = `+seq+` AND l.type = ?`,
		append(ends, l.Type)...).Scan(&l.CreatedBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories %s and %s: %w", l.From, l.To, memory.ErrNotFound)
	}
	if err != nil {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", err)
	}
	if l.CreatedAt, err = parseTime(at); err != nil {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", err)
	}
	return l, false, nil
}

// GraphNeighbours ranks the visible memories around seed entities, the
// graph retrieval source (memory.GraphStore).
func (s *Store) GraphNeighbours(ctx context.Context, a memory.Access, seeds []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	if len(seeds) == 0 {
		return []memory.Hit{}, nil
	}
	var acc where
	acc.access(a)
	var w where
	w.access(a)
	w.filter(f)
	// An entity more memories mention than memory.GraphCommonMentions is
	// neither a seed nor a neighbour; counting its mentions stops there.
	common := `(SELECT count(*) FROM (SELECT 1 FROM mentions c WHERE c.entity_id = %s LIMIT ?)) > ?`
	query := `WITH seed AS MATERIALIZED (
			SELECT e.id FROM entities e WHERE e.org_id = ? AND e.name IN (SELECT value FROM json_each(?))
			AND NOT ` + fmt.Sprintf(common, "e.id") + `),
		candidates AS MATERIALIZED (
			SELECT id, sum(w) AS w FROM (
				SELECT x2.entity_id AS id, count(*) AS w
				FROM seed
				CROSS JOIN mentions x1 ON x1.entity_id = seed.id
				CROSS JOIN memories m ON m.seq = x1.memory_seq
				CROSS JOIN mentions x2 ON x2.memory_seq = x1.memory_seq
				WHERE x2.kind <> 'tag' AND x2.entity_id NOT IN (SELECT id FROM seed) AND ` + acc.String() + `
				GROUP BY x2.entity_id
				UNION ALL
				SELECT CASE WHEN g.src IN (SELECT id FROM seed) THEN g.dst ELSE g.src END, count(*)
				FROM edges g CROSS JOIN memories m ON m.seq = g.memory_seq
				WHERE (g.src IN (SELECT id FROM seed)) <> (g.dst IN (SELECT id FROM seed)) AND ` + acc.String() + `
				GROUP BY 1)
			GROUP BY id ORDER BY sum(w) DESC, id LIMIT 60),
		near AS MATERIALIZED (
			SELECT id, w FROM candidates WHERE NOT ` + fmt.Sprintf(common, "candidates.id") + `
			ORDER BY w DESC, id LIMIT 20),
		weights AS (
			SELECT id, 1.0 AS w FROM seed
			UNION ALL
			SELECT id, 0.5 * w / (1.0 + w) FROM near),
		scored AS (
			SELECT x.memory_seq AS seq, sum(weights.w) AS score
			FROM weights CROSS JOIN mentions x ON x.entity_id = weights.id
			GROUP BY x.memory_seq)
		SELECT ` + memoryColumns + `, s.score
		FROM scored s CROSS JOIN memories m ON m.seq = s.seq
		WHERE ` + w.String() + `
		ORDER BY s.score DESC, m.id LIMIT ?`
	over := memory.GraphCommonMentions + 1
	args := []any{a.OrgID, jsonArg(seeds), over, memory.GraphCommonMentions}
	args = append(args, acc.args...)
	args = append(args, acc.args...)
	args = append(args, over, memory.GraphCommonMentions)
	args = append(args, w.args...)
	args = append(args, limit)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("graph neighbours: %w", err)
	}
	defer rows.Close()
	hits := []memory.Hit{}
	for rows.Next() {
		var h memory.Hit
		if h.Memory, err = scanMemory(rows, &h.Score); err != nil {
			return nil, fmt.Errorf("graph neighbours: %w", err)
		}
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("graph neighbours: %w", err)
	}
	return hits, nil
}
