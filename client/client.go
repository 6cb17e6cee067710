// Package client is a Go client for the Coding Brain REST API (/api/v1 and
// the health probes). The codingbrain CLI and the end-to-end tests use it;
// other Go programs may too.
//
// A Client is safe for concurrent use. Every method takes a context first.
// Failures the server reports come back as *Error, which also matches the
// memory package's sentinels with errors.Is:
//
//	m, err := c.Get(ctx, id)
//	if errors.Is(err, client.ErrNotFound) { … } // the same value as memory.ErrNotFound
//
// The request and response types are the memory package's; types.go
// aliases them (client.Input, client.Memory, …) for programs outside this
// module. The bearer token is sent only in the Authorization header and
// never appears in errors.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// DefaultBaseURL is where a local server listens by default.
const DefaultBaseURL = "http://127.0.0.1:8765"

// maxResponseBytes bounds how much of a response body is read.
const maxResponseBytes = 32 << 20

// Client talks to one Coding Brain server with one token.
type Client struct {
	base      string
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send requests through h instead of
// http.DefaultClient (for timeouts, proxies, TLS settings or tests).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.http = h
		}
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a Client for the server at baseURL (DefaultBaseURL when empty)
// that authenticates with token. An empty token sends no Authorization
// header.
func New(baseURL, token string, opts ...Option) *Client {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		token:     token,
		http:      http.DefaultClient,
		userAgent: "codingbrain-client",
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the server address the Client talks to.
func (c *Client) BaseURL() string { return c.base }

// Add stores a memory. created is false when the server returned an existing
// memory: an exact duplicate, or a replay of idempotencyKey. An empty
// idempotencyKey sends no Idempotency-Key header.
func (c *Client) Add(ctx context.Context, in memory.Input, idempotencyKey string) (m memory.Memory, created bool, err error) {
	var h http.Header
	if idempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	status, err := c.do(ctx, http.MethodPost, "/api/v1/memories", nil, h, in, &m)
	if err != nil {
		return memory.Memory{}, false, fmt.Errorf("add memory: %w", err)
	}
	return m, status == http.StatusCreated, nil
}

// Get returns one memory.
func (c *Client) Get(ctx context.Context, id string) (memory.Memory, error) {
	var m memory.Memory
	if _, err := c.do(ctx, http.MethodGet, memoryPath(id), nil, nil, nil, &m); err != nil {
		return memory.Memory{}, fmt.Errorf("get memory %s: %w", id, err)
	}
	return m, nil
}

// List returns one page of memories. Pass Page.NextCursor as p.Cursor to get
// the next page; it is empty on the last page.
func (c *Client) List(ctx context.Context, p ListParams) (memory.Page, error) {
	var page memory.Page
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/memories", p.Values(), nil, nil, &page); err != nil {
		return memory.Page{}, fmt.Errorf("list memories: %w", err)
	}
	return page, nil
}

// Update changes the fields set in patch and returns the updated memory.
func (c *Client) Update(ctx context.Context, id string, patch memory.Patch) (memory.Memory, error) {
	var m memory.Memory
	if _, err := c.do(ctx, http.MethodPatch, memoryPath(id), nil, nil, patch, &m); err != nil {
		return memory.Memory{}, fmt.Errorf("update memory %s: %w", id, err)
	}
	return m, nil
}

// Delete soft-deletes a memory and returns it in state "deleted".
func (c *Client) Delete(ctx context.Context, id string) (memory.Memory, error) {
	var m memory.Memory
	if _, err := c.do(ctx, http.MethodDelete, memoryPath(id), nil, nil, nil, &m); err != nil {
		return memory.Memory{}, fmt.Errorf("delete memory %s: %w", id, err)
	}
	return m, nil
}

// SetState pauses, archives or restores a memory.
func (c *Client) SetState(ctx context.Context, id string, action memory.Action) (memory.Memory, error) {
	var m memory.Memory
	body := struct {
		Action memory.Action `json:"action"`
	}{action}
	if _, err := c.do(ctx, http.MethodPost, memoryPath(id)+"/state", nil, nil, body, &m); err != nil {
		return memory.Memory{}, fmt.Errorf("%s memory %s: %w", action, id, err)
	}
	return m, nil
}

// History returns the changes of a memory, oldest first.
func (c *Client) History(ctx context.Context, id string) ([]memory.HistoryEntry, error) {
	var out struct {
		History []memory.HistoryEntry `json:"history"`
	}
	if _, err := c.do(ctx, http.MethodGet, memoryPath(id)+"/history", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get history of memory %s: %w", id, err)
	}
	return out.History, nil
}

// SearchRequest is the body of POST /api/v1/search.
type SearchRequest struct {
	Query   string            `json:"query"`
	Limit   int               `json:"limit,omitempty"`
	Filters memory.Filter     `json:"filters,omitzero"`
	Mode    memory.SearchMode `json:"mode,omitempty"`
	Explain bool              `json:"explain,omitempty"`
	// IncludeCold also searches the cold tier.
	IncludeCold bool `json:"include_cold,omitempty"`
}

// Search returns the memories most relevant to r.Query, best first, with
// the retrieval that ran and whether it was degraded.
func (c *Client) Search(ctx context.Context, r SearchRequest) (memory.SearchResult, error) {
	var out memory.SearchResult
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/search", nil, nil, r, &out); err != nil {
		return memory.SearchResult{}, fmt.Errorf("search memories: %w", err)
	}
	return out, nil
}

// Apps lists the apps that wrote visible memories.
func (c *Client) Apps(ctx context.Context) ([]memory.AppCount, error) {
	var out struct {
		Apps []memory.AppCount `json:"apps"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/apps", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return out.Apps, nil
}

// Stats counts the memories visible to the caller.
func (c *Client) Stats(ctx context.Context) (memory.Stats, error) {
	var s memory.Stats
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/stats", nil, nil, nil, &s); err != nil {
		return memory.Stats{}, fmt.Errorf("get stats: %w", err)
	}
	return s, nil
}

// Health is the answer of a health probe.
type Health struct {
	// Status is "ok" or "unavailable".
	Status string
	// Body is the whole JSON answer, with whatever details the probe gives
	// (dependencies, latencies, version).
	Body map[string]any
}

// Health probes /health/{which}; which is "live", "ready" or "deps". A probe
// that answers but reports a problem (503) returns its Health together with
// an *Error whose Code is "unavailable".
func (c *Client) Health(ctx context.Context, which string) (Health, error) {
	switch which {
	case "live", "ready", "deps":
	default:
		return Health{}, fmt.Errorf("probe health: unknown probe %q; use live, ready or deps", which)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/health/"+which, nil, nil, nil)
	if err != nil {
		return Health{}, fmt.Errorf("probe health: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Health{}, fmt.Errorf("probe health: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return Health{}, fmt.Errorf("probe health: read response: %w", err)
	}
	var h Health
	if json.Unmarshal(b, &h.Body) == nil {
		h.Status, _ = h.Body["status"].(string)
	}
	if resp.StatusCode != http.StatusOK {
		e := decodeError(resp, b)
		if h.Status != "" {
			e.Message = "probe " + which + " reports " + h.Status
		}
		return h, fmt.Errorf("probe health: %w", e)
	}
	if h.Status == "" {
		return h, fmt.Errorf("probe health: answer has no status")
	}
	return h, nil
}

func memoryPath(id string) string { return "/api/v1/memories/" + url.PathEscape(id) }

// do sends one JSON request and decodes a 2xx answer into out. It returns
// the status code; any other status becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, h http.Header, body, out any) (int, error) {
	req, err := c.newRequest(ctx, method, path, q, h, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeError(resp, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode response: %w", err)
		}
	}
	return resp.StatusCode, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, h http.Header, body any) (*http.Request, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}
