package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// snippetRunes is how much of the content list and search lines show.
const snippetRunes = 80

// output writes results for people, or as JSON for scripts.
type output struct {
	w    io.Writer
	json bool
}

func (o *output) printf(format string, args ...any) error {
	if _, err := fmt.Fprintf(o.w, format, args...); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// printJSON writes v as indented JSON, in the shape the server answered.
func (o *output) printJSON(v any) error {
	enc := json.NewEncoder(o.w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// printMemory writes one memory as a block: a header line, the fields that
// are set, and the content indented below them.
func (o *output) printMemory(m memory.Memory) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  [%s]\n", m.ID, m.State)
	field := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "  %-14s %s\n", name+":", v)
		}
	}
	field("category", string(m.Category))
	field("scope", string(m.Scope))
	field("access entity", m.AccessEntity)
	field("artifact", strings.TrimSpace(string(m.ArtifactType)+" "+m.ArtifactRef))
	field("entity", m.Entity)
	field("source", string(m.Source))
	field("app", m.App)
	field("tags", formatTags(m.Tags))
	field("evidence", strings.Join(m.Evidence, ", "))
	field("created", formatTime(m.CreatedAt)+by(m.CreatedBy))
	field("updated", formatTime(m.UpdatedAt))
	if m.ValidFrom != nil || m.ValidTo != nil {
		field("valid", formatTimePtr(m.ValidFrom)+" .. "+formatTimePtr(m.ValidTo))
	}
	b.WriteString("\n")
	for _, line := range strings.Split(m.Content, "\n") {
		b.WriteString("    " + line + "\n")
	}
	return o.printf("%s", b.String())
}

// printPage writes one line per memory and the cursor of the next page.
func (o *output) printPage(p memory.Page) error {
	var b strings.Builder
	for _, m := range p.Memories {
		fmt.Fprintf(&b, "%s  %-8s  %-12s  %s\n", m.ID, m.State, orDash(string(m.Category)), snippet(m.Content))
	}
	if len(p.Memories) == 0 {
		b.WriteString("no memories\n")
	}
	if p.NextCursor != "" {
		fmt.Fprintf(&b, "next: %s\n", p.NextCursor)
	}
	return o.printf("%s", b.String())
}

// printHits writes one line per hit: rank, score, id and snippet.
func (o *output) printHits(res memory.SearchResult, explain bool) error {
	var b strings.Builder
	if res.Degraded {
		fmt.Fprintf(&b, "degraded %s search: %s\n", res.Mode, res.Reason)
	}
	for i, h := range res.Hits {
		fmt.Fprintf(&b, "%2d  %-9.3g  %s  %s\n", i+1, h.Score, h.Memory.ID, snippet(h.Memory.Content))
		if explain && h.Explain != nil {
			b.WriteString("    " + explainLine(h.Explain) + "\n")
		}
	}
	if len(res.Hits) == 0 {
		b.WriteString("no matches\n")
	}
	return o.printf("%s", b.String())
}

// explainLine says in one line why a hit ranks where it does.
func explainLine(e *memory.Explain) string {
	var parts []string
	for _, s := range e.Sources {
		parts = append(parts, fmt.Sprintf("%s #%d (%.3g)", s.Source, s.Rank, s.Score))
	}
	line := strings.Join(parts, ", ")
	if e.Fused > 0 {
		line += fmt.Sprintf("; fused %.4g", e.Fused)
	}
	for _, bm := range e.Boosts {
		line += fmt.Sprintf("; +%.2g %s %s", bm.Weight, bm.Field, bm.Value)
	}
	if e.Recency > 0 && e.Recency != 1 {
		line += fmt.Sprintf("; recency ×%.3f", e.Recency)
	}
	if e.Validity > 0 && e.Validity != 1 {
		line += fmt.Sprintf("; superseded ×%.2f", e.Validity)
	}
	return line
}

// printHistory writes one line per change: when, what, who, and which
// fields it changed.
func (o *output) printHistory(h []memory.HistoryEntry) error {
	var b strings.Builder
	for _, e := range h {
		fmt.Fprintf(&b, "%s  %-8s  %s", formatTime(e.At), e.Action, orDash(e.Actor))
		if fs := changedFields(e.Before, e.After); len(fs) > 0 {
			fmt.Fprintf(&b, "  (%s)", strings.Join(fs, ", "))
		}
		b.WriteString("\n")
	}
	if len(h) == 0 {
		b.WriteString("no history\n")
	}
	return o.printf("%s", b.String())
}

// changedFields names the JSON fields that differ between before and after,
// ignoring updated_at. It is nil for a create.
func changedFields(before, after *memory.Memory) []string {
	if before == nil || after == nil {
		return nil
	}
	a, b := asMap(before), asMap(after)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(a, b))) {
		if k != "updated_at" && !reflect.DeepEqual(a[k], b[k]) {
			out = append(out, k)
		}
	}
	return out
}

func asMap(m *memory.Memory) map[string]any {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func mergeKeys(a, b map[string]any) map[string]bool {
	keys := make(map[string]bool, len(a)+len(b))
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// snippet is the content on one line, cut to snippetRunes runes.
func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= snippetRunes {
		return s
	}
	return string(r[:snippetRunes-1]) + "…"
}

func formatTags(tags map[string]any) string {
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		switch v := tags[k].(type) {
		case bool:
			if v {
				parts = append(parts, k)
				continue
			}
			parts = append(parts, k+"=false")
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
