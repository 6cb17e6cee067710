package gdpr_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// privacyStore is a store the benchmarks erase from.
type privacyStore interface {
	memory.Store
	gdpr.Store
}

// seed writes memories memories in one org: subjects u0…u(subjects-1)
// write in turn, half of them to the team, and every tenth names the next
// subject; each subject searches once (access-log rows).
func seed(b *testing.B, st memory.Store, memories, subjects int) {
	svc := memory.NewService(st, memory.Options{})
	ctx := b.Context()
	for i := range memories {
		sub := fmt.Sprintf("u%d", i%subjects)
		p := auth.Principal{Subject: sub, OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"team:acme/all"}}
		in := memory.Input{Content: fmt.Sprintf("note %d about service s%d and its deploys", i, i%97), Scope: "user"}
		if i%2 == 0 {
			in.AccessEntity, in.Scope = "team:acme/all", "team"
		}
		if i%10 == 0 {
			in.Content += fmt.Sprintf("; ask u%d", (i+1)%subjects)
		}
		if _, _, err := svc.Add(auth.WithPrincipal(ctx, p), in); err != nil {
			b.Fatal(err)
		}
	}
	for s := range subjects {
		p := auth.Principal{Subject: fmt.Sprintf("u%d", s), OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"team:acme/all"}}
		if _, err := svc.Search(auth.WithPrincipal(ctx, p), memory.SearchQuery{Text: "deploys"}, memory.ViaREST); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPrivacy reports the export, check and erasure of one subject among
// subjects writing memories memories: each iteration erases another one.
func benchPrivacy(b *testing.B, st privacyStore, memories, subjects int) {
	seed(b, st, memories, subjects)
	svc := gdpr.New(st, gdpr.Options{})
	b.Run("Export", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Export(b.Context(), gdpr.Subject{OrgID: "acme", ID: "u1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Check(b.Context(), gdpr.Subject{OrgID: "acme", ID: "u1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Erase", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if i >= subjects {
				b.Fatal("more iterations than subjects; use -benchtime=Nx with N below the subject count")
			}
			res, err := svc.Erase(b.Context(), gdpr.EraseRequest{Subject: gdpr.Subject{OrgID: "acme", ID: fmt.Sprintf("u%d", i)}, Reason: "bench"})
			if err != nil || !res.Check.Clean {
				b.Fatalf("erase: %+v, %v", res.Check, err)
			}
			i++
		}
	})
}

// go test ./internal/gdpr -run '^$' -bench Privacy -benchtime 3x
func BenchmarkPrivacySQLite(b *testing.B) {
	st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchPrivacy(b, st, 10000, 10)
}

func BenchmarkPrivacyPostgres(b *testing.B) {
	url := pgtest.Database(b)
	st, err := postgres.Open(b.Context(), postgres.Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	benchPrivacy(b, st, 10000, 10)
}
