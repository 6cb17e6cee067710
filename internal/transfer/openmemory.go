package transfer

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// ZipContentType is the media type of an OpenMemory export.
const ZipContentType = "application/zip"

// MaxOpenMemoryBytes bounds the memories.json an OpenMemory zip may hold
// once inflated; the document is read whole.
const MaxOpenMemoryBytes = 256 << 20

// openMemoryExport is the part of OpenMemory's memories.json (its
// POST /api/v1/backup/export) that carries memories: the memories, the
// apps and categories they refer to by id, and the links between memories
// and categories. Other sections (user, status_history, access_controls,
// export_meta) are not read.
type openMemoryExport struct {
	Apps []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"apps"`
	Categories []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
	Memories         []json.RawMessage `json:"memories"`
	MemoryCategories []struct {
		MemoryID   string `json:"memory_id"`
		CategoryID string `json:"category_id"`
	} `json:"memory_categories"`
}

// openMemory is one entry of memories.json's memories.
type openMemory struct {
	ID          string         `json:"id"`
	UserID      string         `json:"user_id"`
	AppID       *string        `json:"app_id"`
	Content     *string        `json:"content"`
	Text        *string        `json:"text"` // mem0's own name for it
	Metadata    map[string]any `json:"metadata"`
	State       *string        `json:"state"`
	CreatedAt   *string        `json:"created_at"`
	UpdatedAt   *string        `json:"updated_at"`
	ArchivedAt  *string        `json:"archived_at"`
	DeletedAt   *string        `json:"deleted_at"`
	CategoryIDs []string       `json:"category_ids"`
	App         *string        `json:"app"`        // the name, in memories.jsonl.gz records
	Categories  []string       `json:"categories"` // names, likewise
}

// OpenMemoryItems reads an OpenMemory export zip (the memories.json inside
// it, anywhere in the archive) and maps each of its memories to an import
// item for subject, the importer, in its own user entity:
//
//   - content (or text) → content; created_at, updated_at → the same;
//   - state (active, paused, archived, deleted) → state;
//   - the app's name → app;
//   - categories: the first name that is one of Coding Brain's categories
//     → category; every name → a tag (lower-case, other characters as -);
//   - metadata → metadata, with the OpenMemory id, app, categories and
//     archived_at/deleted_at under metadata.openmemory;
//   - the id is kept (OpenMemory ids are UUIDs), so a re-run with
//     on_conflict=skip skips what it imported before.
//
// Scope is user, source inference (OpenMemory extracts memories from
// conversations), created_by the importer. Item n is the n-th memory of
// memories.json; its errors name fields as memories[n-1].field.
func OpenMemoryItems(zipData []byte, subject string, now time.Time) ([]memory.ImportItem, error) {
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		return nil, &memory.ValidationError{Field: "body", Reason: "is not a zip archive: " + err.Error()}
	}
	var f *zip.File
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, "/") && path.Base(zf.Name) == "memories.json" {
			f = zf
			break
		}
	}
	if f == nil {
		return nil, &memory.ValidationError{Field: "memories.json", Reason: "is missing from the zip; expected OpenMemory's export (memories.json, memories.jsonl.gz)"}
	}
	rc, err := f.Open()
	if err != nil {
		return nil, &memory.ValidationError{Field: "memories.json", Reason: "cannot be read: " + err.Error()}
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxOpenMemoryBytes+1))
	if err != nil {
		return nil, &memory.ValidationError{Field: "memories.json", Reason: "cannot be read: " + err.Error()}
	}
	if len(data) > MaxOpenMemoryBytes {
		return nil, &memory.ValidationError{Field: "memories.json", Reason: fmt.Sprintf("is larger than %d bytes", MaxOpenMemoryBytes)}
	}
	var doc openMemoryExport
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, &memory.ValidationError{Field: "memories.json", Reason: "is not OpenMemory's export document: " + err.Error()}
	}
	apps := map[string]string{}
	for _, a := range doc.Apps {
		apps[a.ID] = a.Name
	}
	catNames := map[string]string{}
	for _, c := range doc.Categories {
		catNames[c.ID] = c.Name
	}
	linked := map[string][]string{}
	for _, l := range doc.MemoryCategories {
		linked[l.MemoryID] = append(linked[l.MemoryID], l.CategoryID)
	}
	items := make([]memory.ImportItem, len(doc.Memories))
	for i, raw := range doc.Memories {
		prefix := fmt.Sprintf("memories[%d].", i)
		items[i].Line = i + 1
		var om openMemory
		if err := decodeLoose(raw, &om); err != nil {
			items[i].Err = prefixed(prefix, err)
			continue
		}
		rec, err := om.record(apps, catNames, linked[om.ID], subject, now)
		if err != nil {
			items[i].Err = prefixed(prefix, err)
			continue
		}
		items[i].Record = rec
	}
	return items, nil
}

// decodeLoose decodes one memory, tolerating fields this reader does not
// use, with errors that name the field.
func decodeLoose(b []byte, v any) error {
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return &memory.ValidationError{Field: typeErr.Field, Reason: fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value)}
	}
	return &memory.ValidationError{Field: "memory", Reason: "invalid JSON: " + err.Error()}
}

func prefixed(prefix string, err error) error {
	var ve *memory.ValidationError
	if errors.As(err, &ve) {
		return &memory.ValidationError{Field: prefix + ve.Field, Reason: ve.Reason}
	}
	return err
}

var nonTag = regexp.MustCompile(`[^a-z0-9_.:/-]+`)

// tagOf turns a category name into a tag key: lower case, runs of other
// characters as one -, at most 64 characters.
func tagOf(name string) string {
	t := strings.Trim(nonTag.ReplaceAllString(strings.ToLower(strings.TrimSpace(name)), "-"), "-")
	if len(t) > 64 {
		t = strings.TrimRight(t[:64], "-")
	}
	return t
}

// parseOpenMemoryTime reads OpenMemory's times: Python isoformat, with an
// offset (as its export writes them) or without one (taken as UTC).
func parseOpenMemoryTime(field string, s *string) (*time.Time, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, *s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, &memory.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not an ISO 8601 time", *s)}
}

func (om openMemory) record(apps, catNames map[string]string, linked []string, subject string, now time.Time) (memory.ImportRecord, error) {
	content := ""
	switch {
	case om.Content != nil:
		content = *om.Content
	case om.Text != nil:
		content = *om.Text
	}
	if strings.TrimSpace(content) == "" {
		return memory.ImportRecord{}, &memory.ValidationError{Field: "content", Reason: "is required and must not be blank"}
	}
	state := memory.StateActive
	if om.State != nil && *om.State != "" {
		state = memory.State(*om.State)
		if !slices.Contains(memory.States, state) {
			return memory.ImportRecord{}, &memory.ValidationError{Field: "state",
				Reason: fmt.Sprintf("%q is not an OpenMemory state; use one of: active, paused, archived, deleted", *om.State)}
		}
	}
	created, err := parseOpenMemoryTime("created_at", om.CreatedAt)
	if err != nil {
		return memory.ImportRecord{}, err
	}
	updated, err := parseOpenMemoryTime("updated_at", om.UpdatedAt)
	if err != nil {
		return memory.ImportRecord{}, err
	}
	if created == nil {
		created = &now
	}
	if updated == nil || updated.Before(*created) {
		updated = created
	}
	app := ""
	if om.App != nil {
		app = *om.App
	} else if om.AppID != nil {
		app = apps[*om.AppID]
	}
	names := slices.Clone(om.Categories)
	ids := om.CategoryIDs
	if len(ids) == 0 {
		ids = linked
	}
	for _, id := range ids {
		if n, ok := catNames[id]; ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var category memory.Category
	tags := map[string]any{}
	for _, n := range names {
		if category == "" && slices.Contains(memory.Categories, memory.Category(strings.ToLower(n))) {
			category = memory.Category(strings.ToLower(n))
		}
		if t := tagOf(n); t != "" && len(tags) < memory.MaxTags {
			tags[t] = true
		}
	}
	origin := map[string]any{"id": om.ID}
	if app != "" {
		origin["app"] = app
	}
	if len(names) > 0 {
		origin["categories"] = names
	}
	for k, v := range map[string]*string{"archived_at": om.ArchivedAt, "deleted_at": om.DeletedAt} {
		if v != nil && *v != "" {
			origin[k] = *v
		}
	}
	md := map[string]any{}
	for k, v := range om.Metadata {
		md[k] = v
	}
	md["openmemory"] = origin
	if len(tags) == 0 {
		tags = nil
	}
	m := memory.Memory{
		ID: om.ID, Content: content, Category: category, Scope: "user", Source: "inference",
		Tags: tags, Metadata: md, AccessEntity: "user:" + subject, App: app, State: state,
		CreatedBy: subject, CreatedAt: *created, UpdatedAt: *updated,
	}
	return memory.ImportRecord{Memory: m}, nil
}
