package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/mcpserver"
)

var update = flag.Bool("update", false, "rewrite testdata/tools.golden.json")

// TestToolsListGolden keeps tools/list — names, descriptions, annotations,
// input and output schemas — as reviewed in testdata/tools.golden.json.
// After a deliberate change, run with -update and review the diff.
func TestToolsListGolden(t *testing.T) {
	env := newEnv(t, nil)
	cs, _ := env.connect(t, sessions, env.token(t, alice))
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := slices.Clone(res.Tools)
	slices.SortFunc(tools, func(a, b *mcp.Tool) int { return strings.Compare(a.Name, b.Name) })
	got, err := json.MarshalIndent(tools, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "tools.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("tools/list differs from %s; if the change is intended, run go test ./internal/mcpserver -run TestToolsListGolden -update and review the diff", golden)
	}
	for _, tool := range tools {
		if !strings.Contains(tool.Description, "Use it") && !strings.Contains(tool.Description, "Use them") {
			t.Errorf("%s: the description does not say when to use the tool: %q", tool.Name, tool.Description)
		}
		if tool.OutputSchema == nil {
			t.Errorf("%s: no output schema", tool.Name)
		}
		if tool.Annotations == nil || tool.Annotations.Title == "" {
			t.Errorf("%s: no annotations", tool.Name)
		}
	}
}

// TestDetail checks that results are compact by default and full on
// request, and that a wrong detail names the field and the allowed values.
func TestDetail(t *testing.T) {
	env := newEnv(t, nil)
	cs, _ := env.connect(t, sessions, env.token(t, alice))
	content := "Feature flags live in the flags service; never hard-code them in the web client."
	var added mcpserver.AddMemoriesOutput
	mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{
		"content": content, "category": "convention", "entity": "flags", "evidence": []string{"ADR-12"}, "tags": map[string]any{"area": "web"},
	}}}, &added))

	for _, tc := range []struct {
		tool string
		args map[string]any
		list func(any) []mcpserver.MemoryView
	}{
		{"search_memory", map[string]any{"query": "feature flags hard-code"}, func(o any) []mcpserver.MemoryView { return o.(*mcpserver.SearchOutput).Results }},
		{"list_memories", map[string]any{}, func(o any) []mcpserver.MemoryView { return o.(*mcpserver.ListOutput).Memories }},
	} {
		for _, detail := range []string{"", "compact", "full"} {
			args := map[string]any{}
			for k, v := range tc.args {
				args[k] = v
			}
			if detail != "" {
				args["detail"] = detail
			}
			var out any = &mcpserver.SearchOutput{}
			if tc.tool == "list_memories" {
				out = &mcpserver.ListOutput{}
			}
			mustOK(t, tc.tool, call(t, cs, tc.tool, args, out))
			ms := tc.list(out)
			if len(ms) != 1 || ms[0].ID != added.Results[0].ID || ms[0].Content != content || ms[0].Category != "convention" || ms[0].Entity != "flags" {
				t.Fatalf("%s detail %q: got %+v", tc.tool, detail, ms)
			}
			full := ms[0].CreatedAt != nil && len(ms[0].Evidence) == 1 && ms[0].Tags["area"] == "web" && ms[0].State == "active"
			compact := ms[0].CreatedAt == nil && ms[0].Evidence == nil && ms[0].Tags == nil && ms[0].State == ""
			if detail == "full" && !full || detail != "full" && !compact {
				t.Errorf("%s detail %q: got %+v", tc.tool, detail, ms[0])
			}
		}
	}
	mustFail(t, "search_memory", call(t, cs, "search_memory", map[string]any{"query": "flags", "detail": "everything"}, nil), "detail", "compact", "full")
}

// TestToolErrorsSayWhatToChange: a model's mistake comes back as a tool
// error naming the field and what is allowed.
func TestToolErrorsSayWhatToChange(t *testing.T) {
	env := newEnv(t, nil)
	cs, _ := env.connect(t, sessions, env.token(t, alice))
	for _, tc := range []struct {
		tool  string
		args  map[string]any
		wants []string
	}{
		{"add_memories", map[string]any{"memories": []any{map[string]any{"content": "x y z", "category": "opinion"}}}, []string{"category", "decision", "convention"}},
		{"add_memories", map[string]any{"memories": []any{}}, []string{"memories", "1 to 100"}},
		{"add_memories", map[string]any{"memories": []any{map[string]any{"content": "   "}}}, []string{"content"}},
		{"list_memories", map[string]any{"sort": "name"}, []string{"sort", "-created_at", "updated_at"}},
		{"search_memory", map[string]any{"query": "x", "mode": "fuzzy"}, []string{"mode", "hybrid", "lexical", "vector"}},
		{"search_memory", map[string]any{"query": "x", "filters": map[string]any{"created_after": "last week"}}, []string{"filters.created_after", "RFC 3339"}},
		{"update_memory", map[string]any{"id": "01J00000000000000000000000"}, []string{"at least one field", "content"}},
		{"get_memory", map[string]any{"id": ""}, []string{"id", "required"}},
		{"get_memory", map[string]any{"id": "01J00000000000000000000000"}, []string{"not found", "search_memory"}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			mustFail(t, tc.tool, call(t, cs, tc.tool, tc.args, nil), tc.wants...)
		})
	}
}
