package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// where collects the conditions of a WHERE clause and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// String joins the conditions with AND ("1" when there are none).
func (w *where) String() string {
	if len(w.conds) == 0 {
		return "1"
	}
	return strings.Join(w.conds, " AND ")
}

// placeholders returns "?, ?, ?" for n arguments.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// access adds the visibility of a to w for the memories alias m: the org, and
// the access entity either one of a.Entities or strictly longer than and
// starting with one of a.Prefixes. Prefixes are matched as a byte range
// (p < e < p with its last byte incremented) rather than with LIKE, which in
// SQLite ignores ASCII case and treats _ and % as wildcards; the range is
// exact and uses the index on (org_id, access_entity).
func (w *where) access(a memory.Access) {
	var alts []string
	var args []any
	if len(a.Entities) > 0 {
		alts = append(alts, "m.access_entity IN ("+placeholders(len(a.Entities))+")")
		for _, e := range a.Entities {
			args = append(args, e)
		}
	}
	for _, p := range a.Prefixes {
		if end, ok := prefixEnd(p); ok {
			alts = append(alts, "(m.access_entity > ? AND m.access_entity < ?)")
			args = append(args, p, end)
		} else {
			alts = append(alts, "m.access_entity > ?")
			args = append(args, p)
		}
	}
	if len(alts) == 0 {
		w.add("0") // no grants: nothing is visible
		return
	}
	w.add("m.org_id = ?", a.OrgID)
	w.add("("+strings.Join(alts, " OR ")+")", args...)
}

// prefixEnd returns the smallest string greater than every string that
// starts with p, or false when there is none (p is empty or all 0xFF bytes).
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xFF {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// filter adds f to w for the memories alias m.
func (w *where) filter(f memory.Filter) {
	if len(f.Categories) > 0 {
		w.add("m.category IN ("+placeholders(len(f.Categories))+")", anys(f.Categories)...)
	}
	if len(f.Scopes) > 0 {
		w.add("m.scope IN ("+placeholders(len(f.Scopes))+")", anys(f.Scopes)...)
	}
	if len(f.States) > 0 {
		w.add("m.state IN ("+placeholders(len(f.States))+")", anys(f.States)...)
	} else {
		w.add("m.state <> 'deleted'")
	}
	if f.Entity != "" {
		w.add("m.entity = ?", f.Entity)
	}
	if f.ArtifactRef != "" {
		w.add("m.artifact_ref = ?", f.ArtifactRef)
	}
	if f.App != "" {
		w.add("m.app = ?", f.App)
	}
	if f.AccessEntity != "" {
		w.add("m.access_entity = ?", f.AccessEntity)
	}
	if f.CreatedAfter != nil {
		w.add("m.created_at > ?", formatTime(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		w.add("m.created_at < ?", formatTime(*f.CreatedBefore))
	}
	if f.ValidAt != nil {
		at := formatTime(*f.ValidAt)
		w.add("(m.valid_from IS NULL OR m.valid_from <= ?) AND (m.valid_to IS NULL OR m.valid_to > ?)", at, at)
	}
	for _, t := range f.Tags {
		w.tag(t)
	}
}

// tag requires the memory to have tag key t, or, for "key=value", the tag
// key with the string value. Keys go into a JSON path as a quoted label;
// a key that cannot be a tag key (it holds a double quote) matches nothing.
func (w *where) tag(t string) {
	key, value, hasValue := strings.Cut(t, "=")
	if key == "" || strings.ContainsAny(key, `"\`) {
		w.add("0")
		return
	}
	path := `$."` + key + `"`
	if hasValue {
		w.add("(json_type(m.tags, ?) = 'text' AND json_extract(m.tags, ?) = ?)", path, path, value)
		return
	}
	w.add("json_type(m.tags, ?) IS NOT NULL", path)
}

func anys[T ~string](vs []T) []any {
	out := make([]any, len(vs))
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
		w.add(fmt.Sprintf("(m.%s, m.id) %s (?, ?)", order.column, cmp), formatTime(c.At), c.ID)
	}
	query := fmt.Sprintf(`SELECT %s FROM memories m WHERE %s ORDER BY m.%s %s, m.id %s LIMIT ?`,
		memoryColumns, w.String(), order.column, dir, dir)
	rows, err := s.query(ctx, query, append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list memories: %w", err)
	}
	defer rows.Close()
	var ms []memory.Memory
	for rows.Next() {
		m, err := scanMemory(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list memories: %w", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list memories: %w", err)
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
