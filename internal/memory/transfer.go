package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
)

// Export and import move a caller's memories between servers (package
// transfer holds the file format). The service decides what a caller may
// read and write; stores that implement Transfer do the reading in one
// snapshot and the writing in one transaction.

// ExportQuery selects the memories an export writes. Filter works as for
// List (States empty means every state but deleted); Since keeps memories
// updated at or after it; History adds each memory's history.
type ExportQuery struct {
	Filter  Filter
	Since   *time.Time
	History bool
}

// Exported is one memory as an export reads it, with its history (oldest
// first) when the query asked for it.
type Exported struct {
	Memory  Memory
	History []HistoryEntry
	// Links are the memory's outgoing links to memories the caller may
	// also see, in (type, target) order.
	Links []MemoryLink
}

// ExportPage is how many memories a store hands an export at a time.
const ExportPage = 500

// ImportRecord is one memory to import as it is — id, state, author and
// times included — with its history, oldest first. Without history the
// store writes one history row (action "import", by the importer).
type ImportRecord struct {
	Memory  Memory
	History []HistoryEntry
	// Links are the memory's outgoing links; To names the target as the
	// file does (an id remapped in the same import follows).
	Links []MemoryLink
}

// Conflict says why a store did not write an ImportRecord.
type Conflict string

// Conflicts an import can meet.
const (
	// ConflictID: the id is taken (in this org or, on SQLite, any org).
	ConflictID Conflict = "id"
	// ConflictKey: the idempotency key is used by another memory of the org.
	ConflictKey Conflict = "idempotency_key"
	// ConflictContent: a live memory of the same access entity has the
	// same content (PutResult.Existing names it).
	ConflictContent Conflict = "content"
)

// PutResult is what became of one ImportRecord.
type PutResult struct {
	Stored   bool
	Conflict Conflict
	Existing string
}

// ImportTx writes import records inside the transaction Transfer.Import
// runs.
type ImportTx interface {
	// Put writes each record unless it conflicts (see Conflict), in order:
	// a record conflicts also with one stored earlier in the same
	// transaction. A store error means the transaction must be abandoned.
	Put(ctx context.Context, recs []ImportRecord, actor string) ([]PutResult, error)
	// PutLinks writes the links whose two memories a may see (in any
	// state), skipping those that exist; it returns how many it wrote.
	PutLinks(ctx context.Context, a Access, links []MemoryLink) (int, error)
}

// Transfer is implemented by stores that can export and import memories.
type Transfer interface {
	// Export reads the memories a may see that q selects, in id order, in
	// one snapshot: it calls start with their number, then page with at
	// most ExportPage of them at a time until all are read. An error from
	// start or page stops it and is returned as it is.
	Export(ctx context.Context, a Access, q ExportQuery, start func(count int) error, page func([]Exported) error) error
	// Import runs fn in one write transaction and commits it when fn
	// returns nil; an error from fn rolls everything back and is returned
	// as it is.
	Import(ctx context.Context, fn func(ImportTx) error) error
}

// ConflictMode says what an import does with a record that conflicts with
// a stored memory.
type ConflictMode string

// Conflict modes.
const (
	// OnConflictRemap gives a record whose id is taken a new id, and drops
	// an idempotency key that is taken; a content duplicate is skipped.
	OnConflictRemap ConflictMode = "remap"
	// OnConflictSkip skips a conflicting record (a re-run of the same
	// import skips everything it stored before).
	OnConflictSkip ConflictMode = "skip"
	// OnConflictFail makes any conflict an error: nothing is imported.
	OnConflictFail ConflictMode = "fail"
)

// ConflictModes lists the conflict modes.
var ConflictModes = []ConflictMode{OnConflictRemap, OnConflictSkip, OnConflictFail}

// ImportItem is one record read from an import file: the record, or what
// was wrong with its line.
type ImportItem struct {
	Line   int
	Record ImportRecord
	Err    error
}

// ImportReport says what an import did. When Errors is not empty nothing
// was imported (Committed is false).
type ImportReport struct {
	Committed bool          `json:"committed"`
	Read      int           `json:"read" jsonschema:"memory lines read"`
	Imported  int           `json:"imported"`
	Skipped   []SkippedLine `json:"skipped"`
	Remapped  []RemappedID  `json:"remapped"`
	Errors    []LineError   `json:"errors"`
	// Links is how many links between memories were imported;
	// LinksDropped how many were not, because their source was not
	// imported or their target is not a memory the importer may see.
	Links        int `json:"links"`
	LinksDropped int `json:"links_dropped,omitempty"`
	// ErrorsOmitted counts errors beyond the MaxImportErrors reported.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// SkippedLine is a record the import did not store.
type SkippedLine struct {
	Line       int      `json:"line"`
	ID         string   `json:"id"`
	Conflict   Conflict `json:"conflict" jsonschema:"id, idempotency_key or content"`
	ExistingID string   `json:"existing_id,omitempty" jsonschema:"the stored memory with the same content"`
}

// RemappedID is a record stored under another id than its line gave (or
// without its idempotency key, which another memory holds).
type RemappedID struct {
	Line       int    `json:"line"`
	OldID      string `json:"old_id"`
	NewID      string `json:"new_id"`
	DroppedKey bool   `json:"dropped_idempotency_key,omitempty"`
}

// LineError is a problem with one line of an import. Line 0 is the file
// as a whole.
type LineError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Code is invalid_argument, forbidden or conflict.
	Code string `json:"code"`
}

// MaxImportErrors bounds the errors an import report lists.
const MaxImportErrors = 100

// importChunk is how many records the service hands a store at a time.
const importChunk = 500

// ImportError is returned by Import when it imported nothing because of
// the errors in its report; errors.Is matches the most serious kind
// (ErrForbidden, then ErrConflict), else it is a validation failure.
type ImportError struct {
	Report ImportReport
}

func (e *ImportError) Error() string {
	r := e.Report
	first := r.Errors[0]
	n := len(r.Errors) + r.ErrorsOmitted
	where := fmt.Sprintf("line %d", first.Line)
	if first.Field != "" {
		where += " field " + first.Field
	}
	return fmt.Sprintf("import: nothing imported: %d problem(s); first at %s: %s", n, where, first.Message)
}

// Is matches ErrForbidden or ErrConflict when an error of that kind is in
// the report.
func (e *ImportError) Is(target error) bool {
	want := map[error]string{ErrForbidden: "forbidden", ErrConflict: "conflict"}[target]
	if want == "" {
		return false
	}
	for _, le := range e.Report.Errors {
		if le.Code == want {
			return true
		}
	}
	return false
}

func (s *Service) transfer() (Transfer, error) {
	t, ok := s.store.(Transfer)
	if !ok {
		return nil, fmt.Errorf("%w: this store cannot export or import", ErrUnavailable)
	}
	return t, nil
}

// Export streams the memories the caller may see that q selects, in id
// order and from one snapshot: start hears their number first, then each
// is passed to fn. The export is audited (memory.export) when it ends.
func (s *Service) Export(ctx context.Context, q ExportQuery, start func(count int) error, fn func(Exported) error) (n int, err error) {
	p, err := principal(ctx)
	if err != nil {
		return 0, err
	}
	if err := validateFilter(q.Filter, ""); err != nil {
		return 0, err
	}
	if q.Filter.AccessEntity != "" {
		if err := validEntity(q.Filter.AccessEntity); err != nil {
			return 0, err
		}
	}
	t, err := s.transfer()
	if err != nil {
		return 0, err
	}
	err = t.Export(ctx, AccessFor(p), q, start, func(page []Exported) error {
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if s.audit != nil {
		detail := map[string]any{"memories": n, "complete": err == nil}
		s.audit.Record(ctx, audit.Event{Action: audit.ActionMemoryExport, Target: "org:" + p.OrgID, Detail: detail})
	}
	return n, err
}

// idPattern is what an imported id may look like (ULIDs and UUIDs fit).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// Import stores the records next yields (io.EOF ends them) in the caller's
// org, all or nothing, in one transaction: every record is validated as
// Add validates a memory, and its access entity must be one the caller may
// write. Conflicts with stored memories are handled as mode says. When any
// line is wrong nothing is stored and the error is an *ImportError with the
// report; the report lists up to MaxImportErrors problems, each naming its
// line and field. The import is audited (memory.import).
func (s *Service) Import(ctx context.Context, mode ConflictMode, next func() (ImportItem, error)) (ImportReport, error) {
	rep := ImportReport{Skipped: []SkippedLine{}, Remapped: []RemappedID{}, Errors: []LineError{}}
	p, err := principal(ctx)
	if err != nil {
		return rep, err
	}
	if mode == "" {
		mode = OnConflictFail
	}
	if err := oneOf("on_conflict", mode, ConflictModes); err != nil {
		return rep, err
	}
	t, err := s.transfer()
	if err != nil {
		return rep, err
	}
	access := AccessFor(p)
	addErr := func(line int, field, code, msg string) {
		if len(rep.Errors) >= MaxImportErrors {
			rep.ErrorsOmitted++
			return
		}
		rep.Errors = append(rep.Errors, LineError{Line: line, Field: field, Message: msg, Code: code})
	}
	lineErr := func(line int, err error) {
		var ve *ValidationError
		switch {
		case errors.As(err, &ve):
			addErr(line, ve.Field, "invalid_argument", ve.Reason)
		case errors.Is(err, ErrForbidden):
			addErr(line, "access_entity", "forbidden", err.Error())
		default:
			addErr(line, "", "invalid_argument", err.Error())
		}
	}
	var imported []importedMemory
	errAbort := errors.New("import aborted")
	txErr := t.Import(ctx, func(tx ImportTx) error {
		var chunk []ImportRecord
		var lines []int
		flush := func() error {
			if len(chunk) == 0 || len(rep.Errors) > 0 {
				chunk, lines = chunk[:0], lines[:0]
				return nil
			}
			stored, err := s.putChunk(ctx, tx, p.Subject, mode, chunk, lines, &rep, addErr)
			imported = append(imported, stored...)
			chunk, lines = chunk[:0], lines[:0]
			return err
		}
		for {
			item, err := next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if item.Err != nil {
				lineErr(item.Line, item.Err)
				continue
			}
			rep.Read++
			rec := item.Record
			if err := s.prepareImport(access, p.OrgID, &rec); err != nil {
				lineErr(item.Line, err)
				continue
			}
			chunk, lines = append(chunk, rec), append(lines, item.Line)
			if len(chunk) >= importChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if len(rep.Errors) > 0 {
			return errAbort
		}
		return s.importLinks(ctx, tx, access, imported, &rep)
	})
	switch {
	case errors.Is(txErr, errAbort):
	case txErr != nil:
		return rep, txErr
	default:
		rep.Committed = true
	}
	if s.audit != nil {
		s.audit.Record(ctx, audit.Event{Action: audit.ActionMemoryImport, Target: "org:" + p.OrgID, Detail: map[string]any{
			"read": rep.Read, "imported": rep.Imported, "skipped": len(rep.Skipped),
			"remapped": len(rep.Remapped), "errors": len(rep.Errors) + rep.ErrorsOmitted,
			"committed": rep.Committed, "on_conflict": string(mode),
		}})
	}
	if !rep.Committed {
		rep.Imported = 0
		return rep, &ImportError{Report: rep}
	}
	for _, m := range imported {
		s.written(ctx, m.Memory, nil, true)
	}
	return rep, nil
}

// importedMemory is a memory an import stored, with the links its line
// gave.
type importedMemory struct {
	Memory
	links []MemoryLink
}

// importLinks writes the links of the imported memories, their targets
// remapped as the memories were.
func (s *Service) importLinks(ctx context.Context, tx ImportTx, a Access, imported []importedMemory, rep *ImportReport) error {
	newID := map[string]string{}
	for _, r := range rep.Remapped {
		if r.OldID != r.NewID && r.OldID != "" {
			newID[r.OldID] = r.NewID
		}
	}
	var links []MemoryLink
	for _, m := range imported {
		for _, l := range m.links {
			l.From = m.ID
			if id, ok := newID[l.To]; ok {
				l.To = id
			}
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return nil
	}
	n, err := tx.PutLinks(ctx, a, links)
	if err != nil {
		return err
	}
	rep.Links, rep.LinksDropped = n, rep.LinksDropped+len(links)-n
	return nil
}

// prepareImport validates rec for the principal of org and access, and
// puts it in the form the store writes: the importer's org, a content
// hash, a new id when it has none.
func (s *Service) prepareImport(access Access, org string, rec *ImportRecord) error {
	m := &rec.Memory
	m.OrgID = org
	m.Content = strings.TrimSpace(m.Content)
	if m.ID == "" {
		m.ID = s.newID()
	} else if !idPattern.MatchString(m.ID) {
		return invalid("id", "%q must be 1-128 letters, digits and _ . : - starting with a letter or digit", m.ID)
	}
	if err := oneOf("state", m.State, States); err != nil {
		return err
	}
	if m.CreatedBy == "" {
		return invalid("created_by", "is required")
	}
	if m.CreatedAt.IsZero() {
		return invalid("created_at", "is required")
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = m.CreatedAt
	}
	if m.UpdatedAt.Before(m.CreatedAt) {
		return invalid("updated_at", "is before created_at")
	}
	if len(m.IdempotencyKey) > 128 {
		return invalid("idempotency_key", "is %d bytes; at most 128 allowed", len(m.IdempotencyKey))
	}
	if err := validate(m); err != nil {
		return err
	}
	if !access.Allows(m.AccessEntity) {
		return fmt.Errorf("%w: your grants do not cover access_entity %q; nothing is imported into an entity you cannot write", ErrForbidden, m.AccessEntity)
	}
	m.ContentHash = ContentHash(m.Content)
	for i, l := range rec.Links {
		field := fmt.Sprintf("links[%d]", i)
		if !idPattern.MatchString(l.To) {
			return invalid(field+".to", "%q is not a memory id", l.To)
		}
		if strings.TrimSpace(l.Type) == "" || len(l.Type) > 64 {
			return invalid(field+".type", "is required, at most 64 bytes")
		}
		if l.CreatedBy == "" {
			rec.Links[i].CreatedBy = m.CreatedBy
		}
		if l.CreatedAt.IsZero() {
			rec.Links[i].CreatedAt = m.CreatedAt
		}
	}
	for i := range rec.History {
		h := &rec.History[i]
		field := fmt.Sprintf("history[%d]", i)
		if strings.TrimSpace(h.Action) == "" {
			return invalid(field+".action", "is required")
		}
		if h.Actor == "" {
			return invalid(field+".actor", "is required")
		}
		if h.At.IsZero() {
			return invalid(field+".at", "is required")
		}
		h.MemoryID, h.OrgID = m.ID, org
		for _, snap := range []*Memory{h.Before, h.After} {
			if snap != nil {
				snap.ID, snap.OrgID = m.ID, org
			}
		}
	}
	return nil
}

// putChunk writes one chunk and handles its conflicts as mode says,
// recording them in rep. It returns the memories stored.
func (s *Service) putChunk(ctx context.Context, tx ImportTx, actor string, mode ConflictMode,
	chunk []ImportRecord, lines []int, rep *ImportReport, addErr func(line int, field, code, msg string)) ([]importedMemory, error) {
	type pending struct {
		rec     ImportRecord
		line    int
		origID  string
		dropped bool
	}
	todo := make([]pending, len(chunk))
	for i := range chunk {
		todo[i] = pending{rec: chunk[i], line: lines[i], origID: chunk[i].Memory.ID}
	}
	var stored []importedMemory
	for len(todo) > 0 {
		recs := make([]ImportRecord, len(todo))
		for i, t := range todo {
			recs[i] = t.rec
		}
		res, err := tx.Put(ctx, recs, actor)
		if err != nil {
			return stored, err
		}
		var retry []pending
		for i, r := range res {
			t := todo[i]
			m := &t.rec.Memory
			if r.Stored {
				rep.Imported++
				stored = append(stored, importedMemory{Memory: *m, links: t.rec.Links})
				if m.ID != t.origID || t.dropped {
					rep.Remapped = append(rep.Remapped, RemappedID{Line: t.line, OldID: t.origID, NewID: m.ID, DroppedKey: t.dropped})
				}
				continue
			}
			switch {
			case mode == OnConflictFail:
				msg := map[Conflict]string{
					ConflictID:      fmt.Sprintf("id %s is already taken", m.ID),
					ConflictKey:     fmt.Sprintf("idempotency_key %q is already used in the org", m.IdempotencyKey),
					ConflictContent: fmt.Sprintf("memory %s in %s has the same content", r.Existing, m.AccessEntity),
				}[r.Conflict]
				addErr(t.line, string(r.Conflict), "conflict", msg+" (on_conflict=fail; use skip or remap)")
			case mode == OnConflictRemap && r.Conflict == ConflictID:
				t.rec = remapID(t.rec, s.newID())
				retry = append(retry, t)
			case mode == OnConflictRemap && r.Conflict == ConflictKey:
				m.IdempotencyKey, t.dropped = "", true
				retry = append(retry, t)
			default:
				rep.Skipped = append(rep.Skipped, SkippedLine{Line: t.line, ID: t.origID, Conflict: r.Conflict, ExistingID: r.Existing})
				rep.LinksDropped += len(t.rec.Links)
			}
		}
		todo = retry
	}
	return stored, nil
}

// remapID gives rec a new id, in its history's snapshots too.
func remapID(rec ImportRecord, id string) ImportRecord {
	rec.Memory.ID = id
	hs := make([]HistoryEntry, len(rec.History))
	for j, h := range rec.History {
		h.MemoryID = id
		if h.Before != nil {
			b := *h.Before
			b.ID = id
			h.Before = &b
		}
		if h.After != nil {
			a := *h.After
			a.ID = id
			h.After = &a
		}
		hs[j] = h
	}
	rec.History = hs
	return rec
}
