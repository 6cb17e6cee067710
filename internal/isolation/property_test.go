package isolation

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestProperties runs random operations of random principals against the
// real service on each store, through the service, REST and MCP, and checks
// every outcome against a model of what is stored and who may see it.
func TestProperties(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		runProperties(t, openSQLite(t), *opsFlag)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		runProperties(t, openPostgres(t), max(*opsFlag/4, 1))
	})
}

type opKind string

const (
	opAdd        opKind = "add"
	opGet        opKind = "get"
	opUpdate     opKind = "update"
	opTransition opKind = "state"
	opDelete     opKind = "delete"
	opHistory    opKind = "history"
	opList       opKind = "list"
	opSearch     opKind = "search"
	opApps       opKind = "apps"
	opStats      opKind = "stats"
)

// opMix weighs the operations.
var opMix = []struct {
	op     opKind
	weight int
}{
	{opAdd, 24}, {opGet, 16}, {opUpdate, 12}, {opTransition, 8}, {opDelete, 6},
	{opHistory, 6}, {opList, 12}, {opSearch, 12}, {opApps, 2}, {opStats, 2},
}

// The random world: three orgs with the same shape of projects and teams
// (team:X/apix and project:X/apix sit next to project:X/api without being
// under it), and subjects that recur across orgs.
var (
	propOrgs = []string{"acme", "globex", "initech"}
	propSubs = []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	// Grants that are not grants: malformed, or of a kind or org that does
	// not exist as written. All must be ignored.
	junkGrants = []string{"org:", "team:acme", "project:", "nonsense", "user:", "org:acme/x", "ORG:acme", "org:ACME",
		"team:globex/", "project:/x", "team:initech/%", "org:*"}
	words = []string{"deploy", "rollback", "postgres", "migration", "cache", "latency", "retry", "budget", "token",
		"rotation", "canary", "schema", "index", "queue", "backoff", "tenant", "billing", "search", "vector", "graph"}
	propApps     = []string{"claude-code", "cursor", "codex", "ops-bot"}
	propEntities = []string{"svc-api", "svc-web", "billing", "payments"}
	propKeys     = []string{"key-1", "key-2", "key-3", "key-4", "key-5", "key-6"}
	tagSets      = []map[string]any{nil, {"lang": "go"}, {"lang": "rust", "tier": float64(1)}, {"pii": true}, {"lang": "go", "pii": false}}
	tagFilters   = []string{"lang", "lang=go", "lang=rust", "tier", "pii", "tier=1"}
)

func orgEntities(org string) []string {
	return []string{"org:" + org, "project:" + org + "/api", "project:" + org + "/apix", "project:" + org + "/web",
		"team:" + org + "/api/payments", "team:" + org + "/api/search", "team:" + org + "/apix", "team:" + org + "/web/ui", "team:" + org + "/ops"}
}

// universe is every access entity of the random world.
func universe() []string {
	var out []string
	for _, org := range propOrgs {
		out = append(out, orgEntities(org)...)
	}
	for _, s := range propSubs {
		out = append(out, "user:"+s)
	}
	return out
}

// mstate is the model of one memory: as the store holds it, its history
// length and its content hash.
type mstate struct {
	m       memory.Memory
	history int
	hash    string
}

// model is what the property test believes is stored.
type model struct {
	mems    map[string]*mstate
	ids     []string            // in creation order
	live    map[string]string   // org|entity|hash of a live memory → its id
	keys    map[string]string   // org|idempotency key → id
	markers map[string][]string // unique word → ids whose content holds it
}

func liveKey(m memory.Memory, hash string) string { return m.OrgID + "|" + m.AccessEntity + "|" + hash }

// set records m as stored, keeping the indexes in step.
func (md *model) set(m memory.Memory, history int) {
	if old, ok := md.mems[m.ID]; ok {
		if old.m.State != memory.StateDeleted {
			delete(md.live, liveKey(old.m, old.hash))
		}
	} else {
		md.ids = append(md.ids, m.ID)
		if m.IdempotencyKey != "" {
			md.keys[m.OrgID+"|"+m.IdempotencyKey] = m.ID
		}
	}
	s := &mstate{m: m, history: history, hash: memory.ContentHash(m.Content)}
	md.mems[m.ID] = s
	if m.State != memory.StateDeleted {
		md.live[liveKey(m, s.hash)] = m.ID
	}
	for _, mk := range markerRE.FindAllString(m.Content, -1) {
		if !slices.Contains(md.markers[mk], m.ID) {
			md.markers[mk] = append(md.markers[mk], m.ID)
		}
	}
}

var (
	markerRE = regexp.MustCompile(`zq[0-9]{6}x`)
	wordRE   = regexp.MustCompile(`[0-9A-Za-z]+`)
	ulidRE   = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)
	// unescape turns JSON escapes into spaces, so that "\n01J…" reads as
	// a word boundary before an id.
	unescape = strings.NewReplacer(`\n`, " ", `\t`, " ", `\r`, " ", `\"`, " ", `\\`, " ")
)

// idsIn returns the memory ids an answer names: whole words that are ULIDs
// (not runs of letters inside a cursor or a longer word).
func idsIn(raw []byte) []string {
	var out []string
	for _, w := range wordRE.FindAllString(unescape.Replace(string(raw)), -1) {
		if ulidRE.MatchString(w) {
			out = append(out, w)
		}
	}
	return out
}

// outcome classes, for comparing and counting.
const (
	okCreated = "created"
	okDup     = "duplicate"
	okDone    = "ok"
	eNotFound = "not_found"
	eForbid   = "forbidden"
	eConflict = "conflict"
	eInvalid  = "invalid"
	eScope    = "missing_scope"
)

func classify(err error) string {
	var ve *memory.ValidationError
	switch {
	case err == nil:
		return okDone
	case errors.Is(err, errScope):
		return eScope
	case errors.As(err, &ve):
		return eInvalid
	case errors.Is(err, memory.ErrNotFound):
		return eNotFound
	case errors.Is(err, memory.ErrForbidden):
		return eForbid
	case errors.Is(err, memory.ErrConflict):
		return eConflict
	}
	return "unexpected: " + err.Error()
}

type propRun struct {
	t          *testing.T
	rng        *rand.Rand
	srv        *server
	principals []*principal
	channels   []channel
	weights    []int // of channels
	md         model
	marker     int
	ghost      func() string
	counts     map[string]int
	failures   int
}

func runProperties(t *testing.T, store memory.Store, ops int) {
	seed := *seedFlag
	t.Logf("seed %d (-isolation.seed), %d operations (-isolation.ops)", seed, ops)
	start := time.Now()
	r := &propRun{
		t: t, rng: rand.New(rand.NewPCG(uint64(seed), 0x150)), srv: newServer(t, store),
		md:     model{mems: map[string]*mstate{}, live: map[string]string{}, keys: map[string]string{}, markers: map[string][]string{}},
		ghost:  memory.NewULIDSource(time.Now),
		counts: map[string]int{},
	}
	r.channels = []channel{serviceChannel{r.srv.svc}, newRESTChannel(r.srv), newMCPChannel(r.srv)}
	r.weights = []int{75, 20, 5}
	for i := range 24 {
		p := r.randomPrincipal(i)
		r.srv.issue(t, p)
		r.principals = append(r.principals, p)
	}
	total := 0
	for _, m := range opMix {
		total += m.weight
	}
	checkEvery := max(ops/10, 50)
	for i := range ops {
		op := opAdd
		if i >= ops/20 { // the first 5% fill the store
			n := r.rng.IntN(total)
			for _, m := range opMix {
				if n < m.weight {
					op = m.op
					break
				}
				n -= m.weight
			}
		}
		p := r.principals[r.rng.IntN(len(r.principals))]
		ch := r.channel(op)
		r.counts["op "+string(op)]++
		r.counts["channel "+ch.name()]++
		r.step(op, p, ch)
		if r.failures > 20 {
			t.Fatalf("stopping after %d failures at operation %d", r.failures, i)
		}
		if (i+1)%checkEvery == 0 {
			r.reconcile(false)
		}
	}
	r.reconcile(true)
	elapsed := time.Since(start)
	t.Logf("%d operations in %v (%.0f/s); %d memories in %d orgs at the end", ops, elapsed.Round(time.Millisecond),
		float64(ops)/elapsed.Seconds(), len(r.md.ids), len(propOrgs))
	for _, k := range slices.Sorted(maps.Keys(r.counts)) {
		if strings.HasPrefix(k, "op ") || strings.HasPrefix(k, "channel ") {
			t.Logf("  %-22s %6d", k, r.counts[k])
		}
	}
	var outcomes []string
	for _, k := range slices.Sorted(maps.Keys(r.counts)) {
		if strings.HasPrefix(k, "outcome ") {
			outcomes = append(outcomes, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "outcome "), r.counts[k]))
		}
	}
	t.Logf("  outcomes: %s", strings.Join(outcomes, " "))
}

func (r *propRun) errorf(format string, args ...any) {
	r.t.Helper()
	r.failures++
	r.t.Errorf(format, args...)
}

// randomPrincipal makes a principal of a random org with random scopes and
// grants: entities of its own org, of other orgs (to be ignored), users,
// and junk.
func (r *propRun) randomPrincipal(i int) *principal {
	org := propOrgs[r.rng.IntN(len(propOrgs))]
	sub := propSubs[r.rng.IntN(len(propSubs))]
	var grants []string
	for _, o := range propOrgs {
		for _, e := range orgEntities(o) {
			if (o == org && r.rng.Float64() < 0.25) || (o != org && r.rng.Float64() < 0.12) {
				grants = append(grants, e)
			}
		}
	}
	for _, s := range propSubs {
		if r.rng.Float64() < 0.05 {
			grants = append(grants, "user:"+s)
		}
	}
	for _, g := range junkGrants {
		if r.rng.Float64() < 0.1 {
			grants = append(grants, g)
		}
	}
	var scopes []string
	for _, s := range []string{auth.ScopeMemoriesRead, auth.ScopeMemoriesWrite, auth.ScopeMemoriesDelete,
		auth.ScopeSearchRead, auth.ScopeAppsRead, auth.ScopeStatsRead} {
		if r.rng.Float64() < 0.85 {
			scopes = append(scopes, s)
		}
	}
	p := newPrincipal(sub, org, scopes, grants)
	p.name = fmt.Sprintf("p%02d:%s@%s", i, sub, org)
	return p
}

// channel picks a channel that offers op.
func (r *propRun) channel(op opKind) channel {
	for {
		n := r.rng.IntN(100)
		for i, w := range r.weights {
			if n < w {
				if _, ok := r.channels[i].scopes(op); ok {
					return r.channels[i]
				}
				break
			}
			n -= w
		}
	}
}

func pick[T any](r *propRun, xs []T) T { return xs[r.rng.IntN(len(xs))] }

// target picks the id an operation works on: mostly a stored memory of any
// org, sometimes one that does not exist.
func (r *propRun) target() string {
	n := r.rng.IntN(100)
	switch {
	case len(r.md.ids) == 0 || n < 8:
		return r.ghost()
	case n < 12:
		id := pick(r, r.md.ids)
		return pick(r, []string{strings.ToLower(id), id + "0", " " + id, id[:25], "' OR 1=1 --", "%", "*"})
	}
	return pick(r, r.md.ids)
}

func (r *propRun) content() string {
	r.marker++
	n := 2 + r.rng.IntN(5)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = pick(r, words)
	}
	return fmt.Sprintf("%s zq%06dx %s", strings.Join(ws[:n/2], " "), r.marker, strings.Join(ws[n/2:], " "))
}

// randomEntity is an entity of the universe with a scope that fits it, and
// now and then one that does not.
func (r *propRun) randomEntity() (string, memory.Scope) {
	e := pick(r, universe())
	s := entityScope(e)
	switch {
	case r.rng.Float64() < 0.05:
		s = pick(r, memory.Scopes)
	case s == "user" && r.rng.Float64() < 0.3:
		s = "session"
	case s == "org" && r.rng.Float64() < 0.3:
		s = "enterprise"
	}
	return e, s
}

// step runs one operation and checks its outcome.
func (r *propRun) step(op opKind, p *principal, ch channel) {
	switch op {
	case opAdd:
		r.add(p, ch)
	case opGet:
		r.get(p, ch)
	case opUpdate, opTransition, opDelete:
		r.write(op, p, ch)
	case opHistory:
		r.history(p, ch)
	case opList:
		r.list(p, ch)
	case opSearch:
		r.search(p, ch)
	case opApps:
		r.apps(p, ch)
	case opStats:
		r.stats(p, ch)
	}
}

// missingScope is the scope p lacks for op on ch, or "".
func missingScope(p *principal, ch channel, op opKind) string {
	scopes, _ := ch.scopes(op)
	return p.Missing(scopes...)
}

// sameClass counts the outcome of an operation and reports whether it is
// the one the model predicts, failing the test when it is not.
func (r *propRun) sameClass(what string, p *principal, ch channel, want string, err error, raw []byte) bool {
	r.t.Helper()
	return r.outcome(what, p, ch, want, classify(err), raw)
}

func (r *propRun) outcome(what string, p *principal, ch channel, want, got string, raw []byte) bool {
	r.t.Helper()
	r.counts["outcome "+got]++
	if got != want {
		r.errorf("%s via %s as %s (grants %v, scopes %v): got %s, want %s: %.300s", what, ch.name(), p.name, p.Grants, p.Scopes, got, want, raw)
		return false
	}
	return true
}

// checkRaw fails when an answer names a memory p may not see, by id or by
// the unique word of its content, other than those the request named.
func (r *propRun) checkRaw(what string, p *principal, ch channel, raw []byte, sent ...string) {
	r.t.Helper()
	for _, id := range idsIn(raw) {
		if slices.ContainsFunc(sent, func(s string) bool { return strings.Contains(s, id) }) {
			continue // the caller named it (or a string holding it)
		}
		ms, ok := r.md.mems[id]
		if !ok {
			r.errorf("%s via %s as %s: the answer names %s, which is no memory the model knows: %.300s", what, ch.name(), p.name, id, raw)
			continue
		}
		if !p.sees(ms.m) {
			r.errorf("%s via %s as %s: CROSS-TENANT READ: the answer names memory %s of %s/%s: %.300s", what, ch.name(), p.name, id, ms.m.OrgID, ms.m.AccessEntity, raw)
		}
	}
	for _, mk := range markerRE.FindAllString(string(raw), -1) {
		if slices.ContainsFunc(sent, func(s string) bool { return strings.Contains(s, mk) }) {
			continue
		}
		if !slices.ContainsFunc(r.md.markers[mk], func(id string) bool { return p.sees(r.md.mems[id].m) }) {
			r.errorf("%s via %s as %s: CROSS-TENANT READ: the answer holds %s, content of %v only: %.300s", what, ch.name(), p.name, mk, r.md.markers[mk], raw)
		}
	}
}

// checkReturned checks a memory an answer returned: p may see it and it is
// what the model holds (fields the channel does not return are empty).
func (r *propRun) checkReturned(what string, p *principal, ch channel, m memory.Memory) {
	r.t.Helper()
	ms, ok := r.md.mems[m.ID]
	switch {
	case !ok:
		r.errorf("%s via %s as %s: returned memory %s, which the model does not know", what, ch.name(), p.name, m.ID)
	case !p.sees(ms.m):
		r.errorf("%s via %s as %s: CROSS-TENANT READ: returned memory %s of %s/%s", what, ch.name(), p.name, m.ID, ms.m.OrgID, ms.m.AccessEntity)
	case m.Content != ms.m.Content || (m.OrgID != "" && m.OrgID != ms.m.OrgID) || (m.AccessEntity != "" && m.AccessEntity != ms.m.AccessEntity) ||
		(m.State != "" && m.State != ms.m.State):
		r.errorf("%s via %s as %s: returned %s as %s/%s/%s %q; the store holds %s/%s/%s %q", what, ch.name(), p.name, m.ID,
			m.OrgID, m.AccessEntity, m.State, m.Content, ms.m.OrgID, ms.m.AccessEntity, ms.m.State, ms.m.Content)
	}
}

// readBack reads a memory from the store as its owner: exactly its org and
// access entity.
func (r *propRun) readBack(m memory.Memory) (memory.Memory, int, error) {
	ctx := r.t.Context()
	got, err := r.srv.store.Get(ctx, ownerAccess(m), m.ID)
	if err != nil {
		return got, 0, err
	}
	h, err := r.srv.store.History(ctx, ownerAccess(m), m.ID)
	return got, len(h), err
}

// unchanged fails when a memory differs from the model.
func (r *propRun) unchanged(what string, p *principal, ch channel, id string) {
	r.t.Helper()
	ms, ok := r.md.mems[id]
	if !ok {
		return
	}
	got, n, err := r.readBack(ms.m)
	if err != nil || !reflect.DeepEqual(got, ms.m) || n != ms.history {
		r.errorf("%s via %s as %s: CROSS-TENANT WRITE: memory %s of %s/%s changed (state %s→%s, entity %s→%s, content %q→%q, history %d→%d, err %v)",
			what, ch.name(), p.name, id, ms.m.OrgID, ms.m.AccessEntity, ms.m.State, got.State, ms.m.AccessEntity, got.AccessEntity,
			ms.m.Content, got.Content, ms.history, n, err)
	}
}

// resolve is the access entity the service picks for a new memory of scope
// without one (memory.resolveEntity), or the error class.
func resolve(p *principal, scope memory.Scope) (string, string) {
	kind := map[memory.Scope]string{"team": "team", "project": "project", "org": "org", "enterprise": "org"}[scope]
	if kind == "" {
		return p.UserEntity(), ""
	}
	var options []string
	for _, e := range p.access.Entities {
		if strings.HasPrefix(e, kind+":") {
			options = append(options, e)
		}
	}
	switch {
	case kind == "org" && len(options) == 0:
		return "", eForbid
	case len(options) == 1:
		return options[0], ""
	}
	return "", eInvalid
}

// kindFits reports whether entity is of the kind scope shares through.
func kindFits(entity string, scope memory.Scope) bool {
	kind, _, _ := strings.Cut(entity, ":")
	want := map[memory.Scope]string{"session": "user", "user": "user", "team": "team", "project": "project", "org": "org", "enterprise": "org"}[scope]
	return kind == want
}

func (r *propRun) add(p *principal, ch channel) {
	in := memory.Input{
		Content: r.content(), Category: pick(r, append([]memory.Category{""}, memory.Categories...)),
		App: pick(r, append([]string{""}, propApps...)), Entity: pick(r, append([]string{""}, propEntities...)),
		Tags: maps.Clone(pick(r, tagSets)),
	}
	if r.rng.Float64() < 0.8 {
		in.AccessEntity, in.Scope = r.randomEntity()
	} else {
		in.Scope = pick(r, memory.Scopes)
	}
	if r.rng.Float64() < 0.2 && len(r.md.ids) > 0 {
		// The content of a memory of anyone, anywhere, half the time with
		// its access entity too (user:<sub> names the same entity in every
		// org): a duplicate only where the caller could have written it.
		src := r.md.mems[pick(r, r.md.ids)].m
		in.Content = src.Content
		if r.rng.IntN(2) == 0 {
			in.AccessEntity, in.Scope = src.AccessEntity, src.Scope
		}
	}
	if r.rng.Float64() < 0.1 {
		in.IdempotencyKey = pick(r, propKeys)
	}

	want, dupID, entity := r.predictAdd(p, ch, in)
	m, created, raw, err := ch.add(r.t, p, in)
	what := fmt.Sprintf("add %q into %q (scope %s, key %q)", in.Content, in.AccessEntity, in.Scope, in.IdempotencyKey)
	got := classify(err)
	if err == nil {
		got = okDup
		if created {
			got = okCreated
		}
	}
	if !r.outcome(what, p, ch, want, got, raw) {
		r.checkRaw(what, p, ch, raw, in.Content)
		return
	}
	switch want {
	case okCreated:
		stored, n, err := r.readBack(memory.Memory{ID: m.ID, OrgID: p.OrgID, AccessEntity: entity})
		if err != nil || n != 1 {
			r.errorf("%s via %s as %s: created %s, but it does not read back from %s/%s with one history entry (%d, %v)", what, ch.name(), p.name, m.ID, p.OrgID, entity, n, err)
			return
		}
		r.md.set(stored, n)
	case okDup:
		if m.ID != dupID {
			r.errorf("%s via %s as %s: answered with duplicate %s, want %s", what, ch.name(), p.name, m.ID, dupID)
		}
	}
	r.checkRaw(what, p, ch, raw, in.Content)
	if m.ID != "" {
		if m.OrgID == "" { // MCP answers with the id only
			if ms := r.md.mems[m.ID]; ms != nil {
				m = ms.m
			}
		}
		r.checkReturned(what, p, ch, m)
	}
}

// predictAdd says how an add must end: the outcome class, the id of the
// memory a duplicate returns, and the access entity of a new memory.
func (r *propRun) predictAdd(p *principal, ch channel, in memory.Input) (want, dupID, entity string) {
	if missingScope(p, ch, opAdd) != "" {
		return eScope, "", ""
	}
	entity = in.AccessEntity
	if entity == "" {
		var class string
		if entity, class = resolve(p, in.Scope); class != "" {
			return class, "", ""
		}
	}
	if memory.ValidEntity(entity) != nil || !kindFits(entity, in.Scope) {
		return eInvalid, "", ""
	}
	if !writable(p, entity) {
		return eForbid, "", ""
	}
	hash := memory.ContentHash(in.Content)
	if in.IdempotencyKey != "" {
		if id, ok := r.md.keys[p.OrgID+"|"+in.IdempotencyKey]; ok {
			prev := r.md.mems[id]
			if prev.hash != hash || prev.m.AccessEntity != entity {
				return eConflict, "", ""
			}
			return okDup, id, entity
		}
	}
	if id, ok := r.md.live[p.OrgID+"|"+entity+"|"+hash]; ok {
		return okDup, id, entity
	}
	return okCreated, "", entity
}

func (r *propRun) get(p *principal, ch channel) {
	id := r.target()
	want := okDone
	ms := r.md.mems[id]
	switch {
	case missingScope(p, ch, opGet) != "":
		want = eScope
	case ms == nil || !p.sees(ms.m) || ms.m.State == memory.StateDeleted:
		want = eNotFound
	}
	m, raw, err := ch.get(r.t, p, id)
	what := "get " + id
	if r.sameClass(what, p, ch, want, err, raw) && want == okDone {
		r.checkReturned(what, p, ch, m)
		if m.ID != id {
			r.errorf("%s via %s as %s: returned %s", what, ch.name(), p.name, m.ID)
		}
	}
	r.checkRaw(what, p, ch, raw, id)
}

// randomPatch changes content (sometimes to another memory's), category,
// tags, or moves the memory to a random entity.
func (r *propRun) randomPatch() (memory.Patch, string) {
	var patch memory.Patch
	switch r.rng.IntN(5) {
	case 0:
		c := r.content()
		if r.rng.Float64() < 0.3 && len(r.md.ids) > 0 {
			c = r.md.mems[pick(r, r.md.ids)].m.Content
		}
		patch.Content = &c
		return patch, "content"
	case 1:
		c := pick(r, memory.Categories)
		patch.Category = &c
		return patch, "category"
	case 2:
		tags := maps.Clone(pick(r, tagSets))
		if tags == nil {
			tags = map[string]any{}
		}
		patch.Tags = &tags
		return patch, "tags"
	}
	e, s := r.randomEntity()
	patch.AccessEntity, patch.Scope = &e, &s
	return patch, "move to " + e
}

// predictWrite says how an update, state change or delete of id must end.
func (r *propRun) predictWrite(op opKind, p *principal, ch channel, id string, patch memory.Patch, action memory.Action) string {
	if missingScope(p, ch, op) != "" {
		return eScope
	}
	ms := r.md.mems[id]
	if ms == nil || !p.sees(ms.m) || ms.m.State == memory.StateDeleted {
		return eNotFound
	}
	switch op {
	case opDelete:
		return okDone
	case opTransition:
		from := map[memory.Action][]memory.State{
			memory.ActionPause: {memory.StateActive}, memory.ActionArchive: {memory.StateActive, memory.StatePaused},
			memory.ActionRestore: {memory.StatePaused, memory.StateArchived},
		}[action]
		if !slices.Contains(from, ms.m.State) {
			return eConflict
		}
		return okDone
	}
	if ms.m.State == memory.StateArchived {
		return eConflict
	}
	after := ms.m
	if patch.Content != nil {
		after.Content = strings.TrimSpace(*patch.Content)
	}
	if patch.Scope != nil {
		after.Scope = *patch.Scope
	}
	if patch.AccessEntity != nil {
		after.AccessEntity = *patch.AccessEntity
	}
	if !kindFits(after.AccessEntity, after.Scope) {
		return eInvalid
	}
	if !writable(p, after.AccessEntity) {
		return eForbid
	}
	if other, ok := r.md.live[liveKey(after, memory.ContentHash(after.Content))]; ok && other != id {
		return eConflict
	}
	return okDone
}

func (r *propRun) write(op opKind, p *principal, ch channel) {
	id := r.target()
	var (
		patch  memory.Patch
		action memory.Action
		what   string
	)
	switch op {
	case opUpdate:
		var desc string
		patch, desc = r.randomPatch()
		what = "update " + id + " (" + desc + ")"
	case opTransition:
		action = pick(r, memory.Actions)
		what = string(action) + " " + id
	case opDelete:
		what = "delete " + id
	}
	want := r.predictWrite(op, p, ch, id, patch, action)
	var (
		m   memory.Memory
		raw []byte
		err error
	)
	switch op {
	case opUpdate:
		m, raw, err = ch.update(r.t, p, id, patch)
	case opTransition:
		m, raw, err = ch.transition(r.t, p, id, action)
	case opDelete:
		raw, err = ch.remove(r.t, p, id)
	}
	sent := []string{id}
	if patch.Content != nil {
		sent = append(sent, *patch.Content)
	}
	ok := r.sameClass(what, p, ch, want, err, raw)
	ms := r.md.mems[id]
	if !ok || want != okDone {
		r.unchanged(what, p, ch, id)
		r.checkRaw(what, p, ch, raw, sent...)
		return
	}
	entity := ms.m.AccessEntity
	if patch.AccessEntity != nil {
		entity = *patch.AccessEntity
	}
	stored, n, err := r.readBack(memory.Memory{ID: id, OrgID: ms.m.OrgID, AccessEntity: entity})
	if err != nil || n != ms.history+1 {
		r.errorf("%s via %s as %s: after it, the memory reads back with %d history entries (was %d), err %v", what, ch.name(), p.name, n, ms.history, err)
		return
	}
	r.md.set(stored, n)
	if m.ID != "" {
		r.checkReturned(what, p, ch, m)
	}
	r.checkRaw(what, p, ch, raw, sent...)
	// A memory the caller may see is still returned by get, unless it is
	// now deleted or moved away.
	if p.sees(stored) && stored.State != memory.StateDeleted {
		if _, err := r.srv.svc.Get(p.ctx(r.t.Context()), id, memory.ViaREST); err != nil {
			r.errorf("%s via %s as %s: the caller can no longer get it: %v", what, ch.name(), p.name, err)
		}
	}
}

func (r *propRun) history(p *principal, ch channel) {
	id := r.target()
	want := okDone
	ms := r.md.mems[id]
	switch {
	case missingScope(p, ch, opHistory) != "":
		want = eScope
	case ms == nil || !p.sees(ms.m):
		want = eNotFound
	}
	n, raw, err := ch.history(r.t, p, id)
	what := "history of " + id
	if r.sameClass(what, p, ch, want, err, raw) && want == okDone && n != ms.history {
		r.errorf("%s via %s as %s: %d entries, want %d", what, ch.name(), p.name, n, ms.history)
	}
	// History holds the memory before and after each change: contents it
	// had (the model keeps the unique words of every content a memory
	// had), and nothing of other memories.
	if want == okDone {
		for _, mk := range markerRE.FindAllString(string(raw), -1) {
			if !slices.Contains(r.md.markers[mk], id) {
				r.errorf("%s via %s as %s: holds %s, which this memory never held", what, ch.name(), p.name, mk)
			}
		}
		raw = markerRE.ReplaceAll(raw, nil)
	}
	r.checkRaw(what, p, ch, raw, id)
}

// randomFilter builds list and search filters; access_entity only where
// the channel has it.
func (r *propRun) randomFilter(ch channel) memory.Filter {
	var f memory.Filter
	if r.rng.Float64() < 0.3 {
		for _, s := range memory.States {
			if r.rng.Float64() < 0.5 {
				f.States = append(f.States, s)
			}
		}
	}
	if r.rng.Float64() < 0.15 {
		f.Categories = []memory.Category{pick(r, memory.Categories), pick(r, memory.Categories)}
	}
	if r.rng.Float64() < 0.15 {
		f.Scopes = []memory.Scope{pick(r, memory.Scopes), pick(r, memory.Scopes)}
	}
	if r.rng.Float64() < 0.2 && ch.name() != "mcp" {
		f.AccessEntity = pick(r, universe())
	}
	if r.rng.Float64() < 0.1 {
		f.App = pick(r, propApps)
	}
	if r.rng.Float64() < 0.1 {
		f.Entity = pick(r, propEntities)
	}
	if r.rng.Float64() < 0.1 {
		f.Tags = []string{pick(r, tagFilters)}
	}
	if r.rng.Float64() < 0.05 && len(r.md.ids) > 0 {
		at := r.md.mems[pick(r, r.md.ids)].m.CreatedAt
		if r.rng.IntN(2) == 0 {
			f.CreatedAfter = &at
		} else {
			f.CreatedBefore = &at
		}
	}
	return f
}

// matches is the filter as the stores apply it.
func matches(f memory.Filter, m memory.Memory) bool {
	if len(f.States) > 0 && !slices.Contains(f.States, m.State) || len(f.States) == 0 && m.State == memory.StateDeleted {
		return false
	}
	if len(f.Categories) > 0 && !slices.Contains(f.Categories, m.Category) || len(f.Scopes) > 0 && !slices.Contains(f.Scopes, m.Scope) {
		return false
	}
	if f.AccessEntity != "" && m.AccessEntity != f.AccessEntity || f.App != "" && m.App != f.App || f.Entity != "" && m.Entity != f.Entity {
		return false
	}
	if f.CreatedAfter != nil && !m.CreatedAt.After(*f.CreatedAfter) || f.CreatedBefore != nil && !m.CreatedAt.Before(*f.CreatedBefore) {
		return false
	}
	for _, tf := range f.Tags {
		k, v, hasValue := strings.Cut(tf, "=")
		tv, ok := m.Tags[k]
		if !ok {
			return false
		}
		if s, isString := tv.(string); hasValue && (!isString || s != v) {
			return false
		}
	}
	return true
}

// expected lists the memories p may see that match f.
func (r *propRun) expected(p *principal, f memory.Filter) []string {
	var out []string
	for _, id := range r.md.ids {
		if ms := r.md.mems[id]; p.sees(ms.m) && matches(f, ms.m) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (r *propRun) list(p *principal, ch channel) {
	q := memory.ListQuery{Filter: r.randomFilter(ch), Sort: pick(r, memory.Sorts), Limit: 1 + r.rng.IntN(60)}
	want := r.expected(p, q.Filter)
	what := fmt.Sprintf("list %+v sort %s limit %d", q.Filter, q.Sort, q.Limit)
	if missingScope(p, ch, opList) != "" {
		_, _, raw, err := ch.list(r.t, p, q)
		r.sameClass(what, p, ch, eScope, err, raw)
		r.checkRaw(what, p, ch, raw)
		return
	}
	all := len(want) <= 4*q.Limit
	var got []string
	var prev *mstate
	for page := 0; ; page++ {
		ms, next, raw, err := ch.list(r.t, p, q)
		if !r.sameClass(what, p, ch, okDone, err, raw) {
			return
		}
		r.checkRaw(what, p, ch, raw)
		if len(ms) > q.Limit || (next != "" && len(ms) != q.Limit) {
			r.errorf("%s via %s as %s: page of %d with next cursor %q", what, ch.name(), p.name, len(ms), next)
		}
		for _, m := range ms {
			r.checkReturned(what, p, ch, m)
			cur := r.md.mems[m.ID]
			if cur == nil {
				continue
			}
			if !matches(q.Filter, cur.m) {
				r.errorf("%s via %s as %s: returned %s, which the filter excludes", what, ch.name(), p.name, m.ID)
			}
			if prev != nil && !inOrder(q.Sort, prev.m, cur.m) {
				r.errorf("%s via %s as %s: %s before %s is out of %s order", what, ch.name(), p.name, prev.m.ID, m.ID, q.Sort)
			}
			prev = cur
			got = append(got, m.ID)
		}
		if next == "" || (!all && page == 1) {
			break
		}
		q.Cursor = next
	}
	if all {
		slices.Sort(got)
		if !slices.Equal(got, want) {
			r.errorf("%s via %s as %s: returned %d memories, the model says %d: missing %v, extra %v", what, ch.name(), p.name,
				len(got), len(want), minus(want, got), minus(got, want))
		}
	}
}

func inOrder(sort string, a, b memory.Memory) bool {
	ta, tb := a.CreatedAt, b.CreatedAt
	if strings.HasSuffix(sort, "updated_at") {
		ta, tb = a.UpdatedAt, b.UpdatedAt
	}
	if strings.HasPrefix(sort, "-") {
		return ta.After(tb) || ta.Equal(tb) && a.ID > b.ID
	}
	return ta.Before(tb) || ta.Equal(tb) && a.ID < b.ID
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func (r *propRun) search(p *principal, ch channel) {
	q := memory.SearchQuery{Filter: r.randomFilter(ch), Limit: 1 + r.rng.IntN(50)}
	marker := ""
	if r.rng.Float64() < 0.4 && len(r.md.ids) > 0 {
		// The unique word of a memory of anyone, anywhere.
		marker = markerRE.FindString(r.md.mems[pick(r, r.md.ids)].m.Content)
		q.Text = marker
	} else {
		for range 1 + r.rng.IntN(3) {
			q.Text += pick(r, words) + " "
		}
	}
	// include_cold searches through the store instead of the in-process
	// index: the same rules must hold.
	q.IncludeCold = r.rng.Float64() < 0.3
	what := fmt.Sprintf("search %q %+v limit %d include_cold %v", q.Text, q.Filter, q.Limit, q.IncludeCold)
	want := okDone
	if missingScope(p, ch, opSearch) != "" {
		want = eScope
	}
	ms, raw, err := ch.search(r.t, p, q)
	if !r.sameClass(what, p, ch, want, err, raw) {
		return
	}
	r.checkRaw(what, p, ch, raw, q.Text)
	if want != okDone {
		return
	}
	var got []string
	for _, m := range ms {
		r.checkReturned(what, p, ch, m)
		if cur := r.md.mems[m.ID]; cur != nil && !matches(q.Filter, cur.m) {
			r.errorf("%s via %s as %s: returned %s, which the filter excludes", what, ch.name(), p.name, m.ID)
		}
		got = append(got, m.ID)
	}
	if len(got) > q.Limit {
		r.errorf("%s via %s as %s: %d hits over the limit", what, ch.name(), p.name, len(got))
	}
	if marker == "" {
		return
	}
	// A unique word finds exactly the visible memories that hold it.
	var exp []string
	for _, id := range r.md.markers[marker] {
		ms := r.md.mems[id]
		if p.sees(ms.m) && matches(q.Filter, ms.m) && strings.Contains(ms.m.Content, marker) {
			exp = append(exp, id)
		}
	}
	slices.Sort(exp)
	slices.Sort(got)
	if len(exp) <= q.Limit && !slices.Equal(got, exp) {
		r.errorf("%s via %s as %s (grants %q): found %v, the model says %v", what, ch.name(), p.name, p.Grants, got, exp)
		for _, id := range exp {
			r.t.Logf("  %s: %+v", id, r.md.mems[id].m)
		}
	}
}

func (r *propRun) apps(p *principal, ch channel) {
	want := okDone
	if missingScope(p, ch, opApps) != "" {
		want = eScope
	}
	apps, raw, err := ch.apps(r.t, p)
	if !r.sameClass("apps", p, ch, want, err, raw) || want != okDone {
		return
	}
	got, exp := map[string]int{}, map[string]int{}
	for _, a := range apps {
		got[a.App] = a.Memories
	}
	for _, ms := range r.md.mems {
		if p.sees(ms.m) && ms.m.State != memory.StateDeleted && ms.m.App != "" {
			exp[ms.m.App]++
		}
	}
	if !maps.Equal(got, exp) {
		r.errorf("apps via %s as %s: %v, the model says %v", ch.name(), p.name, got, exp)
	}
}

func (r *propRun) stats(p *principal, ch channel) {
	want := okDone
	if missingScope(p, ch, opStats) != "" {
		want = eScope
	}
	got, raw, err := ch.stats(r.t, p)
	if !r.sameClass("stats", p, ch, want, err, raw) || want != okDone {
		return
	}
	exp := memory.Stats{ByState: map[string]int{}, ByCategory: map[string]int{}, ByScope: map[string]int{}}
	for _, ms := range r.md.mems {
		if !p.sees(ms.m) {
			continue
		}
		exp.ByState[string(ms.m.State)]++
		if ms.m.State == memory.StateDeleted {
			continue
		}
		exp.Total++
		exp.ByScope[string(ms.m.Scope)]++
		if ms.m.Category != "" {
			exp.ByCategory[string(ms.m.Category)]++
		}
	}
	if got.Total != exp.Total || !maps.Equal(got.ByState, exp.ByState) || !maps.Equal(got.ByScope, exp.ByScope) || !maps.Equal(got.ByCategory, exp.ByCategory) {
		r.errorf("stats via %s as %s: %+v, the model says %+v", ch.name(), p.name, got, exp)
	}
}

// reconcile compares the whole store with the model: every org's memories,
// in every state, field by field (and, at the end, their history lengths);
// and every principal gets a sample of the memories it may see.
func (r *propRun) reconcile(withHistory bool) {
	r.t.Helper()
	ctx := r.t.Context()
	seen := 0
	for _, org := range propOrgs {
		all := memory.Access{OrgID: org, Prefixes: []string{"user:", "team:", "project:", "org:"}}
		q := memory.ListQuery{Filter: memory.Filter{States: memory.States}, Sort: memory.SortCreatedAsc, Limit: memory.MaxListLimit}
		for {
			ms, next, err := r.srv.store.List(ctx, all, q)
			if err != nil {
				r.t.Fatalf("reconcile: list %s: %v", org, err)
			}
			for _, m := range ms {
				seen++
				want, ok := r.md.mems[m.ID]
				switch {
				case !ok:
					r.errorf("reconcile: the store holds memory %s of %s/%s that no accepted operation made", m.ID, m.OrgID, m.AccessEntity)
				case m.OrgID != org || !reflect.DeepEqual(m, want.m):
					r.errorf("reconcile: memory %s in %s is %s/%s/%s %q, the model says %s/%s/%s %q", m.ID, org,
						m.OrgID, m.AccessEntity, m.State, m.Content, want.m.OrgID, want.m.AccessEntity, want.m.State, want.m.Content)
				case withHistory:
					if _, n, err := r.readBack(m); err != nil || n != want.history {
						r.errorf("reconcile: memory %s has %d history entries (err %v), the model says %d", m.ID, n, err, want.history)
					}
				}
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
	}
	if seen != len(r.md.ids) {
		r.errorf("reconcile: the store holds %d memories, the model %d", seen, len(r.md.ids))
	}
	for _, p := range r.principals {
		var live []string
		for _, id := range r.md.ids {
			if ms := r.md.mems[id]; p.sees(ms.m) && ms.m.State != memory.StateDeleted {
				live = append(live, id)
			}
		}
		for range min(len(live), 10) {
			id := pick(r, live)
			if _, err := r.srv.svc.Get(p.ctx(ctx), id, memory.ViaREST); err != nil {
				r.errorf("reconcile: %s cannot get memory %s it may see: %v", p.name, id, err)
			}
		}
	}
}
