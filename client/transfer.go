package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Media types of the bodies Export returns and Import sends.
const (
	ExportContentType     = "application/x-ndjson"
	OpenMemoryContentType = "application/zip"
)

// ExportParams selects what Export writes; zero fields do not filter.
type ExportParams struct {
	Team, Project, AccessEntity string
	Entity, App                 string
	Categories, Scopes, Tags    []string
	// States are the states to export; "all" exports every state. Empty
	// means every state but deleted.
	States []string
	Since  *time.Time
	// NoHistory leaves the memories' history out.
	NoHistory bool
}

// Values encodes p as the query string of GET /api/v1/export.
func (p ExportParams) Values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"team": p.Team, "project": p.Project, "access_entity": p.AccessEntity, "entity": p.Entity, "app": p.App} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for k, l := range map[string][]string{"category": p.Categories, "scope": p.Scopes, "tag": p.Tags, "state": p.States} {
		for _, s := range l {
			v.Add(k, s)
		}
	}
	if p.Since != nil {
		v.Set("since", p.Since.UTC().Format(time.RFC3339Nano))
	}
	if p.NoHistory {
		v.Set("history", "false")
	}
	return v
}

// Export writes the export file of the memories the caller may see (a
// header line, then one memory per line) to w as the server streams it, and
// returns how many bytes it wrote.
func (c *Client) Export(ctx context.Context, p ExportParams, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/export", p.Values(), nil, nil)
	if err != nil {
		return 0, fmt.Errorf("export memories: %w", err)
	}
	req.Header.Set("Accept", ExportContentType)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("export memories: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return 0, fmt.Errorf("export memories: %w", decodeError(resp, b))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("export memories: after %d bytes: %w", n, err)
	}
	return n, nil
}

// ImportError is an import the server refused: nothing was imported, and
// Report lists the problems, each with its line and field. errors.Is
// matches it as it does *Error.
type ImportError struct {
	Err    *Error
	Report memory.ImportReport
}

func (e *ImportError) Error() string { return e.Err.Error() }

// Unwrap returns the server's error.
func (e *ImportError) Unwrap() error { return e.Err }

// Import sends an export file (contentType ExportContentType) or an
// OpenMemory export zip (OpenMemoryContentType) from r, and returns the
// server's report. onConflict is fail (the default when empty), skip or
// remap. An import the server refused is an *ImportError.
func (c *Client) Import(ctx context.Context, r io.Reader, contentType, onConflict string) (memory.ImportReport, error) {
	var q url.Values
	if onConflict != "" {
		q = url.Values{"on_conflict": {onConflict}}
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/api/v1/import", q, nil, nil)
	if err != nil {
		return memory.ImportReport{}, fmt.Errorf("import memories: %w", err)
	}
	req.Body = io.NopCloser(r)
	req.ContentLength = -1
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			req.ContentLength = fi.Size()
		}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		return memory.ImportReport{}, fmt.Errorf("import memories: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return memory.ImportReport{}, fmt.Errorf("import memories: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := decodeError(resp, b)
		var failure struct {
			Report *memory.ImportReport `json:"report"`
		}
		if json.Unmarshal(b, &failure) == nil && failure.Report != nil {
			return *failure.Report, fmt.Errorf("import memories: %w", &ImportError{Err: e, Report: *failure.Report})
		}
		return memory.ImportReport{}, fmt.Errorf("import memories: %w", e)
	}
	var rep memory.ImportReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return memory.ImportReport{}, fmt.Errorf("import memories: decode response (HTTP %s): %w", strconv.Itoa(resp.StatusCode), err)
	}
	return rep, nil
}
