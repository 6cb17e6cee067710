package gdpr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// ExportFormat names the export document's format and version.
const ExportFormat = "codingbrain.subject-export/1"

// ManifestEntry says what was searched for one source and how many items
// were found.
type ManifestEntry struct {
	Source   string `json:"source"`
	Searched string `json:"searched"`
	Count    int    `json:"count"`
}

// AppUse is an app the subject used: memories written and reads through it.
type AppUse struct {
	App      string `json:"app"`
	Memories int    `json:"memories"`
	Reads    int    `json:"reads"`
	APIKeys  int    `json:"api_keys"`
}

// Export is everything stored about one subject in one org.
type Export struct {
	Format     string          `json:"format"`
	OrgID      string          `json:"org_id"`
	Subject    string          `json:"subject"`
	ExportedAt time.Time       `json:"exported_at"`
	Manifest   []ManifestEntry `json:"manifest"`
	// MemoriesAuthored are the subject's memories: written by them or in
	// their own access entity (user:<sub>), in every state.
	MemoriesAuthored []memory.Memory `json:"memories_authored"`
	// MemoriesNaming are others' memories that name the subject (as
	// entity, artifact, tag, evidence, metadata or in the text).
	MemoriesNaming []memory.Memory       `json:"memories_naming"`
	History        []memory.HistoryEntry `json:"history"`
	AccessLog      []AccessRow           `json:"access_log"`
	AuditLog       []audit.Record        `json:"audit_log"`
	Apps           []AppUse              `json:"apps"`
	Sessions       []SharedItem          `json:"sessions"`
	SharedKeys     []SharedItem          `json:"shared_state_keys"`
	APIKeys        []auth.APIKey         `json:"api_keys"`
	APIKeysCreated []auth.APIKey         `json:"api_keys_created"`
	MemoryLinks    []memory.MemoryLink   `json:"memory_links"`
	Entities       []Entity              `json:"entities"`
	Tokens         string                `json:"tokens"`
}

// Export collects everything stored about subj: the system of record, the
// shared state and the audit log. It records a gdpr.export audit event
// naming the subject by hash.
func (s *Service) Export(ctx context.Context, subj Subject) (Export, error) {
	m, c, err := s.read(ctx, subj)
	if err != nil {
		return Export{}, err
	}
	x := Export{
		Format: ExportFormat, OrgID: subj.OrgID, Subject: subj.ID, ExportedAt: s.o.Now().UTC(),
		MemoriesAuthored: append(append([]memory.Memory{}, c.private...), c.sharedAuthored...),
		MemoriesNaming:   nonNil(c.naming),
		History:          nonNil(c.history),
		AccessLog:        nonNil(c.access),
		APIKeys:          nonNil(c.keys),
		APIKeysCreated:   nonNil(c.keysCreated),
		MemoryLinks:      nonNil(c.links),
		Entities:         nonNil(c.entities),
		Tokens:           "JWTs are not stored: the server keeps no record of the tokens issued to a subject; API keys are listed in api_keys (never their secrets)",
	}
	sort.Slice(x.MemoriesAuthored, func(i, j int) bool { return x.MemoriesAuthored[i].ID < x.MemoriesAuthored[j].ID })
	if x.AuditLog, err = s.auditOf(ctx, subj, m); err != nil {
		return Export{}, err
	}
	items, err := s.sharedItems(ctx, subj, m)
	if err != nil {
		return Export{}, fmt.Errorf("export subject: shared state: %w", err)
	}
	x.Sessions, x.SharedKeys = []SharedItem{}, []SharedItem{}
	for _, it := range items {
		if it.Kind == "session" {
			// A session id is a handle on a live session: shown by hash only.
			sum := sha256.Sum256([]byte(it.Key))
			it.Key = sessionPrefix + "sha256:" + hex.EncodeToString(sum[:8])
			x.Sessions = append(x.Sessions, it)
		} else {
			x.SharedKeys = append(x.SharedKeys, it)
		}
	}
	x.Apps = appsOf(x)
	x.Manifest = []ManifestEntry{
		{SourceMemoriesAuthored, "memories of the org with created_by = subject or access_entity = user:<subject>, every state", len(x.MemoriesAuthored)},
		{SourceMemoriesNaming, "other memories of the org whose content, entity, artifact_ref, app, tags, evidence or metadata name the subject as a word", len(x.MemoriesNaming)},
		{SourceHistory, "history rows with actor = subject or whose before/after name the subject", len(x.History)},
		{SourceAccessLog, "access-log rows with actor = subject or a query naming the subject", len(x.AccessLog)},
		{SourceAudit, "audit records of the org with actor = subject or naming the subject in target or detail", len(x.AuditLog)},
		{SourceAPIKeys, "API keys of the org whose subject is the subject (metadata; secrets are stored only as hashes and not exported)", len(x.APIKeys)},
		{SourceAPIKeysCreated, "API keys of the org made by the subject", len(x.APIKeysCreated)},
		{SourceMemoryLinks, "links between memories made by the subject", len(x.MemoryLinks)},
		{SourceEntities, "entity names of the org's graph that name the subject", len(x.Entities)},
		{SourceSessions, "MCP session bindings in the shared state owned by <org>/<subject>", len(x.Sessions)},
		{SourceSharedKeys, "other shared-state keys naming <org>/<subject> (rate-limit buckets, caches)", len(x.SharedKeys)},
		{"apps", "apps of the subject's memories, reads and API keys", len(x.Apps)},
	}
	s.o.Audit.Record(ctx, audit.Event{
		Action: audit.ActionGDPRExport, OrgID: subj.OrgID, Target: "subject:" + subj.Hash()[:16],
		Detail: map[string]any{"items": exportCount(x)},
	})
	return x, nil
}

func exportCount(x Export) int {
	n := 0
	for _, e := range x.Manifest {
		if e.Source != "apps" {
			n += e.Count
		}
	}
	return n
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func appsOf(x Export) []AppUse {
	by := map[string]*AppUse{}
	get := func(app string) *AppUse {
		if by[app] == nil {
			by[app] = &AppUse{App: app}
		}
		return by[app]
	}
	for _, m := range x.MemoriesAuthored {
		if m.App != "" {
			get(m.App).Memories++
		}
	}
	for _, a := range x.AccessLog {
		if a.App != "" {
			get(a.App).Reads++
		}
	}
	for _, k := range x.APIKeys {
		if k.App != "" {
			get(k.App).APIKeys++
		}
	}
	out := []AppUse{}
	for _, a := range by {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// auditOf reads the org's audit records that concern the subject.
func (s *Service) auditOf(ctx context.Context, subj Subject, m matcher) ([]audit.Record, error) {
	out := []audit.Record{}
	if s.o.Audit == nil {
		return out, nil
	}
	var after int64
	for {
		recs, err := s.o.Audit.List(ctx, subj.OrgID, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		for _, r := range recs {
			if r.Actor == subj.ID || m.in(r.Target) || m.inValue(r.Detail) {
				out = append(out, r)
			}
		}
		if len(recs) < 1000 {
			return out, nil
		}
		after = recs[len(recs)-1].Seq
	}
}

// CheckResult is the outcome of a no-trace check: per source, how many
// items still concern the subject.
type CheckResult struct {
	// Clean is true when every erasable source is empty.
	Clean bool `json:"clean"`
	// Found counts the items left per source (every source searched is
	// listed, with 0 when empty).
	Found map[string]int `json:"found"`
	// Retained counts items kept on purpose: audit records (the audit log
	// is append-only and hash-chained; see docs/privacy.md).
	Retained map[string]int `json:"retained"`
	// CheckedAt is when the check ran.
	CheckedAt time.Time `json:"checked_at"`
}

// Check searches every source for the subject: the system of record
// (memories, history, access log, keys, links, entities), the lexical
// index (a search for the subject's identifier), and the shared state.
func (s *Service) Check(ctx context.Context, subj Subject) (CheckResult, error) {
	m, c, err := s.read(ctx, subj)
	if err != nil {
		return CheckResult{}, err
	}
	r := CheckResult{CheckedAt: s.o.Now().UTC(), Found: map[string]int{
		SourceMemoriesAuthored: len(c.private) + len(c.sharedAuthored),
		SourceMemoriesNaming:   len(c.naming),
		SourceHistory:          len(c.history),
		SourceAccessLog:        len(c.access),
		SourceAPIKeys:          len(c.keys),
		SourceAPIKeysCreated:   len(c.keysCreated),
		SourceMemoryLinks:      len(c.links),
		SourceEntities:         len(c.entities),
	}}
	if r.Found[SourceLexical], err = s.lexicalHits(ctx, subj, m); err != nil {
		return CheckResult{}, err
	}
	items, err := s.sharedItems(ctx, subj, m)
	if err != nil {
		return CheckResult{}, fmt.Errorf("check subject: shared state: %w", err)
	}
	r.Found[SourceSessions], r.Found[SourceSharedKeys] = 0, 0
	for _, it := range items {
		if it.Kind == "session" {
			r.Found[SourceSessions]++
		} else {
			r.Found[SourceSharedKeys]++
		}
	}
	recs, err := s.auditOf(ctx, subj, m)
	if err != nil {
		return CheckResult{}, err
	}
	r.Retained = map[string]int{SourceAudit: len(recs)}
	r.Clean = total(r.Found) == 0
	return r, nil
}

// lexicalHits searches the lexical index of the org for the subject's
// identifier, in every state and tier, and counts the hits that name the
// subject.
func (s *Service) lexicalHits(ctx context.Context, subj Subject, m matcher) (int, error) {
	ls, ok := s.store.(interface {
		Search(ctx context.Context, a memory.Access, q memory.SearchQuery) ([]memory.Hit, error)
	})
	if !ok {
		return 0, nil
	}
	all := memory.Access{OrgID: subj.OrgID, Prefixes: []string{""}}
	n := 0
	for _, text := range m.needles {
		hits, err := ls.Search(ctx, all, memory.SearchQuery{Text: text, Limit: 200, IncludeCold: true,
			Filter: memory.Filter{States: memory.States}})
		if err != nil {
			return 0, fmt.Errorf("check subject: lexical index: %w", err)
		}
		for _, h := range hits {
			if m.mentions(h.Memory) {
				n++
			}
		}
	}
	return n, nil
}
