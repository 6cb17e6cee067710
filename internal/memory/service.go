package memory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
)

// Limits on input, enforced by validation.
const (
	MaxContentBytes  = 32 << 10
	MaxRefLen        = 512
	MaxEvidence      = 50
	MaxTags          = 50
	MaxSearchLimit   = 100
	MaxListLimit     = 200
	DefaultListLimit = 20
	DefaultHitLimit  = 10
)

var tagKey = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)

// Via names the channel a read came through; reads through MCP and every
// search leave an access-log row.
type Via string

// Channels.
const (
	ViaREST Via = "rest"
	ViaMCP  Via = "mcp"
	ViaCLI  Via = "cli"
)

// Options configure a Service. Zero values take defaults.
type Options struct {
	Now   func() time.Time // clock; time.Now by default
	NewID func() string    // id source; ULIDs by default
	// Audit receives the service's audit events: deletions, and writes
	// refused because the caller's grants do not cover them. nil records
	// nothing. *audit.Recorder implements it.
	Audit Auditor
	// Vectors, when set, adds vector retrieval to search (hybrid by
	// default), near-duplicate detection to Add, and keeps the vector
	// index current on every write (hybrid.go).
	Vectors Vectors
	// Ranking tunes hybrid search; the zero value is DefaultRanking.
	Ranking Ranking
}

// Auditor records audit events. Record must not fail the caller's request;
// the service calls it after the outcome is decided.
type Auditor interface {
	Record(ctx context.Context, e audit.Event)
}

// Service holds the rules for memories. REST, MCP and the CLI all go through
// it, so every channel validates, authorizes and records history the same way.
type Service struct {
	store   Store
	now     func() time.Time
	newID   func() string
	audit   Auditor
	vectors Vectors
	ranking Ranking
}

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	s := &Service{store: store, now: opts.Now, newID: opts.NewID, audit: opts.Audit, vectors: opts.Vectors, ranking: opts.Ranking}
	if s.ranking == (Ranking{}) {
		s.ranking = DefaultRanking()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = NewULIDSource(s.now)
	}
	return s
}

// Input is a memory to add.
type Input struct {
	Content        string         `json:"content"`
	Category       Category       `json:"category,omitempty"`
	Scope          Scope          `json:"scope,omitempty"`
	ArtifactType   ArtifactType   `json:"artifact_type,omitempty"`
	ArtifactRef    string         `json:"artifact_ref,omitempty"`
	Entity         string         `json:"entity,omitempty"`
	Source         Source         `json:"source,omitempty"`
	Evidence       []string       `json:"evidence,omitempty"`
	Tags           map[string]any `json:"tags,omitempty"`
	Metadata       map[string]any `json:"metadata,omitempty"`
	AccessEntity   string         `json:"access_entity,omitempty"`
	App            string         `json:"app,omitempty"`
	ValidFrom      *time.Time     `json:"valid_from,omitempty"`
	ValidTo        *time.Time     `json:"valid_to,omitempty"`
	IdempotencyKey string         `json:"idempotency_key,omitempty"`
}

// Patch is a partial update; nil fields are left as they are.
type Patch struct {
	Content      *string         `json:"content,omitempty"`
	Category     *Category       `json:"category,omitempty"`
	Scope        *Scope          `json:"scope,omitempty"`
	ArtifactType *ArtifactType   `json:"artifact_type,omitempty"`
	ArtifactRef  *string         `json:"artifact_ref,omitempty"`
	Entity       *string         `json:"entity,omitempty"`
	Evidence     *[]string       `json:"evidence,omitempty"`
	Tags         *map[string]any `json:"tags,omitempty"`
	Metadata     *map[string]any `json:"metadata,omitempty"`
	AccessEntity *string         `json:"access_entity,omitempty"`
	ValidFrom    *time.Time      `json:"valid_from,omitempty"`
	ValidTo      *time.Time      `json:"valid_to,omitempty"`
}

// Page is one page of a listing.
type Page struct {
	Memories   []Memory `json:"memories"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

func principal(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok || p.Subject == "" || p.OrgID == "" {
		return auth.Principal{}, fmt.Errorf("%w: no principal", ErrUnauthorized)
	}
	return p, nil
}

// Add validates in and stores it. created is false when an exact duplicate
// (same normalized content and access entity) or an earlier request with the
// same idempotency key already stored it; that memory is returned.
func (s *Service) Add(ctx context.Context, in Input) (m Memory, created bool, err error) {
	p, err := principal(ctx)
	if err != nil {
		return Memory{}, false, err
	}
	defer func() {
		if errors.Is(err, ErrForbidden) {
			target := "access_entity:" + in.AccessEntity
			if in.AccessEntity == "" {
				target = "scope:" + string(in.Scope)
			}
			s.auditForbidden(ctx, "add", target)
		}
	}()
	now := s.now().UTC()
	m = Memory{
		ID: s.newID(), OrgID: p.OrgID, Content: strings.TrimSpace(in.Content),
		Category: in.Category, Scope: in.Scope, ArtifactType: in.ArtifactType,
		ArtifactRef: in.ArtifactRef, Entity: in.Entity, Source: in.Source,
		Evidence: in.Evidence, Tags: in.Tags, Metadata: in.Metadata,
		AccessEntity: in.AccessEntity, App: in.App, State: StateActive,
		CreatedBy: p.Subject, CreatedAt: now, UpdatedAt: now,
		ValidFrom: in.ValidFrom, ValidTo: in.ValidTo, IdempotencyKey: in.IdempotencyKey,
	}
	if m.Scope == "" {
		m.Scope = "user"
	}
	if m.Source == "" {
		m.Source = "user"
	}
	if m.App == "" {
		m.App = p.App
	}
	if len(in.IdempotencyKey) > 128 {
		return Memory{}, false, invalid("idempotency_key", "is %d bytes; at most 128 allowed", len(in.IdempotencyKey))
	}
	if err := oneOf("scope", m.Scope, Scopes); err != nil {
		return Memory{}, false, err
	}
	if m.AccessEntity == "" {
		if m.AccessEntity, err = resolveEntity(p, m.Scope); err != nil {
			return Memory{}, false, err
		}
	}
	if err := validate(&m); err != nil {
		return Memory{}, false, err
	}
	if err := authorizeWrite(p, m.AccessEntity); err != nil {
		return Memory{}, false, err
	}
	m.ContentHash = ContentHash(m.Content)
	vec := s.prepareAdd(ctx, &m)
	stored, created, err := s.store.Create(ctx, m, p.Subject)
	if err == nil && created {
		s.written(ctx, stored, vec, true)
	}
	return stored, created, err
}

func authorizeWrite(p auth.Principal, entity string) error {
	if !AccessFor(p).Allows(entity) {
		return fmt.Errorf("%w: your grants do not cover access_entity %q", ErrForbidden, entity)
	}
	return nil
}

// validate checks every field of m, reporting the first problem.
func validate(m *Memory) error {
	switch {
	case m.Content == "":
		return invalid("content", "is required and must not be blank")
	case len(m.Content) > MaxContentBytes:
		return invalid("content", "is %d bytes; at most %d allowed", len(m.Content), MaxContentBytes)
	case !utf8.ValidString(m.Content):
		return invalid("content", "is not valid UTF-8")
	}
	if m.Category != "" {
		if err := oneOf("category", m.Category, Categories); err != nil {
			return err
		}
	}
	if err := oneOf("scope", m.Scope, Scopes); err != nil {
		return err
	}
	if m.ArtifactType != "" {
		if err := oneOf("artifact_type", m.ArtifactType, ArtifactTypes); err != nil {
			return err
		}
	}
	if err := oneOf("source", m.Source, Sources); err != nil {
		return err
	}
	for field, v := range map[string]string{"artifact_ref": m.ArtifactRef, "entity": m.Entity, "app": m.App} {
		if len(v) > MaxRefLen {
			return invalid(field, "is %d bytes; at most %d allowed", len(v), MaxRefLen)
		}
	}
	if len(m.Evidence) > MaxEvidence {
		return invalid("evidence", "has %d items; at most %d allowed", len(m.Evidence), MaxEvidence)
	}
	for i, e := range m.Evidence {
		if strings.TrimSpace(e) == "" || len(e) > MaxRefLen {
			return invalid(fmt.Sprintf("evidence[%d]", i), "must be a non-blank reference of at most %d bytes", MaxRefLen)
		}
	}
	if len(m.Tags) > MaxTags {
		return invalid("tags", "has %d keys; at most %d allowed", len(m.Tags), MaxTags)
	}
	for k, v := range m.Tags {
		if !tagKey.MatchString(k) {
			return invalid("tags", "key %q must be 1-64 characters of letters, digits and _ . : / -", k)
		}
		switch v.(type) {
		case string, bool, float64, int, int64, nil:
		default:
			return invalid("tags."+k, "must be a string, number, boolean or null")
		}
	}
	if err := validateRelationTags(m); err != nil {
		return err
	}
	if err := validEntity(m.AccessEntity); err != nil {
		return err
	}
	if kind, _, _ := strings.Cut(m.AccessEntity, ":"); kind != entityKinds[m.Scope] {
		return invalid("access_entity", "%q does not fit scope %q; it needs a %s:… entity", m.AccessEntity, m.Scope, entityKinds[m.Scope])
	}
	if m.ValidFrom != nil && m.ValidTo != nil && m.ValidTo.Before(*m.ValidFrom) {
		return invalid("valid_to", "is before valid_from")
	}
	return nil
}

// Get returns one visible memory. A deleted memory is not found.
func (s *Service) Get(ctx context.Context, id string, via Via) (Memory, error) {
	p, err := principal(ctx)
	if err != nil {
		return Memory{}, err
	}
	m, err := s.store.Get(ctx, AccessFor(p), id)
	if err != nil {
		return Memory{}, err
	}
	if m.State == StateDeleted {
		return Memory{}, fmt.Errorf("memory %s: %w", id, ErrNotFound)
	}
	s.warm(ctx, AccessFor(p), &m) // reading a cold memory brings it back
	if via == ViaMCP {
		s.logAccess(ctx, p, via, "", []Memory{m})
	}
	return m, nil
}

// Update applies a patch to a visible, active or paused memory.
func (s *Service) Update(ctx context.Context, id string, patch Patch) (Memory, error) {
	p, err := principal(ctx)
	if err != nil {
		return Memory{}, err
	}
	var vec []float32
	if patch.Content != nil && s.vectors != nil {
		vec = s.embedForWrite(ctx, strings.TrimSpace(*patch.Content))
	}
	var prevHash string
	m, err := s.store.Update(ctx, AccessFor(p), id, p.Subject, "update", func(m *Memory) error {
		prevHash = m.ContentHash
		switch m.State {
		case StateDeleted:
			return fmt.Errorf("memory %s: %w", id, ErrNotFound)
		case StateArchived:
			return fmt.Errorf("%w: memory %s is archived; restore it before changing it", ErrConflict, id)
		}
		applyPatch(m, patch)
		if err := validate(m); err != nil {
			return err
		}
		if err := authorizeWrite(p, m.AccessEntity); err != nil {
			return err
		}
		m.ContentHash = ContentHash(m.Content)
		m.UpdatedAt = s.now().UTC()
		return nil
	})
	if errors.Is(err, ErrForbidden) {
		s.auditForbidden(ctx, "update", "memory:"+id)
	}
	if err == nil {
		s.written(ctx, m, vec, m.ContentHash != prevHash)
	}
	return m, err
}

// auditForbidden records a write the caller's grants did not cover.
func (s *Service) auditForbidden(ctx context.Context, op, target string) {
	if s.audit != nil {
		s.audit.Record(ctx, audit.Event{Action: audit.ActionAccessForbidden, Outcome: audit.OutcomeDenied,
			Target: target, Detail: map[string]any{"reason": "grants", "operation": op}})
	}
}

func applyPatch(m *Memory, p Patch) {
	if p.Content != nil {
		m.Content = strings.TrimSpace(*p.Content)
	}
	set(&m.Category, p.Category)
	set(&m.Scope, p.Scope)
	set(&m.ArtifactType, p.ArtifactType)
	set(&m.ArtifactRef, p.ArtifactRef)
	set(&m.Entity, p.Entity)
	set(&m.Evidence, p.Evidence)
	set(&m.Tags, p.Tags)
	set(&m.Metadata, p.Metadata)
	set(&m.AccessEntity, p.AccessEntity)
	if p.ValidFrom != nil {
		m.ValidFrom = p.ValidFrom
	}
	if p.ValidTo != nil {
		m.ValidTo = p.ValidTo
	}
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Transition applies a state action (pause, archive, restore). An action that
// is not legal from the memory's current state is ErrConflict.
func (s *Service) Transition(ctx context.Context, id string, action Action) (Memory, error) {
	p, err := principal(ctx)
	if err != nil {
		return Memory{}, err
	}
	if err := oneOf("action", action, Actions); err != nil {
		return Memory{}, err
	}
	t := transitions[action]
	m, err := s.store.Update(ctx, AccessFor(p), id, p.Subject, string(action), func(m *Memory) error {
		if m.State == StateDeleted {
			return fmt.Errorf("memory %s: %w", id, ErrNotFound)
		}
		if !slices.Contains(t.from, m.State) {
			return fmt.Errorf("%w: cannot %s memory %s while it is %s", ErrConflict, action, id, m.State)
		}
		m.State = t.to
		m.UpdatedAt = s.now().UTC()
		return nil
	})
	if err == nil {
		s.written(ctx, m, nil, false)
	}
	return m, err
}

// Delete soft-deletes a visible memory: it leaves listings and search but its
// history stays.
func (s *Service) Delete(ctx context.Context, id string) (Memory, error) {
	p, err := principal(ctx)
	if err != nil {
		return Memory{}, err
	}
	m, err := s.store.Update(ctx, AccessFor(p), id, p.Subject, "delete", func(m *Memory) error {
		if m.State == StateDeleted {
			return fmt.Errorf("memory %s: %w", id, ErrNotFound)
		}
		m.State = StateDeleted
		m.UpdatedAt = s.now().UTC()
		return nil
	})
	if err == nil {
		s.written(ctx, m, nil, false)
	}
	if err == nil && s.audit != nil {
		// After the commit: a failed audit write is logged by the
		// recorder and does not undo or fail the delete.
		s.audit.Record(ctx, audit.Event{Action: audit.ActionMemoryDelete, Target: "memory:" + m.ID,
			Detail: map[string]any{"access_entity": m.AccessEntity}})
	}
	return m, err
}

// List returns a page of visible memories.
func (s *Service) List(ctx context.Context, q ListQuery, via Via) (Page, error) {
	p, err := principal(ctx)
	if err != nil {
		return Page{}, err
	}
	if q.Sort == "" {
		q.Sort = SortCreatedDesc
	}
	if err := oneOf("sort", q.Sort, Sorts); err != nil {
		return Page{}, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultListLimit
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return Page{}, invalid("limit", "must be between 1 and %d", MaxListLimit)
	}
	if q.Cursor != "" {
		if _, err := DecodeCursor(q.Cursor, q.Sort); err != nil {
			return Page{}, err
		}
	}
	if err := validateFilter(q.Filter, ""); err != nil {
		return Page{}, err
	}
	ms, next, err := s.store.List(ctx, AccessFor(p), q)
	if err != nil {
		return Page{}, err
	}
	if via == ViaMCP {
		s.logAccess(ctx, p, via, "", ms)
	}
	return Page{Memories: ms, NextCursor: next}, nil
}

// validateFilter checks the enum filters; prefix is how the caller's
// request names them ("filters." in a search body, "" in a query string).
func validateFilter(f Filter, prefix string) error {
	for _, c := range f.Categories {
		if err := oneOf(prefix+"category", c, Categories); err != nil {
			return err
		}
	}
	for _, sc := range f.Scopes {
		if err := oneOf(prefix+"scope", sc, Scopes); err != nil {
			return err
		}
	}
	for _, st := range f.States {
		if err := oneOf(prefix+"state", st, States); err != nil {
			return err
		}
	}
	if f.CreatedAfter != nil && f.CreatedBefore != nil && !f.CreatedAfter.Before(*f.CreatedBefore) {
		return invalid(prefix+"created_after", "must be before created_before")
	}
	return nil
}

// Search ranks visible memories by relevance to q.Text, in q.Mode (see
// hybrid.go), and says which retrieval ran and whether it was degraded.
// Every search leaves access-log rows for the memories it returned.
func (s *Service) Search(ctx context.Context, q SearchQuery, via Via) (SearchResult, error) {
	p, err := principal(ctx)
	if err != nil {
		return SearchResult{}, err
	}
	q.Text = strings.TrimSpace(q.Text)
	if q.Text == "" {
		return SearchResult{}, invalid("query", "is required and must not be blank")
	}
	if len(q.Text) > 4096 {
		return SearchResult{}, invalid("query", "is %d bytes; at most 4096 allowed", len(q.Text))
	}
	if q.Limit == 0 {
		q.Limit = DefaultHitLimit
	}
	if q.Limit < 1 || q.Limit > MaxSearchLimit {
		return SearchResult{}, invalid("limit", "must be between 1 and %d", MaxSearchLimit)
	}
	if q.Mode != "" {
		if err := oneOf("mode", q.Mode, SearchModes); err != nil {
			return SearchResult{}, err
		}
	}
	if err := validateFilter(q.Filter, "filters."); err != nil {
		return SearchResult{}, err
	}
	if q.IncludeCold && q.Mode == ModeVector {
		// Cold memories are not in the vector index: only their words are
		// searched, in the store.
		return SearchResult{}, invalid("include_cold", "needs mode hybrid or lexical: cold memories are found by their words, not by vector similarity")
	}
	res, err := s.retrieve(ctx, AccessFor(p), q)
	if err != nil {
		return SearchResult{}, err
	}
	if res.Hits == nil {
		res.Hits = []Hit{}
	}
	ms := make([]Memory, len(res.Hits))
	for i, h := range res.Hits {
		ms[i] = h.Memory
	}
	s.logAccess(ctx, p, via, q.Text, ms)
	return res, nil
}

// logAccess records reads. A failure to log does not fail the read; the store
// reports it through its own error metrics.
func (s *Service) logAccess(ctx context.Context, p auth.Principal, via Via, query string, ms []Memory) {
	if len(ms) == 0 {
		return
	}
	now := s.now().UTC()
	entries := make([]AccessEntry, len(ms))
	for i, m := range ms {
		entries[i] = AccessEntry{MemoryID: m.ID, OrgID: p.OrgID, Actor: p.Subject, App: p.App, Via: string(via), Query: query, At: now}
	}
	_ = s.store.LogAccess(ctx, entries)
}

// History returns the changes of a visible memory, oldest first.
func (s *Service) History(ctx context.Context, id string) ([]HistoryEntry, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.History(ctx, AccessFor(p), id)
}

// Apps lists the apps that wrote visible memories.
func (s *Service) Apps(ctx context.Context) ([]AppCount, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Apps(ctx, AccessFor(p))
}

// Stats counts visible memories.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	p, err := principal(ctx)
	if err != nil {
		return Stats{}, err
	}
	return s.store.Stats(ctx, AccessFor(p))
}

// Ping reports whether the store is reachable.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }
