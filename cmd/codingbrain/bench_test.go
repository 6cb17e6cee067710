package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestBenchMetrics checks recall@k, MRR and nDCG@10 against values worked
// out by hand.
func TestBenchMetrics(t *testing.T) {
	rel := relevantSet([]string{"a", "b", "c", "d"})
	ranked := []string{"a", "x", "b", "y", "c"}
	for k, want := range map[int]float64{1: 0.25, 2: 0.25, 3: 0.5, 5: 0.75, 10: 0.75} {
		if got := recallAt(ranked, rel, k); !near(got, want) {
			t.Errorf("recall@%d = %v, want %v", k, got, want)
		}
	}
	if got := reciprocalRank(ranked, rel); got != 1 {
		t.Errorf("RR = %v, want 1", got)
	}
	// DCG = 1/log2(2) + 1/log2(4) + 1/log2(6) = 1.8868528072345416 (ranks
	// 1, 3, 5); the ideal ranking has the four relevant ids at ranks 1-4:
	// 1 + 1/log2(3) + 1/log2(4) + 1/log2(5) = 2.5616063116448506.
	if got := ndcgAt(ranked, rel, 10); !near(got, 0.7365896932159578) {
		t.Errorf("nDCG@10 = %v, want 0.7365896932159578", got)
	}

	// One relevant id at rank 3.
	one := relevantSet([]string{"b"})
	ranked2 := []string{"x", "y", "b"}
	if got := recallAt(ranked2, one, 1); got != 0 {
		t.Errorf("recall@1 = %v, want 0", got)
	}
	if got := recallAt(ranked2, one, 5); got != 1 {
		t.Errorf("recall@5 = %v, want 1", got)
	}
	if got := reciprocalRank(ranked2, one); !near(got, 1.0/3) {
		t.Errorf("RR = %v, want 1/3", got)
	}
	if got := ndcgAt(ranked2, one, 10); !near(got, 0.5) { // (1/log2(4)) / 1
		t.Errorf("nDCG@10 = %v, want 0.5", got)
	}

	// Nothing relevant returned, or nothing returned at all.
	for _, r := range [][]string{{"x", "y"}, nil} {
		if recallAt(r, one, 10) != 0 || reciprocalRank(r, one) != 0 || ndcgAt(r, one, 10) != 0 {
			t.Errorf("%v: want all zero", r)
		}
	}
	// The ideal DCG counts at most k relevant ids: a perfect top 2 is 1.
	if got := ndcgAt([]string{"a", "b"}, rel, 2); !near(got, 1) {
		t.Errorf("nDCG@2 of a perfect top 2 = %v, want 1", got)
	}

	// Averages over queries, and per category.
	outcomes := []queryOutcome{
		{ID: "q1", Category: "keyword", Relevant: []string{"a", "b", "c", "d"}, Ranked: ranked, Latency: 2 * time.Millisecond},
		{ID: "q2", Category: "paraphrase", Relevant: []string{"b"}, Ranked: ranked2, Latency: 4 * time.Millisecond},
		{ID: "q3", Category: "paraphrase", Relevant: []string{"b"}, Ranked: nil, Latency: 9 * time.Millisecond},
	}
	f := figures(outcomes, []int{1, 5})
	if f.Queries != 3 || !near(f.Recall[1], 0.25/3) || !near(f.Recall[5], 1.75/3) ||
		!near(f.MRR, (1+1.0/3)/3) || !near(f.NDCG10, (0.7365896932159578+0.5)/3) {
		t.Errorf("figures = %+v", f)
	}
	if f.Latency.P50 != 4 || f.Latency.P95 != 9 || f.Latency.P99 != 9 || f.Latency.Mean != 5 {
		t.Errorf("latency = %+v, want p50 4, p95 9, p99 9, mean 5", f.Latency)
	}
	cats := byCategory(outcomes, []int{1})
	if len(cats) != 2 || cats["keyword"].Queries != 1 || cats["paraphrase"].Queries != 2 || !near(cats["paraphrase"].MRR, 1.0/6) {
		t.Errorf("byCategory = %v", cats)
	}
	outcomes[0].Category, outcomes[1].Category, outcomes[2].Category = "", "", ""
	if cats := byCategory(outcomes, []int{1}); cats != nil {
		t.Errorf("byCategory without categories = %v, want nil", cats)
	}

	// Nearest-rank percentiles.
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := percentile(lat, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

// TestBenchFormatExamples parses the example lines of the evaluation
// format (testdata/retrieval/FORMAT.md, a copy of the shared spec).
func TestBenchFormatExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "retrieval", "FORMAT.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) != 2 {
		t.Fatalf("FORMAT.md has %d json examples, want 2 (a memory and a query)", len(blocks))
	}
	// The examples wrap one JSON line for reading; compact them back.
	var doc, query bytes.Buffer
	if err := json.Compact(&doc, []byte(blocks[0][1])); err != nil {
		t.Fatal(err)
	}
	if err := json.Compact(&query, []byte(blocks[1][1])); err != nil {
		t.Fatal(err)
	}

	notes := benchNotes{}
	d, err := parseBenchDoc(doc.Bytes(), notes)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	if d.ID != "m-0001" || d.Group != "acme-api" || d.Input.Content != "We pin pgx to v5 because ..." ||
		d.Input.Category != "decision" || d.Input.Entity != "billing-service" ||
		d.Input.Tags["db"] != true || !d.CreatedAt.Equal(created) || d.Input.Metadata["speaker"] != "dana" || len(notes) != 0 {
		t.Errorf("memory example read as %+v (notes %v)", d, notes)
	}

	q, err := parseBenchQuery(query.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if q.ID != "q-0001" || q.Text != "why did we pin pgx?" || q.Group != "acme-api" ||
		!slices.Equal(q.Relevant, []string{"m-0001"}) || !slices.Equal(q.Filter.Categories, []memory.Category{"decision"}) {
		t.Errorf("query example read as %+v", q)
	}
}

// TestBenchFormatMapping covers the corners of reading a corpus line: a
// category the model lacks, tags as a list, unknown fields, states.
func TestBenchFormatMapping(t *testing.T) {
	notes := benchNotes{}
	d, err := parseBenchDoc([]byte(`{"id":"x","content":"c","category":"incident","tags":["a","b"],"severity":"sev2",
		"metadata":{"severity":"sev1"},"state":"archived","scope":"Team","evidence":"PR #1","valid_to":"2025-01-01T00:00:00Z"}`), notes)
	if err != nil {
		t.Fatal(err)
	}
	if d.Input.Category != "" || d.Input.Metadata["category"] != "incident" || d.Input.Metadata["severity"] != "sev1" ||
		d.Input.Tags["a"] != true || d.Input.Tags["b"] != true || d.State != memory.StateArchived || d.Input.Scope != "team" ||
		!slices.Equal(d.Input.Evidence, []string{"PR #1"}) || d.Input.ValidTo == nil || len(notes) != 1 {
		t.Errorf("read as %+v, notes %v", d, notes)
	}
	for _, bad := range []string{`{"content":"c"}`, `{"id":"x"}`, `{"id":"x","content":"c","tags":{"a":[1]},"created_at":"yesterday"}`, `[1]`} {
		if _, err := parseBenchDoc([]byte(bad), benchNotes{}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	for _, bad := range []string{`{"query":"q"}`, `{"id":"q"}`, `{"id":"q","query":"x","filters":{"colour":"red"}}`} {
		if _, err := parseBenchQuery([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	q, err := parseBenchQuery([]byte(`{"id":"q","query":"x","relevant":["a","a","b"],"filters":{"category":["decision","runbook"],"tags":"incident","created_after":"2025-05-27T00:00:00Z"}}`))
	if err != nil || !slices.Equal(q.Relevant, []string{"a", "b"}) || len(q.Filter.Categories) != 2 ||
		!slices.Equal(q.Filter.Tags, []string{"incident"}) || q.Filter.CreatedAfter == nil {
		t.Errorf("query read as %+v, %v", q, err)
	}
}

// TestBenchFlags checks that bad flags are refused before anything runs.
func TestBenchFlags(t *testing.T) {
	dir := filepath.Join("testdata", "bench")
	files := []string{"--corpus", filepath.Join(dir, "corpus.jsonl"), "--queries", filepath.Join(dir, "queries.jsonl")}
	for _, args := range [][]string{
		{"bench"},
		{"bench", "precision"},
		{"bench", "retrieval"},
		append([]string{"bench", "retrieval", "--k", "0"}, files...),
		append([]string{"bench", "retrieval", "--k", "1,500"}, files...),
		append([]string{"bench", "retrieval", "--store", "postgres"}, files...),
		append([]string{"bench", "retrieval", "--database-url", "postgres://x/y"}, files...),
		append([]string{"bench", "retrieval", "--store", "mysql"}, files...),
		append([]string{"bench", "retrieval", "--embedder", "word2vec"}, files...),
		append([]string{"bench", "retrieval", "--mode", "fuzzy"}, files...),
		append([]string{"bench", "retrieval", "--now", "last tuesday"}, files...),
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), args, func(string) string { return "" }, nil, &stdout, &stderr)
		if err == nil || stderr.Len() == 0 {
			t.Errorf("%v: err %v, stderr %q; want a usage error", args, err, stderr.String())
		}
	}
}

// TestBenchRetrievalE2E runs the binary on the tiny corpus in
// testdata/bench and checks the JSON report.
func TestBenchRetrievalE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join("testdata", "bench")
	r := runCLI(t, bin, nil, "bench", "retrieval", "--corpus", filepath.Join(dir, "corpus.jsonl"),
		"--queries", filepath.Join(dir, "queries.jsonl"), "--k", "1,5", "--json", "--per-query")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	rep := checkBenchJSON(t, r.stdout, "sqlite")
	if got, want := rep.Now, time.Date(2024, 7, 20, 14, 45, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("now = %v, want the latest created_at %v", got, want)
	}

	// The text report, with --now.
	r = runCLI(t, bin, nil, "bench", "retrieval", "--corpus", filepath.Join(dir, "corpus.jsonl"),
		"--queries", filepath.Join(dir, "queries.jsonl"), "--mode", "lexical", "--now", "2024-08-01T00:00:00Z")
	if r.code != 0 {
		t.Fatalf("text: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"9 memories in 2 groups", "6 queries (filter 1, keyword 4, paraphrase 1)", "memories/s",
		"now       2024-08-01T00:00:00Z", "lexical is the plain BM25 baseline",
		"all queries (6)", "recall@20", "nDCG@10", "latency p99 ms", "keyword (4)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text report lacks %q:\n%s", want, r.stdout)
		}
	}
}

// checkBenchJSON checks the report of the tiny corpus in testdata/bench
// run with --k 1,5 --json --per-query in every mode.
func checkBenchJSON(t *testing.T, out, store string) *benchReport {
	t.Helper()
	var rep benchReport
	d := json.NewDecoder(strings.NewReader(out))
	d.DisallowUnknownFields()
	if err := d.Decode(&rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if rep.Store != store || rep.Embedder != "builtin" || rep.Memories != 9 || rep.Groups != 2 || rep.Queries != 6 ||
		!slices.Equal(rep.K, []int{1, 5}) || rep.Ingest.Memories != 9 || rep.Ingest.Duplicates != 1 ||
		rep.Ingest.PerSecond <= 0 || !strings.Contains(rep.Baseline, "BM25") {
		t.Errorf("report header: %+v", rep)
	}
	// The notes: a category outside the model, a query without labels, a
	// label that is not in the corpus.
	if len(rep.Notes) != 3 {
		t.Errorf("notes = %q, want 3", rep.Notes)
	}
	var modes []string
	for _, run := range rep.Runs {
		modes = append(modes, run.Mode)
		if !run.Available {
			if run.Reason == "" || run.Overall != nil {
				t.Errorf("%s: unavailable without a reason, or with figures: %+v", run.Mode, run)
			}
			continue
		}
		o := run.Overall
		if o == nil || o.Queries != 6 || len(o.Recall) != 2 || o.MRR <= 0 || o.MRR > 1 || o.NDCG10 <= 0 ||
			o.Latency.P50 <= 0 || o.Latency.P99 < o.Latency.P95 || o.Latency.P95 < o.Latency.P50 {
			t.Errorf("%s: overall %+v", run.Mode, o)
		}
		if c := run.Categories; len(c) != 3 || c["keyword"] == nil || c["keyword"].Queries != 4 || c["filter"].Queries != 1 {
			t.Errorf("%s: categories %+v", run.Mode, c)
		}
		if len(run.PerQuery) != 6 {
			t.Errorf("%s: %d per-query results, want 6", run.Mode, len(run.PerQuery))
		}
	}
	if !slices.Equal(modes, searchModes) {
		t.Errorf("modes %v, want %v", modes, searchModes)
	}
	lex := rep.Runs[0]
	if lex.Mode != "lexical" || !lex.Available {
		t.Fatalf("lexical run: %+v", lex)
	}
	// Lexical facts of the tiny corpus: every keyword query has a relevant
	// memory first; q1 sees only its own group's pgx memory (and the
	// duplicate of it); q7's second label is not in the corpus.
	byID := map[string]benchQueryResult{}
	for _, q := range lex.PerQuery {
		byID[q.ID] = q
	}
	if q := byID["q1"]; q.FirstRelevant != 1 || len(q.Top) < 2 || !slices.Equal(q.Top[:2], []string{"a1", "a5"}) ||
		slices.ContainsFunc(q.Top, func(id string) bool { return strings.HasPrefix(id, "b") }) {
		t.Errorf("q1: %+v, want a1 then its duplicate a5, and nothing from group beta", q)
	}
	if q := byID["q5"]; q.FirstRelevant != 1 || !slices.Equal(q.Top, []string{"a1", "a5"}) {
		t.Errorf("q5 (created_before filter): %+v, want only a1 (a5 is the same memory), not the later a7", q)
	}
	if q := byID["q7"]; q.Recall10 != 0.5 {
		t.Errorf("q7: %+v, want recall 0.5", q)
	}
	if kw := lex.Categories["keyword"]; kw.MRR != 1 || kw.Recall[1] != 0.875 {
		t.Errorf("lexical keyword figures %+v, want MRR 1 and recall@1 0.875", kw)
	}
	return &rep
}

// TestBenchDevSet checks the labelled development set in testdata/retrieval.
func TestBenchDevSet(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "retrieval")
	data, err := loadBench(filepath.Join(dir, "corpus.jsonl"), filepath.Join(dir, "queries.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Notes) != 0 {
		t.Errorf("notes: %q (every field should map onto the memory model and every label resolve)", data.Notes.list())
	}
	if len(data.Docs) < 300 || len(data.Queries) < 100 {
		t.Errorf("%d memories and %d queries; want at least 300 and 100", len(data.Docs), len(data.Queries))
	}
	if len(data.Groups) < 4 {
		t.Errorf("%d groups, want at least 4", len(data.Groups))
	}

	ids := map[string]bool{}
	docs := map[string]map[string]benchDoc{} // group → id → doc
	var first, last time.Time
	for _, d := range data.Docs {
		if ids[d.ID] {
			t.Errorf("memory id %s is used twice", d.ID)
		}
		ids[d.ID] = true
		if docs[d.Group] == nil {
			docs[d.Group] = map[string]benchDoc{}
		}
		docs[d.Group][d.ID] = d
		if d.CreatedAt.IsZero() || d.Input.Category == "" {
			t.Errorf("memory %s lacks created_at or category", d.ID)
		}
		if first.IsZero() || d.CreatedAt.Before(first) {
			first = d.CreatedAt
		}
		if d.CreatedAt.After(last) {
			last = d.CreatedAt
		}
	}
	if span := last.Sub(first); span < 365*24*time.Hour {
		t.Errorf("created_at spans only %v", span)
	}

	categories := map[string]int{}
	for _, q := range data.Queries {
		if q.Category == "" {
			t.Errorf("query %s has no category", q.ID)
		}
		categories[q.Category]++
		group, ok := docs[q.Group]
		if !ok {
			t.Errorf("query %s: group %q has no memories", q.ID, q.Group)
			continue
		}
		for _, id := range q.Relevant {
			d, ok := group[id]
			if !ok {
				t.Errorf("query %s: relevant %s is not in group %s", q.ID, id, q.Group)
				continue
			}
			if !filterMatches(q.Filter, d) {
				t.Errorf("query %s: relevant %s does not pass the query's filters, so it can never be found", q.ID, id)
			}
		}
	}
	if categories["paraphrase"] < 30 {
		t.Errorf("%d paraphrase queries, want at least 30", categories["paraphrase"])
	}
	for _, c := range []string{"keyword", "filter", "temporal", "entity", "multihop"} {
		if categories[c] < 5 {
			t.Errorf("%d %s queries, want at least 5", categories[c], c)
		}
	}
	t.Logf("%d memories in %d groups, %d queries %v, created %s to %s",
		len(data.Docs), len(data.Groups), len(data.Queries), categories, first.Format(time.DateOnly), last.Format(time.DateOnly))
}

// filterMatches reports whether d passes the filters the dev set uses, as
// the stores apply them (created_after and created_before are exclusive).
func filterMatches(f memory.Filter, d benchDoc) bool {
	if len(f.Categories) > 0 && !slices.Contains(f.Categories, d.Input.Category) {
		return false
	}
	if f.Entity != "" && f.Entity != d.Input.Entity {
		return false
	}
	for _, tag := range f.Tags {
		key, value, hasValue := strings.Cut(tag, "=")
		v, ok := d.Input.Tags[key]
		if !ok || hasValue && v != value {
			return false
		}
	}
	if f.CreatedAfter != nil && !d.CreatedAt.After(*f.CreatedAfter) {
		return false
	}
	if f.CreatedBefore != nil && !d.CreatedAt.Before(*f.CreatedBefore) {
		return false
	}
	return len(f.Scopes) == 0 && len(f.States) == 0 && f.ArtifactRef == "" && f.App == "" && f.AccessEntity == ""
}
