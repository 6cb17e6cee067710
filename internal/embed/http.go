package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// HTTPConfig configures an OpenAI-compatible embeddings client: OpenAI,
// Ollama (/v1), vLLM, LM Studio, TEI's OpenAI route — anything that answers
// POST {URL}/embeddings with {"model", "input": [...]} by
// {"data": [{"embedding": [...], "index": i}, ...]}.
type HTTPConfig struct {
	// URL is the API's base URL, e.g. https://api.openai.com/v1 or
	// http://localhost:11434/v1; requests go to URL + "/embeddings".
	URL string
	// Model is the remote model's name, sent with every request.
	Model string
	// APIKey, when set, is sent as "Authorization: Bearer <key>". It never
	// appears in errors or logs.
	APIKey string
	// Dim is the vectors' length; 0 learns it from the first response.
	// A response of another length is an error.
	Dim int
	// BatchSize is how many texts go in one request (default 64).
	BatchSize int
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// MaxRetries is how often a request is retried after a 429, a 5xx, a
	// timeout or a network error (default 3; negative for none), waiting
	// BackoffBase·2ⁿ with jitter (at most BackoffMax), or what
	// Retry-After says. A Retry-After longer than MaxRetryAfter is not
	// waited for: the request fails at once.
	MaxRetries    int
	BackoffBase   time.Duration // default 200ms
	BackoffMax    time.Duration // default 5s
	MaxRetryAfter time.Duration // default 30s
	// Breaker configures the circuit breaker around the requests.
	Breaker BreakerConfig
	// OnStateChange, if set, is called when the breaker changes state
	// ("closed", "open", "half-open"), for metrics and logs.
	OnStateChange func(from, to string)
	// Client sends the requests (default: a client with no overall
	// timeout; Timeout bounds each request).
	Client *http.Client
}

// BreakerConfig configures the circuit breaker of the HTTP embedder. It
// opens after Failures consecutive failed requests (transport errors,
// timeouts, 429 and 5xx answers, malformed responses; not 4xx answers to a
// bad request), fails every call at once with ErrUnavailable while open,
// lets HalfOpenRequests trial requests through after Cooldown, and closes
// when they succeed.
type BreakerConfig struct {
	Failures         uint32        // default 5
	Cooldown         time.Duration // default 30s
	HalfOpenRequests uint32        // default 1
}

// HTTP is the OpenAI-compatible embedder. It is safe for concurrent use.
type HTTP struct {
	cfg      HTTPConfig
	endpoint string // URL + /embeddings
	shown    string // endpoint without user info, for errors
	client   *http.Client
	cb       *gobreaker.CircuitBreaker[[][]float32]
	dim      atomic.Int64

	sleep  func(ctx context.Context, d time.Duration) error // tests shorten waits
	jitter func() float64                                   // in [0, 1)
}

var _ Embedder = (*HTTP)(nil)

// NewHTTP returns an embedder for the API at cfg.URL.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("http embedder: URL must be an absolute http:// or https:// URL")
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("http embedder: model is required")
	}
	if cfg.Dim < 0 {
		return nil, fmt.Errorf("http embedder: dim %d: use 0 (learn it) or a positive number", cfg.Dim)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 3
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 200 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 30 * time.Second
	}
	if cfg.Breaker.Failures == 0 {
		cfg.Breaker.Failures = 5
	}
	if cfg.Breaker.Cooldown <= 0 {
		cfg.Breaker.Cooldown = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	e := &HTTP{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.URL, "/") + "/embeddings",
		client:   cfg.Client,
		sleep:    sleepCtx,
		jitter:   rand.Float64,
	}
	su := *u
	su.User = nil
	su.RawQuery = ""
	e.shown = strings.TrimRight(su.String(), "/") + "/embeddings"
	e.dim.Store(int64(cfg.Dim))
	e.cb = gobreaker.NewCircuitBreaker[[][]float32](gobreaker.Settings{
		Name:        "embedder",
		MaxRequests: cfg.Breaker.HalfOpenRequests,
		Timeout:     cfg.Breaker.Cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Breaker.Failures },
		// A 4xx answer to a bad request means the server is up.
		IsSuccessful: func(err error) bool {
			var se *statusError
			return err == nil || errors.As(err, &se) && !se.transient()
		},
		// The caller giving up says nothing about the server.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if cfg.OnStateChange != nil {
				cfg.OnStateChange(from.String(), to.String())
			}
		},
	})
	return e, nil
}

// Model is "openai:" and the remote model's name.
func (e *HTTP) Model() string { return "openai:" + e.cfg.Model }

// Dim is the vectors' length: the configured one, else the one learned from
// the first response, 0 before any.
func (e *HTTP) Dim() int { return int(e.dim.Load()) }

// State is the circuit breaker's state: "closed", "open" or "half-open".
func (e *HTTP) State() string { return e.cb.State().String() }

// Embed embeds texts in batches of BatchSize, one request each, in order.
// Vectors are L2-normalized. When the breaker is open, or a request still
// fails after its retries, the error wraps ErrUnavailable; a 4xx answer
// (other than 408 and 429) is returned at once, without ErrUnavailable.
func (e *HTTP) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += e.cfg.BatchSize {
		batch := texts[start:min(start+e.cfg.BatchSize, len(texts))]
		vs, err := e.embedBatch(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

func (e *HTTP) embedBatch(ctx context.Context, batch []string) ([][]float32, error) {
	var last error
	for attempt := 0; ; attempt++ {
		vs, err := e.cb.Execute(func() ([][]float32, error) { return e.post(ctx, batch) })
		if err == nil {
			return vs, nil
		}
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			if last != nil {
				return nil, fmt.Errorf("embed: %w: circuit open after: %v", ErrUnavailable, last)
			}
			return nil, fmt.Errorf("embed: %w: circuit open", ErrUnavailable)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("embed: %w: %w", ErrUnavailable, ctx.Err())
		}
		var se *statusError
		isStatus := errors.As(err, &se)
		if isStatus && !se.transient() || errors.Is(err, errMalformed) {
			return nil, fmt.Errorf("embed: %w", err)
		}
		last = err
		if attempt >= e.cfg.MaxRetries {
			return nil, fmt.Errorf("embed: %w: %d attempts failed, the last: %v", ErrUnavailable, attempt+1, err)
		}
		wait := e.backoff(attempt)
		if isStatus && se.retryAfter > 0 {
			if se.retryAfter > e.cfg.MaxRetryAfter {
				return nil, fmt.Errorf("embed: %w: server asks to retry after %s: %v", ErrUnavailable, se.retryAfter, err)
			}
			wait = max(wait, se.retryAfter)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return nil, fmt.Errorf("embed: %w: no time left to retry: %v", ErrUnavailable, err)
		}
		if err := e.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("embed: %w: %w", ErrUnavailable, err)
		}
	}
}

// backoff is the wait before retry attempt+1: BackoffBase·2^attempt, at
// most BackoffMax, of which the upper half is random (jitter spreads the
// retries of many clients).
func (e *HTTP) backoff(attempt int) time.Duration {
	d := min(e.cfg.BackoffBase<<min(attempt, 30), e.cfg.BackoffMax)
	return d/2 + time.Duration(e.jitter()*float64(d/2))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// statusError is a non-2xx answer.
type statusError struct {
	code       int
	msg        string
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("status %d", e.code)
	}
	return fmt.Sprintf("status %d: %s", e.code, e.msg)
}

// transient reports whether the request may succeed later: 408, 429, 5xx.
func (e *statusError) transient() bool {
	return e.code == http.StatusRequestTimeout || e.code == http.StatusTooManyRequests || e.code >= 500
}

// errMalformed marks a response that does not fit the request (not
// retried: the same request gets the same answer; it counts as a failure
// for the breaker).
var errMalformed = errors.New("malformed response")

type embedRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embedResponse struct {
	Data []struct {
		Embedding []float64 `json:"embedding"`
		Index     *int      `json:"index"`
	} `json:"data"`
}

// maxResponseBytes bounds a response body (64 texts × 4096 dimensions as
// JSON numbers fit many times over).
const maxResponseBytes = 64 << 20

// post sends one request and reads its vectors, normalized, in input order.
func (e *HTTP) post(ctx context.Context, batch []string) ([][]float32, error) {
	body, err := json.Marshal(embedRequest{Model: e.cfg.Model, Input: batch})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, e.scrub(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if e.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.cfg.APIKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("post %s: %w", e.shown, e.scrub(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("post %s: read response: %w", e.shown, e.scrub(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("post %s: %w", e.shown, &statusError{
			code: resp.StatusCode, msg: e.scrub(errors.New(errorMessage(raw))).Error(),
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		})
	}
	if len(raw) > maxResponseBytes {
		return nil, fmt.Errorf("post %s: %w: response larger than %d bytes", e.shown, errMalformed, maxResponseBytes)
	}
	var r embedResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("post %s: %w: %v", e.shown, errMalformed, err)
	}
	return e.vectors(r, len(batch))
}

// vectors checks a response against a request of n texts and returns its
// vectors in input order, normalized.
func (e *HTTP) vectors(r embedResponse, n int) ([][]float32, error) {
	if len(r.Data) != n {
		return nil, fmt.Errorf("%w: %d embeddings for %d inputs", errMalformed, len(r.Data), n)
	}
	out := make([][]float32, n)
	for i, d := range r.Data {
		idx := i
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= n || out[idx] != nil {
			return nil, fmt.Errorf("%w: index %d out of range or repeated", errMalformed, idx)
		}
		if len(d.Embedding) == 0 {
			return nil, fmt.Errorf("%w: empty embedding at index %d", errMalformed, idx)
		}
		want := e.dim.Load()
		if want == 0 { // the first vector ever seen sets the dimension
			e.dim.CompareAndSwap(0, int64(len(d.Embedding)))
			want = e.dim.Load()
		}
		if int64(len(d.Embedding)) != want {
			return nil, fmt.Errorf("%w: dimension mismatch: got %d, want %d (did the model change? run codingbrain reindex)",
				errMalformed, len(d.Embedding), want)
		}
		out[idx] = normalize(d.Embedding)
	}
	return out, nil
}

// normalize returns v as float32 with length 1 (v as it is if it is zero).
func normalize(v []float64) []float32 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	inv := 1.0
	if s > 0 {
		inv = 1 / math.Sqrt(s)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out
}

// errorMessage takes the message of an error body: OpenAI's
// {"error": {"message"}}, {"error": "..."}, {"message": "..."}, or the
// start of the text, at most 200 bytes.
func errorMessage(raw []byte) string {
	var b struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	msg := ""
	if json.Unmarshal(raw, &b) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(b.Error, &inner) == nil && inner.Message != "":
			msg = inner.Message
		case json.Unmarshal(b.Error, &s) == nil && s != "":
			msg = s
		default:
			msg = b.Message
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	if len(msg) > 200 {
		msg = strings.ToValidUTF8(msg[:200], "") + "…"
	}
	return msg
}

// scrub removes the API key from an error's text (a server or proxy may
// echo headers back).
func (e *HTTP) scrub(err error) error {
	if e.cfg.APIKey == "" || !strings.Contains(err.Error(), e.cfg.APIKey) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), e.cfg.APIKey, "xxxxx"))
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
