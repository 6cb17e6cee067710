package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// Benchmarks run memory.Service over a store seeded with n memories of
// generated coding-team knowledge: four orgs, a dozen users and three teams
// each, a vocabulary of a few hundred words. Each reports the p50 and p99
// latency of single operations besides ns/op.
//
//	go test ./internal/store/sqlite -run XXX -bench . -benchtime 2000x

var benchSizes = []int{10_000, 100_000}

func BenchmarkAdd(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, g := seededStore(b, n)
			svc := memory.NewService(s, memory.Options{})
			var lat []time.Duration
			for b.Loop() {
				p := g.principal()
				in := g.input(p)
				ctx := auth.WithPrincipal(b.Context(), p)
				start := time.Now()
				if _, _, err := svc.Add(ctx, in); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}

func BenchmarkSearch(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, g := seededStore(b, n)
			svc := memory.NewService(s, memory.Options{})
			var lat []time.Duration
			hits := 0
			for b.Loop() {
				p := g.principal()
				q := memory.SearchQuery{Text: g.query(), Limit: 10}
				ctx := auth.WithPrincipal(b.Context(), p)
				start := time.Now()
				res, err := svc.Search(ctx, q, memory.ViaMCP)
				hs := res.Hits
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				hits += len(hs)
			}
			reportPercentiles(b, lat)
			b.ReportMetric(float64(hits)/float64(len(lat)), "hits/op")
		})
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		i := min(len(lat)-1, int(p*float64(len(lat))))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// seededStore opens a store in a temporary directory and fills it with n
// generated memories, 1,000 to a transaction.
func seededStore(b *testing.B, n int) (*Store, *generator) {
	b.Helper()
	ctx := b.Context()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	g := newGenerator(42)
	start := time.Now()
	if err := seedGenerated(ctx, s, g, n); err != nil {
		b.Fatal(err)
	}
	// Start from a checkpointed file, as a restarted server does.
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d memories in %v", n, time.Since(start).Round(time.Millisecond))
	return s, g
}

// insertBatch writes memories and their create history rows in one
// transaction, skipping exact duplicates.
func (s *Store) insertBatch(ctx context.Context, ms []memory.Memory) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, insertMemory+` ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	hist, err := tx.PrepareContext(ctx, insertHistory)
	if err != nil {
		return err
	}
	for _, m := range ms {
		args, err := canonical(&m)
		if err != nil {
			return err
		}
		res, err := ins.ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		after, err := marshalJSON(m)
		if err != nil {
			return err
		}
		if _, err := hist.ExecContext(ctx, m.ID, m.OrgID, m.CreatedBy, "create", formatTime(m.CreatedAt), nil, after); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// generator makes reproducible coding-team memories, principals and queries.
type generator struct {
	r *rand.Rand
}

func newGenerator(seed uint64) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *generator) pick(words []string) string { return words[g.r.IntN(len(words))] }

var (
	benchOrgs  = []string{"acme", "globex", "initech", "umbrella"}
	benchTeams = []string{"backend", "frontend", "platform"}
	techs      = strings.Fields(`postgres pgx sqlite redis valkey kafka nats grpc protobuf graphql openapi
		kubernetes helm terraform docker nginx envoy istio prometheus grafana loki tempo opentelemetry jaeger
		vault consul etcd s3 lambda cloudflare react nextjs typescript webpack vite jest playwright cypress
		golang rust python django fastapi celery rabbitmq elasticsearch opensearch clickhouse bigquery
		snowflake dbt airflow spark flink github gitlab jenkins argocd bazel goreleaser golangci sentry
		datadog pagerduty okta keycloak jwt oauth oidc mtls stripe twilio sendgrid temporal sqlc`)
	nouns = strings.Fields(`service api endpoint handler middleware database schema migration index query
		transaction connection pool cache queue topic consumer producer worker job cron scheduler retry
		backoff timeout deadline circuit breaker limiter quota token session cookie header payload request
		response error exception panic log metric trace span alert dashboard runbook incident outage
		rollback deploy release canary flag config secret key certificate build pipeline test fixture mock
		benchmark profile latency throughput memory cpu disk network dns balancer ingress pod node cluster
		namespace replica shard partition backup snapshot restore upgrade dependency module package version
		changelog review branch merge commit monorepo lint coverage contract interface struct goroutine
		channel mutex context invoice payment billing checkout cart account tenant permission role audit
		webhook upload download thumbnail search ranking embedding vector email notification report export`)
	verbs = strings.Fields(`use prefer avoid require run deploy migrate retry cache validate log rotate pin
		upgrade review document test mock benchmark profile shard partition index paginate batch stream
		compress encrypt sign verify monitor alert page escalate revert squash rebase tag release build
		vendor generate embed wrap close cancel drain throttle dedupe normalize serialize parse configure
		enable disable remove replace split merge`)
	adjectives = strings.Fields(`idempotent flaky slow fast critical legacy deprecated experimental stable
		internal public private async synchronous blocking stateless stateful readonly hot cold nightly
		weekly staging production local remote regional global small large bounded unbounded strict lenient
		structured typed generated manual automatic encrypted signed cached sharded replicated`)
	envs      = []string{"production", "staging", "ci", "local development", "the canary region", "eu-west-1", "us-east-1"}
	templates = []string{
		"We %[2]s %[1]s for the %[3]s %[4]s because the old %[5]s was %[6]s in %[7]s.",
		"Convention: always %[2]s the %[3]s before you %[8]s the %[4]s; reviewers reject %[6]s %[5]s changes.",
		"The %[1]s %[3]s %[4]s must stay %[6]s; %[2]s it with %[9]s in %[7]s.",
		"Runbook: when the %[3]s %[4]s alert fires, %[2]s the %[5]s, then %[8]s %[1]s and check the %[10]s dashboard.",
		"Gotcha: %[1]s will %[2]s every %[3]s as %[6]s unless the %[4]s %[5]s is set explicitly.",
		"Decision: move the %[3]s %[4]s from %[1]s to %[9]s so that %[5]s handling is %[6]s.",
		"Testing: %[2]s the %[3]s with a %[6]s %[4]s fixture; the %[5]s tests are %[11]s on %[7]s.",
		"Performance: the %[3]s %[4]s p99 dropped after we started to %[2]s the %[5]s in %[1]s.",
		"Security: never %[2]s a %[3]s %[4]s in logs; %[1]s %[10]s values must be %[6]s.",
		"Architecture: the %[4]s %[3]s talks to %[1]s through a %[6]s %[5]s, and %[9]s owns the %[10]s.",
	}
)

// principal picks a user of a random org with one team grant, and for a
// third of the users an org grant too.
func (g *generator) principal() auth.Principal {
	org := g.pick(benchOrgs)
	u := g.r.IntN(12)
	grants := []string{fmt.Sprintf("team:%s/%s", org, benchTeams[u%len(benchTeams)])}
	if u%3 == 0 {
		grants = append(grants, "org:"+org)
	}
	return auth.Principal{Subject: fmt.Sprintf("%s-user%d", org, u), OrgID: org, Scopes: auth.AllScopes, Grants: grants, App: "claude-code"}
}

func (g *generator) sentence() string {
	return fmt.Sprintf(g.pick(templates), g.pick(techs), g.pick(verbs), g.pick(nouns), g.pick(nouns),
		g.pick(nouns), g.pick(adjectives), g.pick(envs), g.pick(verbs), g.pick(techs), g.pick(nouns), g.pick(adjectives))
}

// input makes a memory of one to three sentences as p would add it.
func (g *generator) input(p auth.Principal) memory.Input {
	var b strings.Builder
	for i := range 1 + g.r.IntN(3) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(g.sentence())
	}
	in := memory.Input{
		Content:  b.String(),
		Category: memory.Categories[g.r.IntN(len(memory.Categories))],
		Entity:   g.pick(nouns) + "-" + g.pick(nouns),
		Tags:     map[string]any{"lang": g.pick([]string{"go", "ts", "python", "rust"}), "area": g.pick(nouns)},
		Evidence: []string{fmt.Sprintf("PR#%d", g.r.IntN(5000))},
		App:      p.App,
	}
	if g.r.IntN(2) == 0 {
		in.ArtifactType, in.ArtifactRef = "repo", fmt.Sprintf("github.com/%s/%s", p.OrgID, g.pick(nouns))
	}
	switch x := g.r.IntN(10); {
	case x < 5:
		in.Scope = "user"
	case x < 8:
		in.Scope, in.AccessEntity = "team", p.Grants[0]
	default:
		in.Scope, in.AccessEntity = "org", "org:"+p.OrgID
		if len(p.Grants) == 1 { // no org grant: share with the team instead
			in.Scope, in.AccessEntity = "team", p.Grants[0]
		}
	}
	return in
}

// query makes a search: a few keywords, a question, or a phrase.
func (g *generator) query() string {
	switch x := g.r.IntN(10); {
	case x < 6:
		words := []string{g.pick(nouns), g.pick(techs)}
		if g.r.IntN(2) == 0 {
			words = append(words, g.pick(nouns))
		}
		return strings.Join(words, " ")
	case x < 8:
		return fmt.Sprintf("how do we %s the %s %s in %s?", g.pick(verbs), g.pick(nouns), g.pick(nouns), g.pick(techs))
	default:
		return fmt.Sprintf("%s %s", g.pick(nouns), g.pick(nouns))
	}
}

// seedGenerated inserts n memories from g (one a minute from 2025-01-01,
// every 50th archived) in batches of 1,000, as the benchmarks and the DR
// drill's seed need them.
func seedGenerated(ctx context.Context, s *Store, g *generator, n int) error {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := memory.NewULIDSource(func() time.Time { return base })
	batch := make([]memory.Memory, 0, 1000)
	for i := range n {
		p := g.principal()
		in := g.input(p)
		at := base.Add(time.Duration(i) * time.Minute)
		m := memory.Memory{
			ID: ids(), OrgID: p.OrgID, Content: in.Content, Category: in.Category, Scope: in.Scope,
			ArtifactType: in.ArtifactType, ArtifactRef: in.ArtifactRef, Entity: in.Entity, Source: "user",
			Evidence: in.Evidence, Tags: in.Tags, AccessEntity: in.AccessEntity, App: in.App,
			State: memory.StateActive, CreatedBy: p.Subject, CreatedAt: at, UpdatedAt: at,
		}
		if i%50 == 0 {
			m.State = memory.StateArchived
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.insertBatch(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}
