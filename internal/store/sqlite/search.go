package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/codingbrain/codingbrain/internal/memory"

	"github.com/codingbrain/codingbrain/internal/retrieval/lexical"
)

// maxQueryTokens bounds the OR query sent to FTS5.
const maxQueryTokens = 32

// bm25Weights weighs the indexed columns: content, entity, artifact_ref,
// tags, and acl (access tokens, which must not count).
const bm25Weights = "1.0, 1.5, 1.0, 0.5, 0.0"

// textColumns are the columns query words are looked up in. Only a query
// with an all-digit token names them: no other token can match an access
// token, and a column filter costs time on every posting.
const textColumns = "{content entity artifact_ref tags}"

// Search ranks visible memories matching q.Filter by relevance to q.Text.
//
// The text is split into tokens the way the index tokenizer splits it, and
// every token is quoted, so no user text is ever read as FTS5 query syntax.
// A memory matches when it has any of the tokens (common English words are
// left out when other tokens remain). Memories whose content holds all the
// tokens as a phrase come first; within each group BM25 orders, then
// insertion order.
//
// Access and filters are conditions of the same statement, applied before
// the limit. The caller's access tokens (see acl.go) are also part of the
// FTS5 query, so the index ranks only visible memories; the statement reads
// the memories rows of the best few candidates only, and checks access,
// state and filters there. Only when too few candidates pass does it run
// again over every candidate, so the answer is the same either way.
//
// Score is positive and higher is better: for BM25 value b (negative in
// FTS5), x = -b and score = x/(1+x), plus 1 for a phrase match.
func (s *Store) Search(ctx context.Context, a memory.Access, q memory.SearchQuery) ([]memory.Hit, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = memory.DefaultHitLimit
	}
	limit = min(limit, memory.MaxSearchLimit)
	tokens := queryTokens(q.Text)
	acl, _ := aclMatch(a)
	if len(tokens) == 0 || acl == "" {
		return []memory.Hit{}, nil
	}
	hits, err := s.search(ctx, a, q.Filter, q.IncludeCold, tokens, acl, limit, 4*limit+40)
	if err == nil && len(hits) < limit {
		hits, err = s.search(ctx, a, q.Filter, q.IncludeCold, tokens, acl, limit, -1)
	}
	if err != nil {
		return nil, fmt.Errorf("search memories: %w", err)
	}
	return hits, nil
}

// search runs the search statement, ranking at most candidates lexical
// matches (-1: all of them).
func (s *Store) search(ctx context.Context, a memory.Access, f memory.Filter, cold bool, tokens []string, acl string, limit, candidates int) ([]memory.Hit, error) {
	var w where
	w.access(a)
	w.filter(f)
	if !cold {
		w.add("m.tier = 'hot'")
	}

	args := []any{}
	exact, phraseCTE := "0", ""
	if len(tokens) > 1 {
		phraseCTE = `phrase AS MATERIALIZED (
			SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?),`
		exact = "rowid IN phrase"
		args = append(args, acl+" AND "+matchPhrase(tokens))
	}
	words := "(" + matchAny(tokens) + ")"
	if slices.ContainsFunc(tokens, allDigits) {
		words = textColumns + " : " + words
	}
	args = append(args, acl+" AND "+words, candidates)
	args = append(args, w.args...)
	args = append(args, limit)

	// cand holds the best lexical matches among the memories the access
	// tokens allow; top keeps those that pass access, state and filters; the
	// outer select reads only those rows fully.
	query := `WITH ` + phraseCTE + `
		cand AS MATERIALIZED (
			SELECT rowid AS seq, bm25(memories_fts, ` + bm25Weights + `) AS rank, ` + exact + ` AS exact
			FROM memories_fts WHERE memories_fts MATCH ?
			ORDER BY exact DESC, rank, rowid
			LIMIT ?),
		top AS (
			SELECT c.seq, c.rank, c.exact
			FROM cand c CROSS JOIN memories m ON m.seq = c.seq
			WHERE ` + w.String() + `
			ORDER BY c.exact DESC, c.rank, c.seq
			LIMIT ?)
		SELECT ` + memoryColumns + `, t.rank, t.exact, m.tier = 'cold'
		FROM top t CROSS JOIN memories m ON m.seq = t.seq
		ORDER BY t.exact DESC, t.rank, t.seq`
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	hits := make([]memory.Hit, 0, limit)
	for rows.Next() {
		var rank float64
		var phrase, cold bool
		m, err := scanMemory(rows, &rank, &phrase, &cold)
		if err != nil {
			return nil, err
		}
		m.Cold = cold
		hits = append(hits, memory.Hit{Memory: m, Score: score(rank, phrase)})
	}
	return hits, rows.Err()
}

// score maps an FTS5 bm25() value (lower is better, normally negative) and a
// phrase match to a positive score where higher is better and every phrase
// match scores above every other hit.
func score(rank float64, phrase bool) float64 {
	x := max(-rank, 0)
	s := x / (1 + x)
	if s == 0 {
		s = 1e-9 // a match always scores above zero
	}
	if phrase {
		s++
	}
	return s
}

// queryTokens splits text into lower-case tokens as FTS5's unicode61
// tokenizer does: runs of letters, numbers and private-use characters.
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

func allDigits(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

// matchAny builds an FTS5 query matching any of the tokens, each quoted,
// leaving out stop words when other tokens remain.
func matchAny(tokens []string) string {
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
	if len(keep) > maxQueryTokens {
		keep = keep[:maxQueryTokens]
	}
	quoted := make([]string, len(keep))
	for i, t := range keep {
		quoted[i] = `"` + t + `"`
	}
	return strings.Join(quoted, " OR ")
}

// matchPhrase builds an FTS5 query matching content that holds every token
// in order, next to each other.
func matchPhrase(tokens []string) string {
	if len(tokens) > maxQueryTokens {
		tokens = tokens[:maxQueryTokens]
	}
	return `content : "` + strings.Join(tokens, " ") + `"`
}
