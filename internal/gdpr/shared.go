package gdpr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/codingbrain/codingbrain/internal/kv"
)

// sessionPrefix is where the MCP server keeps session bindings
// (internal/mcpserver/sessions.go); a binding's "user" is "<org>/<sub>".
const sessionPrefix = "mcp:session:"

// SharedItem is one key of the shared state that concerns a subject.
type SharedItem struct {
	Key  string         `json:"key"`
	Kind string         `json:"kind"`           // session or key
	Data map[string]any `json:"data,omitempty"` // a session binding as stored
}

// sharedItems lists the subject's items in the shared state:
//
//   - MCP session bindings whose owner is "<org>/<sub>";
//   - any other key naming the principal as "<org>/<sub>", whole (rate-limit
//     buckets "ratelimit:<class>:p:<org>/<sub>", caches keyed by principal).
//     Keys without the subject — DPoP replay entries (proof ids),
//     failed-authentication counters (client addresses) — are not personal
//     to the subject.
func (s *Service) sharedItems(ctx context.Context, subj Subject, m matcher) ([]SharedItem, error) {
	sc, ok := s.o.Shared.(kv.Scanner)
	if s.o.Shared == nil {
		return nil, nil
	}
	if !ok {
		return nil, fmt.Errorf("%w: the shared state cannot list its keys", ErrNotErasable)
	}
	keys, err := sc.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	owner := subj.OrgID + "/" + subj.ID
	var items []SharedItem
	for _, k := range keys {
		if strings.HasPrefix(k, sessionPrefix) {
			raw, err := s.o.Shared.Get(ctx, k)
			if errors.Is(err, kv.ErrMiss) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var b map[string]any
			if json.Unmarshal(raw, &b) == nil && b["user"] == owner {
				items = append(items, SharedItem{Key: k, Kind: "session", Data: b})
			}
			continue
		}
		if namesOwner(k, owner) {
			items = append(items, SharedItem{Key: k, Kind: "key"})
		}
	}
	return items, nil
}

// namesOwner reports whether key holds owner ("<org>/<sub>") whole: not
// preceded or followed by more of an identifier ("acme/alice" is not in
// "acme/alice2" or "bacme/alice").
func namesOwner(key, owner string) bool {
	for i := 0; ; {
		j := strings.Index(key[i:], owner)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(owner)
		if (start == 0 || !idChar(key[start-1])) && (end == len(key) || !idChar(key[end])) {
			return true
		}
		i = start + 1
	}
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@' || c >= 0x80
}

type sharedRemoved struct{ sessions, keys int }

// eraseShared removes the subject's items from the shared state.
func (s *Service) eraseShared(ctx context.Context, subj Subject, m matcher) (sharedRemoved, error) {
	var n sharedRemoved
	items, err := s.sharedItems(ctx, subj, m)
	if err != nil || len(items) == 0 {
		return n, err
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
		if it.Kind == "session" {
			n.sessions++
		} else {
			n.keys++
		}
	}
	return n, s.o.Shared.(kv.Scanner).Forget(ctx, keys...)
}
