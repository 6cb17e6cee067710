// Package kv is the small shared state that several server replicas need to
// agree on: MCP session bindings, replay caches, rate-limit buckets and
// caches. Store has two implementations: Memory, in process, for a single
// node; and Valkey, on a Valkey (or Redis) server, for several replicas.
//
// When Valkey cannot be reached every method returns an error wrapping
// ErrUnavailable; callers decide whether to fail (replay caches, session
// bindings) or degrade (caches). The client reconnects on its own.
package kv

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on.
var (
	ErrMiss        = errors.New("kv: key not found")
	ErrUnavailable = errors.New("kv: shared state unavailable")
)

// Store is a key-value store with expiry and token buckets.
type Store interface {
	// Get returns the value of key, or ErrMiss.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores key=value for ttl (0: no expiry).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX stores key=value for ttl only if key is absent, and reports
	// whether it did. Replay caches use it: false means "seen before".
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Delete removes keys; absent keys are not an error.
	Delete(ctx context.Context, keys ...string) error
	// Allow takes one token from the bucket at key, which holds at most burst
	// tokens and refills at rate tokens per second. When no token is left it
	// reports how long until one is.
	Allow(ctx context.Context, key string, rate float64, burst int) (Decision, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases connections.
	Close() error
}

// Decision is the outcome of Store.Allow.
type Decision struct {
	Allowed   bool
	Remaining int // whole tokens left
	// RetryAfter is how long until a token is back, when refused.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}
