package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

// BenchmarkGraph runs storetest.BenchGraph over 10,000 generated memories
// with their graph written (RebuildGraph), as every principal shape of the
// generator.
//
//	go test ./internal/store/sqlite -run '^$' -bench Graph -benchtime 300x
func BenchmarkGraph(b *testing.B) {
	s, _ := seededStore(b, 10_000)
	start := time.Now()
	if err := s.RebuildGraph(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote the graph of 10,000 memories in %v", time.Since(start).Round(time.Millisecond))
	storetest.BenchGraph(b, storetest.GraphBench{
		Service: memory.NewService(s, memory.Options{}), Principals: benchPrincipals(), PathCTE: s.pathCTE,
	})
}

// benchPrincipals are the users the generator makes: in every org, twelve
// users over three teams, a third of them with an org grant.
func benchPrincipals() []auth.Principal {
	var ps []auth.Principal
	for _, org := range benchOrgs {
		for u := range 12 {
			grants := []string{fmt.Sprintf("team:%s/%s", org, benchTeams[u%len(benchTeams)])}
			if u%3 == 0 {
				grants = append(grants, "org:"+org)
			}
			ps = append(ps, auth.Principal{Subject: fmt.Sprintf("%s-user%d", org, u), OrgID: org, Scopes: auth.AllScopes, Grants: grants})
		}
	}
	return ps
}

// pathCTE is the recursive-CTE alternative to the service's path search:
// the length of a shortest path over visible co-mentions, 0 for none.
func (s *Store) pathCTE(ctx context.Context, a memory.Access, from, to string, maxDepth int) (int, error) {
	var w where
	w.access(a)
	var depth int
	err := s.r.QueryRowContext(ctx, `WITH RECURSIVE
		vis AS MATERIALIZED (SELECT m.seq FROM memories m WHERE `+w.String()+`),
		walk (node, depth) AS (
			SELECT id, 0 FROM entities WHERE org_id = ? AND name = ?
			UNION
			SELECT x2.entity_id, walk.depth + 1
			FROM walk
			JOIN mentions x1 ON x1.entity_id = walk.node
			JOIN vis ON vis.seq = x1.memory_seq
			JOIN mentions x2 ON x2.memory_seq = x1.memory_seq AND x2.entity_id <> x1.entity_id
			WHERE walk.depth < ?)
		SELECT coalesce(min(depth), 0) FROM walk
		WHERE node = (SELECT id FROM entities WHERE org_id = ? AND name = ?)`,
		append(w.args, a.OrgID, from, maxDepth, a.OrgID, to)...).Scan(&depth)
	return depth, err
}
