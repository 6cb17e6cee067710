package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// The entity graph (migration 0006; the model is described in
// memory/graph.go). Writes: queueGraph adds the graph's statements to the
// batch (or transaction) of every memory write. Reads: every statement
// joins the memories that carry a mention or an edge and applies the
// caller's access to them (where.access, alias m), so entities, edges and
// weights come only from visible memories.

var _ memory.GraphStore = (*Store)(nil)

// graphGuard makes the graph statements of a create act only when the
// memory ($1 org, $2 id) was stored with this content ($3) in this access
// entity ($4): when the insert found a duplicate and stored nothing, they
// do nothing too. An id is a new ULID, so the row is the one the batch
// inserted.
const graphGuard = `EXISTS (SELECT 1 FROM memories g WHERE g.org_id = $1 AND g.id = $2 AND g.content_hash = $3 AND g.access_entity = $4)`

const (
	deleteMentions = `DELETE FROM mentions WHERE org_id = $1 AND memory_id = $2`
	deleteEdges    = `DELETE FROM edges WHERE org_id = $1 AND memory_id = $2`
	// Names in sorted order, so that concurrent writers insert new names
	// in one order and cannot deadlock on each other's.
	insertEntities = `INSERT INTO entities (org_id, name)
		SELECT $1, n FROM unnest($5::text[]) AS n WHERE ` + graphGuard + `
		ON CONFLICT DO NOTHING`
	// A separate statement from insertEntities: in READ COMMITTED it sees
	// the names other transactions committed while insertEntities waited
	// for them.
	insertMentions = `INSERT INTO mentions (org_id, entity_id, memory_id, kind, display)
		SELECT $1, e.id, $2, x.kind, x.display
		FROM unnest($5::text[], $6::text[], $7::text[]) AS x (name, kind, display)
		JOIN entities e ON e.org_id = $1 AND e.name = x.name
		WHERE ` + graphGuard
	insertEdges = `INSERT INTO edges (org_id, src, dst, kind, memory_id)
		SELECT $1, s.id, d.id, r.kind, $2
		FROM unnest($5::text[], $6::text[], $7::text[]) AS r (src, dst, kind)
		JOIN entities s ON s.org_id = $1 AND s.name = r.src
		JOIN entities d ON d.org_id = $1 AND d.name = r.dst
		WHERE ` + graphGuard
)

// queueGraph queues the statements that make the mentions and edges of m
// what m contributes to the graph (nothing unless m is live), and returns
// how many it queued. create says m is new and has none yet.
func queueGraph(b *pgx.Batch, m memory.Memory, create bool) int {
	n := 0
	if !create {
		b.Queue(deleteMentions, m.OrgID, m.ID)
		b.Queue(deleteEdges, m.OrgID, m.ID)
		n += 2
	}
	if !memory.Live(m.State) {
		return n
	}
	mentions, rels := memory.ExtractGraph(m)
	if len(mentions) == 0 {
		return n
	}
	names := make([]string, len(mentions))
	kinds := make([]string, len(mentions))
	displays := make([]string, len(mentions))
	for i, x := range mentions {
		names[i], kinds[i], displays[i] = x.Name, x.Kind, x.Display
	}
	guard := []any{m.OrgID, m.ID, m.ContentHash, m.AccessEntity}
	b.Queue(insertEntities, append(guard, names)...)
	b.Queue(insertMentions, append(guard, names, kinds, displays)...)
	n += 2
	if len(rels) > 0 {
		src := make([]string, len(rels))
		dst := make([]string, len(rels))
		kind := make([]string, len(rels))
		for i, r := range rels {
			src[i], dst[i], kind[i] = r.From, r.To, r.Type
		}
		b.Queue(insertEdges, append(guard, src, dst, kind)...)
		n++
	}
	return n
}

// execN reads the results of n queued statements.
func execN(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// writeGraph runs queueGraph's statements in tx.
func writeGraph(ctx context.Context, tx pgx.Tx, m memory.Memory, create bool) error {
	b := &pgx.Batch{}
	n := queueGraph(b, m, create)
	if n == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	if err := execN(br, n); err != nil {
		br.Close()
		return fmt.Errorf("write graph: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return nil
}

// backfillGraph writes the graph of every live memory, for the migration
// that creates the graph's tables (it runs in that migration's
// transaction), and for a rebuild.
func backfillGraph(ctx context.Context, tx pgx.Tx) error {
	const page = 500
	afterOrg, afterID := "", ""
	for {
		rows, err := tx.Query(ctx, `SELECT `+memoryColumns+` FROM memories m
			WHERE (m.org_id, m.id) > ($1, $2) AND m.state IN ('active', 'paused')
			ORDER BY m.org_id, m.id LIMIT $3`, afterOrg, afterID, page)
		if err != nil {
			return fmt.Errorf("backfill graph: %w", err)
		}
		ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Memory, error) { return scanMemory(r) })
		if err != nil {
			return fmt.Errorf("backfill graph: %w", err)
		}
		b := &pgx.Batch{}
		n := 0
		for _, m := range ms {
			n += queueGraph(b, m, false)
		}
		if n > 0 {
			br := tx.SendBatch(ctx, b)
			if err := execN(br, n); err != nil {
				br.Close()
				return fmt.Errorf("backfill graph: %w", err)
			}
			if err := br.Close(); err != nil {
				return fmt.Errorf("backfill graph: %w", err)
			}
		}
		if len(ms) < page {
			return nil
		}
		afterOrg, afterID = ms[len(ms)-1].OrgID, ms[len(ms)-1].ID
	}
}

// migrationHooks run Go code in a migration's transaction, after its SQL.
var migrationHooks = map[string]func(context.Context, pgx.Tx) error{
	"0006_entity_graph": backfillGraph,
}

// RebuildGraph writes the mentions and edges of every memory again from
// the memories, in one transaction: for reindex, and for memories written
// by an older binary after the migration (a rolling deploy).
func (s *Store) RebuildGraph(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM mentions`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM edges`); err != nil {
			return err
		}
		return backfillGraph(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("rebuild graph: %w", s.dbErr(err))
	}
	return nil
}

// sortKinds orders kinds as memory.EntityKinds does.
func sortKinds(kinds []string) []string {
	slices.SortFunc(kinds, func(a, b string) int {
		return slices.Index(memory.EntityKinds, a) - slices.Index(memory.EntityKinds, b)
	})
	return kinds
}

// Entities returns visible entities (memory.GraphStore).
func (s *Store) Entities(ctx context.Context, a memory.Access, q memory.EntityQuery) ([]memory.Entity, error) {
	var w where
	w.add("e.org_id = " + w.arg(a.OrgID))
	limit := q.Limit
	switch {
	case len(q.Names) > 0:
		w.add("e.name = ANY(" + w.arg(q.Names) + ")")
		limit = len(q.Names)
	case q.Prefix != "":
		w.add("e.name >= " + w.arg(q.Prefix))
		if p := q.Prefix; p[len(p)-1] < 0x7F {
			w.add("e.name < " + w.arg(p[:len(p)-1]+string(p[len(p)-1]+1)))
		} else {
			w.add("left(e.name, " + w.arg(len([]rune(p))) + ") = " + w.arg(p))
		}
	}
	if q.Kind != "" {
		w.add("x.kind = " + w.arg(q.Kind))
	}
	w.access(a)
	rows, err := s.pool.Query(ctx, `SELECT e.name, min(x.display), array_agg(DISTINCT x.kind), count(*)
		FROM entities e
		JOIN mentions x ON x.org_id = e.org_id AND x.entity_id = e.id
		JOIN memories m ON m.org_id = x.org_id AND m.id = x.memory_id
		WHERE `+w.String()+`
		GROUP BY e.id, e.name ORDER BY count(*) DESC, e.name LIMIT `+w.arg(max(limit, 1)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("read entities: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Entity, error) {
		var e memory.Entity
		err := r.Scan(&e.Name, &e.Display, &e.Kinds, &e.Memories)
		e.Kinds = sortKinds(e.Kinds)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read entities: %w", s.dbErr(err))
	}
	if out == nil {
		out = []memory.Entity{}
	}
	return out, nil
}

// edgeTypeFilter splits a type filter into the derived types it admits
// and an SQL condition on a stored edge's kind (alias g). An empty filter
// admits everything.
func (w *where) edgeTypeFilter(types []string) (derived []string, stored string) {
	if len(types) == 0 {
		return []string{memory.EdgeCoMention, memory.EdgeTagCooccurrence}, "true"
	}
	var alts, kinds []string
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
		alts = append(alts, "g.kind = ANY("+w.arg(kinds)+")")
	}
	if len(alts) == 0 {
		return derived, "false"
	}
	return derived, "(" + strings.Join(alts, " OR ") + ")"
}

// Edges returns the visible edges touching q.From (memory.GraphStore).
func (s *Store) Edges(ctx context.Context, a memory.Access, q memory.EdgeQuery) ([]memory.Edge, error) {
	if len(q.From) == 0 {
		return []memory.Edge{}, nil
	}
	var w where
	org, from, to := w.arg(a.OrgID), w.arg(q.From), w.arg(append([]string{}, q.To...))
	w.access(a)
	acc := w.String()
	derived, stored := w.edgeTypeFilter(q.Types)
	toDerived, toSrc, toDst := "", "", ""
	if len(q.To) > 0 {
		toDerived = ` AND x2.entity_id IN (SELECT id FROM t)`
		toSrc, toDst = ` AND g.dst IN (SELECT id FROM t)`, ` AND g.src IN (SELECT id FROM t)`
	}
	edge := func(cond string) string {
		return `SELECT s.name, d.name, g.kind, count(*)
		FROM edges g
		JOIN memories m ON m.org_id = g.org_id AND m.id = g.memory_id
		JOIN entities s ON s.org_id = g.org_id AND s.id = g.src
		JOIN entities d ON d.org_id = g.org_id AND d.id = g.dst
		WHERE g.org_id = ` + org + ` AND ` + cond + ` AND ` + stored + ` AND ` + acc + `
		GROUP BY s.name, d.name, g.kind`
	}
	query := `WITH f AS MATERIALIZED (
			SELECT id, name FROM entities WHERE org_id = ` + org + ` AND name = ANY(` + from + `)),
		t AS MATERIALIZED (
			SELECT id FROM entities WHERE org_id = ` + org + ` AND name = ANY(` + to + `)),
		pairs AS (
			SELECT f.name AS a, x2.entity_id AS b,
				CASE WHEN x1.kind = 'tag' AND x2.kind = 'tag' THEN 'tag_cooccurrence' ELSE 'co_mention' END AS type
			FROM f
			JOIN mentions x1 ON x1.org_id = ` + org + ` AND x1.entity_id = f.id
			JOIN memories m ON m.org_id = x1.org_id AND m.id = x1.memory_id
			JOIN mentions x2 ON x2.org_id = x1.org_id AND x2.memory_id = x1.memory_id AND x2.entity_id <> x1.entity_id
			WHERE ` + acc + toDerived + `)
		SELECT p.a, e.name, p.type, count(*)
		FROM pairs p JOIN entities e ON e.org_id = ` + org + ` AND e.id = p.b
		WHERE p.type = ANY(` + w.arg(derived) + `)
		GROUP BY p.a, e.name, p.type
		UNION ALL
		` + edge(`g.src IN (SELECT id FROM f)`+toSrc) + `
		UNION ALL
		` + edge(`g.dst IN (SELECT id FROM f) AND g.src NOT IN (SELECT id FROM f)`+toDst)
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("read edges: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Edge, error) {
		var e memory.Edge
		var n int64
		err := r.Scan(&e.From, &e.To, &e.Type, &n)
		e.Weight = float64(n)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read edges: %w", s.dbErr(err))
	}
	if out == nil {
		out = []memory.Edge{}
	}
	return out, nil
}

// RelatedMemories ranks the memories related to a visible one
// (memory.GraphStore): shared entities, each weighted by its kind over
// the number of visible memories that mention it, and explicit links.
func (s *Store) RelatedMemories(ctx context.Context, a memory.Access, id string, limit int) ([]memory.RelatedMemory, error) {
	var w where
	idArg := w.arg(id)
	w.access(a)
	acc := w.String()
	query := `WITH src AS MATERIALIZED (
			SELECT m.org_id, m.id FROM memories m WHERE m.id = ` + idArg + ` AND ` + acc + `),
		hits AS (
			SELECT y.memory_id AS id, y.display, mine.kind,
				count(*) OVER (PARTITION BY y.entity_id) AS df
			FROM src
			JOIN mentions mine ON mine.org_id = src.org_id AND mine.memory_id = src.id
			JOIN mentions y ON y.org_id = mine.org_id AND y.entity_id = mine.entity_id AND y.memory_id <> mine.memory_id
			JOIN memories m ON m.org_id = y.org_id AND m.id = y.memory_id
			WHERE ` + acc + `),
		shared AS (
			SELECT id, sum(CASE kind WHEN 'tag' THEN 0.5 ELSE 1.0 END / (df + 1))::float8 AS score,
				array_agg(DISTINCT display) AS names
			FROM hits GROUP BY id),
		links AS (
			SELECT l.dst_id AS id, l.type || chr(30) || '1' AS link
			FROM src JOIN memory_links l ON l.org_id = src.org_id AND l.src_id = src.id
			UNION ALL
			SELECT l.src_id, l.type || chr(30) || '0'
			FROM src JOIN memory_links l ON l.org_id = src.org_id AND l.dst_id = src.id),
		linked AS (
			SELECT id, 2.0::float8 * count(*) AS score, array_agg(link) AS links FROM links GROUP BY id),
		cand AS (
			SELECT coalesce(s.id, l.id) AS id, coalesce(s.score, 0) + coalesce(l.score, 0) AS score, s.names, l.links
			FROM shared s FULL JOIN linked l ON l.id = s.id)
		SELECT ` + memoryColumns + `, c.score, c.names, c.links
		FROM cand c JOIN memories m ON m.org_id = ` + w.arg(a.OrgID) + ` AND m.id = c.id
		WHERE m.state IN ('active', 'paused') AND ` + acc + `
		ORDER BY c.score DESC, m.id LIMIT ` + w.arg(limit)
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("related memories of %s: %w", id, s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.RelatedMemory, error) {
		var rm memory.RelatedMemory
		var names, links []string
		m, err := scanMemory(r, &rm.Score, &names, &links)
		rm.Memory = m
		rm.Shared, rm.Links = relatedDetails(names, links)
		return rm, err
	})
	if err != nil {
		return nil, fmt.Errorf("related memories of %s: %w", id, s.dbErr(err))
	}
	if out == nil {
		out = []memory.RelatedMemory{}
	}
	return out, nil
}

// relatedDetails decodes the shared names and links of a related memory;
// a link is its type and direction separated by \x1e.
func relatedDetails(names, links []string) ([]string, []memory.LinkType) {
	var shared []string
	if len(names) > 0 {
		shared = slices.Clone(names)
		slices.Sort(shared)
	}
	var lts []memory.LinkType
	for _, l := range links {
		t, dir, _ := strings.Cut(l, "\x1e")
		lts = append(lts, memory.LinkType{Type: t, Outgoing: dir == "1"})
	}
	slices.SortFunc(lts, func(a, b memory.LinkType) int { return strings.Compare(a.Type, b.Type) })
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
	if col, ok := aggregateColumns[q.By]; ok {
		query = `SELECT ` + col + `, count(*) FROM memories m WHERE ` + w.String() + ` AND ` + col + ` <> ''
			GROUP BY ` + col + ` ORDER BY count(*) DESC, ` + col + ` COLLATE "C" LIMIT ` + w.arg(q.Limit)
	} else if q.By == "tag" {
		query = `SELECT k, count(*) FROM (
				SELECT j.key AS k FROM memories m, jsonb_each(m.tags) j WHERE ` + w.String() + `
				UNION ALL
				SELECT j.key || '=' || (j.value #>> '{}') FROM memories m, jsonb_each(m.tags) j
				WHERE ` + w.String() + ` AND jsonb_typeof(j.value) = 'string') q
			GROUP BY k ORDER BY count(*) DESC, k COLLATE "C" LIMIT ` + w.arg(q.Limit)
	} else {
		return nil, &memory.ValidationError{Field: "by", Reason: fmt.Sprintf("%q is not an aggregation", q.By)}
	}
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate by %s: %w", q.By, s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Bucket, error) {
		var b memory.Bucket
		err := r.Scan(&b.Key, &b.Memories)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("aggregate by %s: %w", q.By, s.dbErr(err))
	}
	if out == nil {
		out = []memory.Bucket{}
	}
	return out, nil
}

// TagCooccurrence counts pairs of tags on visible memories
// (memory.GraphStore).
func (s *Store) TagCooccurrence(ctx context.Context, a memory.Access, tag string, limit int) ([]memory.TagPair, error) {
	var w where
	org := w.arg(a.OrgID)
	cond := ` AND ea.name < eb.name`
	if tag != "" {
		cond = ` AND xa.entity_id = (SELECT id FROM entities WHERE org_id = ` + org + ` AND name = ` + w.arg(tag) + `)`
	}
	w.access(a)
	rows, err := s.pool.Query(ctx, `SELECT min(xa.display), min(xb.display), count(*) AS n
		FROM mentions xa
		JOIN memories m ON m.org_id = xa.org_id AND m.id = xa.memory_id
		JOIN mentions xb ON xb.org_id = xa.org_id AND xb.memory_id = xa.memory_id AND xb.entity_id <> xa.entity_id AND xb.kind = 'tag'
		JOIN entities ea ON ea.org_id = xa.org_id AND ea.id = xa.entity_id
		JOIN entities eb ON eb.org_id = xb.org_id AND eb.id = xb.entity_id
		WHERE xa.org_id = `+org+` AND xa.kind = 'tag'`+cond+` AND `+w.String()+`
			AND left(eb.name, length(ea.name) + 1) <> ea.name || '='
			AND left(ea.name, length(eb.name) + 1) <> eb.name || '='
		GROUP BY ea.name, eb.name
		ORDER BY n DESC, ea.name, eb.name LIMIT `+w.arg(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("tag co-occurrence: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.TagPair, error) {
		var p memory.TagPair
		err := r.Scan(&p.Tag, &p.Other, &p.Memories)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("tag co-occurrence: %w", s.dbErr(err))
	}
	if out == nil {
		out = []memory.TagPair{}
	}
	return out, nil
}

// LinkMemories stores a link between two visible live memories
// (memory.GraphStore).
func (s *Store) LinkMemories(ctx context.Context, a memory.Access, l memory.MemoryLink) (memory.MemoryLink, bool, error) {
	var w where
	org, from, to, typ := w.arg(a.OrgID), w.arg(l.From), w.arg(l.To), w.arg(l.Type)
	w.access(a)
	acc := w.String()
	ends := `WITH s AS (SELECT m.id FROM memories m WHERE m.id = ` + from + ` AND m.state IN ('active', 'paused') AND ` + acc + `),
		d AS (SELECT m.id FROM memories m WHERE m.id = ` + to + ` AND m.state IN ('active', 'paused') AND ` + acc + `)`
	l.CreatedAt = utc(l.CreatedAt)
	ins := w
	ins.args = slices.Clone(w.args)
	err := s.pool.QueryRow(ctx, ends+`
		INSERT INTO memory_links (org_id, src_id, dst_id, type, created_by, created_at)
		SELECT `+org+`, s.id, d.id, `+typ+`, `+ins.arg(l.CreatedBy)+`, `+ins.arg(l.CreatedAt)+` FROM s, d
		ON CONFLICT DO NOTHING RETURNING created_at`, ins.args...).Scan(&l.CreatedAt)
	if err == nil {
		l.CreatedAt = l.CreatedAt.UTC()
		return l, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", s.dbErr(err))
	}
	var at time.Time
	err = s.pool.QueryRow(ctx, ends+`
		SELECT l.created_by, l.created_at FROM s, d
		JOIN memory_links l ON l.org_id = `+org+` AND l.dst_id = d.id
		WHERE l.src_id = s.id AND l.type = `+typ, w.args...).Scan(&l.CreatedBy, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories %s and %s: %w", l.From, l.To, memory.ErrNotFound)
	}
	if err != nil {
		return memory.MemoryLink{}, false, fmt.Errorf("link memories: %w", s.dbErr(err))
	}
	l.CreatedAt = at.UTC()
	return l, false, nil
}

// GraphNeighbours ranks the visible memories around seed entities, the
// graph retrieval source (memory.GraphStore).
func (s *Store) GraphNeighbours(ctx context.Context, a memory.Access, seeds []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	if len(seeds) == 0 {
		return []memory.Hit{}, nil
	}
	var w where
	org, seedArg := w.arg(a.OrgID), w.arg(seeds)
	w.access(a)
	acc := w.String()
	var wf where
	wf.args = w.args
	wf.filter(f)
	filter := wf.String()
	w.args = wf.args
	query := `WITH seed AS MATERIALIZED (
			SELECT id FROM entities WHERE org_id = ` + org + ` AND name = ANY(` + seedArg + `)),
		near AS MATERIALIZED (
			SELECT id, sum(w) AS w FROM (
				SELECT x2.entity_id AS id, count(*) AS w
				FROM seed
				JOIN mentions x1 ON x1.org_id = ` + org + ` AND x1.entity_id = seed.id
				JOIN memories m ON m.org_id = x1.org_id AND m.id = x1.memory_id
				JOIN mentions x2 ON x2.org_id = x1.org_id AND x2.memory_id = x1.memory_id
				WHERE x2.kind <> 'tag' AND x2.entity_id NOT IN (SELECT id FROM seed) AND ` + acc + `
				GROUP BY x2.entity_id
				UNION ALL
				SELECT CASE WHEN g.src IN (SELECT id FROM seed) THEN g.dst ELSE g.src END, count(*)
				FROM edges g JOIN memories m ON m.org_id = g.org_id AND m.id = g.memory_id
				WHERE g.org_id = ` + org + ` AND (g.src IN (SELECT id FROM seed)) <> (g.dst IN (SELECT id FROM seed)) AND ` + acc + `
				GROUP BY 1) n
			GROUP BY id ORDER BY sum(w) DESC, id LIMIT 20),
		weights AS (
			SELECT id, 1.0::float8 AS w FROM seed
			UNION ALL
			SELECT id, 0.5 * w / (1.0 + w) FROM near),
		scored AS (
			SELECT x.memory_id AS id, sum(weights.w) AS score
			FROM weights JOIN mentions x ON x.org_id = ` + org + ` AND x.entity_id = weights.id
			GROUP BY x.memory_id)
		SELECT ` + memoryColumns + `, s.score
		FROM scored s JOIN memories m ON m.org_id = ` + org + ` AND m.id = s.id
		WHERE ` + acc + ` AND ` + filter + `
		ORDER BY s.score DESC, m.id LIMIT ` + w.arg(limit)
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("graph neighbours: %w", s.dbErr(err))
	}
	hits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Hit, error) {
		var h memory.Hit
		m, err := scanMemory(r, &h.Score)
		h.Memory = m
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("graph neighbours: %w", s.dbErr(err))
	}
	if hits == nil {
		hits = []memory.Hit{}
	}
	return hits, nil
}
