package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// Manifest describes one archive. It is the last file of the archive.
type Manifest struct {
	Format        int                  `json:"format"`
	SchemaVersion int                  `json:"schema_version"`
	AppVersion    string               `json:"app_version"`
	Store         string               `json:"store"`
	CreatedAt     time.Time            `json:"created_at"`
	Encrypted     bool                 `json:"encrypted"`
	Tables        map[string]TableInfo `json:"tables"`
	Files         map[string]FileInfo  `json:"files"`
}

// TableInfo is a table's row count and the SHA-256 of its canonical JSONL.
type TableInfo struct {
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
}

// FileInfo is the size and SHA-256 of one file of the archive.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

const manifestName = "manifest.json"

func dataFile(table string) string { return "data/" + table + ".jsonl" }

// ageMagic starts every age file.
const ageMagic = "age-encryption.org/v1"

// archiveWriter writes a tar.gz (optionally age-encrypted) archive.
type archiveWriter struct {
	enc io.WriteCloser // age, or nil
	gz  *gzip.Writer
	tw  *tar.Writer
	at  time.Time
}

func newArchiveWriter(w io.Writer, recipients []age.Recipient, at time.Time) (*archiveWriter, error) {
	aw := &archiveWriter{at: at}
	if len(recipients) > 0 {
		enc, err := age.Encrypt(w, recipients...)
		if err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		aw.enc, w = enc, enc
	}
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	aw.gz, aw.tw = gz, tar.NewWriter(gz)
	return aw, nil
}

// addFile copies the file at path into the archive as name and returns its
// FileInfo.
func (aw *archiveWriter) addFile(name, path string) (FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return FileInfo{}, err
	}
	if err := aw.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: aw.at, Typeflag: tar.TypeReg}); err != nil {
		return FileInfo{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(aw.tw, h), f)
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (aw *archiveWriter) addBytes(name string, b []byte) error {
	if err := aw.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: aw.at, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := aw.tw.Write(b)
	return err
}

func (aw *archiveWriter) close() error {
	if err := aw.tw.Close(); err != nil {
		return err
	}
	if err := aw.gz.Close(); err != nil {
		return err
	}
	if aw.enc != nil {
		return aw.enc.Close()
	}
	return nil
}

// Problem kinds of a bad archive (ArchiveError.Kind).
const (
	ProblemDecrypt    = "decrypt"    // cannot be decrypted with the identities given
	ProblemNoKey      = "no_key"     // encrypted, and no identity given
	ProblemCorrupt    = "corrupt"    // not a readable archive: truncated, a changed byte
	ProblemManifest   = "manifest"   // manifest missing, unreadable or of another format
	ProblemChecksum   = "checksum"   // a file or table does not match the manifest
	ProblemSchema     = "schema"     // taken from a schema newer than this binary
	ProblemUnexpected = "unexpected" // a file the manifest does not list
)

// ArchiveError says what is wrong with an archive.
type ArchiveError struct {
	Kind string
	Err  error
}

func (e *ArchiveError) Error() string { return e.Err.Error() }
func (e *ArchiveError) Unwrap() error { return e.Err }

func archiveErr(kind, format string, args ...any) error {
	return &ArchiveError{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// Extracted is an archive read and checked into a scratch directory.
type Extracted struct {
	Dir      string
	Manifest Manifest
}

// Path is where the file name of the archive was extracted.
func (x *Extracted) Path(name string) string { return filepath.Join(x.Dir, filepath.FromSlash(name)) }

// Remove deletes the scratch directory.
func (x *Extracted) Remove() error { return os.RemoveAll(x.Dir) }

// Extract reads an archive from r — decrypting it with identities when it
// is encrypted — into a new directory under tmpDir, hashing every file,
// and checks every file and table against the manifest. Nothing is
// returned unless all of it matched. maxSchema is the newest schema this
// binary can restore. Problems with the archive are *ArchiveError.
func Extract(r io.Reader, identities []age.Identity, tmpDir string, maxSchema int) (*Extracted, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(len(ageMagic))
	var in io.Reader = br
	encrypted := string(head) == ageMagic
	if encrypted {
		if len(identities) == 0 {
			return nil, archiveErr(ProblemNoKey, "the archive is encrypted; give --identity with a key of one of its recipients")
		}
		d, err := age.Decrypt(br, identities...)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if errors.As(err, &nm) {
				return nil, archiveErr(ProblemDecrypt, "decrypt: none of the identities given is a recipient of this archive")
			}
			return nil, archiveErr(ProblemCorrupt, "decrypt: %v", err)
		}
		in = d
	}
	gz, err := gzip.NewReader(in)
	if err != nil {
		return nil, archiveErr(ProblemCorrupt, "not a gzip stream: %v", err)
	}
	dir, err := os.MkdirTemp(tmpDir, "codingbrain-restore-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	x := &Extracted{Dir: dir}
	ok := false
	defer func() {
		if !ok {
			x.Remove()
		}
	}()
	got := map[string]FileInfo{}
	var manifest []byte
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, archiveErr(ProblemCorrupt, "read archive: %v", err)
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg || !validName(name) {
			return nil, archiveErr(ProblemUnexpected, "unexpected entry %q in the archive", name)
		}
		if name == manifestName {
			if manifest, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return nil, archiveErr(ProblemCorrupt, "read manifest: %v", err)
			}
			continue
		}
		fi, err := extractFile(tr, x.Path(name))
		if err != nil {
			return nil, archiveErr(ProblemCorrupt, "read %s: %v", name, err)
		}
		got[name] = fi
	}
	// The gzip trailer (CRC and length) is checked at EOF of the stream.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, archiveErr(ProblemCorrupt, "read archive: %v", err)
	}
	if manifest == nil {
		return nil, archiveErr(ProblemManifest, "the archive has no manifest (truncated?)")
	}
	if err := json.Unmarshal(manifest, &x.Manifest); err != nil {
		return nil, archiveErr(ProblemManifest, "read manifest: %v", err)
	}
	if err := checkManifest(x.Manifest, got, maxSchema); err != nil {
		return nil, err
	}
	if x.Manifest.Encrypted != encrypted {
		return nil, archiveErr(ProblemManifest, "manifest says encrypted=%t, the archive is the other way", x.Manifest.Encrypted)
	}
	for _, table := range Tables {
		n, err := countLines(x.Path(dataFile(table)))
		if err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", table, err)
		}
		if want := x.Manifest.Tables[table].Rows; n != want {
			return nil, archiveErr(ProblemChecksum, "table %s has %d rows, the manifest says %d", table, n, want)
		}
	}
	ok = true
	return x, nil
}

// validName accepts the names an archive may hold: no absolute paths, no
// "..", nothing outside data/ and native/ but the manifest.
func validName(name string) bool {
	if name == manifestName {
		return true
	}
	if strings.Contains(name, "..") || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return false
	}
	return strings.HasPrefix(name, "data/") || strings.HasPrefix(name, "native/")
}

func extractFile(r io.Reader, path string) (FileInfo, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return FileInfo{}, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return FileInfo{}, err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(f, 256<<10)
	n, err := io.Copy(io.MultiWriter(bw, h), r)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

// checkManifest compares the files read with the manifest.
func checkManifest(m Manifest, got map[string]FileInfo, maxSchema int) error {
	if m.Format != FormatVersion {
		return archiveErr(ProblemManifest, "archive format %d; this binary reads format %d", m.Format, FormatVersion)
	}
	if m.SchemaVersion > maxSchema {
		return archiveErr(ProblemSchema, "the backup was taken from schema version %d, newer than this binary's %d; restore it with a binary at least as new as %s",
			m.SchemaVersion, maxSchema, m.AppVersion)
	}
	if m.SchemaVersion < 1 {
		return archiveErr(ProblemManifest, "manifest schema_version %d is not a schema version", m.SchemaVersion)
	}
	var problems []string
	for name, want := range m.Files {
		g, ok := got[name]
		switch {
		case !ok:
			problems = append(problems, name+" is missing")
		case g != want:
			problems = append(problems, fmt.Sprintf("%s has size %d sha256 %s, manifest says size %d sha256 %s", name, g.Size, g.SHA256, want.Size, want.SHA256))
		}
	}
	for name := range got {
		if _, ok := m.Files[name]; !ok {
			problems = append(problems, name+" is not in the manifest")
		}
	}
	for _, table := range Tables {
		ti, ok := m.Tables[table]
		fi, fok := m.Files[dataFile(table)]
		if !ok || !fok {
			problems = append(problems, "table "+table+" is not in the manifest")
			continue
		}
		if ti.SHA256 != fi.SHA256 {
			problems = append(problems, fmt.Sprintf("table %s: checksum %s differs from its file's %s", table, ti.SHA256, fi.SHA256))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return archiveErr(ProblemChecksum, "the archive does not match its manifest: %s", strings.Join(problems, "; "))
	}
	return nil
}

// countLines counts the newline-terminated lines of the file at path.
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// readTable calls fn with every row of table in the extracted archive and
// checks the row count against the manifest.
func (x *Extracted) readTable(table string, fn func(row any) error) error {
	f, err := os.Open(x.Path(dataFile(table)))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var n int64
	for sc.Scan() {
		row, err := decodeRow(table, sc.Bytes())
		if err != nil {
			return archiveErr(ProblemChecksum, "%s line %d: %v", table, n+1, err)
		}
		n++
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if want := x.Manifest.Tables[table].Rows; n != want {
		return archiveErr(ProblemChecksum, "table %s has %d rows, the manifest says %d", table, n, want)
	}
	return nil
}
