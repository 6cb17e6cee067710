package lexindex

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/kljensen/snowball/english"

	"github.com/codingbrain/codingbrain/internal/retrieval/lexical"
)

// maxQueryTokens bounds the words of a query that are searched for, as in
// the stores.
const maxQueryTokens = 32

// words splits text into lower-case words as the embedded store's FTS5
// tokenizer (unicode61, remove_diacritics 2) does: runs of letters, numbers
// and private-use characters, with diacritics removed.
func words(text string) []string {
	if !isASCII(text) {
		text = lexical.Fold(text)
	}
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Co, r)
	})
	for i, f := range fields {
		fields[i] = strings.ToLower(f)
	}
	return fields
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// stemmer stems words (Snowball English, as PostgreSQL's english
// configuration and the built-in embedder do), remembering the answers:
// stemming costs about a microsecond, and a corpus repeats its words.
type stemmer struct {
	mu    sync.RWMutex
	stems map[string]string
}

// maxStems bounds the words the stemmer remembers.
const maxStems = 1 << 18

func newStemmer() *stemmer { return &stemmer{stems: map[string]string{}} }

// stem returns the stem of a lower-case word. Words with digits, and very
// long ones, are their own stem.
func (s *stemmer) stem(w string) string {
	if len(w) < 3 || len(w) > 40 || strings.ContainsAny(w, "0123456789") {
		return w
	}
	s.mu.RLock()
	st, ok := s.stems[w]
	s.mu.RUnlock()
	if ok {
		return st
	}
	st = english.Stem(w, true)
	if st == w {
		st = w // share the word's bytes
	}
	s.mu.Lock()
	if len(s.stems) < maxStems {
		s.stems[strings.Clone(w)] = st
	}
	s.mu.Unlock()
	return st
}
