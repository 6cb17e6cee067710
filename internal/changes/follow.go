// Package changes keeps derived, in-process data (a vector index, caches)
// in step with the store on every replica by following its
// memory.ChangeFeed: writes made through this process, other replicas on
// the same PostgreSQL database or other processes on the same SQLite file
// reach apply within about one polling interval.
package changes

import (
	"context"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

const (
	// DefaultEvery is the polling interval when Follow is given zero.
	DefaultEvery = 200 * time.Millisecond
	// PageLimit is how many changes Follow asks the feed for at a time.
	PageLimit = 1000
	// MaxBackoff bounds the wait between retries after an error.
	MaxBackoff = 5 * time.Second
	// maxPageLimit bounds how far a page that makes no progress grows.
	maxPageLimit = 1 << 17
)

// Option changes how Follow runs.
type Option func(*options)

type options struct {
	onError func(err error, retryIn time.Duration)
}

// OnError has Follow call fn with every error of the feed or of apply, and
// the time it waits before retrying. Follow itself logs nothing. fn runs on
// Follow's goroutine and should return quickly.
func OnError(fn func(err error, retryIn time.Duration)) Option {
	return func(o *options) { o.onError = fn }
}

// Follow reads feed from the cursor from until ctx ends, and then returns
// ctx.Err(). It calls apply with each non-empty page of changes, at most
// PageLimit at a time, in the order of the feed; while pages come full it
// reads the next one at once, and otherwise it waits every (DefaultEvery
// when zero) before asking again.
//
// Delivery is at least once: a memory can come again, also with a Seq
// apply has already seen, so apply must be idempotent and keep the change
// with the highest Seq per memory. apply runs on Follow's goroutine, one
// page at a time.
//
// An error from the feed, or from apply, does not stop Follow: it waits
// (every, then twice as long each time, up to MaxBackoff) and asks again
// from the same cursor, so the page apply failed on comes again. The error
// goes to the OnError callback, if any. apply should therefore return an
// error only for failures worth retrying, and skip changes it can never
// apply.
//
// A full page whose cursor does not move forward means the feed has more
// changes to report again than fit in a page (PostgreSQL, while a write
// transaction stays open for long): Follow then doubles the page size, up
// to 131072, until pages make progress or come back short. (At that size it
// polls every interval until the transaction ends.)
func Follow(ctx context.Context, feed memory.ChangeFeed, from memory.ChangeCursor, every time.Duration,
	apply func([]memory.Change) error, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if every <= 0 {
		every = DefaultEvery
	}
	cursor, limit := from, PageLimit
	var backoff time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, next, err := feed.Changes(ctx, cursor, limit)
		if err == nil && len(batch) > 0 {
			err = apply(batch)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			backoff = nextBackoff(backoff, every)
			if o.onError != nil {
				o.onError(err, backoff)
			}
			if err := wait(ctx, backoff); err != nil {
				return err
			}
			continue
		}
		backoff = 0
		full, progress := len(batch) >= limit, next.Seq > cursor.Seq
		cursor = next
		switch {
		case full && progress:
			continue // more is waiting
		case full && limit < maxPageLimit:
			limit = min(2*limit, maxPageLimit)
			continue
		case !full:
			limit = PageLimit
		}
		// Caught up, or stuck at the largest page until the open
		// transaction ends.
		if err := wait(ctx, every); err != nil {
			return err
		}
	}
}

// nextBackoff is the wait after an error that followed a wait of prev
// (zero after a success): every, then twice the previous, up to MaxBackoff.
func nextBackoff(prev, every time.Duration) time.Duration {
	return min(max(2*prev, every), MaxBackoff)
}

// wait waits for d or until ctx ends, and returns ctx.Err() then.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
