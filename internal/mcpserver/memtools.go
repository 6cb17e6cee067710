package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// maxBatch bounds how many memories one add_memories or delete_memories
// call may name.
const maxBatch = 100

// NewMemory is one memory for add_memories.
type NewMemory struct {
	Content        string              `json:"content" jsonschema:"the knowledge itself: one self-contained statement that makes sense without this conversation"`
	Category       memory.Category     `json:"category,omitempty" jsonschema:"what kind of knowledge it is"`
	Scope          memory.Scope        `json:"scope,omitempty" jsonschema:"who should see it; default user (only you). team/project/org share it through your grants"`
	ArtifactType   memory.ArtifactType `json:"artifact_type,omitempty" jsonschema:"the kind of artifact it is about"`
	ArtifactRef    string              `json:"artifact_ref,omitempty" jsonschema:"the artifact it is about: repo URL, service name, module or file path"`
	Entity         string              `json:"entity,omitempty" jsonschema:"the main subject, e.g. a service, library, API or component name"`
	Source         memory.Source       `json:"source,omitempty" jsonschema:"user if a person stated it; inference if you concluded it yourself. Default user"`
	Evidence       []string            `json:"evidence,omitempty" jsonschema:"references that back it up: ADR, PR, issue, commit or doc URLs"`
	Tags           map[string]any      `json:"tags,omitempty" jsonschema:"extra labels: keys of letters, digits and _ . : / -; values string, number, boolean or null"`
	AccessEntity   string              `json:"access_entity,omitempty" jsonschema:"exactly who may see it (user:<sub>, team:<org>/<team>, project:<org>/<project>, org:<org>); derived from scope when omitted"`
	IdempotencyKey string              `json:"idempotency_key,omitempty" jsonschema:"a key unique to this memory; retrying with the same key never stores it twice"`
}

// AddMemoriesInput is the input of add_memories.
type AddMemoriesInput struct {
	Memories []NewMemory `json:"memories" jsonschema:"the memories to store (1-100)"`
}

// AddResult is the outcome for one memory of add_memories.
type AddResult struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Status string `json:"status" jsonschema:"created, duplicate (an identical memory already existed; its id is returned) or failed"`
	Error  string `json:"error,omitempty"`
	// NearDuplicateOf names an existing memory the new one is very similar
	// to; it was stored and linked, and may be worth merging with
	// update_memory.
	NearDuplicateOf string  `json:"near_duplicate_of,omitempty" jsonschema:"an existing memory this new one nearly duplicates (stored anyway, and linked); consider merging them with update_memory"`
	Similarity      float64 `json:"similarity,omitempty" jsonschema:"cosine similarity to near_duplicate_of"`
}

// AddMemoriesOutput is the output of add_memories.
type AddMemoriesOutput struct {
	Results []AddResult `json:"results"`
}

func (o AddMemoriesOutput) failures() string {
	var failed, stored []string
	for _, r := range o.Results {
		if r.Status == "failed" {
			failed = append(failed, fmt.Sprintf("memories[%d]: %s", r.Index, r.Error))
		} else {
			stored = append(stored, fmt.Sprintf("memories[%d] %s as %s", r.Index, r.Status, r.ID))
		}
	}
	if len(failed) == 0 {
		return ""
	}
	msg := fmt.Sprintf("%d of %d memories were not stored:\n%s", len(failed), len(o.Results), strings.Join(failed, "\n"))
	if len(stored) > 0 {
		msg += "\nStored: " + strings.Join(stored, "; ") + ". Resending them is safe: duplicates are detected."
	}
	return msg
}

// Filters narrow search_memory and list_memories.
type Filters struct {
	Category      []memory.Category `json:"category,omitempty" jsonschema:"only these categories"`
	Scope         []memory.Scope    `json:"scope,omitempty" jsonschema:"only these scopes"`
	State         []memory.State    `json:"state,omitempty" jsonschema:"only these states; default every state but deleted"`
	Entity        string            `json:"entity,omitempty" jsonschema:"only memories about this entity"`
	ArtifactRef   string            `json:"artifact_ref,omitempty" jsonschema:"only memories about this artifact"`
	Tags          []string          `json:"tags,omitempty" jsonschema:"only memories with all these tags: a key, or key=value for a string value"`
	App           string            `json:"app,omitempty" jsonschema:"only memories written through this client app"`
	CreatedAfter  string            `json:"created_after,omitempty" jsonschema:"only memories created after this time (RFC 3339, or a date like 2025-01-31)"`
	CreatedBefore string            `json:"created_before,omitempty" jsonschema:"only memories created before this time (RFC 3339, or a date like 2025-01-31)"`
	ValidAt       string            `json:"valid_at,omitempty" jsonschema:"only memories valid at this time: not yet superseded then (RFC 3339, or a date like 2025-01-31)"`
}

func (f *Filters) filter() (memory.Filter, error) {
	if f == nil {
		return memory.Filter{}, nil
	}
	after, err := parseTime("filters.created_after", f.CreatedAfter)
	if err != nil {
		return memory.Filter{}, err
	}
	before, err := parseTime("filters.created_before", f.CreatedBefore)
	if err != nil {
		return memory.Filter{}, err
	}
	validAt, err := parseTime("filters.valid_at", f.ValidAt)
	if err != nil {
		return memory.Filter{}, err
	}
	return memory.Filter{
		Categories: f.Category, Scopes: f.Scope, States: f.State, Entity: f.Entity,
		ArtifactRef: f.ArtifactRef, Tags: f.Tags, App: f.App, CreatedAfter: after, CreatedBefore: before,
		ValidAt: validAt,
	}, nil
}

func parseTime(field, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return &t, nil
		}
	}
	return nil, &memory.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not a time; use RFC 3339 like 2025-01-31T09:00:00Z or a date like 2025-01-31", v)}
}

// SearchInput is the input of search_memory.
type SearchInput struct {
	Query   string      `json:"query" jsonschema:"what you want to know, in words likely to appear in the memory"`
	Limit   int         `json:"limit,omitempty" jsonschema:"how many results, 1-100; default 10"`
	Filters *Filters    `json:"filters,omitempty" jsonschema:"narrow the search"`
	Detail  detailLevel `json:"detail,omitempty" jsonschema:"compact (default): id, content, category, entity and score of each memory; full: every field (scope, state, artifact, evidence, tags, author, timestamps)"`
	// Mode and Explain tune the retrieval; the default hybrid mode suits
	// almost every question.
	Mode    memory.SearchMode `json:"mode,omitempty" jsonschema:"hybrid (default): words, meaning and related entities fused; lexical: exact words only; vector: meaning only"`
	Explain bool              `json:"explain,omitempty" jsonschema:"add to each result why it ranks there: each source's rank and score, boosts, recency"`
	// IncludeCold also searches the cold tier.
	IncludeCold bool `json:"include_cold,omitempty" jsonschema:"also search cold memories (archived, deleted or untouched for long), by their words; slower; needs mode hybrid or lexical"`
}

// MemoryView is a memory as the tools return it. Compact views carry id,
// content, category, entity (and score in search results); full views
// (detail "full", get_memory, update_memory) carry every field.
type MemoryView struct {
	ID           string         `json:"id"`
	Content      string         `json:"content"`
	Category     string         `json:"category,omitempty"`
	Entity       string         `json:"entity,omitempty"`
	Score        float64        `json:"score,omitempty"`
	Scope        string         `json:"scope,omitempty"`
	State        string         `json:"state,omitempty"`
	ArtifactType string         `json:"artifact_type,omitempty"`
	ArtifactRef  string         `json:"artifact_ref,omitempty"`
	Source       string         `json:"source,omitempty"`
	Evidence     []string       `json:"evidence,omitempty"`
	Tags         map[string]any `json:"tags,omitempty"`
	AccessEntity string         `json:"access_entity,omitempty"`
	App          string         `json:"app,omitempty"`
	CreatedBy    string         `json:"created_by,omitempty"`
	CreatedAt    *time.Time     `json:"created_at,omitempty"`
	UpdatedAt    *time.Time     `json:"updated_at,omitempty"`
	// Cold is set on a memory found in the cold tier (include_cold).
	Cold bool `json:"cold,omitempty" jsonschema:"found in the cold tier; reading it with get_memory brings it back"`
	// Explain is set in search results when asked for.
	Explain *memory.Explain `json:"explain,omitempty"`
}

func view(m memory.Memory, verbose bool) MemoryView {
	v := MemoryView{ID: m.ID, Content: m.Content, Category: string(m.Category), Entity: m.Entity, Cold: m.Cold}
	if !verbose {
		return v
	}
	created, updated := m.CreatedAt, m.UpdatedAt
	v.Scope, v.State, v.ArtifactType, v.ArtifactRef = string(m.Scope), string(m.State), string(m.ArtifactType), m.ArtifactRef
	v.Source, v.Evidence, v.Tags, v.AccessEntity = string(m.Source), m.Evidence, m.Tags, m.AccessEntity
	v.App, v.CreatedBy, v.CreatedAt, v.UpdatedAt = m.App, m.CreatedBy, &created, &updated
	return v
}

// SearchOutput is the output of search_memory, best match first.
type SearchOutput struct {
	Results []MemoryView `json:"results"`
	// Mode is the retrieval that ran; Degraded and Reason say when
	// meaning-based (vector) retrieval could not run.
	Mode     memory.SearchMode `json:"mode"`
	Degraded bool              `json:"degraded,omitempty" jsonschema:"true when meaning-based retrieval was unavailable and results come from words and entities only"`
	Reason   string            `json:"reason,omitempty"`
}

// ListInput is the input of list_memories.
type ListInput struct {
	Filters *Filters    `json:"filters,omitempty" jsonschema:"narrow the listing"`
	Sort    sortOrder   `json:"sort,omitempty" jsonschema:"order; default -created_at (newest first)"`
	Limit   int         `json:"limit,omitempty" jsonschema:"page size, 1-200; default 20"`
	Cursor  string      `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page, to continue a listing"`
	Detail  detailLevel `json:"detail,omitempty" jsonschema:"compact (default): id, content, category and entity of each memory; full: every field"`
}

// ListOutput is one page of list_memories.
type ListOutput struct {
	Memories   []MemoryView `json:"memories"`
	NextCursor string       `json:"next_cursor,omitempty" jsonschema:"pass as cursor to get the next page; absent on the last page"`
}

// IDInput names one memory.
type IDInput struct {
	ID string `json:"id" jsonschema:"the memory id, as returned by add_memories, search_memory or list_memories"`
}

// UpdateInput is the input of update_memory. Omitted fields stay as they are.
type UpdateInput struct {
	ID           string               `json:"id" jsonschema:"the memory to change"`
	Content      *string              `json:"content,omitempty" jsonschema:"new text, replacing the old"`
	Category     *memory.Category     `json:"category,omitempty" jsonschema:"new category"`
	Scope        *memory.Scope        `json:"scope,omitempty" jsonschema:"new scope; give access_entity too when it needs a different one"`
	ArtifactType *memory.ArtifactType `json:"artifact_type,omitempty" jsonschema:"new artifact type"`
	ArtifactRef  *string              `json:"artifact_ref,omitempty" jsonschema:"new artifact reference; empty string clears it"`
	Entity       *string              `json:"entity,omitempty" jsonschema:"new entity; empty string clears it"`
	Evidence     *[]string            `json:"evidence,omitempty" jsonschema:"new evidence list, replacing the old"`
	Tags         *map[string]any      `json:"tags,omitempty" jsonschema:"new tags, replacing the old"`
	AccessEntity *string              `json:"access_entity,omitempty" jsonschema:"new access entity"`
}

// DeleteInput is the input of delete_memories.
type DeleteInput struct {
	IDs []string `json:"ids" jsonschema:"the memories to delete (1-100)"`
}

// DeleteResult is the outcome for one id of delete_memories.
type DeleteResult struct {
	ID     string `json:"id"`
	Status string `json:"status" jsonschema:"deleted, not_found or failed"`
	Error  string `json:"error,omitempty"`
}

// DeleteOutput is the output of delete_memories.
type DeleteOutput struct {
	Results []DeleteResult `json:"results"`
}

func (o DeleteOutput) failures() string {
	var failed []string
	for _, r := range o.Results {
		if r.Status != "deleted" {
			failed = append(failed, r.ID+": "+r.Error)
		}
	}
	if len(failed) == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d memories were not deleted:\n%s", len(failed), len(o.Results), strings.Join(failed, "\n"))
}

// HistoryInput is the input of memory_history.
type HistoryInput struct {
	ID     string      `json:"id" jsonschema:"the memory whose changes to show"`
	Detail detailLevel `json:"detail,omitempty" jsonschema:"compact (default): action, actor, time and the content after each change; full: also the whole memory before and after"`
}

// HistoryView is one change of a memory.
type HistoryView struct {
	Action  string      `json:"action" jsonschema:"create, update, delete, pause, archive or restore"`
	Actor   string      `json:"actor" jsonschema:"the subject who made the change"`
	At      time.Time   `json:"at"`
	Content string      `json:"content,omitempty" jsonschema:"the content after the change"`
	Before  *MemoryView `json:"before,omitempty"`
	After   *MemoryView `json:"after,omitempty"`
}

// HistoryOutput is the output of memory_history, oldest change first.
type HistoryOutput struct {
	Entries []HistoryView `json:"entries"`
}

// WhoamiOutput describes the caller.
type WhoamiOutput struct {
	Sub    string   `json:"sub"`
	OrgID  string   `json:"org_id"`
	Scopes []string `json:"scopes"`
	Grants []string `json:"grants,omitempty"`
	App    string   `json:"app,omitempty"`
}

func (s *Server) addTools() {
	addTool(s, &mcp.Tool{
		Name: "add_memories",
		Description: `Store knowledge that should outlive this conversation: decisions and their reasons, conventions, architecture facts, dependency quirks, workflows, runbook steps, glossary terms.
Use it when the user states such a fact or asks you to remember something, or when you learn something non-obvious that a teammate (or you, next time) would need. Write one self-contained fact per memory; add category, entity and evidence when known.
Identical content is detected: the existing memory's id comes back with status duplicate. Returns one result per memory, in order.`,
		Annotations: hints("Add memories", false, false, true),
	}, s.addMemories)
	addTool(s, &mcp.Tool{
		Name: "search_memory",
		Description: `Find stored knowledge relevant to a question, ranked by relevance.
Use it before answering questions about this codebase, its services, conventions or past decisions, and before making a design choice, so that you follow what the team already decided. Returns the best matches first, each with id, content, category, entity and score; set detail to "full" for every field. Empty results mean nothing stored matches: try other words, or fewer filters.`,
		Annotations: hints("Search memory", true, false, true),
	}, s.searchMemory)
	addTool(s, &mcp.Tool{
		Name: "list_memories",
		Description: `List stored memories page by page, newest first by default, optionally filtered (category, scope, state, entity, tags, app, creation time).
Use it to browse or review what is stored, e.g. all decisions about one entity; to answer a question, prefer search_memory. Returns one page of compact memories (id, content, category, entity; detail "full" for every field) and next_cursor while more remain.`,
		Annotations: hints("List memories", true, false, true),
	}, s.listMemories)
	addTool(s, &mcp.Tool{
		Name:        "get_memory",
		Description: `Fetch one memory with every field by its id. Use it when you have an id (from search_memory, list_memories or the user) and need the full record: scope, evidence, tags, state, author, timestamps.`,
		Annotations: hints("Get memory", true, false, true),
	}, s.getMemory)
	addTool(s, &mcp.Tool{
		Name: "update_memory",
		Description: `Change fields of an existing memory; fields you omit stay as they are. The previous version is kept in its history.
Use it when a stored fact became outdated or wrong, or to add evidence, tags or a category, instead of adding a near-duplicate. Returns the memory with every field as it is now.`,
		Annotations: hints("Update memory", false, true, true),
	}, s.updateMemory)
	addTool(s, &mcp.Tool{
		Name: "delete_memories",
		Description: `Delete memories by id. They disappear from search and listings; their history is kept for audit.
Use it only when the user asks to forget something or a memory is plainly wrong and should not be corrected with update_memory. Returns one result per id: deleted, not_found (does not exist or is not yours to see) or failed with the reason.`,
		Annotations: hints("Delete memories", false, true, true),
	}, s.deleteMemories)
	addTool(s, &mcp.Tool{
		Name:        "memory_history",
		Description: `Show how a memory changed over time: who created, updated, paused, archived or deleted it, and when, oldest first (detail "full" adds the whole memory before and after each change). Use it to judge whether a memory is still trustworthy or to explain why it says what it says.`,
		Annotations: hints("Memory history", true, false, true),
	}, s.memoryHistory)
	addTool(s, &mcp.Tool{
		Name:        "whoami",
		Description: `Show who this connection acts as: subject, organization, scopes and grants. Use it when a tool reports a missing scope or forbidden access, or to learn which team and project entities you may share memories with.`,
		Annotations: hints("Who am I", true, false, true),
	}, s.whoami)
}

func (s *Server) addMemories(ctx context.Context, in AddMemoriesInput) (AddMemoriesOutput, error) {
	if len(in.Memories) == 0 || len(in.Memories) > maxBatch {
		return AddMemoriesOutput{}, &memory.ValidationError{Field: "memories", Reason: fmt.Sprintf("has %d items; give 1 to %d", len(in.Memories), maxBatch)}
	}
	out := AddMemoriesOutput{Results: make([]AddResult, len(in.Memories))}
	var added []memory.Memory
	defer func() { s.changed(ctx, added...) }()
	for i, nm := range in.Memories {
		m, created, err := s.svc.Add(ctx, memory.Input{
			Content: nm.Content, Category: nm.Category, Scope: nm.Scope, ArtifactType: nm.ArtifactType,
			ArtifactRef: nm.ArtifactRef, Entity: nm.Entity, Source: nm.Source, Evidence: nm.Evidence,
			Tags: nm.Tags, AccessEntity: nm.AccessEntity, IdempotencyKey: nm.IdempotencyKey,
		})
		r := AddResult{Index: i, ID: m.ID, Status: "duplicate"}
		switch {
		case err != nil:
			r = AddResult{Index: i, Status: "failed", Error: s.toolError(ctx, "add_memories", err).Error()}
		case created:
			r.Status = "created"
			added = append(added, m)
			r.NearDuplicateOf, r.Similarity, _ = memory.NearDuplicateOf(m)
		}
		out.Results[i] = r
	}
	return out, nil
}

func (s *Server) searchMemory(ctx context.Context, in SearchInput) (SearchOutput, error) {
	f, err := in.Filters.filter()
	if err != nil {
		return SearchOutput{}, err
	}
	res, err := s.svc.Search(ctx, memory.SearchQuery{Text: in.Query, Filter: f, Limit: in.Limit, Mode: in.Mode, Explain: in.Explain, IncludeCold: in.IncludeCold}, memory.ViaMCP)
	if err != nil {
		return SearchOutput{}, err
	}
	out := SearchOutput{Results: make([]MemoryView, len(res.Hits)), Mode: res.Mode, Degraded: res.Degraded, Reason: res.Reason}
	for i, h := range res.Hits {
		out.Results[i] = view(h.Memory, in.Detail.full())
		out.Results[i].Score = h.Score
		out.Results[i].Explain = h.Explain
	}
	return out, nil
}

func (s *Server) listMemories(ctx context.Context, in ListInput) (ListOutput, error) {
	f, err := in.Filters.filter()
	if err != nil {
		return ListOutput{}, err
	}
	page, err := s.svc.List(ctx, memory.ListQuery{Filter: f, Sort: string(in.Sort), Limit: in.Limit, Cursor: in.Cursor}, memory.ViaMCP)
	if err != nil {
		return ListOutput{}, err
	}
	out := ListOutput{Memories: make([]MemoryView, len(page.Memories)), NextCursor: page.NextCursor}
	for i, m := range page.Memories {
		out.Memories[i] = view(m, in.Detail.full())
	}
	return out, nil
}

func (s *Server) getMemory(ctx context.Context, in IDInput) (MemoryView, error) {
	if err := requireID(in.ID); err != nil {
		return MemoryView{}, err
	}
	m, err := s.svc.Get(ctx, in.ID, memory.ViaMCP)
	if err != nil {
		return MemoryView{}, about(in.ID, err)
	}
	return view(m, true), nil
}

func (s *Server) updateMemory(ctx context.Context, in UpdateInput) (MemoryView, error) {
	if err := requireID(in.ID); err != nil {
		return MemoryView{}, err
	}
	patch := memory.Patch{
		Content: in.Content, Category: in.Category, Scope: in.Scope, ArtifactType: in.ArtifactType,
		ArtifactRef: in.ArtifactRef, Entity: in.Entity, Evidence: in.Evidence, Tags: in.Tags,
		AccessEntity: in.AccessEntity,
	}
	if patch == (memory.Patch{}) {
		return MemoryView{}, &memory.ValidationError{Field: "id", Reason: "is the only field given; name at least one field to change (content, category, scope, artifact_type, artifact_ref, entity, evidence, tags, access_entity)"}
	}
	m, err := s.svc.Update(ctx, in.ID, patch)
	if err != nil {
		return MemoryView{}, about(in.ID, err)
	}
	s.changed(ctx, m)
	return view(m, true), nil
}

func (s *Server) deleteMemories(ctx context.Context, in DeleteInput) (DeleteOutput, error) {
	if len(in.IDs) == 0 || len(in.IDs) > maxBatch {
		return DeleteOutput{}, &memory.ValidationError{Field: "ids", Reason: fmt.Sprintf("has %d items; give 1 to %d", len(in.IDs), maxBatch)}
	}
	out := DeleteOutput{Results: make([]DeleteResult, len(in.IDs))}
	var deleted []memory.Memory
	defer func() { s.changed(ctx, deleted...) }()
	for i, id := range in.IDs {
		r := DeleteResult{ID: id, Status: "deleted"}
		m, err := s.svc.Delete(ctx, id)
		if err == nil {
			deleted = append(deleted, m)
		} else {
			r.Status = "failed"
			if errors.Is(err, memory.ErrNotFound) {
				r.Status = "not_found"
			}
			r.Error = s.toolError(ctx, "delete_memories", about(id, err)).Error()
		}
		out.Results[i] = r
	}
	return out, nil
}

func (s *Server) memoryHistory(ctx context.Context, in HistoryInput) (HistoryOutput, error) {
	if err := requireID(in.ID); err != nil {
		return HistoryOutput{}, err
	}
	entries, err := s.svc.History(ctx, in.ID)
	if err != nil {
		return HistoryOutput{}, about(in.ID, err)
	}
	out := HistoryOutput{Entries: make([]HistoryView, len(entries))}
	for i, e := range entries {
		hv := HistoryView{Action: e.Action, Actor: e.Actor, At: e.At}
		if e.After != nil {
			hv.Content = e.After.Content
		}
		if in.Detail.full() {
			if e.Before != nil {
				b := view(*e.Before, true)
				hv.Before = &b
			}
			if e.After != nil {
				a := view(*e.After, true)
				hv.After = &a
			}
		}
		out.Entries[i] = hv
	}
	return out, nil
}

func (s *Server) whoami(ctx context.Context, _ struct{}) (WhoamiOutput, error) {
	p, _ := auth.PrincipalFrom(ctx)
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return WhoamiOutput{Sub: p.Subject, OrgID: p.OrgID, Scopes: scopes, Grants: p.Grants, App: p.App}, nil
}

// about words a not-found error the same way for every tool, whatever the
// store said.
func about(id string, err error) error {
	if errors.Is(err, memory.ErrNotFound) {
		return fmt.Errorf("memory %s: %w", id, memory.ErrNotFound)
	}
	return err
}

func requireID(id string) error {
	if strings.TrimSpace(id) == "" {
		return &memory.ValidationError{Field: "id", Reason: "is required"}
	}
	return nil
}
