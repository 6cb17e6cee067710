package isolation

import (
	"strings"
	"testing"
)

// postgresCases are the REST cases whose isolation rests on SQL of each
// store's own (export and import, subject rows and erasure, retention):
// TestPostgres runs them on PostgreSQL too.
var postgresCases = []string{
	"GET /api/v1/export",
	"POST /api/v1/import",
	"GET /api/v1/gdpr/subjects/{sub}/export",
	"DELETE /api/v1/gdpr/subjects/{sub}",
	"GET /api/v1/gdpr/subjects/{sub}/check",
	"GET /api/v1/admin/retention",
	"PUT /api/v1/admin/retention",
	"POST /api/v1/search",
	"GET /api/v1/memories/{id}",
}

// TestPostgres runs postgresCases on a PostgreSQL store, each on a fresh
// database; it skips when PostgreSQL is not installed (pgtest says why).
func TestPostgres(t *testing.T) {
	t.Parallel()
	for _, key := range postgresCases {
		c, ok := restCases[key]
		if !ok {
			t.Fatalf("postgresCases names %s, which restCases has no case for", key)
		}
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			w := newWorldOn(t, openPostgres(t))
			c.run(t, w)
			w.allUnchanged(t, "after the case of "+key)
		})
	}
}
