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

const (
	deleteMentions = `DELETE FROM mentions x USING unnest($1::text[], $2::text[]) AS u (o, id)
		WHERE x.org_id = u.o AND x.memory_id = u.id`
	deleteEdges = `DELETE FROM edges x USING unnest($1::text[], $2::text[]) AS u (o, id)
		WHERE x.org_id = u.o AND x.memory_id = u.id`
	// Names are inserted in one statement, in (org, name) order, so that
	// concurrent writers take the locks on new names in one order and
	// cannot deadlock on each other's. A transaction that writes several
	// memories (CreateBatch, a rebuild) inserts all their names first, in
	// one statement, and no more later. Only names of memories that were
	// stored (the guard, below) are inserted by a single create; a batch
	// may leave the names of a duplicate behind, mentioned by no memory,
	// so invisible.
	insertEntities = `INSERT INTO entities (org_id, name)
		SELECT u.o, u.n FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u (o, id, h, ae, n)
		WHERE ` + guard + `
		ORDER BY u.o, u.n
		ON CONFLICT DO NOTHING`
	// Then the mentions and edges of every memory written, one statement
	// each, separate from the names': in READ COMMITTED a statement sees
	// the names other transactions committed while the names' statement
	// waited for them. The ids are scalar subqueries, looked up by index
	// one name at a time: as a join, the planner hashes the org's every
	// entity.
	insertMentions = `INSERT INTO mentions (org_id, entity_id, memory_id, kind, display)
		SELECT u.o, (SELECT e.id FROM entities e WHERE e.org_id = u.o AND e.name = u.n), u.id, u.k, u.d
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u (o, id, h, ae, n, k, d)
		WHERE ` + guard
	insertEdges = `INSERT INTO edges (org_id, src, dst, kind, memory_id)
		SELECT u.o, (SELECT e.id FROM entities e WHERE e.org_id = u.o AND e.name = u.s),
			(SELECT e.id FROM entities e WHERE e.org_id = u.o AND e.name = u.t), u.k, u.id
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u (o, id, h, ae, s, t, k)
		WHERE ` + guard
	// guard makes a row act only when its memory (u.o, u.id) is stored with
	// that content hash (u.h) in that access entity (u.ae): when a create
	// found a duplicate and stored nothing, its graph is not written
	// either. An id is a new ULID, so the row is the one just inserted.
	guard = `EXISTS (SELECT 1 FROM memories g WHERE g.org_id = u.o AND g.id = u.id AND g.content_hash = u.h AND g.access_entity = u.ae)`
)

// graphRows collects the graph of the memories one batch writes, to
// queue as at most three statements.
type graphRows struct {
	names                  [5][]string // org, id, hash, access entity, name
	mentions               [7][]string // … name, kind, display
	edges                  [7][]string // … from, to, type
	deletes                []memory.Memory
	withNames, withDeletes bool
}

// add adds what m contributes to the graph (nothing unless m is live).
func (g *graphRows) add(m memory.Memory) {
	if g.withDeletes {
		g.deletes = append(g.deletes, m)
	}
	if !memory.Live(m.State) {
		return
	}
	mentions, rels := memory.ExtractGraph(m)
	key := [4]string{m.OrgID, m.ID, m.ContentHash, m.AccessEntity}
	for _, x := range mentions {
		for i, v := range append(key[:], x.Name) {
			g.names[i] = append(g.names[i], v)
		}
		for i, v := range append(key[:], x.Name, x.Kind, x.Display) {
			g.mentions[i] = append(g.mentions[i], v)
		}
	}
	for _, r := range rels {
		for i, v := range append(key[:], r.From, r.To, r.Type) {
			g.edges[i] = append(g.edges[i], v)
		}
	}
}

// queue queues the statements and returns how many.
func (g *graphRows) queue(b *pgx.Batch) int {
	n := 0
	if len(g.deletes) > 0 {
		orgs, ids := make([]string, len(g.deletes)), make([]string, len(g.deletes))
		for i, m := range g.deletes {
			orgs[i], ids[i] = m.OrgID, m.ID
		}
		b.Queue(deleteMentions, orgs, ids)
		b.Queue(deleteEdges, orgs, ids)
		n += 2
	}
	if len(g.mentions[0]) > 0 {
		if g.withNames {
			b.Queue(insertEntities, anys(g.names[:])...)
			n++
		}
		b.Queue(insertMentions, anys(g.mentions[:])...)
		n++
	}
	if len(g.edges[0]) > 0 {
		b.Queue(insertEdges, anys(g.edges[:])...)
		n++
	}
	return n
}

func anys(cols [][]string) []any {
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c
	}
	return out
}

// queueGraph queues the statements that make the mentions and edges of m
// what m contributes to the graph, and returns how many it queued. create
// says m is new and has none yet.
func queueGraph(b *pgx.Batch, m memory.Memory, create bool) int {
	g := graphRows{withNames: true, withDeletes: !create}
	g.add(m)
	return g.queue(b)
}

// queueNames queues one statement inserting the entity names of every
// live memory of ms, for a batch that writes several memories, before it
// writes any; it returns how many statements it queued (0 or 1).
func queueNames(b *pgx.Batch, ms []memory.Memory) int {
	var g graphRows
	for _, m := range ms {
		g.add(m)
	}
	if len(g.names[0]) == 0 {
		return 0
	}
	// Unguarded: the memories are not written yet.
	b.Queue(insertAllEntities, g.names[0], g.names[4])
	return 1
}

const insertAllEntities = `INSERT INTO entities (org_id, name)
	SELECT o, n FROM unnest($1::text[], $2::text[]) AS u (o, n)
	ORDER BY o, n
	ON CONFLICT DO NOTHING`

// execN reads the results of n queued statements.
func execN(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// sendBatch sends b in tx and reads the results of its n statements.
func sendBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch, n int) error {
	if n == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, b)
	if err := execN(br, n); err != nil {
		br.Close()
		return err
	}
	return br.Close()
}

// writeGraph runs queueGraph's statements in tx.
func writeGraph(ctx context.Context, tx pgx.Tx, m memory.Memory, create bool) error {
	b := &pgx.Batch{}
	if err := sendBatch(ctx, tx, b, queueGraph(b, m, create)); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return nil
}

// graphPage is how many memories a backfill or rebuild writes at a time.
const graphPage = 500

// backfillPage writes the graph of the memories after (org, id), in key
// order, at most graphPage of them, in tx (a memory that is not live loses
// any graph it has); it returns the key of the last and whether it was the
// last page. The rows are locked (FOR SHARE) until tx ends, so that an
// update cannot commit between the read and the write and have its graph
// replaced by the one of the version read.
func backfillPage(ctx context.Context, tx pgx.Tx, org, id string) (string, string, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+memoryColumns+` FROM memories m
		WHERE (m.org_id, m.id) > ($1, $2) ORDER BY m.org_id, m.id LIMIT $3 FOR SHARE`, org, id, graphPage)
	if err != nil {
		return "", "", false, err
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Memory, error) { return scanMemory(r) })
	if err != nil || len(ms) == 0 {
		return "", "", true, err
	}
	b := &pgx.Batch{}
	n := queueNames(b, ms)
	g := graphRows{withDeletes: true}
	for _, m := range ms {
		g.add(m)
	}
	n += g.queue(b)
	if err := sendBatch(ctx, tx, b, n); err != nil {
		return "", "", false, err
	}
	last := ms[len(ms)-1]
	return last.OrgID, last.ID, len(ms) < graphPage, nil
}

// backfillGraph writes the graph of every memory in tx: the hook of the
// migration that creates the graph's tables, in its transaction (no binary
// that writes the graph runs until it commits).
func backfillGraph(ctx context.Context, tx pgx.Tx) error {
	org, id := "", ""
	for {
		var done bool
		var err error
		if org, id, done, err = backfillPage(ctx, tx, org, id); err != nil {
			return fmt.Errorf("backfill graph: %w", err)
		}
		if done {
			return nil
		}
	}
}

// migrationHooks run Go code in a migration's transaction, after its SQL.
var migrationHooks = map[string]func(context.Context, pgx.Tx) error{
	"0006_entity_graph": backfillGraph,
}

// RebuildGraph writes the mentions and edges of every memory again from
// the memories, graphPage memories to a transaction, so that it never
// holds up writers for long: for reindex, and for memories an older
// binary wrote after the migration (a rolling deploy). Each memory's graph
// is replaced whole in one transaction; a memory written meanwhile writes
// its own.
func (s *Store) RebuildGraph(ctx context.Context) error {
	org, id := "", ""
	for {
		var done bool
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			org, id, done, err = backfillPage(ctx, tx, org, id)
			return err
		})
		if err != nil {
			return fmt.Errorf("rebuild graph: %w", s.dbErr(err))
		}
		if done {
			return nil
		}
	}
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
//
// The names are turned into ids by a query of their own, so that the edge
// query compares mentions.entity_id with an array of ids: the planner then
// estimates from the column's statistics how many memories mention each,
// and plans a hub entity (a tag on every memory) as what it is.
func (s *Store) Edges(ctx context.Context, a memory.Access, q memory.EdgeQuery) ([]memory.Edge, error) {
	if len(q.From) == 0 {
		return []memory.Edge{}, nil
	}
	ids, err := s.entityIDs(ctx, a.OrgID, append(slices.Clone(q.From), q.To...))
	if err != nil {
		return nil, fmt.Errorf("read edges: %w", s.dbErr(err))
	}
	pick := func(names []string) []int64 {
		out := []int64{}
		for _, n := range names {
			if id, ok := ids[n]; ok {
				out = append(out, id)
			}
		}
		return out
	}
	from, to := pick(q.From), pick(q.To)
	if len(from) == 0 || (len(q.To) > 0 && len(to) == 0) {
		return []memory.Edge{}, nil
	}
	var w where
	org, fromArg := w.arg(a.OrgID), w.arg(from)
	w.access(a)
	acc := w.String()
	derived, stored := w.edgeTypeFilter(q.Types)
	toDerived, toSrc, toDst := "", "", ""
	if len(q.To) > 0 {
		toArg := w.arg(to)
		toDerived = ` AND x2.entity_id = ANY(` + toArg + `)`
		toSrc, toDst = ` AND g.dst = ANY(`+toArg+`)`, ` AND g.src = ANY(`+toArg+`)`
	}
	edge := func(cond string) string {
		return `SELECT g.src AS a, g.dst AS b, g.kind AS type, count(*) AS n
			FROM edges g JOIN memories m ON m.org_id = g.org_id AND m.id = g.memory_id
			WHERE g.org_id = ` + org + ` AND ` + cond + ` AND ` + stored + ` AND ` + acc + `
			GROUP BY g.src, g.dst, g.kind`
	}
	// x1: the visible mentions of the entities asked about, each memory's
	// access checked once, before its other mentions are joined.
	query := `WITH x1 AS MATERIALIZED (
			SELECT x.memory_id, x.entity_id, x.kind
			FROM mentions x JOIN memories m ON m.org_id = x.org_id AND m.id = x.memory_id
			WHERE x.org_id = ` + org + ` AND x.entity_id = ANY(` + fromArg + `) AND ` + acc + `),
		p AS (
			SELECT x1.entity_id AS a, x2.entity_id AS b,
				CASE WHEN x1.kind = 'tag' AND x2.kind = 'tag' THEN 'tag_cooccurrence' ELSE 'co_mention' END AS type, count(*) AS n
			FROM x1
			JOIN mentions x2 ON x2.org_id = ` + org + ` AND x2.memory_id = x1.memory_id AND x2.entity_id <> x1.entity_id
			WHERE true` + toDerived + `
			GROUP BY 1, 2, 3
			UNION ALL
			` + edge(`g.src = ANY(`+fromArg+`)`+toSrc) + `
			UNION ALL
			` + edge(`g.dst = ANY(`+fromArg+`) AND g.src <> ALL(`+fromArg+`)`+toDst) + `)
		SELECT ea.name, eb.name, p.type, p.n
		FROM p
		JOIN entities ea ON ea.org_id = ` + org + ` AND ea.id = p.a
		JOIN entities eb ON eb.org_id = ` + org + ` AND eb.id = p.b
		WHERE p.type LIKE 'relation:%' OR p.type = 'similar' OR p.type = ANY(` + w.arg(derived) + `)`
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

// entityIDs maps the names of an org's entities to their ids; names no
// entity has are left out.
func (s *Store) entityIDs(ctx context.Context, org string, names []string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, id FROM entities WHERE org_id = $1 AND name = ANY($2)`, org, names)
	if err != nil {
		return nil, err
	}
	ids := map[string]int64{}
	var name string
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&name, &id}, func() error {
		ids[name] = id
		return nil
	})
	return ids, err
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
	cond, group := ` AND ea.name < eb.name`, `ea.name, eb.name`
	if tag != "" {
		// A key stands for all its values.
		names := "name = " + w.arg(tag)
		if !strings.Contains(tag, "=") {
			names = "(" + names + " OR (name > " + w.arg(tag+"=") + " AND name < " + w.arg(tag+">") + "))"
			group = `eb.name`
		}
		cond = ` AND xa.entity_id IN (SELECT id FROM entities WHERE org_id = ` + org + ` AND ` + names + `)`
	}
	w.access(a)
	rows, err := s.pool.Query(ctx, `SELECT min(xa.display), min(xb.display), count(*) AS n
		FROM mentions xa
		JOIN memories m ON m.org_id = xa.org_id AND m.id = xa.memory_id
		JOIN mentions xb ON xb.org_id = xa.org_id AND xb.memory_id = xa.memory_id AND xb.entity_id <> xa.entity_id AND xb.kind = 'tag'
		JOIN entities ea ON ea.org_id = xa.org_id AND ea.id = xa.entity_id
		JOIN entities eb ON eb.org_id = xb.org_id AND eb.id = xb.entity_id
		WHERE xa.org_id = `+org+` AND xa.kind = 'tag'`+cond+` AND `+w.String()+`
		GROUP BY `+group+`
		ORDER BY n DESC, min(ea.name), min(eb.name) LIMIT `+w.arg(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("tag co-occurrence: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.TagPair, error) {
		var p memory.TagPair
		err := r.Scan(&p.Tag, &p.Other, &p.Memories)
		if tag != "" && !strings.Contains(tag, "=") {
			p.Tag = tag
		}
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
	// An entity more memories mention than memory.GraphCommonMentions is
	// neither a seed nor a neighbour; counting its mentions stops there.
	over, most := w.arg(memory.GraphCommonMentions+1), w.arg(memory.GraphCommonMentions)
	common := func(id string) string {
		return `(SELECT count(*) FROM (SELECT 1 FROM mentions c WHERE c.org_id = ` + org + ` AND c.entity_id = ` + id +
			` LIMIT ` + over + `) n) > ` + most
	}
	query := `WITH seed AS MATERIALIZED (
			SELECT e.id FROM entities e WHERE e.org_id = ` + org + ` AND e.name = ANY(` + seedArg + `)
			AND NOT ` + common("e.id") + `),
		candidates AS MATERIALIZED (
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
			GROUP BY id ORDER BY sum(w) DESC, id LIMIT 60),
		near AS MATERIALIZED (
			SELECT id, w FROM candidates WHERE NOT ` + common("candidates.id") + `
			ORDER BY w DESC, id LIMIT 20),
		weights AS (
			SELECT id, 1.0::float8 AS w FROM seed
			UNION ALL
			SELECT id, 0.5 * w / (1.0 + w) FROM near),
		scored AS (
			SELECT x.memory_id AS id, sum(weights.w) AS score
			FROM weights JOIN mentions x ON x.org_id = ` + org + ` AND x.entity_id = weights.id
			GROUP BY x.memory_id)
		SELECT ` + memoryColumns + `, s.score
		FROM scored s CROSS JOIN LATERAL (
			-- Each scored memory read by its key (OFFSET 0 keeps the
			-- planner from turning this into a hash join over every
			-- memory the caller may see, which it estimated cheaper).
			SELECT * FROM memories m WHERE m.org_id = ` + org + ` AND m.id = s.id OFFSET 0) m
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
