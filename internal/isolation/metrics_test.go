package isolation

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// labelValues finds the label values of a Prometheus text exposition.
var labelValues = regexp.MustCompile(`="([^"]*)"`)

// allowedLabels are label values that contain a word of the fixture by
// chance (a route pattern).
var allowedLabels = []string{"GET /api/v1/graph/path"}

// TestMetrics: GET /metrics, which covers the whole server (an operator's
// view, scope metrics:read), says nothing of any memory or caller — no
// memory id, no content, no subject, org or access entity — after every
// principal has read, searched for and tried to change memories of both
// orgs over REST and MCP; without metrics:read it is 403 naming the scope.
func TestMetrics(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cs := w.connectAll(t)
	for _, p := range w.principals {
		for _, e := range w.entries {
			w.do(t, "GET", "/api/v1/memories/"+e.m.ID, p.token, nil)
			w.do(t, "PATCH", "/api/v1/memories/"+e.m.ID+"/nowhere", p.token, map[string]any{"content": "x"})
			call(t, cs[p], "get_memory", map[string]any{"id": e.m.ID})
			w.do(t, "POST", "/api/v1/search", p.token, map[string]any{"query": e.marker})
		}
		w.do(t, "GET", "/api/v1/gdpr/subjects/gus/export", p.token, nil)
	}
	w.allUnchanged(t, "traffic before /metrics")
	words := []string{"acme", "globex", "svc-mk", "user:", "team:", "project:", "org:", "ada", "pat", "wendy", "oscar", "luke", "nina", "rita", "nora", "mallory", "gus"}
	for _, p := range w.principals {
		r := w.do(t, "GET", "/metrics", p.token, nil)
		if !can(p, auth.ScopeMetricsRead) {
			if code, msg := r.errorOf(); r.status != http.StatusForbidden || code != "insufficient_scope" {
				t.Errorf("%s: /metrics without metrics:read: %d %s %s", p.name, r.status, code, msg)
			}
			continue
		}
		// The traffic is there, by route pattern and tool.
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `route="GET /api/v1/memories/{id}"`) ||
			!strings.Contains(string(r.body), `tool="get_memory"`) {
			t.Fatalf("%s: /metrics: %d %.300s", p.name, r.status, r.body)
		}
		for _, e := range w.entries {
			if strings.Contains(string(r.body), e.m.ID) || strings.Contains(string(r.body), e.marker) {
				t.Errorf("%s: /metrics names memory %s or its content", p.name, e.m.ID)
			}
		}
		for _, m := range labelValues.FindAllStringSubmatch(string(r.body), -1) {
			v := m[1]
			for _, word := range words {
				if strings.Contains(v, word) && !slices.Contains(allowedLabels, v) {
					t.Errorf("%s: /metrics has the label value %q, which names %q", p.name, v, word)
				}
			}
		}
	}
	q := w.withoutScope(t, w.principal("ada@acme"), auth.ScopeMetricsRead)
	r := w.do(t, "GET", "/metrics", q.token, nil)
	if code, msg := r.errorOf(); r.status != http.StatusForbidden || code != "insufficient_scope" || !strings.Contains(msg, auth.ScopeMetricsRead) {
		t.Errorf("%s: /metrics: %d %s, want 403 insufficient_scope naming %s", q.name, r.status, r.body, auth.ScopeMetricsRead)
	}
}
