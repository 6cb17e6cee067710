package lexindex

// Benchmarks of the index alone at 100k memories of one org, with words
// drawn Zipf-distributed from an 8,000-word vocabulary (as the service
// benchmarks in internal/retrieval draw them):
//
//	go test ./internal/retrieval/lexindex -run '^$' -bench . -benchtime 1000x

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

const benchN = 100_000

func benchVocabulary() []string {
	syl := strings.Fields("ka lo mi nu pe ra si to vu xe ba co di fu ga he ji ke la mo ne pi qu re so ti ul va we yo za")
	r := rand.New(rand.NewPCG(11, 12))
	seen := map[string]bool{}
	var out []string
	for len(out) < 8000 {
		w := syl[r.IntN(len(syl))] + syl[r.IntN(len(syl))] + syl[r.IntN(len(syl))]
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

type benchCorpus struct {
	vocab []string
	docs  []memory.Memory
}

func newBenchCorpus() *benchCorpus {
	c := &benchCorpus{vocab: benchVocabulary()}
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.07, 4, uint64(len(c.vocab)-1))
	reasons := strings.Fields("latency cost compliance reliability throughput correctness security simplicity")
	for i := range benchN {
		ws := make([]string, 8+r.IntN(10))
		for j := range ws {
			ws[j] = c.vocab[z.Uint64()]
		}
		entity := "org:acme"
		if i%10 < 3 {
			entity = fmt.Sprintf("team:acme/t%d", i%7)
		}
		m := mem("acme", fmt.Sprintf("m%06d", i), entity, fmt.Sprintf("The service uses %s. We retry it every %d minutes because of %s.",
			strings.Join(ws, " "), 1+r.IntN(60), reasons[r.IntN(len(reasons))]))
		m.Entity = "payments"
		m.Tags = map[string]any{"kafka": true}
		c.docs = append(c.docs, m)
	}
	return c
}

func BenchmarkIndex(b *testing.B) {
	c := newBenchCorpus()
	ix := New()
	start := time.Now()
	for _, m := range c.docs {
		ix.Upsert(m)
	}
	b.Logf("indexed %d memories in %v, %d MiB", benchN, time.Since(start).Round(time.Millisecond), ix.Bytes()>>20)
	b.Run("upsert", func(b *testing.B) {
		i := 0
		for b.Loop() {
			m := c.docs[i%benchN]
			m.Content += " changed"
			ix.Upsert(m)
			i++
		}
	})
	for _, who := range []struct {
		name string
		a    memory.Access
	}{
		{"org", memory.Access{OrgID: "acme", Entities: []string{"org:acme"}, Prefixes: []string{"team:acme/"}}},
		{"team", memory.Access{OrgID: "acme", Entities: []string{"team:acme/t3"}}},
	} {
		b.Run("search/access="+who.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			var lat []time.Duration
			var st Stats
			for b.Loop() {
				d := c.docs[r.IntN(benchN)]
				ws := words(d.Content)
				q := "how do we handle " + ws[3] + " " + ws[4] + " " + ws[len(ws)-1]
				t := time.Now()
				_, s := ix.Search(who.a, memory.Filter{}, q, 20)
				lat = append(lat, time.Since(t))
				st.Scored += s.Scored
				st.Postings += s.Postings
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(st.Scored)/float64(len(lat)), "scored/op")
			b.ReportMetric(float64(st.Postings)/float64(len(lat)), "postings/op")
		})
	}
}
