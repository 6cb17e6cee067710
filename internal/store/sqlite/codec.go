package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// timeLayout stores times as fixed-width UTC text, so that text order is
// time order and a cursor or filter compares with plain < and >.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time %q: %w", s, err)
	}
	return t, nil
}

// nullTime is the column value of an optional time: NULL or text.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// marshalJSON encodes v without HTML escaping, so the stored text (which the
// lexical index reads) keeps characters such as < and & as they are.
func marshalJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b.Bytes(), "\n")), nil
}

// memoryColumns lists the columns of a memory in the order scanMemory reads
// them and insertMemory writes them.
const memoryColumns = `m.id, m.org_id, m.access_entity, m.state, m.category, m.scope, m.app,
	m.entity, m.artifact_ref, m.artifact_type, m.source, m.created_by, m.created_at, m.updated_at,
	m.valid_from, m.valid_to, m.content_hash, m.idempotency_key, m.tags, m.evidence, m.metadata, m.content`

// canonical returns the column values of m (memoryColumns, then acl) and
// rewrites m into the form a
// later read returns: times in UTC, empty collections as nil, tags and
// metadata as decoded JSON (numbers become float64). So what Create and
// Update return equals what Get returns.
func canonical(m *memory.Memory) ([]any, error) {
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	if m.ValidFrom != nil {
		t := m.ValidFrom.UTC()
		m.ValidFrom = &t
	}
	if m.ValidTo != nil {
		t := m.ValidTo.UTC()
		m.ValidTo = &t
	}
	if m.ContentHash == "" {
		m.ContentHash = memory.ContentHash(m.Content)
	}
	var tags, evidence, metadata any
	var err error
	if len(m.Evidence) == 0 {
		m.Evidence = nil
	} else if evidence, err = marshalJSON(m.Evidence); err != nil {
		return nil, fmt.Errorf("encode evidence: %w", err)
	}
	if tags, m.Tags, err = roundTrip(m.Tags); err != nil {
		return nil, fmt.Errorf("encode tags: %w", err)
	}
	if metadata, m.Metadata, err = roundTrip(m.Metadata); err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return []any{
		m.ID, m.OrgID, m.AccessEntity, string(m.State), string(m.Category), string(m.Scope), m.App,
		m.Entity, m.ArtifactRef, string(m.ArtifactType), string(m.Source), m.CreatedBy,
		formatTime(m.CreatedAt), formatTime(m.UpdatedAt), nullTime(m.ValidFrom), nullTime(m.ValidTo),
		m.ContentHash, nullString(m.IdempotencyKey), tags, evidence, metadata, m.Content,
		aclTokens(m.OrgID, m.AccessEntity),
	}, nil
}

// roundTrip encodes a JSON object column and decodes it again.
func roundTrip(v map[string]any) (any, map[string]any, error) {
	if len(v) == 0 {
		return nil, nil, nil
	}
	s, err := marshalJSON(v)
	if err != nil {
		return nil, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, nil, err
	}
	return s, out, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanMemory reads memoryColumns, then extra destinations.
func scanMemory(sc scanner, extra ...any) (memory.Memory, error) {
	var (
		m                                  memory.Memory
		state, category, scope             string
		artifactType, source               string
		createdAt, updatedAt               string
		validFrom, validTo, idempotencyKey sql.NullString
		tags, evidence, metadata           sql.NullString
	)
	dest := append([]any{
		&m.ID, &m.OrgID, &m.AccessEntity, &state, &category, &scope, &m.App,
		&m.Entity, &m.ArtifactRef, &artifactType, &source, &m.CreatedBy, &createdAt, &updatedAt,
		&validFrom, &validTo, &m.ContentHash, &idempotencyKey, &tags, &evidence, &metadata, &m.Content,
	}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return memory.Memory{}, err
	}
	m.State, m.Category, m.Scope = memory.State(state), memory.Category(category), memory.Scope(scope)
	m.ArtifactType, m.Source = memory.ArtifactType(artifactType), memory.Source(source)
	m.IdempotencyKey = idempotencyKey.String
	var err error
	if m.CreatedAt, err = parseTime(createdAt); err != nil {
		return memory.Memory{}, err
	}
	if m.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return memory.Memory{}, err
	}
	if m.ValidFrom, err = parseNullTime(validFrom); err != nil {
		return memory.Memory{}, err
	}
	if m.ValidTo, err = parseNullTime(validTo); err != nil {
		return memory.Memory{}, err
	}
	if err := unmarshalNull(tags, &m.Tags); err != nil {
		return memory.Memory{}, fmt.Errorf("decode tags of memory %s: %w", m.ID, err)
	}
	if err := unmarshalNull(evidence, &m.Evidence); err != nil {
		return memory.Memory{}, fmt.Errorf("decode evidence of memory %s: %w", m.ID, err)
	}
	if err := unmarshalNull(metadata, &m.Metadata); err != nil {
		return memory.Memory{}, fmt.Errorf("decode metadata of memory %s: %w", m.ID, err)
	}
	return m, nil
}

func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func unmarshalNull(s sql.NullString, v any) error {
	if !s.Valid || s.String == "" {
		return nil
	}
	return json.Unmarshal([]byte(s.String), v)
}

// scanHistory reads one history row.
func scanHistory(sc scanner) (memory.HistoryEntry, error) {
	var (
		h             memory.HistoryEntry
		at            string
		before, after sql.NullString
	)
	if err := sc.Scan(&h.ID, &h.MemoryID, &h.OrgID, &h.Actor, &h.Action, &at, &before, &after); err != nil {
		return memory.HistoryEntry{}, err
	}
	var err error
	if h.At, err = parseTime(at); err != nil {
		return memory.HistoryEntry{}, err
	}
	if before.Valid {
		h.Before = new(memory.Memory)
		if err := json.Unmarshal([]byte(before.String), h.Before); err != nil {
			return memory.HistoryEntry{}, fmt.Errorf("decode history %d: %w", h.ID, err)
		}
	}
	if after.Valid {
		h.After = new(memory.Memory)
		if err := json.Unmarshal([]byte(after.String), h.After); err != nil {
			return memory.HistoryEntry{}, fmt.Errorf("decode history %d: %w", h.ID, err)
		}
	}
	return h, nil
}
