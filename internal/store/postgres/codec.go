package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// memoryColumns lists the columns of a memory in the order scanMemory reads
// them and memoryArgs writes them.
const memoryColumns = `m.org_id, m.id, m.access_entity, m.state, m.category, m.scope, m.app,
	m.entity, m.artifact_ref, m.artifact_type, m.source, m.created_by, m.created_at, m.updated_at,
	m.valid_from, m.valid_to, m.content_hash, m.idempotency_key, m.evidence, m.tags, m.metadata, m.content`

// marshalJSON encodes v without HTML escaping, so stored text keeps
// characters such as < and & as they are.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// utc returns t in UTC, cut to the microseconds PostgreSQL keeps, so that
// the time a write returns equals the one a later read returns.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := utc(*t)
	return &u
}

// canonical returns the column values of m (in memoryColumns order) and
// rewrites m into the form a later read returns: times in UTC microseconds,
// empty collections as nil, tags and metadata as decoded JSON (numbers
// become float64). So what Create and Update return equals what Get returns.
func canonical(m *memory.Memory) ([]any, error) {
	if err := noNUL(m); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = utc(m.CreatedAt), utc(m.UpdatedAt)
	m.ValidFrom, m.ValidTo = utcPtr(m.ValidFrom), utcPtr(m.ValidTo)
	if m.ContentHash == "" {
		m.ContentHash = memory.ContentHash(m.Content)
	}
	var evidence any
	if len(m.Evidence) == 0 {
		m.Evidence = nil
	} else {
		evidence = m.Evidence
	}
	tags, err := roundTrip("tags", &m.Tags)
	if err != nil {
		return nil, err
	}
	metadata, err := roundTrip("metadata", &m.Metadata)
	if err != nil {
		return nil, err
	}
	var key any
	if m.IdempotencyKey != "" {
		key = m.IdempotencyKey
	}
	return []any{
		m.OrgID, m.ID, m.AccessEntity, string(m.State), string(m.Category), string(m.Scope), m.App,
		m.Entity, m.ArtifactRef, string(m.ArtifactType), string(m.Source), m.CreatedBy,
		m.CreatedAt, m.UpdatedAt, m.ValidFrom, m.ValidTo,
		m.ContentHash, key, evidence, tags, metadata, m.Content,
	}, nil
}

// roundTrip encodes the JSON object column field and replaces *v by its
// decoding. An empty object is stored as NULL (a nil []byte) and read back
// as nil.
func roundTrip(field string, v *map[string]any) ([]byte, error) {
	if len(*v) == 0 {
		*v = nil
		return nil, nil
	}
	b, err := marshalJSON(*v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", field, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("encode %s: %w", field, err)
	}
	if hasNUL(out) { // jsonb cannot hold it
		return nil, nulError(field)
	}
	*v = out
	return b, nil
}

// noNUL rejects text PostgreSQL cannot store: text values may not contain
// NUL characters (the embedded store would keep them).
func noNUL(m *memory.Memory) error {
	for _, f := range []struct{ name, v string }{
		{"content", m.Content}, {"entity", m.Entity}, {"artifact_ref", m.ArtifactRef}, {"app", m.App},
		{"access_entity", m.AccessEntity}, {"idempotency_key", m.IdempotencyKey},
	} {
		if strings.IndexByte(f.v, 0) >= 0 {
			return nulError(f.name)
		}
	}
	for i, e := range m.Evidence {
		if strings.IndexByte(e, 0) >= 0 {
			return nulError(fmt.Sprintf("evidence[%d]", i))
		}
	}
	return nil
}

// hasNUL reports whether a decoded JSON value holds a NUL character in a
// string or an object key.
func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case map[string]any:
		for k, e := range v {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(v, hasNUL)
	}
	return false
}

func nulError(field string) error {
	return &memory.ValidationError{Field: field, Reason: "must not contain NUL characters"}
}

// scanner is a pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanMemory reads memoryColumns, then extra destinations.
func scanMemory(sc scanner, extra ...any) (memory.Memory, error) {
	var (
		m                      memory.Memory
		state, category, scope string
		artifactType, source   string
		idempotencyKey         *string
		tags, metadata         []byte
		createdAt, updatedAt   time.Time
		validFrom, validTo     *time.Time
	)
	dest := append([]any{
		&m.OrgID, &m.ID, &m.AccessEntity, &state, &category, &scope, &m.App,
		&m.Entity, &m.ArtifactRef, &artifactType, &source, &m.CreatedBy, &createdAt, &updatedAt,
		&validFrom, &validTo, &m.ContentHash, &idempotencyKey, &m.Evidence, &tags, &metadata, &m.Content,
	}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return memory.Memory{}, err
	}
	m.State, m.Category, m.Scope = memory.State(state), memory.Category(category), memory.Scope(scope)
	m.ArtifactType, m.Source = memory.ArtifactType(artifactType), memory.Source(source)
	m.CreatedAt, m.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	m.ValidFrom, m.ValidTo = utcPtr(validFrom), utcPtr(validTo)
	if idempotencyKey != nil {
		m.IdempotencyKey = *idempotencyKey
	}
	if len(m.Evidence) == 0 {
		m.Evidence = nil
	}
	if err := unmarshalObject(tags, &m.Tags); err != nil {
		return memory.Memory{}, fmt.Errorf("decode tags of memory %s: %w", m.ID, err)
	}
	if err := unmarshalObject(metadata, &m.Metadata); err != nil {
		return memory.Memory{}, fmt.Errorf("decode metadata of memory %s: %w", m.ID, err)
	}
	return m, nil
}

// unmarshalObject decodes a JSON object column; NULL and {} leave *v nil.
func unmarshalObject(b []byte, v *map[string]any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	if len(*v) == 0 {
		*v = nil
	}
	return nil
}

// scanHistory reads one history row: id, memory_id, org_id, actor, action,
// at, before, after.
func scanHistory(sc scanner) (memory.HistoryEntry, error) {
	var (
		h             memory.HistoryEntry
		before, after []byte
	)
	if err := sc.Scan(&h.ID, &h.MemoryID, &h.OrgID, &h.Actor, &h.Action, &h.At, &before, &after); err != nil {
		return memory.HistoryEntry{}, err
	}
	h.At = h.At.UTC()
	if before != nil {
		h.Before = new(memory.Memory)
		if err := json.Unmarshal(before, h.Before); err != nil {
			return memory.HistoryEntry{}, fmt.Errorf("decode history %d: %w", h.ID, err)
		}
	}
	if after != nil {
		h.After = new(memory.Memory)
		if err := json.Unmarshal(after, h.After); err != nil {
			return memory.HistoryEntry{}, fmt.Errorf("decode history %d: %w", h.ID, err)
		}
	}
	return h, nil
}
