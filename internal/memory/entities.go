package memory

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Entity kinds: how a memory names an entity. A kind belongs to a mention
// (one memory naming one entity), not to the entity: "payments" may be one
// memory's entity and another's artifact_ref, and it is one node.
const (
	KindEntity   = "entity"   // the memory's entity field
	KindArtifact = "artifact" // its artifact_ref
	KindTag      = "tag"      // key=value for a string tag, else the tag's key
	KindExplicit = "explicit" // the target of a relation the memory states
)

// EntityKinds lists the kinds, in precedence order: when one memory names
// the same entity in several ways, its mention has the first of them.
var EntityKinds = []string{KindEntity, KindArtifact, KindExplicit, KindTag}

// RelationPrefix starts a tag key that states a typed relation:
// {"relation:depends_on": "ledger"} on a memory whose entity is
// "payments" says payments depends_on ledger. The value names one target,
// or several separated by commas.
const RelationPrefix = "relation:"

// RelationTypes are the typed relations a memory may state (with a
// relation:<type> tag) or Relate may create.
var RelationTypes = []string{
	"depends_on", "uses", "calls", "implements", "owned_by", "part_of", "replaces", "related_to", "similar",
}

// Edge types. Co-mentions and tag co-occurrences are derived from mentions
// when a query runs; relations and similarity edges are stored with the
// memory that states them.
const (
	EdgeCoMention       = "co_mention"       // two entities named by one memory (not both tags)
	EdgeTagCooccurrence = "tag_cooccurrence" // two tags on one memory
	EdgeSimilar         = "similar"          // a relation of type similar
	EdgeRelation        = "relation"         // in filters: every relation:<type>
)

// EdgeTypes are the values an edge-type filter accepts: the derived types,
// "relation" (every typed relation), similar, and relation:<type>.
func EdgeTypes() []string {
	out := []string{EdgeCoMention, EdgeTagCooccurrence, EdgeRelation}
	for _, t := range RelationTypes {
		out = append(out, RelationEdgeType(t))
	}
	return out
}

// RelationEdgeType is the edge type of a relation type: relation:<type>,
// except similar, which is its own edge type.
func RelationEdgeType(t string) string {
	if t == "similar" {
		return EdgeSimilar
	}
	return RelationPrefix + t
}

// Limits of entity names.
const (
	MaxEntityName = MaxRefLen // bytes of a normalized name
	maxTagValue   = 128       // longer string tag values are text, not labels
	maxTargets    = 20        // targets of one relation tag
)

// NormalizeEntity is the form entity names are matched in: Unicode NFKC,
// lower case, trimmed, and every run of separators (white space, _ and
// dashes) one "-". "Payments Service", "payments_service" and
// "PAYMENTS-service" are all "payments-service". Other punctuation (. / :
// = @) is kept, so paths, hosts and URLs keep their shape. Control
// characters are dropped. A name that is empty, or longer than
// MaxEntityName bytes, normalizes to "" and names no entity.
func NormalizeEntity(s string) string {
	s = norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	sep := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r) || r == '_' || r == '-' || unicode.Is(unicode.Pd, r):
			sep = true
			continue
		case unicode.IsControl(r) || r == utf8.RuneError:
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(unicode.ToLower(r))
	}
	if b.Len() > MaxEntityName {
		return ""
	}
	return b.String()
}

// GraphMention is one entity a memory names, as ExtractGraph finds it.
type GraphMention struct {
	Name    string // normalized
	Display string // as the memory wrote it
	Kind    string
}

// GraphRelation is one typed edge a memory states, between normalized
// names; both ends are among the memory's mentions.
type GraphRelation struct {
	From, To string
	Type     string // relation:<type> or similar
}

// Live reports whether a memory in state st takes part in the graph:
// active and paused memories do; archived and deleted ones do not.
func Live(st State) bool { return st == StateActive || st == StatePaused }

// ExtractGraph returns what memory m contributes to the entity graph: the
// entities it names, from its entity, its artifact_ref, its tags (key=value
// for a string value, else the key alone: {"lang": "go"} names lang=go,
// {"flaky": true} names flaky) and the targets of its relation tags; and the typed relations those tags state, from the memory's entity
// (or, without one, its artifact_ref) to each target. Relation tags are not
// tags in the graph. Mentions are sorted by name, one per name (the kind
// of the first of EntityKinds that applies); relations are sorted and
// distinct. Stores call it inside the write transaction of m; it does not
// look at m's state.
func ExtractGraph(m Memory) ([]GraphMention, []GraphRelation) {
	byName := map[string]GraphMention{}
	add := func(display, kind string) string {
		name := NormalizeEntity(display)
		if name == "" {
			return ""
		}
		if prev, ok := byName[name]; !ok || slices.Index(EntityKinds, kind) < slices.Index(EntityKinds, prev.Kind) {
			byName[name] = GraphMention{Name: name, Display: strings.TrimSpace(display), Kind: kind}
		}
		return name
	}
	source := add(m.Entity, KindEntity)
	if artifact := add(m.ArtifactRef, KindArtifact); source == "" {
		source = artifact
	}
	var rels []GraphRelation
	for _, k := range sortedKeys(m.Tags) {
		v := m.Tags[k]
		if t, ok := strings.CutPrefix(k, RelationPrefix); ok {
			s, _ := v.(string)
			if source == "" || !slices.Contains(RelationTypes, t) {
				continue // validate refuses these; stored before it did
			}
			for _, target := range relationTargets(s) {
				if to := add(target, KindExplicit); to != "" && to != source {
					rels = append(rels, GraphRelation{From: source, To: to, Type: RelationEdgeType(t)})
				}
			}
			continue
		}
		if s, ok := v.(string); ok && len(s) <= maxTagValue && NormalizeEntity(s) != "" && NormalizeEntity(k) != "" {
			add(strings.TrimSpace(k)+"="+strings.TrimSpace(s), KindTag)
		} else {
			add(k, KindTag)
		}
	}
	mentions := make([]GraphMention, 0, len(byName))
	for _, name := range sortedKeys(byName) {
		mentions = append(mentions, byName[name])
	}
	slices.SortFunc(rels, func(a, b GraphRelation) int {
		return strings.Compare(a.From+"\x00"+a.Type+"\x00"+a.To, b.From+"\x00"+b.Type+"\x00"+b.To)
	})
	return mentions, slices.Compact(rels)
}

// relationTargets splits the value of a relation tag into its targets.
func relationTargets(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validateRelationTags checks the relation:<type> tags of m: a known type,
// a string value naming 1-20 targets, and an entity or artifact_ref for
// the relation to start from.
func validateRelationTags(m *Memory) error {
	for k, v := range m.Tags {
		t, ok := strings.CutPrefix(k, RelationPrefix)
		if !ok {
			continue
		}
		field := "tags." + k
		if !slices.Contains(RelationTypes, t) {
			return invalid(field, "%q is not a relation type; use one of: %s", t, strings.Join(RelationTypes, ", "))
		}
		s, _ := v.(string)
		targets := relationTargets(s)
		if len(targets) == 0 || len(targets) > maxTargets {
			return invalid(field, "must be a string naming 1 to %d related entities, separated by commas", maxTargets)
		}
		for _, target := range targets {
			if NormalizeEntity(target) == "" {
				return invalid(field, "%q is not an entity name (empty, or longer than %d bytes)", target, MaxEntityName)
			}
		}
		if NormalizeEntity(m.Entity) == "" && NormalizeEntity(m.ArtifactRef) == "" {
			return invalid(field, "states a relation from the memory's entity (or artifact_ref); set entity")
		}
	}
	return nil
}

// QueryEntityNames lists the entity names a search text may mention, for
// looking them up in the graph: every word (split at white space, with
// surrounding punctuation trimmed, so paths and hosts stay whole) and every
// run of one to three adjacent words (split at anything but letters and
// digits, joined with "-", the separator NormalizeEntity uses), normalized
// and distinct, at most 200.
func QueryEntityNames(text string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if n := NormalizeEntity(s); n != "" && !seen[n] && len(out) < 200 {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, w := range strings.Fields(text) {
		add(strings.TrimFunc(w, func(r rune) bool { return unicode.IsPunct(r) && r != '/' && r != '@' && r != '#' }))
	}
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	for n := 1; n <= 3; n++ {
		for i := 0; i+n <= len(words); i++ {
			add(strings.Join(words[i:i+n], "-"))
		}
	}
	return out
}

// entityField checks an entity name given as input.
func entityField(field, name string) (string, error) {
	if strings.TrimSpace(name) == "" {
		return "", invalid(field, "is required: name an entity")
	}
	n := NormalizeEntity(name)
	if n == "" {
		return "", invalid(field, "%s is not an entity name (longer than %d bytes)", clipQuote(name), MaxEntityName)
	}
	return n, nil
}

func clipQuote(s string) string {
	if len(s) > 40 {
		i := 40
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return fmt.Sprintf("%q", s)
}
