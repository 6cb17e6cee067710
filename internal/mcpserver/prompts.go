package mcpserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// The project_context prompt primes a model with what the team recorded
// about a repository or entity: its conventions, decisions, architecture,
// workflows, testing, security and performance notes, as the caller may
// see them. It is built from memory.Service with the caller's access: the
// memories whose artifact_ref is the repo and whose entity is the entity
// (exactly), then, with search:read, the best search matches for the two
// among the same categories. Only active memories are included.

const (
	promptProjectContext = "project_context"
	contextExact         = 40 // memories matched by artifact_ref/entity
	contextRelated       = 10 // more found by searching for them
)

// contextCategories are the kinds of memory worth priming with, in the
// order they are shown.
var contextCategories = []memory.Category{
	"convention", "decision", "architecture", "workflow", "testing", "security", "performance", "dependency",
}

func (s *Server) addPrompts() {
	s.mcp.AddPrompt(&mcp.Prompt{
		Name:  promptProjectContext,
		Title: "Project context",
		Description: "The team's recorded conventions, decisions and architecture for a repository or entity, " +
			"to read before working on it. Needs memories:read (and search:read for related memories).",
		Arguments: []*mcp.PromptArgument{
			{Name: "repo", Description: "the repository, as stored in artifact_ref (e.g. github.com/acme/api); optional"},
			{Name: "entity", Description: "a service, module, library or component name, as stored in entity; optional"},
		},
	}, s.projectContext)
}

func (s *Server) projectContext(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	ctx, p, err := s.caller(ctx, req.Extra, auth.ScopeMemoriesRead)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: err.Error()}
	}
	repo := strings.TrimSpace(req.Params.Arguments["repo"])
	entity := strings.TrimSpace(req.Params.Arguments["entity"])
	f := memory.Filter{Categories: contextCategories, States: []memory.State{memory.StateActive}, ArtifactRef: repo, Entity: entity}
	page, err := s.svc.List(ctx, memory.ListQuery{Filter: f, Sort: memory.SortUpdatedDesc, Limit: contextExact}, memory.ViaMCP)
	if err != nil {
		return nil, s.promptError(ctx, err)
	}
	ms := page.Memories
	if q := strings.TrimSpace(repo + " " + entity); q != "" && p.Missing(auth.ScopeSearchRead) == "" {
		f.ArtifactRef, f.Entity = "", ""
		res, err := s.svc.Search(ctx, memory.SearchQuery{Text: q, Filter: f, Limit: contextRelated}, memory.ViaMCP)
		if err != nil {
			return nil, s.promptError(ctx, err)
		}
		for _, h := range res.Hits {
			if !slices.ContainsFunc(ms, func(m memory.Memory) bool { return m.ID == h.Memory.ID }) {
				ms = append(ms, h.Memory)
			}
		}
	}
	return &mcp.GetPromptResult{
		Description: "Project context" + subject(repo, entity),
		Messages:    []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: contextText(repo, entity, ms)}}},
	}, nil
}

func (s *Server) promptError(ctx context.Context, err error) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: s.toolError(ctx, promptProjectContext, err).Error()}
}

func subject(repo, entity string) string {
	switch {
	case repo != "" && entity != "":
		return fmt.Sprintf(" for %s in %s", entity, repo)
	case repo != "":
		return " for " + repo
	case entity != "":
		return " for " + entity
	}
	return " for everything you can see"
}

// contextText renders the memories grouped by category, each with its
// resource URI so that the model can read, cite or update it.
func contextText(repo, entity string, ms []memory.Memory) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Project context%s, from Coding Brain, the team's shared memory.\n", subject(repo, entity))
	if len(ms) == 0 {
		fmt.Fprintf(&b, "\nNothing is recorded yet. As you learn conventions and decisions here, store them with add_memories "+
			"(category convention or decision%s).\n", storeHint(repo, entity))
		return b.String()
	}
	b.WriteString("Follow these conventions and decisions unless the user says otherwise. If one is outdated or wrong, say so and " +
		"correct it with update_memory (its id is in memory://ID). Search for more with search_memory.\n")
	for _, c := range contextCategories {
		first := true
		for _, m := range ms {
			if m.Category != c {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n## %s\n", categoryHeading(c))
				first = false
			}
			fmt.Fprintf(&b, "- %s", strings.ReplaceAll(strings.TrimSpace(m.Content), "\n", "\n  "))
			var about []string
			if m.Entity != "" && m.Entity != entity {
				about = append(about, m.Entity)
			}
			if m.ArtifactRef != "" && m.ArtifactRef != repo {
				about = append(about, m.ArtifactRef)
			}
			if len(about) > 0 {
				fmt.Fprintf(&b, " [%s]", strings.Join(about, ", "))
			}
			fmt.Fprintf(&b, " (%s)\n", memoryURI(m.ID))
		}
	}
	return b.String()
}

func storeHint(repo, entity string) string {
	var h []string
	if entity != "" {
		h = append(h, fmt.Sprintf("entity %q", entity))
	}
	if repo != "" {
		h = append(h, fmt.Sprintf("artifact_type repo, artifact_ref %q", repo))
	}
	if len(h) == 0 {
		return ""
	}
	return ", " + strings.Join(h, ", ")
}

func categoryHeading(c memory.Category) string {
	switch c {
	case "convention":
		return "Conventions"
	case "decision":
		return "Decisions"
	case "architecture":
		return "Architecture"
	case "workflow":
		return "Workflows"
	case "testing":
		return "Testing"
	case "security":
		return "Security"
	case "performance":
		return "Performance"
	case "dependency":
		return "Dependencies"
	}
	return string(c)
}

// complete suggests values for the arguments of project_context: for
// entity, the entity names, and for repo, the artifact references, that
// memories the caller can see (entities:read) mention and that start with
// what was typed. Anything else completes to nothing.
func (s *Server) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	res := &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}}}
	if req.Params == nil || req.Params.Ref == nil || req.Params.Ref.Type != "ref/prompt" || req.Params.Ref.Name != promptProjectContext {
		return res, nil
	}
	kind := map[string]string{"entity": "entity", "repo": "artifact"}[req.Params.Argument.Name]
	if kind == "" {
		return res, nil
	}
	ctx, _, err := s.caller(ctx, req.Extra, auth.ScopeEntitiesRead)
	if err != nil {
		return res, nil
	}
	ents, err := s.svc.Entities(ctx, memory.EntityQuery{Prefix: req.Params.Argument.Value, Kind: kind, Limit: 100})
	if err != nil {
		return res, nil
	}
	for _, e := range ents {
		res.Completion.Values = append(res.Completion.Values, e.Display)
	}
	res.Completion.Total = len(res.Completion.Values)
	return res, nil
}
