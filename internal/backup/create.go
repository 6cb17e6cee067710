package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
)

// Progress reports long work: stage names what is being done ("dump
// memories", "compress", "load history", …), done and total count rows
// (or bytes for "compress"; total 0 when unknown).
type Progress func(stage string, done, total int64)

// CreateOptions tune Create.
type CreateOptions struct {
	// Recipients encrypt the archive; none leaves it unencrypted.
	Recipients []age.Recipient
	// AppVersion is recorded in the manifest.
	AppVersion string
	// TempDir holds the dumped tables until they are archived ("" is the
	// system's temporary directory). It needs about the uncompressed size
	// of the data.
	TempDir string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Progress, when set, is called as rows are dumped and bytes archived.
	Progress Progress
	// Native also puts the store's own copy of the same snapshot in the
	// archive, under native/ (see NativeSnapshot), when the store can make
	// one; Result.Notes says when it could not.
	Native bool
}

// Result is what Create wrote.
type Result struct {
	Name     string        `json:"name"`
	Size     int64         `json:"size"`
	Manifest Manifest      `json:"manifest"`
	Took     time.Duration `json:"took_ns"`
	// Notes are things worth telling that did not fail the backup.
	Notes []string `json:"notes,omitempty"`
}

// Create takes a consistent backup of src and stores it in t.
func Create(ctx context.Context, src Source, t Target, o CreateOptions) (Result, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	start := time.Now()
	progress := o.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	dir, err := os.MkdirTemp(o.TempDir, "codingbrain-backup-")
	if err != nil {
		return Result{}, fmt.Errorf("backup: scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	var (
		notes  []string
		native string // file name under dir/native, when made
	)
	m := Manifest{Format: FormatVersion, AppVersion: o.AppVersion, Store: src.Kind(),
		Encrypted: len(o.Recipients) > 0, Tables: map[string]TableInfo{}, Files: map[string]FileInfo{}}
	err = src.Snapshot(ctx, func(snap Snapshot) error {
		// The snapshot's time: the transaction has begun, and its view is
		// fixed by its first read (the schema version).
		m.CreatedAt = canonicalTime(now())
		v, err := snap.SchemaVersion(ctx)
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		m.SchemaVersion = v
		for _, table := range Tables {
			info, err := dumpTable(ctx, snap, table, filepath.Join(dir, table+".jsonl"), progress)
			if err != nil {
				return err
			}
			m.Tables[table] = info
		}
		if !o.Native {
			return nil
		}
		ns, ok := snap.(NativeSnapshot)
		if !ok {
			notes = append(notes, "no native copy: the "+src.Kind()+" store cannot make one")
			return nil
		}
		progress("native copy", 0, 0)
		name, err := ns.WriteNative(ctx, filepath.Join(dir, "native"))
		if errors.Is(err, ErrNoNative) {
			notes = append(notes, err.Error())
			return nil
		}
		if err != nil {
			return fmt.Errorf("native copy: %w", err)
		}
		native = name
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("backup: %w", err)
	}

	name := ArchiveName(m.CreatedAt, m.Encrypted)
	var size int64
	err = t.Put(ctx, name, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		aw, err := newArchiveWriter(cw, o.Recipients, m.CreatedAt)
		if err != nil {
			return err
		}
		// The manifest goes first; it needs every file's hash, which the
		// dump computed (the table checksum is the file's hash).
		for _, table := range Tables {
			st, err := os.Stat(filepath.Join(dir, table+".jsonl"))
			if err != nil {
				return err
			}
			m.Files[dataFile(table)] = FileInfo{Size: st.Size(), SHA256: m.Tables[table].SHA256}
		}
		var mb []byte
		var nativeInfo FileInfo
		if native != "" {
			f, err := os.Open(filepath.Join(dir, "native", native))
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			nativeInfo = FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
			m.Files["native/"+native] = nativeInfo
		}
		mb, err = json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		if err := aw.addBytes(manifestName, append(mb, '\n')); err != nil {
			return err
		}
		var total int64
		for _, fi := range m.Files {
			total += fi.Size
		}
		var done int64
		for _, table := range Tables {
			if err := ctx.Err(); err != nil {
				return err
			}
			fi, err := aw.addFile(dataFile(table), filepath.Join(dir, table+".jsonl"))
			if err != nil {
				return fmt.Errorf("archive %s: %w", table, err)
			}
			if fi != m.Files[dataFile(table)] {
				return fmt.Errorf("archive %s: the file changed while it was archived", table)
			}
			done += fi.Size
			progress("compress", done, total)
		}
		if native != "" {
			fi, err := aw.addFile("native/"+native, filepath.Join(dir, "native", native))
			if err != nil {
				return fmt.Errorf("archive the native copy: %w", err)
			}
			if fi != nativeInfo {
				return errors.New("archive the native copy: the file changed while it was archived")
			}
			progress("compress", total, total)
		}
		if err := aw.close(); err != nil {
			return err
		}
		size = cw.n
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("backup: %w", err)
	}
	return Result{Name: name, Size: size, Manifest: m, Took: time.Since(start), Notes: notes}, nil
}

// dumpTable writes table's canonical JSONL to path and returns its count
// and checksum.
func dumpTable(ctx context.Context, snap Snapshot, table, path string, progress Progress) (TableInfo, error) {
	total, err := snap.Count(ctx, table)
	if err != nil {
		return TableInfo{}, fmt.Errorf("count %s: %w", table, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return TableInfo{}, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	ts := newTableSum()
	stage := "dump " + table
	progress(stage, 0, total)
	err = snap.Dump(ctx, table, func(row any) error {
		line, err := ts.add(table, row)
		if err != nil {
			return err
		}
		if _, err := bw.Write(line); err != nil {
			return err
		}
		if ts.rows%1000 == 0 {
			progress(stage, ts.rows, total)
		}
		return nil
	})
	if err != nil {
		return TableInfo{}, fmt.Errorf("dump %s: %w", table, err)
	}
	progress(stage, ts.rows, total)
	if err := bw.Flush(); err != nil {
		return TableInfo{}, err
	}
	if err := f.Close(); err != nil {
		return TableInfo{}, err
	}
	return ts.sum(), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
