package retrieval_test

// Benchmarks of search through memory.Service at 100k memories with the
// built-in embedder, on SQLite and PostgreSQL: hybrid (the default), and
// lexical and vector alone, for a principal who sees the whole org and for
// one who sees one team of ten and their own memories; adds through the
// service (embedding, near-duplicate check, store, embedding stored, index
// updated); and the index load at start, with the process's resident
// memory once loaded.
//
//	go test ./internal/retrieval -run '^$' -bench . -benchtime 1000x -timeout 60m
//
// (-bench 'Retrieval/store=sqlite/search' and so on pick parts; the store
// is seeded once per store whatever is picked.)
//
// RETRIEVAL_BENCH_N sets the number of memories (default 100000);
// RETRIEVAL_BENCH_DIR keeps the SQLite database there, and a later run of
// the same size uses it instead of seeding again (the add benchmark makes
// it grow by -benchtime memories each run);
// RETRIEVAL_BENCH_DATABASE_URL does the same with a PostgreSQL database;
// RETRIEVAL_BENCH_RANKING tunes search as serve's --search-ranking.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/embed"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/retrieval"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("RETRIEVAL_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// words of generated memories.
var (
	services = strings.Fields("payments ledger billing checkout auth search catalog inventory shipping notifications " +
		"gateway scheduler reporting analytics onboarding accounts invoices refunds pricing fraud")
	techs = strings.Fields("PostgreSQL Kafka Redis Valkey React Go gRPC GraphQL Terraform Kubernetes Helm Airflow dbt " +
		"Snowflake S3 CloudFront Nginx Envoy Prometheus Grafana OpenTelemetry Sentry Vite pnpm Swift Kotlin")
	parts = strings.Fields("worker consumer producer API client cache index migration cron queue webhook pipeline " +
		"dashboard alert runbook deploy rollout feature-flag schema replica pool")
	verbs = strings.Fields("retry batch shard cache validate rotate compact vacuum throttle debounce page " +
		"partition replicate snapshot archive dedupe encrypt sign verify backfill")
	reasons = strings.Fields("latency cost compliance reliability throughput correctness security simplicity " +
		"ownership observability durability isolation")
)

type gen struct{ r *rand.Rand }

func (g gen) pick(ws []string) string { return ws[g.r.IntN(len(ws))] }

// vocabulary is 8,000 made-up identifiers and terms (service, table, flag
// names …); texts draw from it Zipf-distributed, so a query word matches
// from a few to a few thousand of 100,000 memories, as in a real team's
// notes, instead of a fixed fraction of them.
var vocabulary = func() []string {
	syl := strings.Fields("ka lo mi nu pe ra si to vu xe ba co di fu ga he ji ke la mo ne pi qu re so ti ul va we yo za")
	r := rand.New(rand.NewPCG(11, 12))
	seen := map[string]bool{}
	var out []string
	for len(out) < 8000 {
		w := syl[r.IntN(len(syl))] + syl[r.IntN(len(syl))] + syl[r.IntN(len(syl))]
		if r.IntN(3) == 0 {
			w += syl[r.IntN(len(syl))]
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

// docWords are the vocabulary words of memory i, the same every time.
func docWords(i int) []string {
	r := rand.New(rand.NewPCG(uint64(i), 99))
	z := rand.NewZipf(r, 1.07, 4, uint64(len(vocabulary)-1))
	ws := make([]string, 8+r.IntN(10))
	for j := range ws {
		ws[j] = vocabulary[z.Uint64()]
	}
	return ws
}

func (g gen) content(i int) string {
	ws := docWords(i)
	return fmt.Sprintf("The %s %s uses %s for %s: %s. We %s it every %d minutes because of %s.",
		g.pick(services), g.pick(parts), g.pick(techs), strings.Join(ws[:len(ws)/2], " "), strings.Join(ws[len(ws)/2:], " "),
		g.pick(verbs), 1+g.r.IntN(60), g.pick(reasons))
}

// query is three or four words of a random memory's, with a question's
// words around them (not the words every generated memory has: a query
// of "uses" ranks all 100,000 by BM25, which measures FTS5 on a word no
// real query needs, at about 90 ms).
func (g gen) query(n int) string {
	ws := docWords(g.r.IntN(n))
	q := make([]string, 0, 4)
	for range 3 + g.r.IntN(2) {
		q = append(q, ws[g.r.IntN(len(ws))])
	}
	switch g.r.IntN(3) {
	case 0:
		return "how do we handle " + strings.Join(q, " ")
	case 1:
		return strings.Join(q, " ") + " " + g.pick(reasons)
	}
	return "why is " + strings.Join(q, " ") + " in " + g.pick(services)
}

// benchWorld is a store seeded with n memories of one org (a hundred
// users, seven teams) and their embeddings.
type benchWorld struct {
	st     store
	emb    embed.Embedder
	seeded time.Duration
}

// newWorld opens a store of kind for the benchmark b and its
// sub-benchmarks, and seeds it.
func newWorld(b *testing.B, kind string) *benchWorld {
	var st store
	var err error
	switch kind {
	case "sqlite":
		// RETRIEVAL_BENCH_DIR keeps the database (as codingbrain.db, a data
		// directory serve can open) for measuring a server on it.
		dir := os.Getenv("RETRIEVAL_BENCH_DIR")
		if dir == "" {
			dir = b.TempDir()
		}
		st, err = sqlite.Open(context.Background(), filepath.Join(dir, "codingbrain.db"))
	case "postgres":
		// RETRIEVAL_BENCH_DATABASE_URL keeps the database, as
		// RETRIEVAL_BENCH_DIR does SQLite's.
		url := os.Getenv("RETRIEVAL_BENCH_DATABASE_URL")
		if url == "" {
			if _, perr := pgtest.Available(); perr != nil {
				b.Skip(perr)
			}
			url = pgtest.Database(b)
		}
		var ps *postgres.Store
		ps, err = postgres.Open(context.Background(), postgres.Config{URL: url, StatementTimeout: time.Minute})
		if err == nil {
			_, err = ps.Migrate(context.Background())
			st = ps
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w := &benchWorld{st: st, emb: embed.NewBuiltin()}
	// A database kept by an earlier run of the same size is used as it is
	// (in RETRIEVAL_BENCH_DIR a marker file records the size seeded; in
	// RETRIEVAL_BENCH_DATABASE_URL it is the count of memories, which the
	// add benchmark makes grow).
	marker := ""
	if dir := os.Getenv("RETRIEVAL_BENCH_DIR"); dir != "" && kind == "sqlite" {
		marker = filepath.Join(dir, fmt.Sprintf("seeded-%d", benchN()))
		if _, err := os.Stat(marker); err == nil {
			return w
		}
	}
	if url := os.Getenv("RETRIEVAL_BENCH_DATABASE_URL"); url != "" && kind == "postgres" {
		if pgMemories(b, url) >= benchN() {
			return w
		}
	}
	start := time.Now()
	seed(b, w, benchN())
	w.seeded = time.Since(start)
	if marker != "" {
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return w
}

// pgMemories counts the memories of the database at url.
func pgMemories(b *testing.B, url string) int {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM memories").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// seed stores n memories straight through the store (the service's path
// is measured by the add benchmark) and their embeddings, 4 writers at a
// time.
func seed(b *testing.B, w *benchWorld, n int) {
	ctx := context.Background()
	ids := memory.NewULIDSource(time.Now)
	var idMu sync.Mutex
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	per := (n + 3) / 4
	for part := range 4 {
		wg.Go(func() {
			g := gen{rand.New(rand.NewPCG(uint64(part), 7))}
			var batch []memory.Embedding
			for i := part * per; i < min(n, (part+1)*per); i++ {
				idMu.Lock()
				id := ids()
				idMu.Unlock()
				at := base.Add(time.Duration(i) * time.Minute)
				entity, scope := "org:acme", memory.Scope("org")
				switch i % 10 {
				case 0, 1, 2:
					entity, scope = fmt.Sprintf("team:acme/t%d", i%7), "team"
				case 3:
					entity, scope = fmt.Sprintf("user:u%d", i%100), "user"
				}
				m := memory.Memory{ID: id, OrgID: "acme", Content: g.content(i), Scope: scope, Source: "user",
					Category: memory.Categories[i%len(memory.Categories)], Entity: g.pick(services),
					Tags: map[string]any{g.pick(techs): true, docWords(i)[0]: true}, AccessEntity: entity, App: "bench", State: memory.StateActive,
					CreatedBy: "seed", CreatedAt: at, UpdatedAt: at}
				m.ContentHash = memory.ContentHash(m.Content)
				if _, _, err := w.st.Create(ctx, m, "seed"); err != nil {
					errs <- err
					return
				}
				vecs, err := w.emb.Embed(ctx, []string{m.Content})
				if err != nil {
					errs <- err
					return
				}
				batch = append(batch, memory.Embedding{OrgID: m.OrgID, MemoryID: m.ID, Model: w.emb.Model(),
					ContentHash: m.ContentHash, Vector: vecs[0]})
				if len(batch) == 500 {
					if _, err := w.st.PutEmbeddings(ctx, batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
			if _, err := w.st.PutEmbeddings(ctx, batch); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// load returns Vectors loaded over the world's store and how long the
// load took.
func (w *benchWorld) load(b *testing.B) (*retrieval.Vectors, time.Duration) {
	v := retrieval.New(w.emb, w.st, retrieval.Options{})
	start := time.Now()
	if err := v.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return v, time.Since(start)
}

var benchPrincipals = map[string]auth.Principal{
	// Sees the whole org.
	"org": {Subject: "u1", OrgID: "acme", Grants: []string{"org:acme"}, Scopes: auth.AllScopes},
	// Sees one team of seven and their own memories: about 5% of the org.
	"team": {Subject: "u2", OrgID: "acme", Grants: []string{"team:acme/t3"}, Scopes: auth.AllScopes},
}

func BenchmarkRetrieval(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run("store="+kind, func(b *testing.B) {
			w := newWorld(b, kind)
			if w.seeded > 0 {
				b.Logf("%s: %d memories and embeddings seeded in %v (%.0f/s)", kind, benchN(),
					w.seeded.Round(time.Second), float64(benchN())/w.seeded.Seconds())
			}
			b.Run("load", func(b *testing.B) {
				// One load whatever -benchtime says (ns/op is meaningless
				// here; load-s is the figure).
				v, took := w.load(b)
				for b.Loop() {
				}
				b.ReportMetric(took.Seconds(), "load-s")
				b.ReportMetric(float64(v.Len()), "vectors")
				b.ReportMetric(float64(v.Bytes())/(1<<20), "index-MiB")
				b.ReportMetric(float64(v.LexicalBytes())/(1<<20), "lexical-MiB")
				b.ReportMetric(float64(rssMiB()), "rss-MiB")
				v.Close()
			})
			v, _ := w.load(b)
			defer v.Close()
			ranking, err := memory.ParseRanking(os.Getenv("RETRIEVAL_BENCH_RANKING"), memory.DefaultRanking())
			if err != nil {
				b.Fatal(err)
			}
			svc := memory.NewService(w.st, memory.Options{Vectors: v, Ranking: ranking})
			for _, mode := range []memory.SearchMode{memory.ModeHybrid, memory.ModeLexical, memory.ModeVector} {
				for _, who := range []string{"org", "team"} {
					b.Run(fmt.Sprintf("search/mode=%s/access=%s", mode, who), func(b *testing.B) {
						ctx := auth.WithPrincipal(context.Background(), benchPrincipals[who])
						g := gen{rand.New(rand.NewPCG(1, 2))}
						var lat []time.Duration
						hits := 0
						for b.Loop() {
							q := memory.SearchQuery{Text: g.query(benchN()), Limit: 10, Mode: mode}
							start := time.Now()
							res, err := svc.Search(ctx, q, memory.ViaMCP)
							lat = append(lat, time.Since(start))
							if err != nil {
								b.Fatal(err)
							}
							if res.Degraded {
								b.Fatalf("degraded: %s", res.Reason)
							}
							hits += len(res.Hits)
						}
						percentiles(b, lat)
						b.ReportMetric(float64(hits)/float64(len(lat)), "hits/op")
					})
				}
			}
			for _, who := range []string{"org", "team"} {
				// The graph source alone, as hybrid search asks it (without
				// its budget); answered is the share of queries it finds
				// memories for (the rest name no entity, or only ones too
				// common to take part: memory.GraphCommonMentions).
				b.Run("graph-source/access="+who, func(b *testing.B) {
					ctx := auth.WithPrincipal(context.Background(), benchPrincipals[who])
					a := memory.AccessFor(benchPrincipals[who])
					g := gen{rand.New(rand.NewPCG(1, 2))}
					var lat []time.Duration
					answered := 0
					for b.Loop() {
						q := g.query(benchN())
						start := time.Now()
						hits, err := svc.GraphNeighbours(ctx, a, q, memory.Filter{}, 20)
						lat = append(lat, time.Since(start))
						if err != nil {
							b.Fatal(err)
						}
						if len(hits) > 0 {
							answered++
						}
					}
					percentiles(b, lat)
					b.ReportMetric(float64(answered)/float64(len(lat)), "answered")
				})
			}
			b.Run("add", func(b *testing.B) {
				ctx := auth.WithPrincipal(context.Background(), benchPrincipals["org"])
				g := gen{rand.New(rand.NewPCG(3, 4))}
				var lat []time.Duration
				i := 0
				for b.Loop() {
					i++
					in := memory.Input{Content: g.content(10_000_000 + i), Scope: "org", Entity: g.pick(services),
						Tags: map[string]any{g.pick(techs): true, docWords(10_000_000 + i)[0]: true}}
					start := time.Now()
					if _, _, err := svc.Add(ctx, in); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				percentiles(b, lat)
				b.ReportMetric(float64(len(lat))/sum(lat).Seconds(), "adds/s")
			})
			b.ReportMetric(float64(rssMiB()), "rss-MiB")
		})
	}
}

func percentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// rssMiB is the process's resident set size (Linux), 0 elsewhere.
func rssMiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb >> 10
		}
	}
	return 0
}
