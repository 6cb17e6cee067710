// Package transfer is the portable file format of Coding Brain's per-user
// export and import: versioned JSON Lines, a header line then one memory per
// line, written and read as streams. It also reads the export zip of mem0's
// OpenMemory, so teams can move from it. What may be exported and imported
// is decided by memory.Service (Export, Import); this package only encodes
// and decodes.
//
// A file looks like this (one object per line):
//
//	{"format":"codingbrain-export","version":1,"exporter":{…},"exported_at":…,"counts":{"memories":2},…}
//	{"id":"01J…","content":"…","scope":"team","access_entity":"team:acme/web","state":"active",…,"history":[…]}
//	{"id":"01J…",…}
package transfer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Format and Version name the file format. A reader accepts versions up to
// Version; a later version is refused with an error that says so.
const (
	Format  = "codingbrain-export"
	Version = 1
)

// ContentType is the media type of an export file (JSON Lines).
const ContentType = "application/x-ndjson"

// MaxLineBytes bounds one line of an export file: a memory with its whole
// history.
const MaxLineBytes = 64 << 20

// Header is the first line of an export file.
type Header struct {
	Format     string    `json:"format" jsonschema:"codingbrain-export"`
	Version    int       `json:"version" jsonschema:"format version, 1"`
	Exporter   Exporter  `json:"exporter"`
	ExportedAt time.Time `json:"exported_at"`
	// OrgID and Subject say whose view of the memories was exported.
	OrgID   string `json:"org_id,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Filter is the selection the export was made with.
	Filter *memory.Filter `json:"filter,omitempty"`
	Since  *time.Time     `json:"since,omitempty"`
	// History says whether memory lines carry their history.
	History bool   `json:"history"`
	Counts  Counts `json:"counts"`
}

// Exporter names the program that wrote a file.
type Exporter struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Counts are the numbers of what a file holds. Memories is the number of
// memory lines; a reader checks it, so a truncated file is found out.
type Counts struct {
	Memories *int `json:"memories,omitempty"`
}

// Record is one memory line: every field of the memory, as stored, and its
// history when the export carried it. org_id says where it came from; an
// import stores it in the importer's org.
type Record struct {
	ID             string              `json:"id"`
	OrgID          string              `json:"org_id,omitempty"`
	Content        string              `json:"content"`
	Category       memory.Category     `json:"category,omitempty"`
	Scope          memory.Scope        `json:"scope"`
	ArtifactType   memory.ArtifactType `json:"artifact_type,omitempty"`
	ArtifactRef    string              `json:"artifact_ref,omitempty"`
	Entity         string              `json:"entity,omitempty"`
	Source         memory.Source       `json:"source"`
	Evidence       []string            `json:"evidence,omitempty"`
	Tags           map[string]any      `json:"tags,omitempty"`
	Metadata       map[string]any      `json:"metadata,omitempty"`
	AccessEntity   string              `json:"access_entity"`
	App            string              `json:"app,omitempty"`
	State          memory.State        `json:"state"`
	CreatedBy      string              `json:"created_by"`
	CreatedAt      time.Time           `json:"created_at"`
	UpdatedAt      time.Time           `json:"updated_at"`
	ValidFrom      *time.Time          `json:"valid_from,omitempty"`
	ValidTo        *time.Time          `json:"valid_to,omitempty"`
	IdempotencyKey string              `json:"idempotency_key,omitempty"`
	History        []Change            `json:"history,omitempty"`
	Links          []Link              `json:"links,omitempty"`
}

// Link is an explicit typed relation from the memory of its line to
// another memory (memory.MemoryLink).
type Link struct {
	To        string    `json:"to_memory"`
	Type      string    `json:"type"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Change is one history entry of a memory: who did what when, and the
// memory before and after.
type Change struct {
	Actor  string         `json:"actor"`
	Action string         `json:"action"`
	At     time.Time      `json:"at"`
	Before *memory.Memory `json:"before,omitempty"`
	After  *memory.Memory `json:"after,omitempty"`
}

// RecordOf is the line of an exported memory.
func RecordOf(e memory.Exported) Record {
	m := e.Memory
	r := Record{
		ID: m.ID, OrgID: m.OrgID, Content: m.Content, Category: m.Category, Scope: m.Scope,
		ArtifactType: m.ArtifactType, ArtifactRef: m.ArtifactRef, Entity: m.Entity, Source: m.Source,
		Evidence: m.Evidence, Tags: m.Tags, Metadata: m.Metadata, AccessEntity: m.AccessEntity, App: m.App,
		State: m.State, CreatedBy: m.CreatedBy, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		ValidFrom: m.ValidFrom, ValidTo: m.ValidTo, IdempotencyKey: m.IdempotencyKey,
	}
	for _, h := range e.History {
		r.History = append(r.History, Change{Actor: h.Actor, Action: h.Action, At: h.At, Before: h.Before, After: h.After})
	}
	for _, l := range e.Links {
		r.Links = append(r.Links, Link{To: l.To, Type: l.Type, CreatedBy: l.CreatedBy, CreatedAt: l.CreatedAt})
	}
	return r
}

// ImportRecord is what the service imports for r.
func (r Record) ImportRecord() memory.ImportRecord {
	m := memory.Memory{
		ID: r.ID, OrgID: r.OrgID, Content: r.Content, Category: r.Category, Scope: r.Scope,
		ArtifactType: r.ArtifactType, ArtifactRef: r.ArtifactRef, Entity: r.Entity, Source: r.Source,
		Evidence: r.Evidence, Tags: r.Tags, Metadata: r.Metadata, AccessEntity: r.AccessEntity, App: r.App,
		State: r.State, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		ValidFrom: r.ValidFrom, ValidTo: r.ValidTo, IdempotencyKey: r.IdempotencyKey,
	}
	rec := memory.ImportRecord{Memory: m}
	for _, c := range r.History {
		rec.History = append(rec.History, memory.HistoryEntry{Actor: c.Actor, Action: c.Action, At: c.At, Before: c.Before, After: c.After})
	}
	for _, l := range r.Links {
		rec.Links = append(rec.Links, memory.MemoryLink{From: r.ID, To: l.To, Type: l.Type, CreatedBy: l.CreatedBy, CreatedAt: l.CreatedAt})
	}
	return rec
}

// Writer writes an export file: WriteHeader once, then Write per memory.
type Writer struct {
	enc *json.Encoder
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Writer{enc: enc}
}

// WriteHeader writes the header line, filling in Format and Version.
func (w *Writer) WriteHeader(h Header) error {
	h.Format, h.Version = Format, Version
	if err := w.enc.Encode(h); err != nil {
		return fmt.Errorf("write export header: %w", err)
	}
	return nil
}

// Write writes the line of one memory.
func (w *Writer) Write(e memory.Exported) error {
	if err := w.enc.Encode(RecordOf(e)); err != nil {
		return fmt.Errorf("write memory %s: %w", e.Memory.ID, err)
	}
	return nil
}

// Reader reads an export file line by line; its Next feeds
// memory.Service.Import.
type Reader struct {
	br      *bufio.Reader
	line    int
	header  *Header
	records int
	done    bool
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 1<<16)} }

// Header is the header line, once Next has read it.
func (r *Reader) Header() *Header { return r.header }

// readLine returns the next line without its end, or io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes {
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return bytes.TrimRight(buf, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return bytes.TrimRight(buf, "\r\n"), nil
		default:
			return nil, err
		}
	}
}

// Next returns the next memory line as an import item: the record, or what
// is wrong with the line (a *memory.ValidationError naming the field). The
// header line is read first; a file without a valid one yields one error
// and ends. At the end it checks the header's count of memories and
// returns io.EOF.
func (r *Reader) Next() (memory.ImportItem, error) {
	for !r.done {
		b, err := r.readLine()
		if errors.Is(err, io.EOF) {
			r.done = true
			break
		}
		r.line++
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				r.done = true // the rest of the file is not read
				return memory.ImportItem{Line: r.line, Err: &memory.ValidationError{Field: "line",
					Reason: fmt.Sprintf("is longer than %d bytes", MaxLineBytes)}}, nil
			}
			return memory.ImportItem{}, fmt.Errorf("read line %d: %w", r.line, err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if r.header == nil {
			h, err := parseHeader(b)
			if err != nil {
				r.done = true
				return memory.ImportItem{Line: r.line, Err: err}, nil
			}
			r.header = &h
			continue
		}
		r.records++
		var rec Record
		if err := decodeStrict(b, &rec); err != nil {
			return memory.ImportItem{Line: r.line, Err: err}, nil
		}
		return memory.ImportItem{Line: r.line, Record: rec.ImportRecord()}, nil
	}
	if r.header == nil {
		r.header = &Header{} // report once
		return memory.ImportItem{Line: 1, Err: &memory.ValidationError{Field: "format",
			Reason: fmt.Sprintf("the file is empty; it must start with a header line {\"format\":%q,\"version\":%d,…}", Format, Version)}}, nil
	}
	if n := r.header.Counts.Memories; n != nil && *n != r.records {
		r.header.Counts.Memories = nil // report once
		return memory.ImportItem{Line: 0, Err: &memory.ValidationError{Field: "counts.memories",
			Reason: fmt.Sprintf("the header counts %d memories but the file has %d memory lines: it was cut short or edited", *n, r.records)}}, nil
	}
	return memory.ImportItem{}, io.EOF
}

var errLineTooLong = errors.New("line too long")

func parseHeader(b []byte) (Header, error) {
	var probe struct {
		Format  *string `json:"format"`
		Version *int    `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil || probe.Format == nil {
		return Header{}, &memory.ValidationError{Field: "format",
			Reason: fmt.Sprintf("the first line must be the header {\"format\":%q,\"version\":%d,…}", Format, Version)}
	}
	if *probe.Format != Format {
		return Header{}, &memory.ValidationError{Field: "format", Reason: fmt.Sprintf("%q is not %q", *probe.Format, Format)}
	}
	if probe.Version == nil || *probe.Version < 1 {
		return Header{}, &memory.ValidationError{Field: "version", Reason: fmt.Sprintf("is required: a number from 1 to %d", Version)}
	}
	if *probe.Version > Version {
		return Header{}, &memory.ValidationError{Field: "version",
			Reason: fmt.Sprintf("%d is newer than this server reads (up to %d); upgrade the importing server", *probe.Version, Version)}
	}
	var h Header
	if err := decodeStrict(b, &h); err != nil {
		return Header{}, err
	}
	return h, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data, with errors that name the field.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil && d.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &typeErr):
		return &memory.ValidationError{Field: typeErr.Field, Reason: fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &memory.ValidationError{Field: "line", Reason: "malformed JSON: the line ends inside an object"}
	case errors.As(err, &synErr):
		return &memory.ValidationError{Field: "line", Reason: fmt.Sprintf("malformed JSON at byte %d: %v", synErr.Offset, err)}
	case errors.As(err, &timeErr):
		return &memory.ValidationError{Field: badTimeField(b), Reason: fmt.Sprintf("%q is not an RFC 3339 time", timeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &memory.ValidationError{Field: field, Reason: "is not a known field"}
	}
	return &memory.ValidationError{Field: "line", Reason: "invalid JSON: " + err.Error()}
}

// timeKeys are the fields of the format that hold times.
var timeKeys = map[string]bool{"created_at": true, "updated_at": true, "valid_from": true, "valid_to": true,
	"at": true, "exported_at": true, "since": true, "created_after": true, "created_before": true, "valid_at": true}

// badTimeField finds the path of the first time field of a line that does
// not parse (encoding/json does not say which field a time came from).
func badTimeField(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return "time"
	}
	var walk func(path string, v any) string
	walk = func(path string, v any) string {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if s, ok := c.(string); ok && timeKeys[k] {
					if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
						return p
					}
				}
				if f := walk(p, c); f != "" {
					return f
				}
			}
		case []any:
			for i, c := range x {
				if f := walk(fmt.Sprintf("%s[%d]", path, i), c); f != "" {
					return f
				}
			}
		}
		return ""
	}
	if f := walk("", v); f != "" {
		return f
	}
	return "time"
}
