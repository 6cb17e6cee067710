package embed

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// This file measures what each feature of the builtin embedder buys. Run
//
//	go test ./internal/embed -run TestBuiltinEval -v
//
// for a table on a handful of memory/query paraphrases (below), and with
// CODINGBRAIN_EVAL_DIR=<dir holding corpus.jsonl and queries.jsonl> (or a
// testdata/retrieval directory at the repository root) for vector-only
// recall@10 and MRR on that labelled set (the format of `codingbrain bench
// retrieval`).

// paraphrases pairs a memory as a team would write it with a query for it
// as an assistant would phrase it, sharing few words verbatim.
var paraphrases = []struct{ memory, query string }{
	{"We pin pgx to v5 because v4 is out of support.", "why is the postgres driver pinned to version 5"},
	{"The billing service retries Stripe webhooks three times with exponential backoff.", "how many times are stripe webhook deliveries retried"},
	{"Use snake_case for JSON field names in the public REST API.", "naming convention for json fields in the rest api"},
	{"getUserByID returns ErrNotFound when the user is missing; callers check it with errors.Is.", "what does get user by id return if the user does not exist"},
	{"Run make lint before every push; CI rejects Go code that gofmt would change.", "ci fails on unformatted go code"},
	{"Database migrations live in internal/store/postgres/migrations and are applied by migrate up.", "where are the postgres migration files"},
	{"The frontend uses pnpm, not npm; the lockfile is pnpm-lock.yaml.", "which package manager does the web app use"},
	{"Rotate the JWT signing keys every 90 days with overlapping validity.", "how often do we rotate jwt keys"},
	{"Redis session keys expire after 30 minutes of inactivity.", "session expiry in redis"},
	{"The HTTPServer struct wraps net/http with graceful shutdown on SIGTERM.", "http server graceful shutdown"},
	{"Tests that need PostgreSQL start a throwaway cluster with initdb on a random port.", "how do integration tests get a postgres database"},
	{"Use context.WithTimeout for every outbound call to the payments API; the default is 5 seconds.", "timeouts for payment api requests"},
	{"Feature flags are read from LaunchDarkly at startup and cached for 60s.", "where do feature flag values come from"},
	{"The search endpoint paginates with an opaque cursor, never with offsets.", "pagination of search results"},
	{"Never log access tokens; the request logger redacts the Authorization header.", "are bearer tokens written to logs"},
	{"Prefer table-driven tests with t.Run subtests in Go packages.", "how should go unit tests be structured"},
}

// subwords pairs texts that share word pieces rather than whole words or
// stems: typos, spelling variants, compounds and abbreviations that keep a
// stem. Each is mixed with the paraphrases' memories as distractors.
var subwords = []struct{ memory, query string }{
	{"The PostgreSQL connection pool is capped at 20 per replica.", "postgres pool size"},
	{"Authentication tokens are refreshed five minutes before they expire.", "authentification token refresh"},
	{"UserRepository.findByEmail is the only lookup that may hit the replica.", "find a user by email address"},
	{"Kubernetes liveness probes hit /health/live every ten seconds.", "kubernets liveness probe"},
	{"The webhookDispatcher batches deliveries per tenant.", "webhook dispatch batching"},
	{"Configuration is loaded from codingbrain.json, then the environment.", "configuraton file loading order"},
	{"Elasticsearch was replaced by the database's full-text search.", "why no elastic search"},
	{"Use the idempotency key header on every POST to /payments.", "idempotent payment requests"},
}

// evalVariants are the feature sets compared, each adding one idea to the
// one before, then the default at other dimensions and weights.
func evalVariants() []struct {
	name string
	f    features
} {
	base := features{Dim: DefaultBuiltinDim}
	add := func(f features, change func(*features)) features { change(&f); return f }
	words := base
	stop := add(words, func(f *features) { f.Stop = true })
	stem := add(stop, func(f *features) { f.Stem = true })
	split := add(stem, func(f *features) { f.Split = true })
	signed := add(split, func(f *features) { f.Signed = true })
	sub := add(signed, func(f *features) { f.Sublinear = true })
	grams := add(sub, func(f *features) { f.NGramMin, f.NGramMax, f.NGramWeight = 3, 5, defaultFeatures.NGramWeight })
	out := []struct {
		name string
		f    features
	}{
		{"words", words}, {"+stop words", stop}, {"+stem", stem}, {"+split identifiers", split},
		{"+signed hash", signed}, {"+sublinear tf", sub}, {"+char 3-5-grams (default)", grams},
	}
	variant := func(name string, change func(*features)) {
		out = append(out, struct {
			name string
			f    features
		}{name, add(defaultFeatures, change)})
	}
	for _, w := range []float32{0.4, 0.2} {
		variant(fmt.Sprintf("default+bigrams %.1f", w), func(f *features) { f.Bigrams, f.BigramWeight = true, w })
	}
	for _, d := range []int{128, 256, 512, 1024} {
		variant(fmt.Sprintf("default, d=%d", d), func(f *features) { f.Dim = d })
	}
	for _, w := range []float32{0.2, 0.4, 1.0} {
		variant(fmt.Sprintf("default, n-gram weight %.1f", w), func(f *features) { f.NGramWeight = w })
	}
	variant("default, n-grams 4-5", func(f *features) { f.NGramMin = 4 })
	return out
}

// paraphraseScores embeds every memory and query of pairs and returns
// the mean cosine of matching pairs, of non-matching pairs, and the share
// of queries whose own memory ranks first among all memories.
func paraphraseScores(t testing.TB, e Embedder, pairs []struct{ memory, query string }) (match, other, top1 float64) {
	n := len(pairs)
	mems, qs := make([]string, n), make([]string, n)
	for i, p := range pairs {
		mems[i], qs[i] = p.memory, p.query
	}
	mv, err := e.Embed(t.Context(), mems)
	if err != nil {
		t.Fatal(err)
	}
	qv, err := e.Embed(t.Context(), qs)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i := range n {
		best := -1
		bestScore := -2.0
		for j := range n {
			c := cosine(qv[i], mv[j])
			if i == j {
				match += c
			} else {
				other += c
			}
			if c > bestScore {
				best, bestScore = j, c
			}
		}
		if best == i {
			hits++
		}
	}
	return match / float64(n), other / float64(n*(n-1)), float64(hits) / float64(n)
}

func TestBuiltinEval(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-28s %8s %8s %8s %6s | %8s %6s", "features", "match", "other", "gap", "top1", "sub gap", "top1")
	corpus, queries := loadEvalSet(t)
	if corpus != nil {
		fmt.Fprintf(&b, " %9s %7s", "recall@10", "MRR")
	}
	b.WriteString("\n")
	var defaultGap, wordsGap float64
	for _, v := range evalVariants() {
		e := newBuiltin(v.f)
		match, other, top1 := paraphraseScores(t, e, paraphrases)
		sm, so, st := paraphraseScores(t, e, append(slices.Clone(subwords), paraphrases...))
		fmt.Fprintf(&b, "%-28s %8.3f %8.3f %8.3f %6.2f | %8.3f %6.2f", v.name, match, other, match-other, top1, sm-so, st)
		if corpus != nil {
			r, mrr := retrievalScores(t, e, corpus, queries)
			fmt.Fprintf(&b, " %9.3f %7.3f", r, mrr)
		}
		b.WriteString("\n")
		switch v.name {
		case "words":
			wordsGap = match - other
		case "+char 3-5-grams (default)":
			defaultGap = match - other
			if v.f != defaultFeatures {
				t.Errorf("the last cumulative variant is not the default features: %+v", v.f)
			}
		}
	}
	t.Log(b.String())
	if defaultGap <= wordsGap {
		t.Errorf("the default features separate paraphrases from other pairs less than plain words: gap %.3f vs %.3f",
			defaultGap, wordsGap)
	}
}

type evalMemory struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	Group   string `json:"group"`
}

type evalQuery struct {
	ID       string   `json:"id"`
	Query    string   `json:"query"`
	Group    string   `json:"group"`
	Relevant []string `json:"relevant"`
}

// loadEvalSet reads corpus.jsonl and queries.jsonl from $CODINGBRAIN_EVAL_DIR
// or the repository's testdata/retrieval, or returns nil if neither has
// them.
func loadEvalSet(t testing.TB) ([]evalMemory, []evalQuery) {
	dir := os.Getenv("CODINGBRAIN_EVAL_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "retrieval")
	}
	corpus, err := readJSONL[evalMemory](filepath.Join(dir, "corpus.jsonl"))
	if err != nil {
		t.Logf("no retrieval set: %v", err)
		return nil, nil
	}
	queries, err := readJSONL[evalQuery](filepath.Join(dir, "queries.jsonl"))
	if err != nil {
		t.Logf("no retrieval set: %v", err)
		return nil, nil
	}
	t.Logf("retrieval set %s: %d memories, %d queries", dir, len(corpus), len(queries))
	return corpus, queries
}

func readJSONL[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// retrievalScores ranks, for every query, the memories of its group by
// cosine (exact search) and returns mean recall@10 and MRR.
func retrievalScores(t testing.TB, e Embedder, corpus []evalMemory, queries []evalQuery) (recall, mrr float64) {
	texts := make([]string, len(corpus))
	for i, m := range corpus {
		texts[i] = m.Content
	}
	mv, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	qtexts := make([]string, len(queries))
	for i, q := range queries {
		qtexts[i] = q.Query
	}
	qv, err := e.Embed(t.Context(), qtexts)
	if err != nil {
		t.Fatal(err)
	}
	type scored struct {
		id    string
		score float64
	}
	n := 0
	for i, q := range queries {
		if len(q.Relevant) == 0 {
			continue
		}
		n++
		var ranked []scored
		for j, m := range corpus {
			if q.Group == "" || m.Group == q.Group {
				ranked = append(ranked, scored{m.ID, cosine(qv[i], mv[j])})
			}
		}
		slices.SortStableFunc(ranked, func(a, b scored) int { return cmp.Compare(b.score, a.score) })
		found := 0
		for r, s := range ranked {
			if !slices.Contains(q.Relevant, s.id) {
				continue
			}
			if found == 0 {
				mrr += 1 / float64(r+1)
			}
			if r < 10 {
				found++
			}
		}
		recall += float64(found) / float64(len(q.Relevant))
	}
	if n == 0 {
		return 0, 0
	}
	return recall / float64(n), mrr / float64(n)
}
