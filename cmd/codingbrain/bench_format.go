package main

// The retrieval evaluation format (docs/retrieval.md): corpus.jsonl holds one
// memory per line, queries.jsonl one labelled query per line. This file reads
// both and maps a corpus line onto the memory model; bench.go runs them.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// benchDoc is one line of a corpus: a memory to add to its group.
type benchDoc struct {
	Line      int
	ID        string
	Group     string
	Input     memory.Input
	CreatedAt time.Time    // zero when the line has none
	State     memory.State // "" or active: as added; else applied after the add
}

// benchQuery is one line of a queries file.
type benchQuery struct {
	Line     int
	ID       string
	Text     string
	Group    string
	Category string // the query's kind, for per-category figures; "" if none
	Relevant []string
	Filter   memory.Filter
}

// benchNotes counts remarks about a data set (fields that do not fit the
// memory model, labels that cannot be found), so the report can list each
// once with how often it happened.
type benchNotes map[string]int

func (n benchNotes) add(format string, args ...any) { n[fmt.Sprintf(format, args...)]++ }

// list returns the notes in a stable order, each with its count.
func (n benchNotes) list() []string {
	out := make([]string, 0, len(n))
	for msg, c := range n {
		if c > 1 {
			msg = fmt.Sprintf("%s (%d times)", msg, c)
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// readJSONL calls fn for every non-blank line of path with its 1-based line
// number.
func readJSONL(path string, fn func(line int, b []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		b, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			if ferr := fn(n, b); ferr != nil {
				return fmt.Errorf("%s:%d: %w", path, n, ferr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// parseBenchDoc reads one corpus line. id and content are required. Fields
// of the memory model are mapped onto it; a value the model does not allow
// for an enum (a category such as "incident") is kept in metadata under the
// same name instead, with a note; unknown fields go into metadata. The
// line's explicit metadata wins over an unknown field of the same name.
func parseBenchDoc(b []byte, notes benchNotes) (benchDoc, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return benchDoc{}, fmt.Errorf("not a JSON object: %w", err)
	}
	var d benchDoc
	extra := map[string]any{}
	var meta map[string]any
	for key, v := range raw {
		var err error
		switch key {
		case "id":
			err = json.Unmarshal(v, &d.ID)
		case "content":
			err = json.Unmarshal(v, &d.Input.Content)
		case "group":
			err = json.Unmarshal(v, &d.Group)
		case "category":
			err = enumField(v, key, memory.Categories, &d.Input.Category, extra, notes)
		case "scope":
			err = enumField(v, key, memory.Scopes, &d.Input.Scope, extra, notes)
		case "artifact_type":
			err = enumField(v, key, memory.ArtifactTypes, &d.Input.ArtifactType, extra, notes)
		case "source":
			err = enumField(v, key, memory.Sources, &d.Input.Source, extra, notes)
		case "state":
			err = enumField(v, key, memory.States, &d.State, extra, notes)
		case "artifact_ref":
			err = json.Unmarshal(v, &d.Input.ArtifactRef)
		case "entity":
			err = json.Unmarshal(v, &d.Input.Entity)
		case "app":
			err = json.Unmarshal(v, &d.Input.App)
		case "evidence":
			var l stringOrList
			err = json.Unmarshal(v, &l)
			d.Input.Evidence = l
		case "tags":
			d.Input.Tags, err = parseTags(v)
		case "metadata":
			err = json.Unmarshal(v, &meta)
		case "created_at":
			err = json.Unmarshal(v, &d.CreatedAt)
		case "valid_from":
			err = json.Unmarshal(v, &d.Input.ValidFrom)
		case "valid_to":
			err = json.Unmarshal(v, &d.Input.ValidTo)
		default:
			// access_entity too: the group decides who sees a memory.
			var x any
			err = json.Unmarshal(v, &x)
			extra[key] = x
		}
		if err != nil {
			return benchDoc{}, fmt.Errorf("field %s: %w", key, err)
		}
	}
	switch {
	case strings.TrimSpace(d.ID) == "":
		return benchDoc{}, errors.New(`field id is required`)
	case strings.TrimSpace(d.Input.Content) == "":
		return benchDoc{}, fmt.Errorf("memory %s: field content is required", d.ID)
	}
	maps := []map[string]any{extra, meta}
	for _, m := range maps {
		for k, v := range m {
			if d.Input.Metadata == nil {
				d.Input.Metadata = map[string]any{}
			}
			d.Input.Metadata[k] = v
		}
	}
	return d, nil
}

// enumField sets *dst to the JSON string v when the model allows it, else
// keeps the value in extra (metadata) and notes it.
func enumField[T ~string](v json.RawMessage, key string, allowed []T, dst *T, extra map[string]any, notes benchNotes) error {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	if t := T(strings.ToLower(s)); slices.Contains(allowed, t) {
		*dst = t
		return nil
	}
	extra[key] = s
	notes.add("%s %q is not one of the memory model's; kept in metadata.%s", key, s, key)
	return nil
}

// parseTags accepts the model's object of scalars, or a list of names (each
// becomes a tag set to true).
func parseTags(v json.RawMessage) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(v, &m); err == nil {
		return m, nil
	}
	var l []string
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, errors.New("must be an object of scalars or a list of strings")
	}
	m = make(map[string]any, len(l))
	for _, t := range l {
		m[t] = true
	}
	return m, nil
}

// stringOrList is a JSON string or array of strings.
type stringOrList []string

func (l *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringOrList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*l = many
	return nil
}

// benchFilters are a query's filters, named as in the search API's
// "filters" object (POST /api/v1/search); an enum filter takes a string or a
// list.
type benchFilters struct {
	Category      stringOrList `json:"category"`
	Scope         stringOrList `json:"scope"`
	State         stringOrList `json:"state"`
	Tags          stringOrList `json:"tags"`
	Entity        string       `json:"entity"`
	ArtifactRef   string       `json:"artifact_ref"`
	App           string       `json:"app"`
	AccessEntity  string       `json:"access_entity"`
	CreatedAfter  *time.Time   `json:"created_after"`
	CreatedBefore *time.Time   `json:"created_before"`
}

func (f benchFilters) filter() memory.Filter {
	return memory.Filter{
		Categories: enumList[memory.Category](f.Category), Scopes: enumList[memory.Scope](f.Scope),
		States: enumList[memory.State](f.State), Tags: f.Tags, Entity: f.Entity,
		ArtifactRef: f.ArtifactRef, App: f.App, AccessEntity: f.AccessEntity,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore,
	}
}

func enumList[T ~string](in []string) []T {
	var out []T
	for _, v := range in {
		out = append(out, T(v))
	}
	return out
}

// parseBenchQuery reads one queries line. id and query are required; a
// query without relevant ids is read (and later skipped, with a note).
// Unknown fields are ignored; an unknown filter is an error, as the search
// API refuses it.
func parseBenchQuery(b []byte) (benchQuery, error) {
	var raw struct {
		ID       string          `json:"id"`
		Query    string          `json:"query"`
		Group    string          `json:"group"`
		Category string          `json:"category"`
		Relevant stringOrList    `json:"relevant"`
		Filters  json.RawMessage `json:"filters"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return benchQuery{}, fmt.Errorf("not a query object: %w", err)
	}
	q := benchQuery{ID: raw.ID, Text: raw.Query, Group: raw.Group, Category: raw.Category}
	switch {
	case strings.TrimSpace(q.ID) == "":
		return benchQuery{}, errors.New("field id is required")
	case strings.TrimSpace(q.Text) == "":
		return benchQuery{}, fmt.Errorf("query %s: field query is required", q.ID)
	}
	seen := map[string]bool{}
	for _, id := range raw.Relevant {
		if !seen[id] {
			seen[id] = true
			q.Relevant = append(q.Relevant, id)
		}
	}
	if len(raw.Filters) > 0 && string(raw.Filters) != "null" {
		var f benchFilters
		d := json.NewDecoder(bytes.NewReader(raw.Filters))
		d.DisallowUnknownFields()
		if err := d.Decode(&f); err != nil {
			return benchQuery{}, fmt.Errorf("query %s: filters: %w (the names are the search API's: "+
				"category, scope, state, tags, entity, artifact_ref, app, access_entity, created_after, created_before)", q.ID, err)
		}
		q.Filter = f.filter()
	}
	return q, nil
}

// benchData is a corpus and its queries, checked against each other.
type benchData struct {
	Docs    []benchDoc
	Queries []benchQuery // only those with relevant ids
	Groups  []string     // in order of first appearance in the corpus
	Latest  time.Time    // the latest created_at in the corpus; zero if none
	Notes   benchNotes
}

// loadBench reads and checks a corpus and its queries: corpus ids are
// unique within a group, query ids are unique. Relevant ids missing from
// the query's group stay in the labels (they count as misses) and are
// noted, as are queries without relevant ids, which are skipped.
func loadBench(corpusPath, queriesPath string) (*benchData, error) {
	d := &benchData{Notes: benchNotes{}}
	ids := map[string]map[string]bool{} // group → ids
	err := readJSONL(corpusPath, func(line int, b []byte) error {
		doc, err := parseBenchDoc(b, d.Notes)
		if err != nil {
			return err
		}
		doc.Line = line
		if ids[doc.Group] == nil {
			ids[doc.Group] = map[string]bool{}
			d.Groups = append(d.Groups, doc.Group)
		}
		if ids[doc.Group][doc.ID] {
			return fmt.Errorf("memory id %q appears twice in group %q", doc.ID, doc.Group)
		}
		ids[doc.Group][doc.ID] = true
		if doc.CreatedAt.After(d.Latest) {
			d.Latest = doc.CreatedAt
		}
		d.Docs = append(d.Docs, doc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	if len(d.Docs) == 0 {
		return nil, fmt.Errorf("corpus %s holds no memories", corpusPath)
	}
	qids := map[string]bool{}
	err = readJSONL(queriesPath, func(line int, b []byte) error {
		q, err := parseBenchQuery(b)
		if err != nil {
			return err
		}
		q.Line = line
		if qids[q.ID] {
			return fmt.Errorf("query id %q appears twice", q.ID)
		}
		qids[q.ID] = true
		if len(q.Relevant) == 0 {
			d.Notes.add("queries without relevant ids are skipped")
			return nil
		}
		if ids[q.Group] == nil {
			d.Notes.add("query group %q has no memories in the corpus", q.Group)
		}
		for _, id := range q.Relevant {
			if !ids[q.Group][id] {
				d.Notes.add("relevant ids not in the corpus of their query's group count as misses")
			}
		}
		d.Queries = append(d.Queries, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queries: %w", err)
	}
	if len(d.Queries) == 0 {
		return nil, fmt.Errorf("queries %s holds no query with relevant ids", queriesPath)
	}
	return d, nil
}
