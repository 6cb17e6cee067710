package lexindex

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func mem(org, id, entity, content string) memory.Memory {
	return memory.Memory{ID: id, OrgID: org, AccessEntity: entity, Content: content, State: memory.StateActive,
		Scope: "org", CreatedAt: t0, UpdatedAt: t0}
}

func org(id string) memory.Access { return memory.Access{OrgID: id, Entities: []string{"org:" + id}} }

func ids(hs []Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

func search(ix *Index, a memory.Access, f memory.Filter, text string, k int) []Hit {
	hs, _ := ix.Search(a, f, text, k)
	return hs
}

// TestRankingInvariants: a word in fewer memories counts more, a word said
// twice more than once, a short memory more than a long one with the same
// words, the entity more than the content, a phrase match first whatever
// its BM25, stop words only when nothing else is asked, stems match.
func TestRankingInvariants(t *testing.T) {
	ix := New()
	a := org("acme")
	filler := " Unrelated words about lunch menus and office plants."
	add := func(id, content string) {
		ix.Upsert(mem("acme", id, "org:acme", content))
	}
	for i := range 20 {
		add(fmt.Sprintf("common%02d", i), "The reporting service"+strings.Repeat(filler, i%3))
	}
	for i := range 4 {
		add(fmt.Sprintf("ledger%d", i), "The ledger service has owners.")
	}
	add("rare", "Rotate the kafka credentials of the ledger.")
	add("twice", "Kafka consumers and kafka producers share one pool.")
	add("once", "Kafka consumers share one pool and one queue of work.")
	add("short", "Vacuum the replicas nightly.")
	add("long", "Vacuum the replicas nightly."+filler+filler+filler)
	entity := mem("acme", "entity", "org:acme", "Notes on the nightly job.")
	entity.Entity = "flamingo"
	ix.Upsert(entity)
	add("content", "The flamingo dashboard is owned by data.")
	add("phrase", "Green blue deploys are routine."+filler+filler)
	add("bm25", "Blue green deploys and blue green rollouts, green first.")
	add("stems", "We were deploying the gateway twice a day.")

	for _, c := range []struct {
		query string
		want  []string // the head of the ranking
	}{
		{"kafka ledger", []string{"rare"}},             // both words; kafka is rarer than ledger
		{"kafka pool", []string{"twice", "once"}},      // tf
		{"vacuum replicas", []string{"short", "long"}}, // length
		{"flamingo", []string{"entity", "content"}},    // field weight
		{"green blue", []string{"phrase", "bm25"}},     // phrase first
		{"deploys gateway", []string{"stems"}},         // deploying ~ deploys
	} {
		got := ids(search(ix, a, memory.Filter{}, c.query, 10))
		if len(got) < len(c.want) || !slices.Equal(got[:len(c.want)], c.want) {
			t.Errorf("%q: got %v, want %v first", c.query, got, c.want)
		}
	}
	hs := search(ix, a, memory.Filter{}, "green blue", 2)
	if hs[0].Score <= 1 || hs[1].Score >= 1 || hs[1].Score <= 0 {
		t.Errorf("scores %v: want a phrase match above 1 and the other in (0, 1)", hs)
	}
	// Stop words are left out while other words remain, and are searched
	// when they are all there is.
	if got := ids(search(ix, a, memory.Filter{}, "the vacuum", 10)); !slices.Equal(got, []string{"short", "long"}) {
		t.Errorf("the vacuum: got %v", got)
	}
	if got := search(ix, a, memory.Filter{}, "were", 50); len(got) != 1 || got[0].ID != "stems" {
		t.Errorf("were: got %v", ids(got))
	}
	if got := search(ix, a, memory.Filter{}, "…", 5); len(got) != 0 {
		t.Errorf("no words: got %v", ids(got))
	}
}

// TestFilterBeforeTopK: a memory alice may see, behind 1000 better matches
// she may not, is the answer; filtered-out ones never are.
func TestFilterBeforeTopK(t *testing.T) {
	ix := New()
	for i := range 1000 {
		ix.Upsert(mem("acme", fmt.Sprintf("bob%04d", i), "user:bob", "Deploy the ledger service with blue green switching, ledger ledger."))
	}
	mine := mem("acme", "alice", "user:alice", "Ledger deploys: switch traffic after the smoke tests pass, and other words to make it longer.")
	mine.Category = "runbook"
	ix.Upsert(mine)
	alice := memory.Access{OrgID: "acme", Entities: []string{"user:alice"}}
	for _, k := range []int{1, 10} {
		if got := ids(search(ix, alice, memory.Filter{}, "deploy the ledger service with blue green switching", k)); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("k=%d: got %v, want alice's memory only", k, got)
		}
	}
	everyone := memory.Access{OrgID: "acme", Prefixes: []string{"user:"}}
	if got := ids(search(ix, everyone, memory.Filter{Categories: []memory.Category{"runbook"}}, "ledger", 3)); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("category filter: got %v", got)
	}
	if got := search(ix, everyone, memory.Filter{Categories: []memory.Category{"decision"}}, "ledger", 3); len(got) != 0 {
		t.Errorf("filtered out: got %v", ids(got))
	}
	if got := search(ix, memory.Access{OrgID: "acme", Entities: []string{"user:carol"}}, memory.Filter{}, "ledger", 3); len(got) != 0 {
		t.Errorf("no grant: got %v", ids(got))
	}
}

// TestTenants: each org sees only its own memories, whatever the access
// entities name.
func TestTenants(t *testing.T) {
	ix := New()
	ix.Upsert(mem("acme", "a1", "org:acme", "Rotate the signing keys every 90 days."))
	ix.Upsert(mem("acme", "a2", "org:acme", "Backups run nightly."))
	for i := range 50 {
		ix.Upsert(mem("globex", fmt.Sprintf("g%d", i), "org:acme", "Rotate the signing keys every 90 days."))
	}
	after := search(ix, org("acme"), memory.Filter{}, "rotate signing keys", 5)
	if !slices.Equal(ids(after), []string{"a1"}) {
		t.Errorf("acme: got %v", ids(after))
	}
	if got := search(ix, memory.Access{OrgID: "initech", Entities: []string{"org:acme"}}, memory.Filter{}, "rotate", 5); len(got) != 0 {
		t.Errorf("another org: got %v", ids(got))
	}
}

// TestUpdatesAndDeletes: new content replaces the old words, a change of
// state or access entity is seen at once, a deleted memory is gone, and
// memories added after removals keep the postings in order.
func TestUpdatesAndDeletes(t *testing.T) {
	ix := New()
	a := org("acme")
	for i := range 10 {
		ix.Upsert(mem("acme", fmt.Sprintf("m%d", i), "org:acme", fmt.Sprintf("Filler memory number %d about queues.", i)))
	}
	m := mem("acme", "x", "org:acme", "We use Kafka for events.")
	ix.Upsert(m)
	m.Content = "We use NATS for events."
	ix.Upsert(m)
	if got := search(ix, a, memory.Filter{}, "kafka", 5); len(got) != 0 {
		t.Errorf("old content still found: %v", ids(got))
	}
	if got := ids(search(ix, a, memory.Filter{}, "nats", 5)); !slices.Equal(got, []string{"x"}) {
		t.Errorf("new content: got %v", got)
	}
	m.State = memory.StateArchived
	ix.Upsert(m)
	if got := search(ix, a, memory.Filter{States: []memory.State{memory.StateActive}}, "nats", 5); len(got) != 0 {
		t.Errorf("archived found among active ones: %v", ids(got))
	}
	if got := ids(search(ix, a, memory.Filter{States: []memory.State{memory.StateArchived}}, "nats", 5)); !slices.Equal(got, []string{"x"}) {
		t.Errorf("archived filter: got %v", got)
	}
	m.State, m.AccessEntity = memory.StateActive, "team:acme/t1"
	if !ix.SetFields(m) {
		t.Fatal("SetFields: not held")
	}
	if got := search(ix, a, memory.Filter{}, "nats", 5); len(got) != 0 {
		t.Errorf("moved to a team, still seen org-wide: %v", ids(got))
	}
	if !ix.Remove("acme", "m3") || ix.Remove("acme", "m3") || ix.Has("acme", "m3") || ix.Len() != 10 {
		t.Errorf("remove: len %d", ix.Len())
	}
	m.State = memory.StateDeleted
	ix.Upsert(m)
	if ix.Has("acme", "x") || ix.Len() != 9 {
		t.Errorf("deleted memory held; len %d", ix.Len())
	}
	ix.Upsert(mem("acme", "late1", "org:acme", "Late memory about queues and filler."))
	ix.Upsert(mem("acme", "late2", "org:acme", "Another late one about memory numbers."))
	for _, sh := range ix.orgs {
		for _, p := range sh.post {
			if !slices.IsSorted(p.docs) || len(p.docs) != len(p.tf) {
				t.Fatalf("postings out of order: %v", p.docs)
			}
		}
	}
	got := ids(search(ix, a, memory.Filter{}, "late queues", 3))
	if len(got) == 0 || got[0] != "late1" {
		t.Errorf("after reuse: got %v", got)
	}
}

// TestAgreesWithExhaustive: on a random corpus with Zipf-distributed words,
// access entities and categories, MaxScore returns exactly the top k an
// exhaustive BM25 ranking of the visible memories gives, for many queries,
// principals and k.
func TestAgreesWithExhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vocab := make([]string, 500)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dx", i)
	}
	z := rand.NewZipf(r, 1.1, 2, uint64(len(vocab)-1))
	ix := New()
	var all []memory.Memory
	for i := range 3000 {
		ws := make([]string, 3+r.IntN(20))
		for j := range ws {
			ws[j] = vocab[z.Uint64()]
		}
		m := mem("acme", fmt.Sprintf("m%05d", i), fmt.Sprintf("team:t%d", i%5), strings.Join(ws, " "))
		m.Category = memory.Categories[i%3]
		if i%7 == 0 {
			m.Entity = vocab[z.Uint64()]
		}
		ix.Upsert(m)
		all = append(all, m)
	}
	// Churn: remove half, which compacts the shard at least once, and
	// re-add half of those; change the content of some.
	for i := 0; i < len(all); i += 2 {
		ix.Remove("acme", all[i].ID)
	}
	for i := 0; i < len(all); i += 4 {
		ix.Upsert(all[i])
	}
	for i := 1; i < len(all); i += 6 {
		all[i].Content += " " + vocab[z.Uint64()]
		ix.Upsert(all[i])
	}
	sh := ix.orgs["acme"]
	if sh.dead >= 1500 || len(sh.docs) != sh.live+sh.dead {
		t.Fatalf("not compacted: %d live, %d removed, %d numbers", sh.live, sh.dead, len(sh.docs))
	}
	for _, p := range sh.post {
		if !slices.IsSorted(p.docs) || len(p.docs) != len(p.tf) {
			t.Fatalf("postings out of order: %v", p.docs)
		}
	}
	live := map[string]bool{}
	for _, m := range all {
		live[m.ID] = ix.Has("acme", m.ID)
	}
	for q := range 300 {
		n := 1 + r.IntN(4)
		qw := make([]string, n)
		for j := range qw {
			qw[j] = vocab[z.Uint64()]
		}
		text := strings.Join(qw, " ")
		a := memory.Access{OrgID: "acme", Entities: []string{"team:t0", "team:t1", "team:t2", "team:t3", "team:t4"}[:1+q%5]}
		f := memory.Filter{}
		if q%4 == 0 {
			f.Categories = []memory.Category{memory.Categories[q%3]}
		}
		k := []int{1, 5, 10, 50}[q%4]
		got, _ := ix.Search(a, f, text, k)
		want := exhaustive(ix, all, live, a, f, qw, k)
		if len(got) != len(want) {
			t.Fatalf("%q k=%d: got %d hits, want %d", text, k, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || math.Abs(got[i].Score-want[i].Score) > 1e-9 {
				t.Fatalf("%q k=%d: hit %d is %v, want %v", text, k, i, got[i], want[i])
			}
		}
	}
}

// exhaustive scores every visible live memory holding a query word.
func exhaustive(ix *Index, all []memory.Memory, live map[string]bool, a memory.Access, f memory.Filter, qw []string, k int) []Hit {
	sh := ix.orgs["acme"]
	n := float64(sh.live)
	avgdl := float64(ix.stats.totalLen) / n
	df := map[string]float64{}
	for _, m := range all {
		if !live[m.ID] {
			continue
		}
		seen := map[string]bool{}
		for _, w := range append(words(m.Content), words(m.Entity)...) {
			seen[w] = true
		}
		for w := range seen {
			df[w]++
		}
	}
	var out []Hit
	for _, m := range all {
		if !live[m.ID] || !a.Allows(m.AccessEntity) || len(f.Categories) > 0 && !slices.Contains(f.Categories, m.Category) {
			continue
		}
		tf := map[string]float64{}
		length := 0
		for _, w := range words(m.Content) {
			tf[w] += 1
			length++
		}
		for _, w := range words(m.Entity) {
			tf[w] += 1.5
			length++
		}
		norm := k1 * (1 - b + b*float64(length)/avgdl)
		var x float64
		matched := false
		seen := map[string]bool{}
		for _, w := range qw {
			if seen[w] || tf[w] == 0 {
				continue
			}
			seen[w] = true
			matched = true
			idf := math.Log((n - df[w] + 0.5) / (df[w] + 0.5))
			if idf <= 0 {
				idf = 1e-6
			}
			x += idf * tf[w] * (k1 + 1) / (tf[w] + norm)
		}
		if !matched {
			continue
		}
		s := x / (1 + x)
		if len(qw) > 1 && strings.Contains(" "+m.Content+" ", " "+strings.Join(qw, " ")+" ") {
			s++
		}
		out = append(out, Hit{ID: m.ID, Score: s})
	}
	slices.SortFunc(out, func(x, y Hit) int { return cmp.Or(cmp.Compare(y.Score, x.Score), cmp.Compare(x.ID, y.ID)) })
	return out[:min(k, len(out))]
}

// TestConcurrent: searches run while memories are written (go test -race).
func TestConcurrent(t *testing.T) {
	ix := New()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				m := mem("acme", fmt.Sprintf("w%d-%d", w, i), "org:acme", fmt.Sprintf("queue worker %d retries %d", w, i))
				ix.Upsert(m)
				if i%3 == 0 {
					ix.Remove("acme", m.ID)
				}
				search(ix, org("acme"), memory.Filter{}, "queue retries", 5)
			}
		})
	}
	wg.Wait()
	if ix.Len() != 4*200 {
		t.Errorf("len %d, want 800", ix.Len())
	}
}
