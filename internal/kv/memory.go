package kv

import (
	"context"
	"math"
	"sync"
	"time"
)

// Memory is the in-process Store for a single node.
type Memory struct {
	mu      sync.Mutex
	now     func() time.Time
	values  map[string]entry
	buckets map[string]bucket
	sweep   time.Time
}

type entry struct {
	value   []byte
	expires time.Time // zero: never
}

type bucket struct {
	tokens float64
	at     time.Time
	full   time.Time // when it is full again: from then on it can be forgotten
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-process store. now may be nil.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, values: map[string]entry{}, buckets: map[string]bucket{}}
}

func (m *Memory) live(key string, now time.Time) (entry, bool) {
	e, ok := m.values[key]
	if ok && !e.expires.IsZero() && !now.Before(e.expires) {
		delete(m.values, key)
		return entry{}, false
	}
	return e, ok
}

// gc drops expired entries now and then so that the maps stay bounded by the
// live keys. Called with mu held.
func (m *Memory) gc(now time.Time) {
	if now.Sub(m.sweep) < time.Minute {
		return
	}
	m.sweep = now
	for k := range m.values {
		m.live(k, now)
	}
	for k, b := range m.buckets {
		if now.After(b.full) {
			delete(m.buckets, k)
		}
	}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key, m.now())
	if !ok {
		return nil, ErrMiss
	}
	return append([]byte(nil), e.value...), nil
}

func (m *Memory) put(key string, value []byte, ttl time.Duration, now time.Time) {
	e := entry{value: append([]byte(nil), value...)}
	if ttl > 0 {
		e.expires = now.Add(ttl)
	}
	m.values[key] = e
}

// Set implements Store.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.gc(now)
	m.put(key, value, ttl, now)
	return nil
}

// SetNX implements Store.
func (m *Memory) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.gc(now)
	if _, ok := m.live(key, now); ok {
		return false, nil
	}
	m.put(key, value, ttl, now)
	return true, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.values, k)
		delete(m.buckets, k)
	}
	return nil
}

// Allow implements Store.
func (m *Memory) Allow(_ context.Context, key string, rate float64, burst int) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.gc(now)
	b, ok := m.buckets[key]
	if !ok {
		b = bucket{tokens: float64(burst), at: now}
	}
	b.tokens = math.Min(float64(burst), b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	d := Decision{}
	if b.tokens >= 1 {
		b.tokens--
		d.Allowed = true
	} else {
		d.RetryAfter = time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	d.Remaining = int(b.tokens)
	d.ResetAfter = time.Duration((float64(burst) - b.tokens) / rate * float64(time.Second))
	b.full = now.Add(d.ResetAfter)
	m.buckets[key] = b
	return d, nil
}

// Ping implements Store.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }
