package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/codingbrain/codingbrain/internal/audit"
)

// Filter decides, row by row, what a restore loads. It is the hook for
// erasure: a Filter built from an erasure ledger drops the rows of erased
// subjects so that restoring an older backup does not bring them back.
// Keep is called for every row of every table, in Tables order, with the
// row types of Snapshot.Dump. When it drops a memory, the restore also
// drops the history, access-log and link rows that reference it, without
// asking.
type Filter interface {
	Keep(table string, row any) bool
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Identities decrypt an encrypted archive.
	Identities []age.Identity
	// TempDir holds the extracted archive during the restore ("" is the
	// system's temporary directory).
	TempDir string
	// Replace empties a store that holds data, in the load's transaction.
	// Without it such a store is refused with ErrNotEmpty.
	Replace bool
	// Filter, when set, is applied to every row before it is loaded (see
	// Filter).
	Filter Filter
	// Progress, when set, is called as rows are loaded.
	Progress Progress

	// skipGraph leaves the entity graph unbuilt (Verify: a scratch store
	// that is thrown away needs no derived data beyond the lexical index).
	skipGraph bool
	// sample, when set, sees every memory row as it is loaded (Verify
	// picks its canaries there instead of reading the archive again).
	sample func(m Memory, i, total int64)
}

// RestoreReport says what a restore did.
type RestoreReport struct {
	Manifest Manifest         `json:"manifest"`
	Loaded   map[string]int64 `json:"loaded"`
	Filtered map[string]int64 `json:"filtered,omitempty"`
	// Durations of the phases, in seconds.
	ExtractSeconds float64 `json:"extract_seconds"`
	LoadSeconds    float64 `json:"load_seconds"`
	GraphSeconds   float64 `json:"graph_seconds"`
	CheckSeconds   float64 `json:"check_seconds"`

	extracted *Extracted
}

// IntegrityError lists what the checks after a restore found wrong.
type IntegrityError struct{ Problems []string }

func (e *IntegrityError) Error() string {
	return "restored data failed its checks: " + strings.Join(e.Problems, "; ")
}

// LoadError is a failure to load the rows of an archive that matched its
// manifest: the data itself is not acceptable to the store (a broken
// reference, a duplicate key, a value out of range).
type LoadError struct{ Err error }

func (e *LoadError) Error() string { return "load: " + e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// loadBatch is how many rows one Tx.Put receives.
const loadBatch = 500

// Restore restores the archive read from r into dst: it extracts and
// checks the whole archive first, refuses a store that is not empty unless
// o.Replace, loads every table in one transaction, rebuilds the entity
// graph and checks the result against what was loaded. Embeddings are not
// in the archive: the caller runs the embedding backfill afterwards.
//
// Errors: *ArchiveError for an archive that is not intact or not for this
// binary (nothing was touched), ErrNotEmpty, *LoadError when the store
// refused the data (the transaction was rolled back), *IntegrityError when
// the restored store does not match what was loaded; others come from the
// store or the file system.
func Restore(ctx context.Context, r io.Reader, dst Loader, o RestoreOptions) (*RestoreReport, error) {
	rep, err := restore(ctx, r, dst, o)
	if rep != nil && rep.extracted != nil {
		rep.extracted.Remove()
		rep.extracted = nil
	}
	return rep, err
}

func restore(ctx context.Context, r io.Reader, dst Loader, o RestoreOptions) (*RestoreReport, error) {
	progress := o.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	if !o.Replace {
		empty, err := dst.Empty(ctx)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if !empty {
			return nil, ErrNotEmpty
		}
	}
	start := time.Now()
	x, err := Extract(r, o.Identities, o.TempDir, dst.LatestSchemaVersion())
	if err != nil {
		return nil, err
	}
	rep := &RestoreReport{Manifest: x.Manifest, Loaded: map[string]int64{}, Filtered: map[string]int64{}, extracted: x}
	rep.ExtractSeconds = time.Since(start).Seconds()

	start = time.Now()
	want := map[string]TableInfo{}
	err = dst.Load(ctx, o.Replace, func(tx Tx) error {
		dropped := map[string]bool{} // org \x00 id of memories the filter dropped
		for _, table := range Tables {
			ts := newTableSum()
			batch := make([]any, 0, loadBatch)
			flush := func() error {
				if len(batch) == 0 {
					return nil
				}
				if err := tx.Put(ctx, table, batch); err != nil {
					return &LoadError{Err: fmt.Errorf("%s: %w", table, err)}
				}
				batch = batch[:0]
				progress("load "+table, ts.rows, x.Manifest.Tables[table].Rows)
				return nil
			}
			err := x.readTable(table, func(row any) error {
				if !keep(o.Filter, table, row, dropped) {
					rep.Filtered[table]++
					return nil
				}
				if o.sample != nil && table == TableMemories {
					o.sample(row.(Memory), ts.rows, x.Manifest.Tables[table].Rows)
				}
				// Without a filter every row is loaded, and what was loaded
				// is the archive's file, whose checksum the manifest holds:
				// only count. With one, checksum the rows kept.
				if o.Filter == nil {
					ts.rows++
				} else if _, err := ts.add(table, row); err != nil {
					return err
				}
				batch = append(batch, row)
				if len(batch) == loadBatch {
					return flush()
				}
				return nil
			})
			if err == nil {
				err = flush()
			}
			if err != nil {
				return err
			}
			want[table] = ts.sum()
			if o.Filter == nil {
				want[table] = x.Manifest.Tables[table]
			}
			rep.Loaded[table] = ts.rows
		}
		progress("index and commit", 0, 0)
		return ctx.Err()
	})
	if err != nil {
		var le *LoadError
		var ae *ArchiveError
		if !errors.As(err, &le) && !errors.As(err, &ae) && ctx.Err() == nil && isDataError(err) {
			err = &LoadError{Err: err}
		}
		return rep, fmt.Errorf("restore: %w", err)
	}
	rep.LoadSeconds = time.Since(start).Seconds()
	for t, n := range rep.Filtered {
		if n == 0 {
			delete(rep.Filtered, t)
		}
	}

	if !o.skipGraph {
		progress("rebuild the entity graph", 0, 0)
		start = time.Now()
		if err := dst.RebuildGraph(ctx); err != nil {
			return rep, fmt.Errorf("restore: rebuild the entity graph: %w", err)
		}
		rep.GraphSeconds = time.Since(start).Seconds()
	}

	progress("check the restored store", 0, 0)
	start = time.Now()
	if err := CheckStore(ctx, dst, want); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	rep.CheckSeconds = time.Since(start).Seconds()
	return rep, nil
}

// isDataError reports whether a Load error is about the rows rather than
// the store being unreachable. Errors that Tx.Put returns are already
// LoadErrors; a failing commit is treated as data (a deferred constraint).
func isDataError(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// keep applies the filter and the cascade from dropped memories.
func keep(f Filter, table string, row any, dropped map[string]bool) bool {
	key := func(org, id string) string { return org + "\x00" + id }
	switch r := row.(type) {
	case History:
		if dropped[key(r.OrgID, r.MemoryID)] {
			return false
		}
	case AccessLog:
		if dropped[key(r.OrgID, r.MemoryID)] {
			return false
		}
	case Link:
		if dropped[key(r.OrgID, r.From)] || dropped[key(r.OrgID, r.To)] {
			return false
		}
	}
	if f == nil || f.Keep(table, row) {
		return true
	}
	if m, ok := row.(Memory); ok {
		dropped[key(m.OrgID, m.ID)] = true
	}
	return false
}

// CheckStore checks a store against the row counts and checksums of want
// (every table), its foreign keys, and its audit chain when it keeps one.
// Problems are an *IntegrityError.
func CheckStore(ctx context.Context, st Loader, want map[string]TableInfo) error {
	var problems []string
	err := st.Snapshot(ctx, func(snap Snapshot) error {
		got, err := Checksums(ctx, snap)
		if err != nil {
			return err
		}
		for _, table := range slices.Sorted(maps.Keys(want)) {
			w, g := want[table], got[table]
			switch {
			case w.Rows != g.Rows:
				problems = append(problems, fmt.Sprintf("table %s has %d rows, expected %d", table, g.Rows, w.Rows))
			case w.SHA256 != g.SHA256:
				problems = append(problems, fmt.Sprintf("table %s has checksum %s, expected %s", table, g.SHA256, w.SHA256))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check restored store: %w", err)
	}
	fk, err := st.ForeignKeyProblems(ctx)
	if err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	problems = append(problems, fk...)
	if cr, ok := st.(audit.ChainReader); ok {
		rep, err := audit.Verify(ctx, cr)
		if err != nil {
			return fmt.Errorf("check audit chain: %w", err)
		}
		if rep.Broken != nil {
			problems = append(problems, fmt.Sprintf("audit chain broken at seq %d: %s", rep.Broken.Seq, rep.Broken.Problem))
		}
	}
	if len(problems) > 0 {
		return &IntegrityError{Problems: problems}
	}
	return nil
}
