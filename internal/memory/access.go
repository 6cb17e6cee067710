package memory

import (
	"fmt"
	"strings"

	"github.com/codingbrain/codingbrain/internal/auth"
)

// AccessFor turns a principal's grants into what it may see and write:
//
//   - user:<sub> is always granted;
//   - org:X covers org:X and every project:X/* and team:X/*;
//   - project:P covers project:P and every team:P/*;
//   - team:T and user:U cover exactly themselves.
//
// Everything stays inside the principal's org_id: a grant naming another
// org (org:Y, project:Y/…, team:Y/…) is ignored, as are malformed ones.
func AccessFor(p auth.Principal) Access {
	a := Access{OrgID: p.OrgID, Entities: []string{p.UserEntity()}}
	for _, g := range p.Grants {
		kind, name, ok := strings.Cut(g, ":")
		if !ok || name == "" || validEntity(g) != nil || !inOrg(kind, name, p.OrgID) {
			continue
		}
		a.Entities = append(a.Entities, g)
		switch kind {
		case "org":
			a.Prefixes = append(a.Prefixes, "project:"+name+"/", "team:"+name+"/")
		case "project":
			a.Prefixes = append(a.Prefixes, "team:"+name+"/")
		}
	}
	return a
}

// inOrg reports whether the grant kind:name stays inside org.
func inOrg(kind, name, org string) bool {
	switch kind {
	case "org":
		return name == org
	case "project", "team":
		owner, _, _ := strings.Cut(name, "/")
		return owner == org
	}
	return true
}

// entityKinds maps a scope to the access-entity kind a memory of that scope is
// shared through.
var entityKinds = map[Scope]string{
	"session": "user", "user": "user", "team": "team", "project": "project",
	"org": "org", "enterprise": "org",
}

// ValidEntity checks the shape of an access entity, or of a grant naming
// one: user:<sub>, team:<org>/<team>, project:<org>/<project> or org:<org>.
// The error is a *ValidationError on field access_entity.
func ValidEntity(e string) error { return validEntity(e) }

// validEntity checks the shape of an access entity: user:<sub>,
// team:<org>/<team>, project:<org>/<project> or org:<org>.
func validEntity(e string) error {
	kind, name, ok := strings.Cut(e, ":")
	if !ok || name == "" || strings.ContainsAny(name, " \t\n%_*") {
		return invalid("access_entity", "%q must look like user:<sub>, team:<org>/<team>, project:<org>/<project> or org:<org>", e)
	}
	switch kind {
	case "user", "org":
		return nil
	case "team", "project":
		if org, rest, ok := strings.Cut(name, "/"); ok && org != "" && rest != "" {
			return nil
		}
		return invalid("access_entity", "%q must be %s:<org>/<name>", e, kind)
	}
	return invalid("access_entity", "%q has kind %q; use one of: user, team, project, org", e, kind)
}

// resolveEntity picks the access entity for a new memory of the given scope
// when the caller did not name one: the user's own entity for private scopes,
// else the one grant of the matching kind. With several candidates the
// error lists them, so the caller can choose.
func resolveEntity(p auth.Principal, scope Scope) (string, error) {
	kind := entityKinds[scope]
	if kind == "user" {
		return p.UserEntity(), nil
	}
	var options []string
	for _, g := range AccessFor(p).Entities {
		if strings.HasPrefix(g, kind+":") {
			options = append(options, g)
		}
	}
	if kind == "org" && len(options) == 0 {
		return "", fmt.Errorf("%w: scope %q needs an org:%s grant", ErrForbidden, scope, p.OrgID)
	}
	switch len(options) {
	case 0:
		return "", invalid("access_entity", "scope %q needs an access_entity of the form %s:<org>/<name>, and your grants hold none", scope, kind)
	case 1:
		return options[0], nil
	}
	return "", invalid("access_entity", "scope %q is ambiguous; name one of: %s", scope, strings.Join(options, ", "))
}
