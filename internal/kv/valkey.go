package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Valkey is the Store on a Valkey or Redis server, shared by replicas.
type Valkey struct {
	c      *redis.Client
	prefix string
}

var _ Store = (*Valkey)(nil)

// NewValkey connects to the server at url (redis://[:password@]host:port/db
// or rediss:// for TLS). Keys are prefixed with prefix. The connection is
// made lazily; use Ping to check it.
func NewValkey(url, prefix string) (*Valkey, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse valkey url: %w", err)
	}
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = time.Second
	opts.WriteTimeout = time.Second
	opts.MaxRetries = 1
	return &Valkey{c: redis.NewClient(opts), prefix: prefix}, nil
}

// wrap marks connection failures as ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("valkey %s: %w: %w", op, ErrUnavailable, err)
}

// Get implements Store.
func (v *Valkey) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := v.c.Get(ctx, v.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrMiss
	}
	return b, wrap("get", err)
}

// Set implements Store.
func (v *Valkey) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return wrap("set", v.c.Set(ctx, v.prefix+key, value, ttl).Err())
}

// SetNX implements Store.
func (v *Valkey) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	err := v.c.SetArgs(ctx, v.prefix+key, value, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, wrap("setnx", err)
	}
	return true, nil
}

// Delete implements Store.
func (v *Valkey) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = v.prefix + k
	}
	return wrap("delete", v.c.Del(ctx, full...).Err())
}

// tokenBucket refills and takes one token atomically on the server, using
// the server's clock so that replicas with skewed clocks agree.
// KEYS[1] bucket; ARGV[1] rate/s; ARGV[2] burst. Returns {allowed, tokens*1000, retry_ms}.
var tokenBucket = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.floor(tokens * 1000), retry}
`)

// Allow implements Store.
func (v *Valkey) Allow(ctx context.Context, key string, rate float64, burst int) (Decision, error) {
	r, err := tokenBucket.Run(ctx, v.c, []string{v.prefix + key}, rate, burst).Int64Slice()
	if err != nil {
		return Decision{}, wrap("allow", err)
	}
	return Decision{Allowed: r[0] == 1, Remaining: int(r[1] / 1000), RetryAfter: time.Duration(r[2]) * time.Millisecond}, nil
}

// Ping implements Store.
func (v *Valkey) Ping(ctx context.Context) error { return wrap("ping", v.c.Ping(ctx).Err()) }

// Close implements Store.
func (v *Valkey) Close() error { return v.c.Close() }
