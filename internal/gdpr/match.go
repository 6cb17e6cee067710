package gdpr

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// matcher decides whether stored text concerns a subject: it holds the
// subject's identifier as written and in its entity form
// (memory.NormalizeEntity), and finds them case-insensitively as whole
// words — not preceded or followed by a letter or digit. "alice" is found
// in "user:alice", "ask Alice" and "alice-bot", not in "malice".
type matcher struct {
	subject string
	needles []string // lower case, distinct
	res     []*regexp.Regexp
}

func newMatcher(subject string) matcher {
	m := matcher{subject: subject}
	for _, n := range []string{strings.ToLower(subject), memory.NormalizeEntity(subject)} {
		n = strings.TrimSpace(n)
		if n == "" || slices.Contains(m.needles, n) {
			continue
		}
		m.needles = append(m.needles, n)
		m.res = append(m.res, regexp.MustCompile(`(?i)`+regexp.QuoteMeta(n)))
	}
	return m
}

// wordAt reports whether s[i:j] stands as a word in s.
func wordAt(s string, i, j int) bool {
	if i > 0 {
		r, _ := utf8.DecodeLastRuneInString(s[:i])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	if j < len(s) {
		r, _ := utf8.DecodeRuneInString(s[j:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// in reports whether s mentions the subject.
func (m matcher) in(s string) bool {
	if s == "" {
		return false
	}
	for _, re := range m.res {
		for _, loc := range re.FindAllStringIndex(s, -1) {
			if wordAt(s, loc[0], loc[1]) {
				return true
			}
		}
	}
	return false
}

// replace returns s with every mention of the subject replaced by with.
func (m matcher) replace(s, with string) string {
	for _, re := range m.res {
		locs := re.FindAllStringIndex(s, -1)
		if len(locs) == 0 {
			continue
		}
		var b strings.Builder
		last := 0
		for _, loc := range locs {
			if !wordAt(s, loc[0], loc[1]) {
				continue
			}
			b.WriteString(s[last:loc[0]])
			b.WriteString(with)
			last = loc[1]
		}
		b.WriteString(s[last:])
		s = b.String()
	}
	return s
}

// inValue reports whether any string in a decoded JSON value (keys
// included) mentions the subject.
func (m matcher) inValue(v any) bool {
	switch v := v.(type) {
	case string:
		return m.in(v)
	case []string:
		return slices.ContainsFunc(v, m.in)
	case []any:
		return slices.ContainsFunc(v, m.inValue)
	case map[string]any:
		for k, x := range v {
			if m.in(k) || m.inValue(x) {
				return true
			}
		}
	}
	return false
}

// scrubValue returns v with every mention replaced in strings and keys.
func (m matcher) scrubValue(v any, with string) any {
	switch v := v.(type) {
	case string:
		return m.replace(v, with)
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = m.replace(s, with)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = m.scrubValue(x, with)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[m.replace(k, with)] = m.scrubValue(x, with)
		}
		return out
	}
	return v
}

// authored reports whether the subject wrote mem.
func (m matcher) authored(mem memory.Memory) bool { return mem.CreatedBy == m.subject }

// private reports whether mem is in the subject's own access entity.
func (m matcher) private(mem memory.Memory) bool { return mem.AccessEntity == "user:"+m.subject }

// mentions reports whether any field of mem names the subject.
func (m matcher) mentions(mem memory.Memory) bool {
	if m.authored(mem) || m.private(mem) {
		return true
	}
	for _, s := range []string{mem.Content, mem.Entity, mem.ArtifactRef, mem.App, mem.AccessEntity} {
		if m.in(s) {
			return true
		}
	}
	return m.inValue(mem.Evidence) || m.inValue(map[string]any(mem.Tags)) || m.inValue(map[string]any(mem.Metadata))
}

// scrubMemory returns mem with every mention of the subject replaced by
// with, and its content hash recomputed.
func (m matcher) scrubMemory(mem memory.Memory, with string) memory.Memory {
	if mem.CreatedBy == m.subject {
		mem.CreatedBy = with
	}
	mem.Content = m.replace(mem.Content, with)
	mem.Entity = m.replace(mem.Entity, with)
	mem.ArtifactRef = m.replace(mem.ArtifactRef, with)
	mem.App = m.replace(mem.App, with)
	mem.AccessEntity = m.replace(mem.AccessEntity, with)
	if mem.Evidence != nil {
		mem.Evidence = m.scrubValue(mem.Evidence, with).([]string)
	}
	if mem.Tags != nil {
		mem.Tags = m.scrubValue(map[string]any(mem.Tags), with).(map[string]any)
	}
	if mem.Metadata != nil {
		mem.Metadata = m.scrubValue(map[string]any(mem.Metadata), with).(map[string]any)
	}
	mem.ContentHash = memory.ContentHash(mem.Content)
	return mem
}

// historyMentions reports whether a history row concerns the subject.
func (m matcher) historyMentions(h memory.HistoryEntry) bool {
	return h.Actor == m.subject || m.in(h.Actor) ||
		(h.Before != nil && m.mentions(*h.Before)) || (h.After != nil && m.mentions(*h.After))
}

// scrubHistory replaces the subject in a history row.
func (m matcher) scrubHistory(h memory.HistoryEntry, with string) memory.HistoryEntry {
	if h.Actor == m.subject {
		h.Actor = with
	}
	h.Actor = m.replace(h.Actor, with)
	if h.Before != nil {
		b := m.scrubMemory(*h.Before, with)
		h.Before = &b
	}
	if h.After != nil {
		a := m.scrubMemory(*h.After, with)
		h.After = &a
	}
	return h
}

// accessMentions reports whether an access-log row concerns the subject.
func (m matcher) accessMentions(a AccessRow) bool {
	return a.Actor == m.subject || m.in(a.Actor) || m.in(a.Query)
}
