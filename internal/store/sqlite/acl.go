package sqlite

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// Access tokens let FTS5 narrow a search to the memories a caller may see
// before it ranks anything. Each memory's acl column holds, as decimal
// numbers (which no tokenizer or stemmer alters):
//
//   - the token of its org;
//   - the token of its access entity, within its org;
//   - the token of every proper prefix of the entity that ends in "/"
//     (team:acme/api/ for team:acme/api/payments), within its org.
//
// A search asks for any of the caller's entity and prefix tokens, which is
// exactly memory.Access when every prefix ends in "/", as memory.AccessFor
// makes them. The tokens are a pre-filter only: the statement still checks
// org_id and access_entity, so a hash collision can never show a row. The
// token format is stored data: changing it requires rebuilding the index.

// aclToken hashes the parts of a token (FNV-1a, 64 bits).
func aclToken(kind, org, value string) string {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(org))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return strconv.FormatUint(h.Sum64(), 10)
}

// aclTokens is the acl column of a memory.
func aclTokens(org, entity string) string {
	tokens := []string{aclToken("o", org, ""), aclToken("e", org, entity)}
	for i := 0; i < len(entity)-1; i++ {
		if entity[i] == '/' {
			tokens = append(tokens, aclToken("p", org, entity[:i+1]))
		}
	}
	return strings.Join(tokens, " ")
}

// aclMatch is the FTS5 query over the acl column for what a may see, and
// whether it is exact. A prefix that does not end in "/" has no token; then
// the match falls back to the org alone (still correct, less selective).
func aclMatch(a memory.Access) (string, bool) {
	var alts []string
	for _, e := range a.Entities {
		if !coveredByPrefix(e, a.Prefixes) {
			alts = append(alts, `"`+aclToken("e", a.OrgID, e)+`"`)
		}
	}
	for _, p := range a.Prefixes {
		if !strings.HasSuffix(p, "/") {
			return `acl : "` + aclToken("o", a.OrgID, "") + `"`, false
		}
		alts = append(alts, `"`+aclToken("p", a.OrgID, p)+`"`)
	}
	if len(alts) == 0 {
		return "", false
	}
	return "acl : (" + strings.Join(alts, " OR ") + ")", true
}

// coveredByPrefix reports whether a prefix token already selects entity e.
func coveredByPrefix(e string, prefixes []string) bool {
	for _, p := range prefixes {
		if len(e) > len(p) && strings.HasPrefix(e, p) && strings.HasSuffix(p, "/") {
			return true
		}
	}
	return false
}
