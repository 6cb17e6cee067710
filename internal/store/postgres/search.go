package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"

	"github.com/codingbrain/codingbrain/internal/retrieval/lexical"
)

// maxQueryTokens bounds the words of a query that are searched for.
const maxQueryTokens = 32

// rankWeights weighs the lexeme classes for ts_rank, in the order
// {D, C, B, A}: tags, artifact ref, content, entity — the same proportions
// as the embedded store's BM25 weights (0.5, 1, 1, 1.5).
const rankWeights = `'{0.333, 0.667, 0.667, 1.0}'`

// Search ranks visible memories matching q.Filter by relevance to q.Text.
//
// The text is split into words (runs of letters and digits); each word goes
// to plainto_tsquery on its own, as a parameter, and the results are ORed,
// so no user text is ever read as tsquery syntax. A memory matches when it
// has any of the words (common English words are left out when other words
// remain). Memories whose content holds all the words as a phrase (stemmed,
// in order, ignoring case and punctuation) come first; within each group
// ts_rank orders. Access and filters are conditions of the same statement,
// applied before the limit.
//
// ts_rank, not ts_rank_cd: ranking is done for every visible match before
// the limit, and the cover-density rank costs about six times as much per
// row (at 100,000 memories it doubled the slowest searches).
//
// Score is positive and higher is better: for rank r, score = r/(1+r),
// plus 1 for a phrase match.
func (s *Store) Search(ctx context.Context, a memory.Access, q memory.SearchQuery) ([]memory.Hit, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = memory.DefaultHitLimit
	}
	limit = min(limit, memory.MaxSearchLimit)
	tokens := queryTokens(q.Text)
	words := matchWords(tokens)
	if len(words) == 0 {
		return []memory.Hit{}, nil
	}

	var w where
	parts := make([]string, len(words))
	for i, t := range words {
		parts[i] = "plainto_tsquery('english', " + w.arg(t) + ")"
	}
	phrase, exact := "NULL::tsquery", "false"
	if len(tokens) > 1 {
		phrase = "phraseto_tsquery('english', " + w.arg(strings.Join(tokens[:min(len(tokens), maxQueryTokens)], " ")) + ")"
		// The cheap test on the whole vector first; then on the content's
		// lexemes (weight B) alone.
		exact = "(m.lexemes @@ (SELECT phrase FROM q) AND ts_filter(m.lexemes, '{b}') @@ (SELECT phrase FROM q))"
	}
	w.add("m.lexemes @@ (SELECT match FROM q)")
	w.access(a)
	w.filter(q.Filter)
	if !q.IncludeCold {
		w.add("m.tier = 'hot'")
	}

	// q builds the queries once: as scalar subqueries they are evaluated
	// before the scan, also in a generic plan of the prepared statement,
	// instead of once per row. top ranks every visible, filtered match and
	// keeps the best; the outer select reads only those rows in full.
	query := `WITH q AS MATERIALIZED (
			SELECT ` + strings.Join(parts, " || ") + ` AS match, ` + phrase + ` AS phrase),
		top AS (
			SELECT m.org_id, m.id, ts_rank(` + rankWeights + `, m.lexemes, (SELECT match FROM q)) AS rank, ` + exact + ` AS exact
			FROM memories m
			WHERE ` + w.String() + `
			ORDER BY exact DESC, rank DESC, m.id
			LIMIT ` + w.arg(limit) + `)
		SELECT ` + memoryColumns + `, t.rank, t.exact, m.tier = 'cold'
		FROM top t JOIN memories m ON m.org_id = t.org_id AND m.id = t.id
		ORDER BY t.exact DESC, t.rank DESC, m.id`
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("search memories: %w", s.dbErr(err))
	}
	hits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Hit, error) {
		var rank float32
		var phrase, cold bool
		m, err := scanMemory(r, &rank, &phrase, &cold)
		m.Cold = cold
		return memory.Hit{Memory: m, Score: score(float64(rank), phrase)}, err
	})
	if err != nil {
		return nil, fmt.Errorf("search memories: %w", s.dbErr(err))
	}
	if hits == nil {
		hits = []memory.Hit{}
	}
	return hits, nil
}

// score maps a ts_rank value (higher is better, 0 or more) and a phrase
// match to a positive score where every phrase match scores above every
// other hit.
func score(rank float64, phrase bool) float64 {
	x := max(rank, 0)
	s := x / (1 + x)
	if s == 0 {
		s = 1e-9 // a match always scores above zero
	}
	if phrase {
		s++
	}
	return s
}

// queryTokens splits text into lower-case words: runs of letters, numbers
// and private-use characters (as the embedded store's tokenizer does).
func queryTokens(text string) []string {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Co, r)
	})
	if len(fields) > 4*maxQueryTokens {
		fields = fields[:4*maxQueryTokens]
	}
	for i, f := range fields {
		fields[i] = strings.ToLower(f)
	}
	return fields
}

// matchWords returns the distinct tokens to match, leaving out stop words
// when other tokens remain.
func matchWords(tokens []string) []string {
	seen := map[string]bool{}
	var keep, stop []string
	for _, t := range tokens {
		if seen[t] {
			continue
		}
		seen[t] = true
		if lexical.StopWord(t) {
			stop = append(stop, t)
		} else {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		keep = stop
	}
	return keep[:min(len(keep), maxQueryTokens)]
}
