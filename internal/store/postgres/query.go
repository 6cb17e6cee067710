package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// where collects the conditions of a WHERE clause and the statement's
// arguments, numbering placeholders as they are added.
type where struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

// String joins the conditions with AND ("true" when there are none).
func (w *where) String() string {
	if len(w.conds) == 0 {
		return "true"
	}
	return strings.Join(w.conds, " AND ")
}

// access adds the visibility of a for the memories alias m: the org, and
// the access entity either one of a.Entities or strictly longer than and
// starting with one of a.Prefixes. No entities and no prefixes match
// nothing.
//
// A prefix is matched as a byte range, p < e < end(p), where end(p) is p
// with its last byte incremented (access_entity has the "C" collation, so
// comparison is bytewise): the planner turns each range, like the entity
// list, into a scan of the (org_id, access_entity, …) index and ANDs the
// result with the lexical index, so a search visits only visible rows. A
// LIKE ANY(patterns) would be applied row by row after the heap was read
// (about twice the rows for an org admin). A prefix whose last byte is not
// ASCII (its successor would not be valid UTF-8) is matched with LIKE,
// wildcards escaped, instead.
func (w *where) access(a memory.Access) {
	alts := []string{"m.access_entity = ANY(" + w.arg(append([]string{}, a.Entities...)) + ")"}
	var patterns []string
	for _, p := range a.Prefixes {
		if p != "" && p[len(p)-1] < 0x7F {
			end := p[:len(p)-1] + string(p[len(p)-1]+1)
			alts = append(alts, fmt.Sprintf("(m.access_entity > %s AND m.access_entity < %s)", w.arg(p), w.arg(end)))
		} else {
			patterns = append(patterns, likeEscaper.Replace(p)+"_%")
		}
	}
	if len(patterns) > 0 {
		alts = append(alts, "m.access_entity LIKE ANY("+w.arg(patterns)+")")
	}
	w.add("m.org_id = " + w.arg(a.OrgID) + " AND (" + strings.Join(alts, " OR ") + ")")
}

// likeEscaper escapes LIKE's wildcards and its escape character (backslash).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// filter adds f for the memories alias m. States empty means every state
// but deleted.
func (w *where) filter(f memory.Filter) {
	if len(f.Categories) > 0 {
		w.add("m.category = ANY(" + w.arg(strs(f.Categories)) + ")")
	}
	if len(f.Scopes) > 0 {
		w.add("m.scope = ANY(" + w.arg(strs(f.Scopes)) + ")")
	}
	if len(f.States) > 0 {
		w.add("m.state = ANY(" + w.arg(strs(f.States)) + ")")
	} else {
		w.add("m.state <> 'deleted'")
	}
	if f.Entity != "" {
		w.add("m.entity = " + w.arg(f.Entity))
	}
	if f.ArtifactRef != "" {
		w.add("m.artifact_ref = " + w.arg(f.ArtifactRef))
	}
	if f.App != "" {
		w.add("m.app = " + w.arg(f.App))
	}
	if f.AccessEntity != "" {
		w.add("m.access_entity = " + w.arg(f.AccessEntity))
	}
	if f.CreatedAfter != nil {
		w.add("m.created_at > " + w.arg(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		w.add("m.created_at < " + w.arg(*f.CreatedBefore))
	}
	if f.ValidAt != nil {
		at := w.arg(*f.ValidAt)
		w.add("(m.valid_from IS NULL OR m.valid_from <= " + at + ") AND (m.valid_to IS NULL OR m.valid_to > " + at + ")")
	}
	for _, t := range f.Tags {
		w.tag(t)
	}
}

// tag requires the memory to have tag key t, or, for "key=value", the tag
// key with that string value (a number or boolean never equals a string).
func (w *where) tag(t string) {
	key, value, hasValue := strings.Cut(t, "=")
	if key == "" {
		w.add("false")
		return
	}
	if !hasValue {
		w.add("m.tags ? " + w.arg(key))
		return
	}
	doc, err := marshalJSON(map[string]string{key: value})
	if err != nil { // cannot happen for strings; match nothing rather than everything
		w.add("false")
		return
	}
	w.add("m.tags @> " + w.arg(string(doc)) + "::jsonb")
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// sortOrders maps a memory sort to its column and direction.
var sortOrders = map[string]struct {
	column string
	desc   bool
}{
	memory.SortCreatedDesc: {"created_at", true},
	memory.SortCreatedAsc:  {"created_at", false},
	memory.SortUpdatedDesc: {"updated_at", true},
	memory.SortUpdatedAsc:  {"updated_at", false},
}

// List returns a page of visible memories keyset-paginated on (sort column,
// id). It reads one row more than the limit to know whether a next page
// exists.
func (s *Store) List(ctx context.Context, a memory.Access, q memory.ListQuery) ([]memory.Memory, string, error) {
	if q.Sort == "" {
		q.Sort = memory.SortCreatedDesc
	}
	order, ok := sortOrders[q.Sort]
	if !ok {
		return nil, "", &memory.ValidationError{Field: "sort", Reason: fmt.Sprintf("%q is not a sort order", q.Sort)}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = memory.DefaultListLimit
	}
	limit = min(limit, memory.MaxListLimit)

	var w where
	w.access(a)
	w.filter(q.Filter)
	cmp, dir := ">", "ASC"
	if order.desc {
		cmp, dir = "<", "DESC"
	}
	if q.Cursor != "" {
		c, err := memory.DecodeCursor(q.Cursor, q.Sort)
		if err != nil {
			return nil, "", err
		}
		w.add(fmt.Sprintf("(m.%s, m.id) %s (%s, %s)", order.column, cmp, w.arg(c.At), w.arg(c.ID)))
	}
	query := fmt.Sprintf(`SELECT %s FROM memories m WHERE %s ORDER BY m.%s %s, m.id %s LIMIT %s`,
		memoryColumns, w.String(), order.column, dir, dir, w.arg(limit+1))
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list memories: %w", s.dbErr(err))
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Memory, error) { return scanMemory(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list memories: %w", s.dbErr(err))
	}
	if len(ms) <= limit {
		return ms, "", nil
	}
	ms = ms[:limit]
	last := ms[limit-1]
	at := last.CreatedAt
	if order.column == "updated_at" {
		at = last.UpdatedAt
	}
	return ms, memory.EncodeCursor(memory.Cursor{Sort: q.Sort, At: at, ID: last.ID}), nil
}
