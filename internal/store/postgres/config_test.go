package postgres

import (
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/pgtest"
)

func TestOpenAppliesConfig(t *testing.T) {
	s, err := Open(t.Context(), Config{URL: pgtest.Database(t), MaxConns: 3, StatementTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.pool.Config().MaxConns; got != 3 {
		t.Errorf("max conns %d, want 3", got)
	}
	var timeout, app string
	if err := s.pool.QueryRow(t.Context(), `SELECT current_setting('statement_timeout'), current_setting('application_name')`).Scan(&timeout, &app); err != nil {
		t.Fatal(err)
	}
	if timeout != "1500ms" || app != "codingbrain" {
		t.Errorf("statement_timeout %q, application_name %q; want 1500ms and codingbrain", timeout, app)
	}
}
