package memory

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewULIDSource returns an id source of monotonic ULIDs: sortable by creation
// time, and strictly increasing within one process.
func NewULIDSource(now func() time.Time) func() string {
	var mu sync.Mutex
	entropy := ulid.Monotonic(rand.Reader, 0)
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		id, err := ulid.New(ulid.Timestamp(now()), entropy)
		if err != nil { // monotonic entropy exhausted within one millisecond
			return ulid.Make().String()
		}
		return id.String()
	}
}
