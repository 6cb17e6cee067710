package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Valkey is the Store on a Valkey or Redis server, shared by replicas.
//
// Every call except Ping goes through a circuit breaker: after
// Breaker.Failures consecutive calls that could not reach the server, calls
// fail at once with ErrUnavailable ("circuit open") for Breaker.Cooldown,
// then one trial call is let through and a success closes the circuit. A
// reply from the server, even an error reply, counts as reachable. Ping
// always asks the server, so that health checks report the server itself.
type Valkey struct {
	c      *redis.Client
	prefix string
	cb     *gobreaker.CircuitBreaker[struct{}]
	rate   *redis_rate.Limiter
}

var _ Store = (*Valkey)(nil)

// ValkeyOptions tune NewValkeyWith; the zero value is the defaults.
type ValkeyOptions struct {
	// Breaker opens after Failures consecutive unreachable calls (default
	// 5) and tries again after Cooldown (default 5s).
	Breaker struct {
		Failures uint32
		Cooldown time.Duration
	}
	// OnStateChange, if set, hears the breaker's changes of state
	// ("closed", "half-open", "open"), for logs and metrics.
	OnStateChange func(from, to string)
}

// NewValkey connects to the server at url (redis://[:password@]host:port/db
// or rediss:// for TLS). Keys are prefixed with prefix. The connection is
// made lazily; use Ping to check it.
func NewValkey(url, prefix string) (*Valkey, error) {
	return NewValkeyWith(url, prefix, ValkeyOptions{})
}

// NewValkeyWith is NewValkey with the breaker's settings and a listener
// for its changes of state.
func NewValkeyWith(url, prefix string, o ValkeyOptions) (*Valkey, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse valkey url: %w", err)
	}
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = time.Second
	opts.WriteTimeout = time.Second
	opts.MaxRetries = 1
	if o.Breaker.Failures == 0 {
		o.Breaker.Failures = 5
	}
	if o.Breaker.Cooldown <= 0 {
		o.Breaker.Cooldown = 5 * time.Second
	}
	c := redis.NewClient(opts)
	v := &Valkey{c: c, prefix: prefix, rate: redis_rate.NewLimiter(c)}
	v.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "valkey",
		Timeout:     o.Breaker.Cooldown,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= o.Breaker.Failures },
		IsSuccessful: func(err error) bool {
			var reply redis.Error // redis.Nil and error replies: the server answered
			return err == nil || errors.As(err, &reply)
		},
		// The caller giving up says nothing about the server.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if o.OnStateChange != nil {
				o.OnStateChange(from.String(), to.String())
			}
		},
	})
	return v, nil
}

// State is the circuit breaker's state: "closed", "half-open" or "open".
func (v *Valkey) State() string { return v.cb.State().String() }

// do runs one call through the breaker. Its error, if any, is what f
// returned (redis.Nil included, for the caller to branch on), or
// ErrUnavailable while the circuit is open.
func (v *Valkey) do(op string, f func() error) error {
	_, err := v.cb.Execute(func() (struct{}, error) { return struct{}{}, f() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("valkey %s: %w: circuit open after repeated failures", op, ErrUnavailable)
	}
	return err
}

// wrap marks connection failures as ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("valkey %s: %w: %w", op, ErrUnavailable, err)
}

// Get implements Store.
func (v *Valkey) Get(ctx context.Context, key string) ([]byte, error) {
	var b []byte
	err := v.do("get", func() (err error) { b, err = v.c.Get(ctx, v.prefix+key).Bytes(); return err })
	if errors.Is(err, redis.Nil) {
		return nil, ErrMiss
	}
	return b, wrap("get", err)
}

// Set implements Store.
func (v *Valkey) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return wrap("set", v.do("set", func() error { return v.c.Set(ctx, v.prefix+key, value, ttl).Err() }))
}

// SetNX implements Store.
func (v *Valkey) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	err := v.do("setnx", func() error {
		return v.c.SetArgs(ctx, v.prefix+key, value, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	})
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
	return wrap("delete", v.do("delete", func() error { return v.c.Del(ctx, full...).Err() }))
}

// Allow implements Store with the generic cell rate algorithm of
// redis_rate (the token bucket's equivalent, one key per bucket), run
// atomically on the server with the server's clock so that replicas with
// skewed clocks agree.
func (v *Valkey) Allow(ctx context.Context, key string, rate float64, burst int) (Decision, error) {
	if rate <= 0 || burst <= 0 {
		return Decision{}, fmt.Errorf("valkey allow: rate %v and burst %d must be positive", rate, burst)
	}
	// One token every 1/rate seconds.
	lim := redis_rate.Limit{Rate: 1, Burst: burst, Period: time.Duration(float64(time.Second) / rate)}
	var r *redis_rate.Result
	err := v.do("allow", func() (err error) { r, err = v.rate.Allow(ctx, v.prefix+key, lim); return err })
	if err != nil {
		return Decision{}, wrap("allow", err)
	}
	d := Decision{Allowed: r.Allowed > 0, Remaining: r.Remaining, ResetAfter: max(r.ResetAfter, 0)}
	if !d.Allowed {
		d.RetryAfter = max(r.RetryAfter, 0)
	}
	return d, nil
}

// Ping implements Store.
func (v *Valkey) Ping(ctx context.Context) error { return wrap("ping", v.c.Ping(ctx).Err()) }

// Close implements Store.
func (v *Valkey) Close() error { return v.c.Close() }
