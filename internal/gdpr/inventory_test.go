package gdpr_test

import (
	"bufio"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver sqlite.Open uses

	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/store/postgres"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// inventoryRow matches a row of the PII inventory in docs/privacy.md:
// | `table` | `column` | personal | …
var inventoryRow = regexp.MustCompile("^\\| `([a-z_0-9]+)` \\| `([a-z_0-9]+)` \\| (yes|derived|no) \\|")

// inventory reads the table.column entries of docs/privacy.md.
func inventory(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "privacy.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := inventoryRow.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]+"."+m[2]] = m[3]
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/privacy.md has no inventory rows")
	}
	return out
}

// sqliteInternal are tables of SQLite's own or of FTS5's storage, which
// hold what the indexed table holds (memories_fts is in the inventory).
func sqliteInternal(table string) bool {
	return strings.HasPrefix(table, "sqlite_") || strings.HasPrefix(table, "memories_fts_")
}

func sqliteColumns(t *testing.T) []string {
	path := filepath.Join(t.TempDir(), "inventory.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if !sqliteInternal(table) {
			cols = append(cols, table+"."+col)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

func postgresColumns(t *testing.T) []string {
	url := pgtest.Database(t)
	st, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

// TestPIIInventory keeps the PII inventory of docs/privacy.md in step with
// the schemas: every column of every table of the migrated SQLite and
// PostgreSQL stores must be listed (as personal, derived or not personal),
// and, when both stores ran, every listed column must exist in one of them.
func TestPIIInventory(t *testing.T) {
	inv := inventory(t)
	live := map[string]bool{}
	check := func(t *testing.T, cols []string) {
		for _, c := range cols {
			live[c] = true
			if _, ok := inv[c]; !ok {
				t.Errorf("column %s is not in the PII inventory of docs/privacy.md: add it as yes, derived or no, and say how export and erasure reach it", c)
			}
		}
	}
	ranSQLite := t.Run("SQLite", func(t *testing.T) { check(t, sqliteColumns(t)) })
	ranPostgres := t.Run("PostgreSQL", func(t *testing.T) { check(t, postgresColumns(t)) })
	if !ranSQLite || !ranPostgres || t.Failed() {
		return
	}
	var stale []string
	for c := range inv {
		if !live[c] {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	for _, c := range stale {
		t.Errorf("docs/privacy.md lists %s, which neither schema has", c)
	}
}
