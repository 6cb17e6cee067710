package backup

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"

	"os"
	"strings"
	"time"
	"unicode"

	"filippo.io/age"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Scratch is an ephemeral store a verification restores into: a Loader
// that can also search.
type Scratch interface {
	Loader
	Search(ctx context.Context, a memory.Access, q memory.SearchQuery) ([]memory.Hit, error)
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Name is the archive to verify; "" verifies the newest in the target.
	Name string
	// MaxAge fails a backup taken longer ago than this (0: no limit).
	MaxAge time.Duration
	// MinSizeRatio fails an archive smaller than this fraction of the one
	// before it (0: no check). A sudden drop in size means data went
	// missing somewhere.
	MinSizeRatio float64
	// Identities decrypt an encrypted archive.
	Identities []age.Identity
	// TempDir holds the extracted archive.
	TempDir string
	// OpenScratch opens an empty ephemeral store; close removes it.
	OpenScratch func(ctx context.Context) (st Scratch, close func() error, err error)
	// Canaries is how many memories sampled from the archive must be found
	// by a search in the restored store (0: 20).
	Canaries int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Progress, when set, is passed to the restore.
	Progress Progress
}

// Verdicts of a Report and statuses of a Check.
const (
	StatusOK      = "ok"      // verified
	StatusBad     = "bad"     // the backup is missing, stale or broken
	StatusError   = "error"   // the backup could not be verified
	StatusFailed  = "failed"  // a check found the backup bad
	StatusSkipped = "skipped" // a check was not run after an earlier failure
)

// Exit codes of `codingbrain backup verify`.
const (
	ExitOK          = 0
	ExitBad         = 1
	ExitCouldNotRun = 2
)

// Checks, in the order Verify runs them.
const (
	CheckExists    = "exists"
	CheckFreshness = "freshness"
	CheckSize      = "size"
	CheckDecrypt   = "decrypt"
	CheckChecksums = "checksums"
	CheckSchema    = "schema"
	CheckRestore   = "restore"
	CheckIntegrity = "integrity"
	CheckCanary    = "canary"
)

// Check is the outcome of one check.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome of Verify.
type Report struct {
	Status    string         `json:"status"`
	Archive   string         `json:"archive,omitempty"`
	Size      int64          `json:"size,omitempty"`
	TakenAt   *time.Time     `json:"taken_at,omitempty"`
	Checks    []Check        `json:"checks"`
	Manifest  *Manifest      `json:"manifest,omitempty"`
	Restore   *RestoreReport `json:"restore,omitempty"`
	Canaries  int            `json:"canaries"`
	StartedAt time.Time      `json:"started_at"`
	Seconds   float64        `json:"duration_seconds"`
}

// ExitCode is the exit code for r: ExitOK, ExitBad or ExitCouldNotRun.
func (r *Report) ExitCode() int {
	switch r.Status {
	case StatusOK:
		return ExitOK
	case StatusBad:
		return ExitBad
	}
	return ExitCouldNotRun
}

// Failed returns the checks that did not pass.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFailed || c.Status == StatusError {
			out = append(out, c)
		}
	}
	return out
}

// Summary is one line saying what failed, or that all passed.
func (r *Report) Summary() string {
	if r.Status == StatusOK {
		return fmt.Sprintf("backup %s verified: %d checks passed", r.Archive, len(r.Checks))
	}
	var parts []string
	for _, c := range r.Failed() {
		parts = append(parts, c.Name+": "+c.Detail)
	}
	what := "backup is bad"
	if r.Status == StatusError {
		what = "could not verify the backup"
	}
	name := r.Archive
	if name == "" {
		name = "(none)"
	}
	return fmt.Sprintf("%s %s — %s", what, name, strings.Join(parts, "; "))
}

func (r *Report) add(name, status, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: status, Detail: detail})
	switch {
	case status == StatusError && r.Status != StatusBad:
		r.Status = StatusError
	case status == StatusFailed:
		r.Status = StatusBad
	}
}

// Verify checks the newest archive in t (or o.Name): that it exists, is
// fresh and not much smaller than the one before, decrypts, matches its
// manifest, restores into an ephemeral store, matches the manifest there
// (row counts, checksums, foreign keys, audit chain) and answers searches
// for memories sampled from it. It never returns an error: everything is
// in the report, whose Status is ok, bad (the backup is missing or broken)
// or error (it could not be verified: the scratch store or the temporary
// directory failed, or no identity was given for an encrypted archive).
func Verify(ctx context.Context, t Target, o VerifyOptions) *Report {
	r := verifyOnce(ctx, t, o)
	// A newer backup's retention may remove the archive while it is being
	// read (the schedules of backup and verify are independent, and may run
	// on different replicas): then the newest archive is verified instead.
	if o.Name == "" && r.Status != StatusOK && r.Archive != "" && !listed(ctx, t, r.Archive) {
		r = verifyOnce(ctx, t, o)
	}
	return r
}

// listed reports whether the target still lists the archive name; a
// target that cannot be listed counts as listing it.
func listed(ctx context.Context, t Target, name string) bool {
	objs, err := t.List(ctx)
	if err != nil {
		return true
	}
	for _, ob := range objs {
		if ob.Name == name {
			return true
		}
	}
	return false
}

func verifyOnce(ctx context.Context, t Target, o VerifyOptions) *Report {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	start := time.Now()
	r := &Report{Status: StatusOK, StartedAt: now().UTC()}
	defer func() { r.Seconds = time.Since(start).Seconds() }()

	objs, err := t.List(ctx)
	if err != nil {
		r.add(CheckExists, StatusError, err.Error())
		return r
	}
	idx := len(objs) - 1
	if o.Name != "" {
		idx = -1
		for i, ob := range objs {
			if ob.Name == o.Name {
				idx = i
			}
		}
	}
	if idx < 0 {
		what := "no backup in the destination"
		if o.Name != "" {
			what = "no backup called " + o.Name
		}
		r.add(CheckExists, StatusFailed, what)
		return r
	}
	ob := objs[idx]
	r.Archive, r.Size = ob.Name, ob.Size
	taken := ob.At
	r.TakenAt = &taken
	r.add(CheckExists, StatusOK, fmt.Sprintf("%s, %d bytes", ob.Name, ob.Size))

	age := now().Sub(ob.At)
	switch {
	case o.MaxAge > 0 && age > o.MaxAge:
		r.add(CheckFreshness, StatusFailed, fmt.Sprintf("taken %s ago, more than --max-age %s", age.Round(time.Second), o.MaxAge))
	default:
		r.add(CheckFreshness, StatusOK, fmt.Sprintf("taken %s ago", age.Round(time.Second)))
	}

	switch {
	case ob.Size == 0:
		r.add(CheckSize, StatusFailed, "the archive is empty")
	case o.MinSizeRatio > 0 && idx > 0 && objs[idx-1].Size > 0 && float64(ob.Size) < o.MinSizeRatio*float64(objs[idx-1].Size):
		prev := objs[idx-1]
		r.add(CheckSize, StatusFailed, fmt.Sprintf("%d bytes, less than %.0f%% of the previous backup %s (%d bytes)",
			ob.Size, 100*o.MinSizeRatio, prev.Name, prev.Size))
	case idx > 0:
		r.add(CheckSize, StatusOK, fmt.Sprintf("%d bytes; previous %d bytes", ob.Size, objs[idx-1].Size))
	default:
		r.add(CheckSize, StatusOK, fmt.Sprintf("%d bytes; no previous backup to compare with", ob.Size))
	}

	if o.OpenScratch == nil {
		r.add(CheckRestore, StatusError, "no scratch store to restore into")
		return r
	}
	scratch, closeScratch, err := o.OpenScratch(ctx)
	if err != nil {
		r.add(CheckRestore, StatusError, "open the scratch store: "+err.Error())
		return r
	}
	defer closeScratch()

	rc, err := t.Open(ctx, ob.Name)
	if err != nil {
		r.add(CheckChecksums, StatusError, err.Error())
		return r
	}
	defer rc.Close()
	sampler := &canarySampler{n: cmp.Or(o.Canaries, 20)}
	rep, err := restore(ctx, rc, scratch, RestoreOptions{Identities: o.Identities, TempDir: o.TempDir, Progress: o.Progress,
		skipGraph: true, sample: sampler.add})
	if rep != nil && rep.extracted != nil {
		defer rep.extracted.Remove()
	}
	var ae *ArchiveError
	if errors.As(err, &ae) {
		reportArchive(r, ae)
		return r
	}
	r.add(CheckDecrypt, StatusOK, decryptDetail(rep))
	r.add(CheckChecksums, StatusOK, fmt.Sprintf("%d files match the manifest", len(rep.Manifest.Files)))
	r.add(CheckSchema, StatusOK, fmt.Sprintf("schema version %d (this binary: %d), format %d", rep.Manifest.SchemaVersion, scratch.LatestSchemaVersion(), rep.Manifest.Format))
	m := rep.Manifest
	r.Manifest = &m
	if s := now().Sub(m.CreatedAt); o.MaxAge > 0 && s > o.MaxAge && r.Checks[1].Status == StatusOK {
		r.Checks[1] = Check{Name: CheckFreshness, Status: StatusFailed, Detail: fmt.Sprintf("the manifest says it was taken %s ago, more than --max-age %s", s.Round(time.Second), o.MaxAge)}
		r.Status = StatusBad
	}
	var le *LoadError
	var ie *IntegrityError
	switch {
	case err == nil:
		r.Restore = rep
		r.add(CheckRestore, StatusOK, fmt.Sprintf("loaded %d memories into a scratch %s store in %.1fs", rep.Loaded[TableMemories], scratch.Kind(), rep.LoadSeconds))
		r.add(CheckIntegrity, StatusOK, "row counts, checksums, foreign keys and the audit chain match")
	case errors.As(err, &le):
		r.add(CheckRestore, StatusFailed, err.Error())
		return r
	case errors.As(err, &ie):
		r.Restore = rep
		r.add(CheckRestore, StatusOK, fmt.Sprintf("loaded %d memories into a scratch %s store", rep.Loaded[TableMemories], scratch.Kind()))
		r.add(CheckIntegrity, StatusFailed, strings.Join(ie.Problems, "; "))
	default:
		r.add(CheckRestore, StatusError, err.Error())
		return r
	}

	n, failed, err := canaries(ctx, sampler.picked, scratch)
	r.Canaries = n
	switch {
	case err != nil:
		r.add(CheckCanary, StatusError, err.Error())
	case len(failed) > 0:
		r.add(CheckCanary, StatusFailed, fmt.Sprintf("%d of %d sampled memories not found by search: %s", len(failed), n, strings.Join(failed, ", ")))
	case n == 0:
		r.add(CheckCanary, StatusOK, "no active memory to search for")
	default:
		r.add(CheckCanary, StatusOK, fmt.Sprintf("%d sampled memories found by search", n))
	}
	return r
}

func decryptDetail(rep *RestoreReport) string {
	if rep.Manifest.Encrypted {
		return "decrypted with the identities given"
	}
	return "not encrypted"
}

// reportArchive records an archive problem under its check.
func reportArchive(r *Report, ae *ArchiveError) {
	switch ae.Kind {
	case ProblemNoKey:
		r.add(CheckDecrypt, StatusError, ae.Error())
	case ProblemDecrypt:
		r.add(CheckDecrypt, StatusFailed, ae.Error())
	case ProblemSchema:
		r.add(CheckDecrypt, StatusOK, "")
		r.add(CheckChecksums, StatusSkipped, "not compared: the archive is for a newer binary")
		r.add(CheckSchema, StatusFailed, ae.Error())
	default:
		r.add(CheckDecrypt, StatusOK, "")
		r.add(CheckChecksums, StatusFailed, ae.Error())
	}
}

// canarySampler picks up to n active memories, evenly spaced over the
// archive's memories, as they are loaded.
type canarySampler struct {
	n      int
	picked []Memory
}

// add sees memory number i of total.
func (c *canarySampler) add(m Memory, i, total int64) {
	step := max(total/int64(c.n), 1)
	// Cold memories are left out: search covers the hot tier.
	if i%step == 0 && len(c.picked) < c.n && m.State == memory.StateActive && !m.Cold && canaryQuery(m.Content) != "" {
		c.picked = append(c.picked, m)
	}
}

// canaries searches the restored store for each sampled memory and
// returns how many were searched and the ids of those not found.
func canaries(ctx context.Context, sample []Memory, st Scratch) (int, []string, error) {
	var failed []string
	for _, m := range sample {
		f := memory.Filter{AccessEntity: m.AccessEntity, Entity: m.Entity, ArtifactRef: m.ArtifactRef}
		if m.Category != "" {
			f.Categories = []memory.Category{m.Category}
		}
		hits, err := st.Search(ctx, memory.Access{OrgID: m.OrgID, Entities: []string{m.AccessEntity}},
			memory.SearchQuery{Text: canaryQuery(m.Content), Filter: f, Limit: 20})
		if err != nil {
			return len(sample), nil, fmt.Errorf("search for memory %s: %w", m.ID, err)
		}
		found := false
		for _, h := range hits {
			found = found || h.Memory.ID == m.ID
		}
		if !found {
			failed = append(failed, m.ID)
		}
	}
	return len(sample), failed, nil
}

// canaryQuery is the first dozen words of content: a phrase the memory
// holds, which search ranks first.
func canaryQuery(content string) string {
	var words []string
	sc := bufio.NewScanner(strings.NewReader(content))
	sc.Split(bufio.ScanWords)
	for sc.Scan() && len(words) < 12 {
		w := strings.TrimFunc(sc.Text(), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if w != "" {
			words = append(words, w)
		}
	}
	if len(words) < 2 {
		return ""
	}
	return strings.Join(words, " ")
}

// OpenArchive resolves what --from names: a directory of archives, or one
// archive file (its directory is the target, its name the archive).
func OpenArchive(from string) (Dir, string, error) {
	st, err := os.Stat(from)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Dir{Path: from}, "", nil // an empty destination: verify reports it missing
		}
		return Dir{}, "", err
	}
	if st.IsDir() {
		return Dir{Path: from}, "", nil
	}
	dir, name := splitPath(from)
	if _, ok := ParseArchiveName(name); !ok {
		return Dir{}, "", fmt.Errorf("%s is not named like an archive (codingbrain-YYYYMMDDTHHMMSSZ.tar.gz[.age])", from)
	}
	return Dir{Path: dir}, name, nil
}

func splitPath(p string) (string, string) {
	i := strings.LastIndexAny(p, `/`)
	if i < 0 {
		return ".", p
	}
	return p[:i+1], p[i+1:]
}
