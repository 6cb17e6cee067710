package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// TestReadyFailsBehindSchema: serve's backends make /health/ready fail,
// saying why, when the database's schema falls behind the binary while it
// runs (a restore of an older database, a rolled-back migration); and the
// breakers' states reach codingbrain_breaker_state.
func TestReadyFailsBehindSchema(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		readyFailsBehindSchema(t, cfg, func(q string) (int, error) {
			db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, dbFile))
			if err != nil {
				return 0, err
			}
			defer db.Close()
			var v int
			return v, db.QueryRow(q).Scan(&v)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir, cfg.DatabaseURL, cfg.Migrate = t.TempDir(), pgtest.Database(t), true
		readyFailsBehindSchema(t, cfg, func(q string) (int, error) {
			c, err := pgx.Connect(t.Context(), cfg.DatabaseURL)
			if err != nil {
				return 0, err
			}
			defer c.Close(context.Background())
			var v int
			return v, c.QueryRow(t.Context(), q).Scan(&v)
		})
	})
}

// readyFailsBehindSchema runs the test on the store cfg names; query runs
// one SQL statement returning an integer on its database.
func readyFailsBehindSchema(t *testing.T, cfg config.Config, query func(string) (int, error)) {
	cfg.Embedder, cfg.EmbedderURL, cfg.EmbedderModel = "openai", "http://127.0.0.1:9/v1", "test"
	b, err := openBackends(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, err := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.Build{})
	if err != nil {
		t.Fatal(err)
	}
	b.observe(m)
	if got := testutil.ToFloat64(m.BreakerStates.WithLabelValues("embedder")); got != 0 || len(b.breakers) != 1 {
		t.Errorf("breaker_state{embedder} = %v with breakers %v, want 0 (closed)", got, b.breakers)
	}
	b.breakerChanged("embedder", "open")
	if got := testutil.ToFloat64(m.BreakerStates.WithLabelValues("embedder")); got != 2 {
		t.Errorf("breaker_state{embedder} = %v after opening, want 2", got)
	}

	api := httptest.NewServer(httpapi.New(memory.NewService(b.store, memory.Options{}), httpapi.Options{Checks: b.checks}))
	defer api.Close()
	ready := func() (int, string) {
		resp, err := http.Get(api.URL + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep struct{ Reason string }
		json.NewDecoder(resp.Body).Decode(&rep)
		return resp.StatusCode, rep.Reason
	}
	if code, reason := ready(); code != http.StatusOK {
		t.Fatalf("ready on a current schema: %d %s", code, reason)
	}

	latest, err := query(`SELECT max(version) FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := query(fmt.Sprintf(`DELETE FROM schema_migrations WHERE version = %d RETURNING version`, latest)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("schema: database schema is at version %d, this binary needs %d", latest-1, latest)
	// Health results are cached for a second.
	deadline := time.Now().Add(e2eTimeout)
	for {
		code, reason := ready()
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(reason, want) {
				t.Errorf("reason %q, want it to contain %q", reason, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ready still 200 with the schema behind")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
