package isolation

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// withoutScope is p with one scope less, and its token.
func (w *world) withoutScope(t *testing.T, p *principal, drop string) *principal {
	t.Helper()
	q := newPrincipal(p.Subject, p.OrgID, slices.DeleteFunc(slices.Clone(p.Scopes), func(s string) bool { return s == drop }), p.Grants)
	q.name += " without " + drop
	w.issue(t, q)
	return q
}

// readResource reads uri as cs, returning the text, all the caller got,
// or the error.
func readResource(t *testing.T, cs *mcp.ClientSession, uri string) (text string, raw []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
	if err != nil {
		return "", []byte(err.Error()), err
	}
	raw, _ = json.Marshal(res)
	for _, c := range res.Contents {
		text += c.Text
	}
	return text, raw, nil
}

// TestMCPResources: resources/read of memory://ID answers exactly as
// get_memory does — the memory for a caller who may see it, "not found"
// worded as for a memory that does not exist otherwise, and a refusal
// without memories:read — and resources/list pages through exactly the
// caller's live memories (none without memories:read), on both Streamable
// HTTP protocol eras; resources/subscribe is refused as not found for what
// the caller may not read.
func TestMCPResources(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cs := w.connectAll(t)
	for i, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		_, _, ghostErr := readResource(t, cs[p], "memory://"+ghostID)
		if ghostErr == nil {
			t.Fatalf("%s: resources/read of a memory that does not exist succeeded", p.name)
		}
		for _, e := range w.entries {
			text, raw, err := readResource(t, cs[p], "memory://"+e.m.ID)
			get := call(t, cs[p], "get_memory", map[string]any{"id": e.m.ID})
			if p.sees(e.m) && e.m.State != memory.StateDeleted {
				var v mcpserver.MemoryView
				if err != nil || json.Unmarshal([]byte(text), &v) != nil {
					t.Errorf("%s: resources/read of visible %s: %v %s", p.name, e.m.ID, err, raw)
					continue
				}
				w.viewSameAsRecord(t, p, "resources/read", v)
				if get.failed() {
					t.Errorf("%s: get_memory of %s fails where resources/read succeeds: %s", p.name, e.m.ID, get.raw)
				}
				continue
			}
			switch {
			case err == nil:
				t.Errorf("%s: resources/read of %s, which it may not read: %s", p.name, e.m.ID, raw)
			case !strings.Contains(strings.ToLower(err.Error()), "not found"):
				t.Errorf("%s: resources/read of %s: %v, want not found", p.name, e.m.ID, err)
			case !p.sees(e.m) && strings.ReplaceAll(err.Error(), e.m.ID, "ID") != strings.ReplaceAll(ghostErr.Error(), ghostID, "ID"):
				t.Errorf("%s: resources/read of hidden %s: %q differs from the answer for a memory that does not exist (%q)", p.name, e.m.ID, err, ghostErr)
			}
			if !get.failed() {
				t.Errorf("%s: get_memory of %s succeeds where resources/read fails: %s", p.name, e.m.ID, get.raw)
			}
			w.noLeak(t, p, "resources/read of "+e.m.ID, raw, e.m.ID)
		}
		wantIDs(t, p, "resources/list", w.listResources(t, p, cs[p], ""), w.live(p))
		// resources/subscribe (sessions only) follows the same rule.
		if eras[i%len(eras)] != eras[0] {
			continue
		}
		for _, e := range w.entries {
			err := cs[p].Subscribe(t.Context(), &mcp.SubscribeParams{URI: "memory://" + e.m.ID})
			if p.sees(e.m) && e.m.State != memory.StateDeleted {
				if err != nil {
					t.Errorf("%s: subscribe to visible %s: %v", p.name, e.m.ID, err)
				}
				continue
			}
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "not found") {
				t.Errorf("%s: subscribe to %s, which it may not read: %v, want not found", p.name, e.m.ID, err)
			} else {
				w.noLeak(t, p, "subscribe to "+e.m.ID, []byte(err.Error()), e.m.ID)
			}
		}
	}
	// Without memories:read nothing is read and nothing listed.
	for i, p := range w.principals {
		q := w.withoutScope(t, p, auth.ScopeMemoriesRead)
		c := w.connect(t, q, eras[i%len(eras)])
		for _, e := range w.entries {
			if _, raw, err := readResource(t, c, "memory://"+e.m.ID); err == nil {
				t.Errorf("%s: resources/read of %s: %s, want a refusal", q.name, e.m.ID, raw)
			} else {
				w.noLeak(t, q, "resources/read of "+e.m.ID, raw, e.m.ID)
			}
		}
		if got := w.listResources(t, q, c, ""); len(got) != 0 {
			t.Errorf("%s: resources/list returned %v", q.name, got)
		}
	}
	w.allUnchanged(t, "resources/read and resources/list")
}

// listResources pages through resources/list as p from cursor and returns
// the memory ids, checking each page for leaks.
func (w *world) listResources(t *testing.T, p *principal, cs *mcp.ClientSession, cursor string) []string {
	t.Helper()
	ids := []string{}
	for range 100 {
		res, err := cs.ListResources(t.Context(), &mcp.ListResourcesParams{Cursor: cursor})
		if err != nil {
			t.Errorf("%s: resources/list: %v", p.name, err)
			return nil
		}
		raw, _ := json.Marshal(res)
		w.noLeak(t, p, "resources/list", raw)
		for _, r := range res.Resources {
			id, ok := strings.CutPrefix(r.URI, "memory://")
			if !ok {
				t.Errorf("%s: resources/list lists %s", p.name, r.URI)
				continue
			}
			ids = append(ids, id)
		}
		if res.NextCursor == "" {
			slices.Sort(ids)
			return ids
		}
		cursor = res.NextCursor
	}
	t.Fatalf("%s: resources/list does not end", p.name)
	return nil
}

// memoryURIs finds the memory URIs a prompt names (ULIDs; the prompt's
// own instructions say memory://ID).
var memoryURIs = regexp.MustCompile(`memory://([0-9A-HJKMNP-TV-Z]{26})`)

// contextCategories are the categories project_context primes with.
var contextCategories = []memory.Category{"convention", "decision", "architecture", "workflow", "testing", "security", "performance", "dependency"}

// TestMCPPrompt: the project_context prompt, for every entity of the
// fixture and for everything, holds only active memories the caller may
// see — all of those about the entity — and never another's content; its
// completions offer only names of memories the caller may see; without
// memories:read it is refused.
func TestMCPPrompt(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cs := w.connectAll(t)
	prompt := func(p *principal, c *mcp.ClientSession, args map[string]string) (string, []byte, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		res, err := c.GetPrompt(ctx, &mcp.GetPromptParams{Name: "project_context", Arguments: args})
		if err != nil {
			return "", []byte(err.Error()), err
		}
		raw, _ := json.Marshal(res)
		var text string
		for _, m := range res.Messages {
			if tc, ok := m.Content.(*mcp.TextContent); ok {
				text += tc.Text
			}
		}
		return text, raw, nil
	}
	primable := func(p *principal, e *entry) bool {
		return p.sees(e.m) && e.m.State == memory.StateActive && slices.Contains(contextCategories, e.m.Category)
	}
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		args := []map[string]string{{}}
		for _, e := range w.entries {
			args = append(args, map[string]string{"entity": e.m.Entity})
		}
		for _, a := range args {
			text, raw, err := prompt(p, cs[p], a)
			// The answer repeats the entity asked for (the caller's own
			// words); the rest is what it reveals.
			if a["entity"] != "" {
				raw = bytes.ReplaceAll(raw, []byte(a["entity"]), nil)
			}
			w.noLeak(t, p, "project_context "+a["entity"], raw)
			if err != nil {
				t.Errorf("%s: project_context %v: %v", p.name, a, err)
				continue
			}
			var got []string
			for _, m := range memoryURIs.FindAllStringSubmatch(text, -1) {
				got = append(got, m[1])
				if e := w.byID[m[1]]; e == nil || !primable(p, e) {
					t.Errorf("%s: project_context %v names memory %s, which is not an active memory it may see", p.name, a, m[1])
				}
			}
			for _, e := range w.entries {
				if primable(p, e) && (a["entity"] == "" || e.m.Entity == a["entity"]) && !slices.Contains(got, e.m.ID) {
					t.Errorf("%s: project_context %v lacks visible memory %s", p.name, a, e.m.ID)
				}
			}
		}
		if can(p, auth.ScopeEntitiesRead) {
			for _, arg := range []string{"entity", "repo"} {
				for _, prefix := range []string{"", "svc", "svc-mk0", "github"} {
					res, err := cs[p].Complete(t.Context(), &mcp.CompleteParams{
						Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "project_context"}, Argument: mcp.CompleteParamsArgument{Name: arg, Value: prefix}})
					if err != nil {
						t.Errorf("%s: complete %s %q: %v", p.name, arg, prefix, err)
						continue
					}
					raw, _ := json.Marshal(res)
					w.noLeak(t, p, "complete "+arg+" "+prefix, raw)
				}
			}
		}
	}
	for i, p := range w.principals {
		q := w.withoutScope(t, p, auth.ScopeMemoriesRead)
		_, raw, err := prompt(q, w.connect(t, q, eras[i%len(eras)]), map[string]string{})
		if err == nil || !strings.Contains(err.Error(), "missing scope "+auth.ScopeMemoriesRead) {
			t.Errorf("%s: project_context: %s, want a refusal naming %s", q.name, raw, auth.ScopeMemoriesRead)
		}
		w.noLeak(t, q, "project_context", raw)
	}
	w.allUnchanged(t, "project_context")
}
