package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/redistest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
)

// metric reads a counter or gauge of reg with one label, 0 when absent.
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

// eventually checks cond, running r.Check before each try, until it holds
// or 60s pass (replication and restarts take their own time; nothing is
// asserted about how long).
func eventually(t *testing.T, r *postgres.Routed, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.Check(t.Context())
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 60s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func execOn(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// routed opens the primary (migrating it when asked) and the replica of
// the two clusters and routes reads between them with o; it is closed when
// the test ends.
func routed(t *testing.T, primary, replica *pgtest.Cluster, migrate bool, o postgres.ReplicaOptions) *postgres.Routed {
	t.Helper()
	p, err := postgres.Open(t.Context(), postgres.Config{URL: primary.URL("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	if migrate {
		if _, err := p.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := postgres.OpenReplica(postgres.Config{URL: replica.URL("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := postgres.NewRouted(t.Context(), p, []*postgres.Store{rs}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestReplicaRouting runs a real primary and a streaming replica
// (pg_basebackup -R): reads go to the replica; a principal reads its own
// writes at once, 1,000 times in a row; reads fall back to the primary
// while the replica lags past the bound or is stopped, and return to it
// when it recovers.
func TestReplicaRouting(t *testing.T) {
	primary := pgtest.New(t)
	replica := pgtest.Replica(t, primary)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	// MaxLag is below any lag a check can measure, so a replica that has
	// not replayed everything the primary had at the check gets no reads.
	// Checks run only when the test calls Check.
	r := routed(t, primary, replica, true, postgres.ReplicaOptions{
		MaxLag: time.Microsecond, CheckInterval: time.Hour, BreakerTimeout: 50 * time.Millisecond, Registerer: reg,
	})
	svc := memory.NewService(r, memory.Options{})
	alice := auth.WithPrincipal(ctx, auth.Principal{Subject: "alice", OrgID: "acme", Grants: []string{"org:acme"}})
	bob := auth.WithPrincipal(ctx, auth.Principal{Subject: "bob", OrgID: "acme", Grants: []string{"org:acme"}})
	replicaReads := func() float64 { return metric(t, reg, "codingbrain_db_reads_total", "target", "replica-1") }
	primaryReads := func() float64 { return metric(t, reg, "codingbrain_db_reads_total", "target", "primary") }
	caughtUp := func() bool {
		return metric(t, reg, "codingbrain_db_replica_healthy", "replica", "replica-1") == 1 &&
			metric(t, reg, "codingbrain_db_replica_lag_seconds", "replica", "replica-1") == 0
	}
	eventually(t, r, "the replica replays the migrations", caughtUp)

	// Reads by a principal that has not written go to the replica.
	before, beforePrimary := replicaReads(), primaryReads()
	for range 20 {
		if _, err := svc.List(bob, memory.ListQuery{}, memory.ViaREST); err != nil {
			t.Fatal(err)
		}
	}
	if got := replicaReads() - before; got != 20 || primaryReads() != beforePrimary {
		t.Fatalf("reads served by the replica: %v of 20 (primary %v)", got, primaryReads()-beforePrimary)
	}

	// Read-your-writes: every memory alice adds, she reads back at once.
	const rounds = 1000
	before, beforePrimary = replicaReads(), primaryReads()
	misses := 0
	for i := range rounds {
		m, _, err := svc.Add(alice, memory.Input{Content: "fact number " + time.Now().Format(time.RFC3339Nano), Scope: "org"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Get(alice, m.ID, memory.ViaREST)
		if err != nil || got.Content != m.Content {
			misses++
			t.Errorf("round %d: read of %s after writing it: %v", i, m.ID, err)
		}
		if i%100 == 0 { // the newest memory heads alice's list too
			page, err := svc.List(alice, memory.ListQuery{Limit: 1}, memory.ViaREST)
			if err != nil || len(page.Memories) != 1 || page.Memories[0].ID != m.ID {
				misses++
				t.Errorf("round %d: list after writing %s: %+v %v", i, m.ID, page.Memories, err)
			}
		}
	}
	fromReplica, fromPrimary := replicaReads()-before, primaryReads()-beforePrimary
	t.Logf("read-your-writes: %d rounds, %d misses; reads served by the replica %v, by the primary %v", rounds, misses, fromReplica, fromPrimary)
	if fromReplica+fromPrimary != rounds+rounds/100 {
		t.Errorf("%v reads counted, want %d", fromReplica+fromPrimary, rounds+rounds/100)
	}

	// Once the replica has replayed alice's last write, it serves her reads.
	last := page1(alice, t, svc)
	eventually(t, r, "the replica serves alice once it has her writes", func() bool {
		before := replicaReads()
		got, err := svc.Get(alice, last, memory.ViaREST)
		if err != nil {
			t.Fatalf("alice's read of %s: %v", last, err)
		}
		return got.ID == last && replicaReads() == before+1
	})

	// Replay paused: the replica falls behind the bound; reads go to the
	// primary and see what the replica lacks.
	eventually(t, r, "the replica catches up", caughtUp)
	execOn(t, replica.URL("postgres"), `SELECT pg_wal_replay_pause()`)
	m, _, err := svc.Add(auth.WithPrincipal(ctx, auth.Principal{Subject: "carol", OrgID: "acme", Grants: []string{"org:acme"}}),
		memory.Input{Content: "written while the replica is paused", Scope: "org"})
	if err != nil {
		t.Fatal(err)
	}
	// (The commit is asynchronous here: the check sees it once the WAL
	// writer has written it.)
	eventually(t, r, "the paused replica lags", func() bool {
		return metric(t, reg, "codingbrain_db_replica_lag_seconds", "replica", "replica-1") > 0
	})
	before, beforePrimary = replicaReads(), primaryReads()
	if got, err := svc.Get(bob, m.ID, memory.ViaREST); err != nil || got.ID != m.ID {
		t.Errorf("bob's read while the replica lags: %+v %v", got, err)
	}
	if replicaReads() != before || primaryReads() != beforePrimary+1 ||
		metric(t, reg, "codingbrain_db_read_fallbacks_total", "reason", "lagging") == 0 {
		t.Errorf("a read while the replica lags went to the replica")
	}
	execOn(t, replica.URL("postgres"), `SELECT pg_wal_replay_resume()`)
	eventually(t, r, "the replica catches up after replay resumes", caughtUp)
	before = replicaReads()
	if got, err := svc.Get(bob, m.ID, memory.ViaREST); err != nil || got.ID != m.ID || replicaReads() != before+1 {
		t.Errorf("bob's read after the replica caught up: %+v %v (replica reads %v → %v)", got, err, before, replicaReads())
	}

	// Replica stopped: reads fall back to the primary without an error.
	if err := replica.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		r.Check(ctx)
		before, beforePrimary = replicaReads(), primaryReads()
		if _, err := svc.List(bob, memory.ListQuery{}, memory.ViaREST); err != nil {
			t.Fatalf("a read with the replica stopped: %v", err)
		}
		if replicaReads() != before || primaryReads() != beforePrimary+1 {
			t.Fatalf("a read with the replica stopped was not served by the primary")
		}
	}
	if metric(t, reg, "codingbrain_db_replica_healthy", "replica", "replica-1") != 0 ||
		metric(t, reg, "codingbrain_db_replica_breaker_state", "replica", "replica-1") != 2 {
		t.Errorf("a stopped replica: healthy %v, breaker %v (want 0 and open)",
			metric(t, reg, "codingbrain_db_replica_healthy", "replica", "replica-1"),
			metric(t, reg, "codingbrain_db_replica_breaker_state", "replica", "replica-1"))
	}

	// Started again, it gets reads again once its breaker lets a check through.
	if err := replica.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, r, "reads return to the restarted replica", func() bool {
		before := replicaReads()
		if _, err := svc.List(bob, memory.ListQuery{}, memory.ViaREST); err != nil {
			t.Fatalf("a read while the replica restarts: %v", err)
		}
		return replicaReads() == before+1
	})
}

// page1 is the id of the newest memory the caller sees.
func page1(ctx context.Context, t *testing.T, svc *memory.Service) string {
	t.Helper()
	page, err := svc.List(ctx, memory.ListQuery{Limit: 1}, memory.ViaREST)
	if err != nil || len(page.Memories) != 1 {
		t.Fatalf("list: %+v %v", page, err)
	}
	return page.Memories[0].ID
}

// TestReplicaRoutingTwoServers: two servers share the write positions
// through Valkey (redis-server here), so what alice writes through one she
// reads at once through the other, though each routes reads to the
// replica.
func TestReplicaRoutingTwoServers(t *testing.T) {
	primary := pgtest.New(t)
	replica := pgtest.Replica(t, primary)
	shared, err := kv.NewValkey(redistest.New(t).URL(), "test:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	ctx := t.Context()
	server := func(migrate bool) (*postgres.Routed, *memory.Service, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		r := routed(t, primary, replica, migrate, postgres.ReplicaOptions{
			MaxLag: time.Minute, CheckInterval: time.Hour, Writes: shared, Registerer: reg,
		})
		return r, memory.NewService(r, memory.Options{}), reg
	}
	r1, svc1, _ := server(true)
	r2, svc2, reg2 := server(false)
	for _, r := range []*postgres.Routed{r1, r2} {
		eventually(t, r, "the replica replays the migrations", func() bool {
			return r.Healthy() == 1
		})
	}
	alice := auth.WithPrincipal(ctx, auth.Principal{Subject: "alice", OrgID: "acme", Grants: []string{"org:acme"}})
	const rounds = 300
	misses := 0
	for i := range rounds {
		m, _, err := svc1.Add(alice, memory.Input{Content: "written on server one, round " + time.Now().Format(time.RFC3339Nano), Scope: "org"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc2.Get(alice, m.ID, memory.ViaREST)
		if err != nil || got.Content != m.Content {
			misses++
			t.Errorf("round %d: server two's read of %s: %v", i, m.ID, err)
		}
	}
	t.Logf("%d rounds written on one server and read on the other: %d misses; the second served %v from the replica, %v from the primary",
		rounds, misses,
		metric(t, reg2, "codingbrain_db_reads_total", "target", "replica-1"),
		metric(t, reg2, "codingbrain_db_reads_total", "target", "primary"))
	// Another principal's reads on server two go to the replica.
	bob := auth.WithPrincipal(ctx, auth.Principal{Subject: "bob", OrgID: "acme", Grants: []string{"org:acme"}})
	before := metric(t, reg2, "codingbrain_db_reads_total", "target", "replica-1")
	if _, err := svc2.List(bob, memory.ListQuery{}, memory.ViaREST); err != nil {
		t.Fatal(err)
	}
	if metric(t, reg2, "codingbrain_db_reads_total", "target", "replica-1") != before+1 {
		t.Errorf("bob's read on server two did not go to the replica")
	}
}
