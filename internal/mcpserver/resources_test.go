package mcpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
)

// connectWith opens a 2025-11-25 session (or, with legacy, an SSE one)
// with client options, for notifications.
func (e *testEnv) connectWith(t *testing.T, token string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: &recorder{token: token}}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0"}, opts)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: e.url + "/mcp", HTTPClient: hc, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func addMemory(t *testing.T, cs *mcp.ClientSession, m map[string]any) string {
	t.Helper()
	var out mcpserver.AddMemoriesOutput
	mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{m}}, &out))
	if out.Results[0].Status != "created" {
		t.Fatalf("add_memories: %+v", out)
	}
	return out.Results[0].ID
}

func isNotFound(err error) bool {
	var je *jsonrpc.Error
	return errors.As(err, &je) && je.Code == mcp.CodeResourceNotFound
}

// TestMemoryResources: resources/read of memory://ID follows get_memory's
// rules exactly, resources/list pages through the caller's memories, and
// the template is offered.
func TestMemoryResources(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	as := env.connectWith(t, env.token(t, alice), nil)
	bs := env.connectWith(t, env.token(t, bob), nil)
	es := env.connectWith(t, env.token(t, eve), nil)
	noRead := alice
	noRead.Scopes = []string{auth.ScopeSearchRead}
	ns := env.connectWith(t, env.token(t, noRead), nil)

	private := addMemory(t, as, map[string]any{"content": "Alice's scratch note: the staging database password rotates on Mondays.", "category": "runbook"})
	team := addMemory(t, as, map[string]any{"content": "The web team reviews every migration in pairs.", "category": "convention", "scope": "team", "access_entity": "team:acme/web"})

	tpl, err := as.ListResourceTemplates(ctx, nil)
	if err != nil || len(tpl.ResourceTemplates) != 1 || tpl.ResourceTemplates[0].URITemplate != "memory://{id}" {
		t.Fatalf("resources/templates/list: %v %+v", err, tpl)
	}

	read := func(cs *mcp.ClientSession, id string) (mcpserver.MemoryView, error) {
		var v mcpserver.MemoryView
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "memory://" + id})
		if err != nil {
			return v, err
		}
		if len(res.Contents) != 1 || res.Contents[0].MIMEType != "application/json" || res.Contents[0].URI != "memory://"+id {
			t.Fatalf("resources/read memory://%s: %+v", id, res.Contents)
		}
		return v, json.Unmarshal([]byte(res.Contents[0].Text), &v)
	}
	getTool := func(cs *mcp.ClientSession, id string) bool {
		return !call(t, cs, "get_memory", map[string]any{"id": id}, nil).IsError
	}
	for _, tc := range []struct {
		who  string
		cs   *mcp.ClientSession
		id   string
		want bool
	}{
		{"alice/private", as, private, true},
		{"alice/team", as, team, true},
		{"bob/private", bs, private, false},
		{"bob/team", bs, team, true},
		{"eve/private", es, private, false},
		{"eve/team", es, team, false},
	} {
		v, err := read(tc.cs, tc.id)
		switch {
		case tc.want && (err != nil || v.ID != tc.id || v.Content == "" || v.CreatedBy != "alice" || v.State != "active"):
			t.Errorf("%s: resources/read: %v %+v", tc.who, err, v)
		case !tc.want && !isNotFound(err):
			t.Errorf("%s: resources/read: got %v %+v, want Resource not found", tc.who, err, v)
		}
		if got := getTool(tc.cs, tc.id); got != tc.want {
			t.Errorf("%s: get_memory allowed %v, resources/read allowed %v: they must agree", tc.who, got, tc.want)
		}
	}
	if _, err := read(ns, team); err == nil || !strings.Contains(err.Error(), "memories:read") {
		t.Errorf("resources/read without memories:read: got %v, want an error naming the scope", err)
	}
	if _, err := read(as, "no-such-id"); !isNotFound(err) {
		t.Errorf("resources/read of a missing id: got %v", err)
	}

	// Listing: each caller sees what get_memory would show it.
	listed := func(cs *mcp.ClientSession) []string {
		var uris []string
		for r, err := range cs.Resources(ctx, nil) {
			if err != nil {
				t.Fatalf("resources/list: %v", err)
			}
			uris = append(uris, r.URI)
		}
		return uris
	}
	if got := listed(as); len(got) != 2 || got[0] != "memory://"+team || got[1] != "memory://"+private {
		t.Errorf("alice lists %v, want [team private], most recently updated first", got)
	}
	if got := listed(bs); len(got) != 1 || got[0] != "memory://"+team {
		t.Errorf("bob lists %v, want only the team memory", got)
	}
	if got := listed(es); len(got) != 0 {
		t.Errorf("eve lists %v, want nothing", got)
	}
	if got := listed(ns); len(got) != 0 {
		t.Errorf("a token without memories:read lists %v, want nothing", got)
	}

	// Pagination: 50 per page, every memory once.
	var batch []any
	for i := range 70 {
		batch = append(batch, map[string]any{"content": fmt.Sprintf("Bob's fact number %d about the ledger service.", i)})
	}
	mustOK(t, "add_memories", call(t, bs, "add_memories", map[string]any{"memories": batch}, nil))
	first, err := bs.ListResources(ctx, nil)
	if err != nil || len(first.Resources) != 50 || first.NextCursor == "" {
		t.Fatalf("first page: %v, %d resources, cursor %q", err, len(first.Resources), first.NextCursor)
	}
	second, err := bs.ListResources(ctx, &mcp.ListResourcesParams{Cursor: first.NextCursor})
	if err != nil || len(second.Resources) != 21 || second.NextCursor != "" {
		t.Fatalf("second page: %v, %d resources, cursor %q", err, len(second.Resources), second.NextCursor)
	}
	if got := listed(bs); len(got) != 71 {
		t.Errorf("bob lists %d resources over all pages, want 71", len(got))
	}
	if _, err := bs.ListResources(ctx, &mcp.ListResourcesParams{Cursor: "garbage"}); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Errorf("a bad cursor: got %v, want an error naming the cursor", err)
	}
}

// TestProjectContextPrompt: the prompt holds the conventions and decisions
// the caller may see for the entity, with their URIs, and nothing else.
func TestProjectContextPrompt(t *testing.T) {
	env := newEnv(t, nil)
	ctx := context.Background()
	as := env.connectWith(t, env.token(t, alice), nil)
	bs := env.connectWith(t, env.token(t, bob), nil)

	conv := addMemory(t, as, map[string]any{"content": "Billing amounts are integers in minor units, never floats.", "category": "convention", "entity": "billing",
		"scope": "team", "access_entity": "team:acme/web"})
	dec := addMemory(t, as, map[string]any{"content": "Billing moved from cron to the job queue in 2025 for retries.", "category": "decision", "entity": "billing",
		"artifact_type": "repo", "artifact_ref": "github.com/acme/billing"})
	other := addMemory(t, as, map[string]any{"content": "The search service caches queries for 30 seconds.", "category": "architecture", "entity": "search"})

	prompts, err := as.ListPrompts(ctx, nil)
	if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "project_context" || len(prompts.Prompts[0].Arguments) != 2 {
		t.Fatalf("prompts/list: %v %+v", err, prompts)
	}
	get := func(cs *mcp.ClientSession, args map[string]string) string {
		res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "project_context", Arguments: args})
		if err != nil {
			t.Fatalf("prompts/get %v: %v", args, err)
		}
		if len(res.Messages) != 1 || res.Messages[0].Role != "user" {
			t.Fatalf("prompts/get %v: %+v", args, res.Messages)
		}
		return res.Messages[0].Content.(*mcp.TextContent).Text
	}
	text := get(as, map[string]string{"entity": "billing"})
	for _, want := range []string{"## Conventions", "minor units", "memory://" + conv, "## Decisions", "job queue", "memory://" + dec} {
		if !strings.Contains(text, want) {
			t.Errorf("alice's project_context for billing lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "memory://"+other) {
		t.Errorf("project_context for billing holds the search memory:\n%s", text)
	}
	if strings.Index(text, "## Conventions") > strings.Index(text, "## Decisions") {
		t.Errorf("conventions should come before decisions:\n%s", text)
	}

	text = get(bs, map[string]string{"entity": "billing"})
	if !strings.Contains(text, "memory://"+conv) || strings.Contains(text, "memory://"+dec) {
		t.Errorf("bob's project_context must hold the team convention and not alice's own decision:\n%s", text)
	}
	text = get(as, map[string]string{"repo": "github.com/acme/billing"})
	if !strings.Contains(text, "memory://"+dec) {
		t.Errorf("project_context for the repo lacks the decision stored on it:\n%s", text)
	}
	text = get(as, map[string]string{"entity": "payments"})
	if !strings.Contains(text, "Nothing is recorded yet") || !strings.Contains(text, `entity "payments"`) {
		t.Errorf("project_context for an unknown entity should say so and how to record it:\n%s", text)
	}

	comp, err := as.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "project_context"},
		Argument: mcp.CompleteParamsArgument{Name: "entity", Value: "bil"},
	})
	if err != nil || len(comp.Completion.Values) != 1 || comp.Completion.Values[0] != "billing" {
		t.Errorf("completion of entity \"bil\": %v %+v", err, comp)
	}
	comp, err = as.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "project_context"},
		Argument: mcp.CompleteParamsArgument{Name: "repo", Value: "github.com/ac"},
	})
	if err != nil || len(comp.Completion.Values) != 1 || comp.Completion.Values[0] != "github.com/acme/billing" {
		t.Errorf("completion of repo \"github.com/ac\": %v %+v", err, comp)
	}
	comp, err = bs.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "project_context"},
		Argument: mcp.CompleteParamsArgument{Name: "repo", Value: "github.com/ac"},
	})
	if err != nil || len(comp.Completion.Values) != 0 {
		t.Errorf("bob completes a repo only alice's memory names: %v %+v", err, comp)
	}
}

// TestListChangedOnlyToThoseWhoSee: a write announces resources/list_changed
// to the sessions whose principal can see the memory, and to no other; a
// subscriber to memory://ID hears of its update.
func TestListChangedOnlyToThoseWhoSee(t *testing.T) {
	env := newEnv(t, nil)
	type counter struct{ changed, updated chan string }
	watch := func(p auth.Principal) (*mcp.ClientSession, counter) {
		c := counter{changed: make(chan string, 100), updated: make(chan string, 100)}
		cs := env.connectWith(t, env.token(t, p), &mcp.ClientOptions{
			ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { c.changed <- p.Subject },
			ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
				c.updated <- r.Params.URI
			},
		})
		return cs, c
	}
	as, ac := watch(alice)
	bs, bc := watch(bob)
	es, ec := watch(eve)
	wait := func(ch chan string, what string) string {
		t.Helper()
		select {
		case v := <-ch:
			return v
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
			return ""
		}
	}
	_ = bs

	// Alice's own memory: only alice hears.
	addMemory(t, as, map[string]any{"content": "Alice prefers table-driven tests."})
	wait(ac.changed, "list_changed for alice's own write")
	// A team memory: alice and bob hear, eve (another org) does not.
	team := addMemory(t, as, map[string]any{"content": "The web team deploys on Tuesdays.", "scope": "team", "access_entity": "team:acme/web"})
	wait(ac.changed, "list_changed to alice for the team write")
	wait(bc.changed, "list_changed to bob for the team write")
	// Eve's own write: the barrier after which every notification the
	// earlier writes caused has been delivered or dropped.
	addMemory(t, es, map[string]any{"content": "Globex ships on Fridays."})
	wait(ec.changed, "list_changed to eve for her own write")

	// Bob subscribes to the team memory and hears of its update.
	if err := bs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "memory://" + team}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := es.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "memory://" + team}); !isNotFound(err) {
		t.Errorf("eve subscribing to acme's memory: got %v, want Resource not found", err)
	}
	mustOK(t, "update_memory", call(t, as, "update_memory", map[string]any{"id": team, "content": "The web team deploys on Wednesdays."}, nil))
	if uri := wait(bc.updated, "resources/updated to bob"); uri != "memory://"+team {
		t.Errorf("bob heard of an update to %s, want memory://%s", uri, team)
	}
	wait(bc.changed, "list_changed to bob for the update")
	// The barrier: a few writes of their own, each heard before the next,
	// so that anything sent to bob or eve earlier has arrived by now. (The
	// server never sends them more; this only makes a leak visible.)
	for i := range 3 {
		addMemory(t, es, map[string]any{"content": fmt.Sprintf("Globex freezes deploys in week %d of December.", i)})
		wait(ec.changed, "list_changed to eve for her own write")
		addMemory(t, bs, map[string]any{"content": fmt.Sprintf("Bob's note %d: prefer small pull requests.", i)})
		wait(bc.changed, "list_changed to bob for his own write")
	}
	if n := len(ec.changed); n != 0 {
		t.Errorf("eve heard %d more list_changed, want none: writes in acme are not announced to globex", n)
	}
	if n := len(bc.changed); n != 0 {
		t.Errorf("bob heard %d more list_changed, want none: alice's own memory is not announced to him", n)
	}
	if n := len(ec.updated); n != 0 {
		t.Errorf("eve heard of %d updates, want none", n)
	}
}
