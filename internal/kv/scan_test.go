package kv_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/redistest"
)

// scanContract: Keys lists values and buckets under a prefix, with glob
// characters taken literally; Forget removes both.
func scanContract(t *testing.T, s interface {
	kv.Store
	kv.Scanner
}) {
	ctx := context.Background()
	for _, k := range []string{"mcp:session:a", "mcp:session:b", "mcp:other", "rl:*x"} {
		if err := s.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Allow(ctx, "rl:bucket", 1, 1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Keys(ctx, "mcp:session:")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mcp:session:a", "mcp:session:b"}; !slices.Equal(got, want) {
		t.Errorf("Keys(mcp:session:) = %v, want %v", got, want)
	}
	got, _ = s.Keys(ctx, "rl:")
	if want := []string{"rl:*x", "rl:bucket"}; !slices.Equal(got, want) {
		t.Errorf("Keys(rl:) = %v, want %v", got, want)
	}
	got, _ = s.Keys(ctx, "rl:*")
	if want := []string{"rl:*x"}; !slices.Equal(got, want) {
		t.Errorf("Keys(rl:*) = %v, want %v (a * in the prefix is literal)", got, want)
	}
	if err := s.Forget(ctx, "rl:bucket", "mcp:session:a"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Keys(ctx, "")
	if want := []string{"mcp:other", "mcp:session:b", "rl:*x"}; !slices.Equal(got, want) {
		t.Errorf("after Forget, Keys() = %v, want %v", got, want)
	}
}

func TestMemoryKeys(t *testing.T) { scanContract(t, kv.NewMemory(nil)) }

func TestValkeyKeys(t *testing.T) {
	srv := redistest.New(t)
	s, err := kv.NewValkey(srv.URL(), "scan:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	scanContract(t, s)
}
