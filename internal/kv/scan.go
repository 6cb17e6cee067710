package kv

import (
	"context"
	"sort"
	"strings"
)

// Scanner lists keys. Both stores implement it; it is not part of Store
// because only rare, administrative work needs it (erasure of a subject's
// shared state, its proof), never a request path.
type Scanner interface {
	// Keys returns the live keys (values and token buckets) that start
	// with prefix, sorted.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Forget removes keys as Keys names them: values and token buckets.
	Forget(ctx context.Context, keys ...string) error
}

var (
	_ Scanner = (*Memory)(nil)
	_ Scanner = (*Valkey)(nil)
)

// Keys implements Scanner.
func (m *Memory) Keys(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var keys []string
	for k := range m.values {
		if _, ok := m.live(k, now); ok && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	for k := range m.buckets {
		if _, ok := m.values[k]; !ok && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Forget implements Scanner.
func (m *Memory) Forget(ctx context.Context, keys ...string) error { return m.Delete(ctx, keys...) }

// globEscaper quotes the characters SCAN's MATCH pattern treats specially.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

// rateKeyPrefix is where redis_rate keeps the bucket of key k: "rate:" k.
const rateKeyPrefix = "rate:"

// Keys implements Scanner with SCAN (incremental, never blocking the
// server as KEYS would), over values and over token buckets (which
// redis_rate keeps under "rate:"). Keys are returned as the caller named
// them, without the store's prefix.
func (v *Valkey) Keys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for _, space := range []string{v.prefix, rateKeyPrefix + v.prefix} {
		pattern := globEscaper.Replace(space+prefix) + "*"
		var cursor uint64
		for {
			var batch []string
			err := v.do("scan", func() (err error) {
				batch, cursor, err = v.c.Scan(ctx, cursor, pattern, 500).Result()
				return err
			})
			if err != nil {
				return nil, wrap("scan", err)
			}
			for _, k := range batch {
				keys = append(keys, strings.TrimPrefix(k, space))
			}
			if cursor == 0 {
				break
			}
		}
	}
	sort.Strings(keys)
	// SCAN may return a key more than once.
	out := keys[:0]
	for i, k := range keys {
		if i == 0 || k != keys[i-1] {
			out = append(out, k)
		}
	}
	return out, nil
}

// Forget implements Scanner: Delete, and the buckets of the same keys.
func (v *Valkey) Forget(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		full = append(full, v.prefix+k, rateKeyPrefix+v.prefix+k)
	}
	return wrap("forget", v.do("forget", func() error { return v.c.Del(ctx, full...).Err() }))
}
