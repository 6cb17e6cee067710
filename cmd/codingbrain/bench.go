package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

const benchUsage = `Usage: codingbrain bench retrieval --corpus FILE --queries FILE [flags]

Measures search quality and latency on a labelled data set. The corpus is
loaded through the memory service into a fresh temporary store (never your
data): each group of the corpus becomes an org of its own, so a query sees
only its group. Every query then runs through memory.Service.Search, the
search REST and MCP use. It prints the ingest rate, recall@k, MRR, nDCG@10
and search latency (p50/p95/p99), overall and per query category.

Modes: lexical is the plain BM25 baseline — the in-process lexical index's
BM25 (with SQLite FTS5's weights and idf, on either store) and nothing
else; vector ranks by embeddings alone; hybrid is the product's search.
"all" runs the three and prints them side by side.

The files' format: docs/retrieval.md. The development set:
testdata/retrieval/.
`

const benchBaseline = "lexical is the plain BM25 baseline: the in-process lexical index " +
	"(BM25 with FTS5's weights and idf, on either store), no vectors, no boosts"

// searchModes are the values of --mode besides "all", in the order "all"
// runs them.
var searchModes = []string{"lexical", "vector", "hybrid"}

// modeAvailable reports whether this build's search can be asked for mode,
// and if not why. Every mode runs (memory.SearchModes).
func modeAvailable(mode string) (bool, string) {
	if slices.Contains(memory.SearchModes, memory.SearchMode(mode)) {
		return true, ""
	}
	return false, "not a search mode"
}

// benchSearchQuery is the search the bench sends for q in mode.
func benchSearchQuery(q benchQuery, mode string, limit int) memory.SearchQuery {
	return memory.SearchQuery{Text: q.Text, Filter: q.Filter, Limit: limit, Mode: memory.SearchMode(mode)}
}

// benchOptions are the flags of bench retrieval.
type benchOptions struct {
	corpus, queries string
	ks              []int
	store           string
	databaseURL     string
	embedder        string
	modes           []string
	now             time.Time // zero: the latest created_at of the corpus
	json            bool
	perQuery        bool
	getenv          func(string) string // the openai embedder's settings
	ranking         memory.Ranking
}

// runBench dispatches the bench subcommands.
func runBench(ctx context.Context, args []string, e env) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, benchUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "retrieval" {
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "bench: unknown subcommand %q\n", args[0])
		}
		fmt.Fprint(e.stderr, benchUsage)
		return errUsage
	}
	o, err := parseBenchFlags(args[1:], e)
	if err != nil || o == nil {
		return err
	}
	rep, err := benchRetrieval(ctx, *o)
	if err != nil {
		if o.databaseURL != "" {
			// A driver's error may quote the URL it was given.
			err = errors.New(config.Config{DatabaseURL: o.databaseURL}.Redact(err.Error()))
		}
		return fmt.Errorf("bench retrieval: %w", err)
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBench(e.stdout, rep)
	return nil
}

// parseBenchFlags reads the flags of bench retrieval; nil options and a nil
// error mean help was printed.
func parseBenchFlags(args []string, e env) (*benchOptions, error) {
	fs := flag.NewFlagSet("bench retrieval", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, benchUsage+"\nFlags:\n"); fs.PrintDefaults() }
	o := &benchOptions{getenv: e.getenv}
	fs.StringVar(&o.corpus, "corpus", "", "corpus `file` (JSON lines, one memory each)")
	fs.StringVar(&o.queries, "queries", "", "queries `file` (JSON lines, one labelled query each)")
	ks := fs.String("k", "1,5,10,20", "comma-separated cut-offs for recall@k (at most "+strconv.Itoa(memory.MaxSearchLimit)+")")
	fs.StringVar(&o.store, "store", "sqlite", "`kind` of temporary store: sqlite (a temporary file) or postgres (needs --database-url)")
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL `URL` of an empty database the bench may fill; it works in a temporary schema and drops it")
	fs.StringVar(&o.embedder, "embedder", "builtin", "`embedder` for vector and hybrid search: builtin or openai")
	mode := fs.String("mode", "all", "search `mode`: hybrid, lexical (the BM25 baseline), vector, or all three side by side")
	now := fs.String("now", "", "`time` (RFC 3339) recency and \"now\" are anchored to (default: the latest created_at in the corpus)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object with every figure")
	ranking := fs.String("search-ranking", "", "hybrid search `settings` over the defaults, as serve's --search-ranking (for tuning)")
	fs.BoolVar(&o.perQuery, "per-query", false, "also print each query's rank of its first relevant memory and its top hits")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, errUsage
	}
	fail := func(format string, args ...any) (*benchOptions, error) {
		fmt.Fprintf(e.stderr, "bench retrieval: "+format+"\n", args...)
		fs.Usage()
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if o.corpus == "" || o.queries == "" {
		return fail("--corpus and --queries are required")
	}
	var err error
	if o.ks, err = parseKs(*ks); err != nil {
		return fail("--k: %v", err)
	}
	switch o.store {
	case "sqlite":
		if o.databaseURL != "" {
			return fail("--database-url is for --store postgres")
		}
	case "postgres":
		if o.databaseURL == "" {
			return fail("--store postgres needs --database-url of an empty database it may fill")
		}
	default:
		return fail("--store must be sqlite or postgres, not %q", o.store)
	}
	if o.embedder != "builtin" && o.embedder != "openai" {
		return fail("--embedder must be builtin or openai, not %q", o.embedder)
	}
	if o.ranking, err = memory.ParseRanking(*ranking, memory.DefaultRanking()); err != nil {
		return fail("--search-ranking: %v", err)
	}
	switch {
	case *mode == "all":
		o.modes = searchModes
	case slices.Contains(searchModes, *mode):
		if ok, why := modeAvailable(*mode); !ok {
			return nil, fmt.Errorf("bench retrieval: --mode %s: %s; --mode lexical runs the BM25 baseline", *mode, why)
		}
		o.modes = []string{*mode}
	default:
		return fail("--mode must be hybrid, lexical, vector or all, not %q", *mode)
	}
	if *now != "" {
		if o.now, err = time.Parse(time.RFC3339, *now); err != nil {
			return fail("--now must be an RFC 3339 time such as 2025-06-30T00:00:00Z: %v", err)
		}
		o.now = o.now.UTC()
	}
	return o, nil
}

// parseKs reads "1,5,10": positive, at most the search limit, sorted and
// without repeats.
func parseKs(s string) ([]int, error) {
	var ks []int
	for _, f := range strings.Split(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 || k > memory.MaxSearchLimit {
			return nil, fmt.Errorf("%q is not a whole number from 1 to %d", f, memory.MaxSearchLimit)
		}
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return slices.Compact(ks), nil
}

// benchReport is everything bench retrieval measured; --json prints it.
type benchReport struct {
	Corpus      string      `json:"corpus"`
	QueriesFile string      `json:"queries_file"`
	Store       string      `json:"store"`
	Embedder    string      `json:"embedder"`
	Now         time.Time   `json:"now"`
	Memories    int         `json:"memories"`
	Groups      int         `json:"groups"`
	Queries     int         `json:"queries"`
	K           []int       `json:"k"`
	Ingest      benchIngest `json:"ingest"`
	Baseline    string      `json:"baseline"`
	Notes       []string    `json:"notes,omitempty"`
	Runs        []benchRun  `json:"runs"`
	about       string      // where the store was, for the text header
	byCategory  map[string]int
}

// benchIngest is how the corpus was loaded.
type benchIngest struct {
	Memories   int     `json:"memories"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	Duplicates int     `json:"duplicates"` // lines stored as an earlier line's memory (exact duplicates)
}

// benchRun is the result of one search mode.
type benchRun struct {
	Mode       string                   `json:"mode"`
	Available  bool                     `json:"available"`
	Reason     string                   `json:"reason,omitempty"`
	Overall    *benchFigures            `json:"overall,omitempty"`
	Categories map[string]*benchFigures `json:"categories,omitempty"`
	PerQuery   []benchQueryResult       `json:"per_query,omitempty"`
}

// benchQueryResult is one query's outcome, for --per-query.
type benchQueryResult struct {
	ID            string   `json:"id"`
	Category      string   `json:"category,omitempty"`
	FirstRelevant int      `json:"first_relevant"` // rank from 1; 0 when none was returned
	Recall10      float64  `json:"recall_at_10"`
	Top           []string `json:"top"`
	LatencyMS     float64  `json:"latency_ms"`
}

// benchClock is the service's clock: each memory is added at its
// created_at, and searches run at the anchored "now".
type benchClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *benchClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *benchClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// benchRetrieval loads the data set into a temporary store and runs the
// queries in every mode of o.
func benchRetrieval(ctx context.Context, o benchOptions) (*benchReport, error) {
	data, err := loadBench(o.corpus, o.queries)
	if err != nil {
		return nil, err
	}
	now := o.now
	if now.IsZero() {
		now = data.Latest
	}
	if now.IsZero() {
		now = time.Now().UTC().Truncate(time.Second)
	}
	rep := &benchReport{
		Corpus: o.corpus, QueriesFile: o.queries, Store: o.store, Embedder: o.embedder, Now: now,
		Memories: len(data.Docs), Groups: len(data.Groups), Queries: len(data.Queries), K: o.ks,
		Baseline: benchBaseline, byCategory: map[string]int{},
	}
	for _, q := range data.Queries {
		rep.byCategory[q.Category]++
	}

	st, err := openBenchStore(ctx, o.store, o.databaseURL)
	if err != nil {
		return nil, err
	}
	defer st.remove()
	rep.about = st.about

	vectors, err := benchVectors(ctx, st.Store, o.embedder, o.getenv)
	if err != nil {
		return nil, err
	}
	defer vectors.stop()
	clock := &benchClock{t: now}
	svc := memory.NewService(st.Store, memory.Options{Now: clock.Now, Vectors: vectors.Vectors, Ranking: o.ranking})
	principals := groupPrincipals(data.Groups)

	// Ingest, one memory at a time at its own created_at.
	corpusIDs := map[string][]string{} // memory id → corpus ids (several for exact duplicates)
	start := time.Now()
	for _, d := range data.Docs {
		if d.CreatedAt.IsZero() {
			clock.set(now)
		} else {
			clock.set(d.CreatedAt.UTC())
		}
		in := d.Input
		if in.Scope == "" {
			in.Scope = "org" // shared with the group, as team knowledge is
		}
		p := principals[d.Group]
		in.AccessEntity = groupEntity(p, in.Scope)
		pctx := auth.WithPrincipal(ctx, p)
		m, created, err := svc.Add(pctx, in)
		if err != nil {
			return nil, fmt.Errorf("add memory %s (corpus line %d): %w", d.ID, d.Line, err)
		}
		if !created {
			rep.Ingest.Duplicates++
		}
		corpusIDs[m.ID] = append(corpusIDs[m.ID], d.ID)
		if err := applyState(pctx, svc, m.ID, d.State); err != nil {
			return nil, fmt.Errorf("memory %s (corpus line %d): state %s: %w", d.ID, d.Line, d.State, err)
		}
	}
	took := time.Since(start)
	rep.Ingest.Memories = len(data.Docs)
	rep.Ingest.Seconds = took.Seconds()
	rep.Ingest.PerSecond = float64(len(data.Docs)) / took.Seconds()
	clock.set(now)

	limit := max(slices.Max(o.ks), 10)
	for _, mode := range o.modes {
		run := benchRun{Mode: mode}
		if ok, why := modeAvailable(mode); !ok {
			run.Reason = why
			rep.Runs = append(rep.Runs, run)
			continue
		}
		run.Available = true
		outcomes, err := runQueries(ctx, svc, data.Queries, principals, corpusIDs, mode, limit)
		if err != nil {
			return nil, fmt.Errorf("mode %s: %w", mode, err)
		}
		run.Overall = figures(outcomes, o.ks)
		run.Categories = byCategory(outcomes, o.ks)
		if o.perQuery {
			run.PerQuery = perQuery(outcomes)
		}
		rep.Runs = append(rep.Runs, run)
	}
	rep.Notes = data.Notes.list()
	return rep, nil
}

// runQueries searches every query once to warm caches, untimed, then once
// more, timed; the second pass is the one measured.
func runQueries(ctx context.Context, svc *memory.Service, qs []benchQuery, principals map[string]auth.Principal,
	corpusIDs map[string][]string, mode string, limit int) ([]queryOutcome, error) {
	out := make([]queryOutcome, len(qs))
	for pass := range 2 {
		for i, q := range qs {
			p, ok := principals[q.Group]
			if !ok {
				// A group without memories: an org of its own that holds nothing.
				p = groupPrincipal(q.Group, "bench-none")
			}
			pctx := auth.WithPrincipal(ctx, p)
			start := time.Now()
			res, err := svc.Search(pctx, benchSearchQuery(q, mode, limit), memory.ViaCLI)
			hits := res.Hits
			took := time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("query %s (queries line %d): %w", q.ID, q.Line, err)
			}
			if pass == 0 {
				continue
			}
			var ranked []string
			seen := map[string]bool{}
			for _, h := range hits {
				for _, id := range corpusIDs[h.Memory.ID] {
					if !seen[id] {
						seen[id] = true
						ranked = append(ranked, id)
					}
				}
			}
			out[i] = queryOutcome{ID: q.ID, Category: q.Category, Text: q.Text, Relevant: q.Relevant, Ranked: ranked, Latency: took}
		}
	}
	return out, nil
}

func perQuery(outcomes []queryOutcome) []benchQueryResult {
	out := make([]benchQueryResult, len(outcomes))
	for i, o := range outcomes {
		rel := relevantSet(o.Relevant)
		first := 0
		if rr := reciprocalRank(o.Ranked, rel); rr > 0 {
			first = int(1/rr + 0.5)
		}
		out[i] = benchQueryResult{ID: o.ID, Category: o.Category, FirstRelevant: first,
			Recall10: recallAt(o.Ranked, rel, 10), Top: append([]string{}, o.Ranked[:min(5, len(o.Ranked))]...), LatencyMS: ms(o.Latency)}
	}
	return out
}

// applyState moves a freshly added memory to the corpus line's state.
func applyState(ctx context.Context, svc *memory.Service, id string, st memory.State) error {
	var err error
	switch st {
	case memory.StatePaused:
		_, err = svc.Transition(ctx, id, memory.ActionPause)
	case memory.StateArchived:
		_, err = svc.Transition(ctx, id, memory.ActionArchive)
	case memory.StateDeleted:
		_, err = svc.Delete(ctx, id)
	}
	return err
}

// groupPrincipals gives every corpus group an org of its own and a
// principal holding that org's grant. Org names are the group's, made safe
// for access entities and unique.
func groupPrincipals(groups []string) map[string]auth.Principal {
	out := make(map[string]auth.Principal, len(groups))
	used := map[string]bool{}
	for i, g := range groups {
		org := "bench-" + safeName(g)
		if g == "" {
			org = "bench"
		}
		if used[org] {
			org += "-" + strconv.Itoa(i+1)
		}
		used[org] = true
		out[g] = groupPrincipal(g, org)
	}
	return out
}

func groupPrincipal(group, org string) auth.Principal {
	return auth.Principal{Subject: "bench", OrgID: org, App: "codingbrain-bench",
		Scopes: []string{"memories:read", "memories:write", "search:read"}, Grants: []string{"org:" + org}}
}

// groupEntity is the access entity of a memory of scope sc in p's group.
func groupEntity(p auth.Principal, sc memory.Scope) string {
	switch sc {
	case "session", "user":
		return p.UserEntity()
	case "team":
		return "team:" + p.OrgID + "/bench"
	case "project":
		return "project:" + p.OrgID + "/bench"
	}
	return "org:" + p.OrgID
}

// safeName keeps letters, digits, '.' and '-' of s and turns the rest into
// '-'.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// benchStore is a throw-away store, what to call it, and how to remove it.
type benchStore struct {
	memory.Store
	about  string
	remove func()
}

// openBenchStore opens a fresh store of kind: a SQLite file in a temporary
// directory, or a temporary schema in an empty PostgreSQL database.
func openBenchStore(ctx context.Context, kind, dbURL string) (*benchStore, error) {
	if kind == "postgres" {
		return openBenchPostgres(ctx, dbURL)
	}
	dir, err := os.MkdirTemp("", "codingbrain-bench-")
	if err != nil {
		return nil, err
	}
	s, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &benchStore{Store: s, about: "SQLite, a temporary file (removed afterwards)", remove: func() {
		s.Close()
		os.RemoveAll(dir)
	}}, nil
}

// openBenchPostgres refuses a database that holds any table, so it never
// mixes with anyone's data; in an empty one it creates a schema of its own,
// migrates it (pg_trgm, when the database lacks it, goes there too) and
// drops it all when done, leaving the database as it found it.
func openBenchPostgres(ctx context.Context, dbURL string) (*benchStore, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	var tables int
	var example string
	err = conn.QueryRow(ctx, `
		SELECT count(*), coalesce(min(quote_ident(n.nspname) || '.' || quote_ident(c.relname)), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d
		                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`).Scan(&tables, &example)
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("look for tables: %w", err)
	}
	if tables > 0 {
		conn.Close(ctx)
		return nil, fmt.Errorf("the database at %s is not empty (%d tables, such as %s); "+
			"the bench loads its corpus only into an empty database, e.g. one made with `createdb codingbrain_bench`",
			config.MaskURL(dbURL), tables, example)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "codingbrain_bench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	drop := func() {
		// Also when the bench was interrupted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = conn.Exec(dctx, "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(dctx)
	}
	storeURL, err := withSearchPath(dbURL, schema+",public")
	if err != nil {
		drop()
		return nil, err
	}
	s, err := postgres.Open(ctx, postgres.Config{URL: storeURL, MaxConns: 4})
	if err != nil {
		drop()
		return nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		drop()
		return nil, fmt.Errorf("migrate schema %s: %w", schema, err)
	}
	about := fmt.Sprintf("PostgreSQL %s, temporary schema %s (dropped afterwards)", config.MaskURL(dbURL), schema)
	return &benchStore{Store: s, about: about, remove: func() {
		s.Close()
		drop()
	}}, nil
}

// withSearchPath sets the search_path connection parameter of a
// postgres:// URL or a keyword/value connection string.
func withSearchPath(dbURL, path string) (string, error) {
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", errors.New("the database URL does not parse")
		}
		q := u.Query()
		q.Set("search_path", path)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dbURL + " search_path=" + path, nil
}

// printBench writes the report as text: a header, then one table for all
// queries and one per query category, with a column per mode.
func printBench(w io.Writer, r *benchReport) {
	fmt.Fprintf(w, "codingbrain bench retrieval\n")
	fmt.Fprintf(w, "corpus    %s: %d memories in %d groups\n", r.Corpus, r.Memories, r.Groups)
	fmt.Fprintf(w, "queries   %s: %d queries%s\n", r.QueriesFile, r.Queries, categorySummary(r.byCategory))
	fmt.Fprintf(w, "store     %s\n", r.about)
	fmt.Fprintf(w, "embedder  %s (vector and hybrid only)\n", r.Embedder)
	fmt.Fprintf(w, "now       %s (created_at and recency are relative to it)\n", r.Now.Format(time.RFC3339))
	fmt.Fprintf(w, "ingest    %d memories in %.2fs: %.0f memories/s through memory.Service.Add", r.Ingest.Memories, r.Ingest.Seconds, r.Ingest.PerSecond)
	if r.Ingest.Duplicates > 0 {
		fmt.Fprintf(w, "; exact duplicates of earlier lines, stored once: %d", r.Ingest.Duplicates)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "baseline  %s\n", r.Baseline)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note      %s\n", n)
	}

	var avail []benchRun
	for _, run := range r.Runs {
		if run.Available {
			avail = append(avail, run)
		}
	}
	fmt.Fprintln(w)
	printFigures(w, fmt.Sprintf("all queries (%d)", r.Queries), r.Runs, r.K, func(run benchRun) *benchFigures { return run.Overall })
	if len(avail) > 0 && avail[0].Categories != nil {
		for _, c := range sortedKeys(avail[0].Categories) {
			fmt.Fprintln(w)
			title := fmt.Sprintf("%s (%d)", c, avail[0].Categories[c].Queries)
			printFigures(w, title, r.Runs, r.K, func(run benchRun) *benchFigures { return run.Categories[c] })
		}
	}
	for _, run := range r.Runs {
		if !run.Available {
			fmt.Fprintf(w, "\n%s: %s\n", run.Mode, run.Reason)
		}
	}
	for _, run := range avail {
		if run.PerQuery == nil {
			continue
		}
		fmt.Fprintf(w, "\nper query, %s (first relevant rank, 0 = not in the top %d; recall@10; top 5)\n", run.Mode, max(slices.Max(r.K), 10))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, q := range run.PerQuery {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%s\n", q.ID, q.Category, q.FirstRelevant, q.Recall10, strings.Join(q.Top, " "))
		}
		tw.Flush()
	}
}

// printFigures writes one table: a row per figure, a column per mode.
func printFigures(w io.Writer, title string, runs []benchRun, ks []int, pick func(benchRun) *benchFigures) {
	const first, col = 22, 10
	fmt.Fprintf(w, "%-*s", first, title)
	for _, run := range runs {
		fmt.Fprintf(w, "%*s", col, run.Mode)
	}
	fmt.Fprintln(w)
	row := func(name string, value func(f *benchFigures) string) {
		fmt.Fprintf(w, "  %-*s", first-2, name)
		for _, run := range runs {
			v := "n/a"
			if f := pick(run); run.Available && f != nil {
				v = value(f)
			}
			fmt.Fprintf(w, "%*s", col, v)
		}
		fmt.Fprintln(w)
	}
	for _, k := range ks {
		row(fmt.Sprintf("recall@%d", k), func(f *benchFigures) string { return fmt.Sprintf("%.3f", f.Recall[k]) })
	}
	row("MRR", func(f *benchFigures) string { return fmt.Sprintf("%.3f", f.MRR) })
	row("nDCG@10", func(f *benchFigures) string { return fmt.Sprintf("%.3f", f.NDCG10) })
	row("latency p50 ms", func(f *benchFigures) string { return fmt.Sprintf("%.2f", f.Latency.P50) })
	row("latency p95 ms", func(f *benchFigures) string { return fmt.Sprintf("%.2f", f.Latency.P95) })
	row("latency p99 ms", func(f *benchFigures) string { return fmt.Sprintf("%.2f", f.Latency.P99) })
}

// categorySummary is " (paraphrase 35, keyword 20, …)" for queries with
// categories, else "".
func categorySummary(counts map[string]int) string {
	if len(counts) == 1 && counts[""] > 0 {
		return ""
	}
	var parts []string
	for _, c := range sortedKeys(counts) {
		name := c
		if name == "" {
			name = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, counts[c]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
