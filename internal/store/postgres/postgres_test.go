package postgres_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openStore opens a migrated store on url and closes it when the test ends.
func openStore(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, StatementTimeout: time.Minute})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) memory.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: pgtest.Database(t)})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if _, err := s.Migrate(t.Context()); err != nil {
			s.Close()
			t.Fatalf("migrate: %v", err)
		}
		return s
	})
}

func TestOpenUnreachable(t *testing.T) {
	// Nothing listens on port 1.
	_, err := postgres.Open(t.Context(), postgres.Config{
		URL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable", ConnectTimeout: 2 * time.Second,
	})
	if !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("open of an unreachable server: got %v, want ErrUnavailable", err)
	}
	if _, err := postgres.Open(t.Context(), postgres.Config{}); err == nil {
		t.Error("open without a URL: no error")
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s := openStore(t, pgtest.Database(t))
	s.Close()
	_, err := s.Get(t.Context(), memory.Access{OrgID: "acme", Entities: []string{"user:alice"}}, "x")
	if !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("get on a closed store: got %v, want ErrUnavailable", err)
	}
}

// TestServerRestart stops the server under an open store: reads fail as
// unavailable; once the server is back, the same store works again without
// being reopened.
func TestServerRestart(t *testing.T) {
	c := pgtest.New(t)
	// The test cluster commits asynchronously and Stop is an immediate
	// shutdown: make this store's commits durable, so they survive it.
	s := openStore(t, pgtest.CreateDatabase(t, c.URL("postgres"))+"&synchronous_commit=on")
	p := auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes}
	ctx := auth.WithPrincipal(t.Context(), p)
	svc := memory.NewService(s, memory.Options{})
	m, _, err := svc.Add(ctx, memory.Input{Content: "the store survives a server restart"})
	if err != nil {
		t.Fatal(err)
	}
	a := memory.AccessFor(p)

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // a stale pooled connection, then dial failures
		if _, err := s.Get(ctx, a, m.ID); !errors.Is(err, memory.ErrUnavailable) {
			t.Errorf("get %d with the server down: got %v, want ErrUnavailable", i, err)
		}
	}
	if err := s.Ping(ctx); !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("ping with the server down: got %v, want ErrUnavailable", err)
	}
	if _, _, err := svc.Add(ctx, memory.Input{Content: "written while down"}); !errors.Is(err, memory.ErrUnavailable) {
		t.Errorf("add with the server down: got %v, want ErrUnavailable", err)
	}

	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, a, m.ID)
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if got.Content != m.Content {
		t.Errorf("get after restart: %q", got.Content)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping after restart: %v", err)
	}
	if _, created, err := svc.Add(ctx, memory.Input{Content: "written after restart"}); err != nil || !created {
		t.Errorf("add after restart: created=%v err=%v", created, err)
	}
}
