package client

import (
	"net/url"
	"strconv"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// ListParams selects a page of memories: the filter, the sort order
// (memory.SortCreatedDesc by default), the page size (0 for the server's
// default) and the cursor of the previous page.
type ListParams struct {
	memory.Filter
	Sort   string
	Limit  int
	Cursor string
}

// Values returns p as the query parameters of GET /api/v1/memories. Zero
// fields are left out; repeated filters (category, scope, state, tag) repeat
// the parameter; times are RFC 3339.
func (p ListParams) Values() url.Values {
	q := url.Values{}
	for _, c := range p.Categories {
		q.Add("category", string(c))
	}
	for _, s := range p.Scopes {
		q.Add("scope", string(s))
	}
	for _, s := range p.States {
		q.Add("state", string(s))
	}
	for _, t := range p.Tags {
		q.Add("tag", t)
	}
	addString(q, "entity", p.Entity)
	addString(q, "artifact_ref", p.ArtifactRef)
	addString(q, "app", p.App)
	addString(q, "access_entity", p.AccessEntity)
	addTime(q, "created_after", p.CreatedAfter)
	addTime(q, "created_before", p.CreatedBefore)
	addString(q, "sort", p.Sort)
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	addString(q, "cursor", p.Cursor)
	return q
}

func addString(q url.Values, key, v string) {
	if v != "" {
		q.Set(key, v)
	}
}

func addTime(q url.Values, key string, t *time.Time) {
	if t != nil {
		q.Set(key, t.Format(time.RFC3339Nano))
	}
}
