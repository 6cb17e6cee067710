package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Target is where archives are kept. Dir is the one implementation; an
// object store (S3 and the like) fits the same four methods.
type Target interface {
	// Put stores a new archive called name, written by write; the archive
	// appears under name only once write returned nil (no reader ever sees
	// a partial archive).
	Put(ctx context.Context, name string, write func(io.Writer) error) error
	// Open reads the archive name.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns every archive, oldest first.
	List(ctx context.Context) ([]Object, error)
	// Remove deletes the archive name.
	Remove(ctx context.Context, name string) error
}

// Object is one archive in a Target.
type Object struct {
	Name string    `json:"name"`
	Size int64     `json:"size"`
	At   time.Time `json:"created_at"` // from the name: when the backup was taken
}

// Archive names: codingbrain-20060102T150405Z.tar.gz, with .age appended
// when encrypted.
const (
	namePrefix = "codingbrain-"
	nameTime   = "20060102T150405Z"
	nameExt    = ".tar.gz"
	ageExt     = ".age"
)

// ArchiveName is the name of an archive taken at t.
func ArchiveName(t time.Time, encrypted bool) string {
	n := namePrefix + t.UTC().Format(nameTime) + nameExt
	if encrypted {
		n += ageExt
	}
	return n
}

// ParseArchiveName returns the time in an archive name, or false for a name
// that is not an archive's.
func ParseArchiveName(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return time.Time{}, false
	}
	rest = strings.TrimSuffix(rest, ageExt)
	ts, ok := strings.CutSuffix(rest, nameExt)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(nameTime, ts)
	return t, err == nil
}

// Dir is a Target on a local (or mounted) directory.
type Dir struct{ Path string }

// Put writes name.partial, syncs it and renames it to name.
func (d Dir) Put(ctx context.Context, name string, write func(io.Writer) error) error {
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return fmt.Errorf("backup directory: %w", err)
	}
	final := filepath.Join(d.Path, name)
	tmp := final + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", final, err)
	}
	if dir, err := os.Open(d.Path); err == nil { // make the rename durable
		dir.Sync()
		dir.Close()
	}
	return nil
}

// Open opens the archive name.
func (d Dir) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if name != filepath.Base(name) {
		return nil, fmt.Errorf("open backup: %q is not a file name", name)
	}
	return os.Open(filepath.Join(d.Path, name))
}

// List returns the archives in the directory, oldest first. A directory
// that does not exist holds none.
func (d Dir) List(context.Context) ([]Object, error) {
	ents, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []Object
	for _, e := range ents {
		t, ok := ParseArchiveName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Object{Name: e.Name(), Size: info.Size(), At: t})
	}
	sortObjects(out)
	return out, nil
}

// Remove deletes the archive name.
func (d Dir) Remove(_ context.Context, name string) error {
	if name != filepath.Base(name) {
		return fmt.Errorf("remove backup: %q is not a file name", name)
	}
	return os.Remove(filepath.Join(d.Path, name))
}

func sortObjects(objs []Object) {
	slices.SortFunc(objs, func(a, b Object) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Retention says which archives to keep: the newest always, the newest of
// each of the last Daily days that have a backup, and the newest of each of
// the last Weekly ISO weeks that have one.
type Retention struct {
	Daily  int
	Weekly int
}

// Keep returns the reason each kept archive of objs is kept ("newest",
// "daily", "weekly"); archives not in the map are to be pruned.
func (r Retention) Keep(objs []Object) map[string]string {
	keep := map[string]string{}
	if len(objs) == 0 {
		return keep
	}
	sorted := slices.Clone(objs)
	sortObjects(sorted)
	slices.Reverse(sorted) // newest first
	keep[sorted[0].Name] = "newest"
	mark := func(n int, period func(time.Time) string, why string) {
		seen := map[string]bool{}
		for _, o := range sorted {
			p := period(o.At.UTC())
			if seen[p] {
				continue
			}
			if len(seen) == n {
				return
			}
			seen[p] = true
			if _, ok := keep[o.Name]; !ok {
				keep[o.Name] = why
			}
		}
	}
	mark(r.Daily, func(t time.Time) string { return t.Format(time.DateOnly) }, "daily")
	mark(r.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }, "weekly")
	return keep
}

// Prune removes the archives of t that r does not keep and returns their
// names. With dryRun it only returns them.
func Prune(ctx context.Context, t Target, r Retention, dryRun bool) ([]string, error) {
	objs, err := t.List(ctx)
	if err != nil {
		return nil, err
	}
	keep := r.Keep(objs)
	var removed []string
	for _, o := range objs {
		if _, ok := keep[o.Name]; ok {
			continue
		}
		if !dryRun {
			if err := t.Remove(ctx, o.Name); err != nil {
				return removed, fmt.Errorf("prune %s: %w", o.Name, err)
			}
		}
		removed = append(removed, o.Name)
	}
	return removed, nil
}
