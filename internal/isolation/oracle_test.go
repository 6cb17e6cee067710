package isolation

import (
	"slices"
	"strings"
	"testing"
)

// TestOracle pins the oracle the suites judge by (principal.sees, built on
// memory.AccessFor) against the grant rules written out by hand for the
// fixture: user:<sub> always; org:X covers every project:X/… and team:X/…;
// project:P covers team:P/…; team:T exactly itself; nothing of another org,
// whatever the grants name.
func TestOracle(t *testing.T) {
	acmeShared := []string{"org:acme", "project:acme/api", "project:acme/apix", "project:acme/web",
		"team:acme/api/payments", "team:acme/apix", "team:acme/ops", "team:acme/web", "team:acme/web/frontend"}
	want := map[string][]string{
		"ada@acme":       append([]string{"acme user:ada"}, in("acme", acmeShared)...),
		"pat@acme":       {"acme user:pat", "acme project:acme/api", "acme team:acme/api/payments"},
		"wendy@acme":     {"acme user:wendy", "acme team:acme/web"},
		"oscar@acme":     {"acme user:oscar", "acme team:acme/ops"},
		"luke@acme":      {"acme user:luke"},
		"nina@acme":      nil,
		"rita@acme":      append([]string{"acme user:rita"}, in("acme", acmeShared)...),
		"nora@acme":      append([]string{"acme user:nora"}, in("acme", acmeShared)...),
		"ada@globex":     {"globex user:ada", "globex org:globex", "globex project:globex/api", "globex team:globex/api/payments", "globex team:globex/ops", "globex team:globex/web"},
		"mallory@globex": {"globex user:mallory"},
	}
	for _, p := range fixturePrincipals() {
		var got []string
		for _, s := range seeds {
			e := s.org + " " + s.entity
			if p.OrgID == s.org && p.access.Allows(s.entity) && !slices.Contains(got, e) {
				got = append(got, e)
			}
		}
		// Access itself, not only the org check beside it, ignores what
		// grants name of another org.
		for _, s := range seeds {
			if s.org != p.OrgID && !strings.HasPrefix(s.entity, "user:") && p.access.Allows(s.entity) {
				t.Errorf("%s (grants %v): its access covers %s of %s", p.name, p.Grants, s.entity, s.org)
			}
		}
		w := slices.Clone(want[p.name])
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s (grants %v) sees %v; the grant rules say %v", p.name, p.Grants, got, w)
		}
	}
}

func in(org string, entities []string) []string {
	out := make([]string, len(entities))
	for i, e := range entities {
		out[i] = strings.Join([]string{org, e}, " ")
	}
	return out
}
