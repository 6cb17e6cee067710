// Package lexical holds the word rules every part of search shares: which
// words are too common to select memories by, and how Unicode text is
// folded so that café and cafe are one word. The stores' lexical search,
// the in-process lexical index and the built-in embedder all use it, so
// that they agree on what a word is.
package lexical

import (
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// StopWord reports whether w, lower case, is an English word too common
// to select memories by. Such words still count inside a phrase.
func StopWord(w string) bool { return stopWords[w] }

var stopWords = map[string]bool{
	"a": true, "about": true, "after": true, "all": true, "also": true, "an": true, "and": true,
	"any": true, "are": true, "as": true, "at": true, "be": true, "been": true, "before": true,
	"but": true, "by": true, "can": true, "could": true, "did": true, "do": true, "does": true,
	"for": true, "from": true, "had": true, "has": true, "have": true, "how": true, "i": true,
	"if": true, "in": true, "into": true, "is": true, "it": true, "its": true, "me": true,
	"my": true, "no": true, "not": true, "of": true, "on": true, "or": true, "our": true,
	"should": true, "so": true, "some": true, "than": true, "that": true, "the": true,
	"their": true, "them": true, "then": true, "there": true, "these": true, "they": true,
	"this": true, "to": true, "us": true, "was": true, "we": true, "were": true, "what": true,
	"when": true, "where": true, "which": true, "while": true, "who": true, "why": true,
	"will": true, "with": true, "would": true, "you": true, "your": true,
}

// Fold decomposes text (NFKD: compatibility forms such as ligatures and
// full-width letters become their plain letters), drops combining marks
// and recomposes it, so that café and cafe are one word.
func Fold(s string) string {
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		return strings.ToValidUTF8(s, " ")
	}
	return out
}
