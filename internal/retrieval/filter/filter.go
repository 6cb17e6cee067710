// Package filter is what the in-process indexes of retrieval (the vector
// index and the lexical index) keep of a memory besides what they rank by:
// the fields access and search filters read, as small integers, and the
// compiled predicate every index applies to each memory before it ranks, so
// that a visible match is never crowded out by invisible ones. It mirrors
// the stores' WHERE clauses (internal/store/*/query.go).
package filter

import (
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// What an index keeps of a memory are the fields access and filters read,
// as small integers. Those every search reads are packed in one word (the
// hot word), so that a scan reads 8 bytes per memory for them:
//
//	bits  0-31  access entity, in Dicts.entities
//	bits 32-35  state: index in memory.States
//	bits 36-39  category: 0 for none, else 1 + index in memory.Categories
//	bits 40-43  scope: index in memory.Scopes
//
// The others are in Meta, read only by searches that filter on them.
func pack(entity uint32, state, category, scope uint8) uint64 {
	return uint64(entity) | uint64(state)<<32 | uint64(category)<<36 | uint64(scope)<<40
}

// Meta holds the fields only some filters read.
type Meta struct {
	subject   uint32 // the memory's entity field, in Dicts.terms
	artifact  uint32 // artifact ref, in Dicts.terms
	app       uint32 // in Dicts.terms
	created   int64  // unix nanoseconds
	validFrom int64  // math.MinInt64 when unset
	validTo   int64  // math.MaxInt64 when unset
	tags      []uint32
}

// metaSize is the size of a Meta without its tags.
const metaSize = int64(unsafe.Sizeof(Meta{}))

// Bytes is the memory m holds.
func (m *Meta) Bytes() int64 { return metaSize + 4*int64(cap(m.tags)) }

// unknown is the code of an enum value the index does not know (every
// list has fewer than 15 values); only "no filter" lets it through.
const unknown = 15

func code[T comparable](v T, all []T) uint8 {
	if i := slices.Index(all, v); i >= 0 {
		return uint8(i)
	}
	return unknown
}

// tagKey and tagValue are the terms of a tag: its key, and its key with its
// value when the value is a string — what the stores' tag filters match
// ("key" and "key=value").
func tagKey(k string) string       { return "k\x00" + k }
func tagValue(k, v string) string  { return "v\x00" + k + "=" + v }
func subjectTerm(s string) string  { return "e\x00" + s }
func artifactTerm(s string) string { return "r\x00" + s }
func appTerm(s string) string      { return "a\x00" + s }

// Dicts are one org's dictionaries of the strings filters compare, so
// entries hold small integers: access entities, and terms (entity, artifact
// ref, app, tag keys and key=value pairs). 0 is "" in both. They only
// grow. Dicts are not safe for concurrent use: the index guards them.
type Dicts struct {
	entities dict
	terms    dict
}

// NewDicts returns empty dictionaries.
func NewDicts() *Dicts { return &Dicts{entities: newDict(), terms: newDict()} }

// Fields returns the hot word and the Meta of m.
func (d *Dicts) Fields(m memory.Memory) (uint64, Meta) {
	md := Meta{
		created:   m.CreatedAt.UnixNano(),
		validFrom: unixNano(m.ValidFrom, math.MinInt64),
		validTo:   unixNano(m.ValidTo, math.MaxInt64),
	}
	var category uint8
	if m.Category != "" {
		category = unknown
		if c := code(m.Category, memory.Categories); c != unknown {
			category = c + 1
		}
	}
	hot := pack(d.entities.id(m.AccessEntity), code(m.State, memory.States), category, code(m.Scope, memory.Scopes))
	if m.Entity != "" {
		md.subject = d.terms.id(subjectTerm(m.Entity))
	}
	if m.ArtifactRef != "" {
		md.artifact = d.terms.id(artifactTerm(m.ArtifactRef))
	}
	if m.App != "" {
		md.app = d.terms.id(appTerm(m.App))
	}
	if len(m.Tags) > 0 {
		md.tags = make([]uint32, 0, 2*len(m.Tags))
		for k, v := range m.Tags {
			md.tags = append(md.tags, d.terms.id(tagKey(k)))
			if s, ok := v.(string); ok {
				md.tags = append(md.tags, d.terms.id(tagValue(k, s)))
			}
		}
		slices.Sort(md.tags)
	}
	return hot, md
}

// dict numbers strings; 0 is "".
type dict struct {
	ids   map[string]uint32
	names []string
}

func newDict() dict { return dict{ids: map[string]uint32{"": 0}, names: []string{""}} }

func (d *dict) id(s string) uint32 {
	if id, ok := d.ids[s]; ok {
		return id
	}
	id := uint32(len(d.names))
	d.ids[s] = id
	d.names = append(d.names, s)
	return id
}

// lookup returns the id of s, if d has it.
func (d *dict) lookup(s string) (uint32, bool) {
	id, ok := d.ids[s]
	return id, ok
}

// Pred is an Access and a Filter compiled against one org's dictionaries.
type Pred struct {
	allowed                   []bool // by access entity id
	states, categories, scope uint16 // bit per code
	subject, artifact, app    uint32 // 0: any
	tags                      []uint32
	createdAfter              int64 // exclusive
	createdBefore             int64 // exclusive
	validAt                   int64
	hasValidAt                bool
	cold                      bool // whether Match must read Meta
}

// Compile turns a and f into a predicate, or reports that nothing can
// match (a name the dictionaries have never seen, no grants). It mirrors
// the stores' WHERE clauses (internal/store/*/query.go): the org is that of
// the Dicts (an index keeps one per org); the access entity is one of
// a.Entities or strictly extends one of a.Prefixes; empty States means every state but deleted; tag "key" needs
// the key, "key=value" the key with that string value.
func (d *Dicts) Compile(a memory.Access, f memory.Filter) (Pred, bool) {
	p := Pred{
		allowed:       make([]bool, len(d.entities.names)),
		createdAfter:  math.MinInt64,
		createdBefore: math.MaxInt64,
	}
	any := false
	for id, e := range d.entities.names {
		if id > 0 && a.Allows(e) && (f.AccessEntity == "" || e == f.AccessEntity) {
			p.allowed[id] = true
			any = true
		}
	}
	if !any {
		return p, false
	}
	if len(f.States) == 0 {
		for i, s := range memory.States { // every state but deleted
			if s != memory.StateDeleted {
				p.states |= 1 << i
			}
		}
	}
	for _, s := range f.States {
		if c := code(s, memory.States); c != unknown {
			p.states |= 1 << c
		}
	}
	if len(f.Categories) == 0 {
		p.categories = math.MaxUint16
	}
	for _, c := range f.Categories {
		if i := code(c, memory.Categories); i != unknown {
			p.categories |= 1 << (i + 1)
		}
	}
	if len(f.Scopes) == 0 {
		p.scope = math.MaxUint16
	}
	for _, s := range f.Scopes {
		if c := code(s, memory.Scopes); c != unknown {
			p.scope |= 1 << c
		}
	}
	if p.states == 0 || p.categories == 0 || p.scope == 0 {
		return p, false
	}
	for _, t := range []struct {
		value string
		term  func(string) string
		dst   *uint32
	}{{f.Entity, subjectTerm, &p.subject}, {f.ArtifactRef, artifactTerm, &p.artifact}, {f.App, appTerm, &p.app}} {
		if t.value == "" {
			continue
		}
		id, ok := d.terms.lookup(t.term(t.value))
		if !ok {
			return p, false
		}
		*t.dst = id
	}
	for _, t := range f.Tags {
		key, value, hasValue := strings.Cut(t, "=")
		term := tagKey(key)
		if hasValue {
			term = tagValue(key, value)
		}
		id, ok := d.terms.lookup(term)
		if key == "" || !ok {
			return p, false
		}
		p.tags = append(p.tags, id)
	}
	p.createdAfter = unixNano(f.CreatedAfter, math.MinInt64)
	p.createdBefore = unixNano(f.CreatedBefore, math.MaxInt64)
	if f.ValidAt != nil {
		p.validAt, p.hasValidAt = f.ValidAt.UnixNano(), true
	}
	p.cold = p.subject != 0 || p.artifact != 0 || p.app != 0 || len(p.tags) > 0 || p.hasValidAt ||
		p.createdAfter != math.MinInt64 || p.createdBefore != math.MaxInt64
	return p, true
}

// Match reports whether an entry passes the predicate.
func (p *Pred) Match(hot uint64, m *Meta) bool {
	if e := uint32(hot); int(e) >= len(p.allowed) || !p.allowed[e] ||
		p.states&(1<<(hot>>32&15)) == 0 || p.categories&(1<<(hot>>36&15)) == 0 || p.scope&(1<<(hot>>40&15)) == 0 {
		return false
	}
	if !p.cold {
		return true
	}
	if p.subject != 0 && m.subject != p.subject ||
		p.artifact != 0 && m.artifact != p.artifact ||
		p.app != 0 && m.app != p.app {
		return false
	}
	if m.created <= p.createdAfter || m.created >= p.createdBefore {
		return false
	}
	if p.hasValidAt && (m.validFrom > p.validAt || m.validTo <= p.validAt) {
		return false
	}
	for _, t := range p.tags {
		if _, ok := slices.BinarySearch(m.tags, t); !ok {
			return false
		}
	}
	return true
}

// unixNano is t in nanoseconds, or def for nil.
func unixNano(t *time.Time, def int64) int64 {
	if t == nil {
		return def
	}
	return t.UnixNano()
}
