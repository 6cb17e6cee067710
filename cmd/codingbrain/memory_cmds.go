package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// memoryCommands returns the memory subcommands. Each call makes fresh flag
// state, so one invocation never sees another's flags.
func memoryCommands(e env) map[string]memoryCmd {
	return map[string]memoryCmd{
		"add":     addCmd(e),
		"get":     {args: "ID ", about: "Show one memory.", nargs: 1, run: runGet},
		"list":    listCmd(),
		"search":  searchCmd(),
		"update":  updateCmd(e),
		"delete":  {args: "ID ", about: "Delete a memory. It leaves listings and search; its history is kept.", nargs: 1, run: runDelete},
		"history": {args: "ID ", about: "Show the changes of a memory, oldest first.", nargs: 1, run: runHistory},
		"state": {args: "ID pause|archive|restore ", nargs: 2, run: runState,
			about: "Pause, archive or restore a memory."},
	}
}

func addCmd(e env) memoryCmd {
	var (
		in             memory.Input
		category       string
		scope          string
		artifactType   string
		source         string
		evidence, tags list
		key            string
	)
	return memoryCmd{
		args: `"content" `, nargs: 1,
		about: `Store a memory. "-" as content reads it from standard input.
Prints "created ID", or "exists ID" when the same content (or the same
--idempotency-key) was stored before.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&category, "category", "", "decision, convention, architecture, dependency, workflow, testing, security, performance, runbook or glossary")
			fs.StringVar(&scope, "scope", "", "session, user (default), team, project, org or enterprise")
			fs.StringVar(&artifactType, "artifact-type", "", "repo, service, module, component, api, db, infra or file")
			fs.StringVar(&in.ArtifactRef, "artifact-ref", "", "what the memory is about, e.g. github.com/acme/shop or db/orders")
			fs.StringVar(&in.Entity, "entity", "", "the entity the memory is about, e.g. OrderService")
			fs.StringVar(&source, "source", "", "user (default) or inference")
			fs.Var(&evidence, "evidence", "a supporting `ref`erence: ADR, PR or issue (repeatable)")
			fs.Var(&tags, "tag", "a `tag`, key=value or key (repeatable)")
			fs.StringVar(&in.AccessEntity, "access-entity", "", "who may see it: user:<sub>, team:<org>/<team>, project:<org>/<project> or org:<org>")
			fs.StringVar(&in.App, "app", "", "the client app the memory comes from")
			fs.StringVar(&key, "idempotency-key", "", "makes retries safe: a replay returns the memory stored first")
		},
		run: func(ctx context.Context, c *client.Client, o *output, args []string) error {
			content, err := readContent(args[0], e.stdin)
			if err != nil {
				return err
			}
			in.Content = content
			in.Category, in.Scope = memory.Category(category), memory.Scope(scope)
			in.ArtifactType, in.Source = memory.ArtifactType(artifactType), memory.Source(source)
			in.Evidence, in.Tags = evidence.v, tagMap(tags.v)
			m, created, err := c.Add(ctx, in, key)
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(m)
			}
			verb := "exists"
			if created {
				verb = "created"
			}
			return o.printf("%s %s\n", verb, m.ID)
		},
	}
}

func runGet(ctx context.Context, c *client.Client, o *output, args []string) error {
	m, err := c.Get(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		return o.printJSON(m)
	}
	return o.printMemory(m)
}

func listCmd() memoryCmd {
	var (
		f      filterFlags
		sort   string
		limit  int
		cursor string
	)
	return memoryCmd{
		about: "List memories, one per line: id, state, category and the start of the content.\nPrints \"next: CURSOR\" when there are more; pass it to --cursor.",
		flags: func(fs *flag.FlagSet) {
			f.register(fs)
			fs.StringVar(&sort, "sort", "", "-created_at (default), created_at, -updated_at or updated_at")
			fs.IntVar(&limit, "limit", 0, "page size, 1-200 (default 20)")
			fs.StringVar(&cursor, "cursor", "", "the cursor printed after the previous page")
		},
		run: func(ctx context.Context, c *client.Client, o *output, _ []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			page, err := c.List(ctx, client.ListParams{Filter: filter, Sort: sort, Limit: limit, Cursor: cursor})
			if err != nil {
				return err
			}
			if o.json {
				if page.Memories == nil {
					page.Memories = []memory.Memory{}
				}
				return o.printJSON(page)
			}
			return o.printPage(page)
		},
	}
}

func searchCmd() memoryCmd {
	var (
		f       filterFlags
		limit   int
		mode    string
		explain bool
		cold    bool
	)
	return memoryCmd{
		args: `"query" `, nargs: 1,
		about: "Ranked search. Prints rank, score, id and the start of the content.",
		flags: func(fs *flag.FlagSet) {
			f.register(fs)
			fs.IntVar(&limit, "limit", 0, "how many hits, 1-100 (default 10)")
			fs.StringVar(&mode, "mode", "", "hybrid (the server's default), lexical or vector")
			fs.BoolVar(&explain, "explain", false, "show why each hit ranks where it does")
			fs.BoolVar(&cold, "include-cold", false, "also search cold memories (archived, deleted or long untouched)")
		},
		run: func(ctx context.Context, c *client.Client, o *output, args []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			res, err := c.Search(ctx, client.SearchRequest{Query: args[0], Limit: limit, Filters: filter,
				Mode: memory.SearchMode(mode), Explain: explain, IncludeCold: cold})
			if err != nil {
				return err
			}
			if res.Hits == nil {
				res.Hits = []memory.Hit{}
			}
			if o.json {
				return o.printJSON(res)
			}
			return o.printHits(res, explain)
		},
	}
}

func updateCmd(e env) memoryCmd {
	var (
		fs                                     *flag.FlagSet
		content, category, scope, artifactType string
		artifactRef, entity, access            string
		evidence, tags                         list
		clears                                 = map[string]bool{}
	)
	return memoryCmd{
		args: "ID ", nargs: 1,
		about: "Change fields of a memory; only the flags given change. --evidence and --tag\nreplace the whole list or map; --clear evidence or --clear tags empties it.",
		flags: func(f *flag.FlagSet) {
			fs = f
			fs.StringVar(&content, "content", "", `new content ("-" reads it from standard input)`)
			fs.StringVar(&category, "category", "", "new category")
			fs.StringVar(&scope, "scope", "", "new scope")
			fs.StringVar(&artifactType, "artifact-type", "", "new artifact type")
			fs.StringVar(&artifactRef, "artifact-ref", "", "new artifact reference")
			fs.StringVar(&entity, "entity", "", "new entity")
			fs.Var(&evidence, "evidence", "evidence `ref`erence (repeatable; replaces all)")
			fs.Var(&tags, "tag", "`tag`, key=value or key (repeatable; replaces all)")
			fs.StringVar(&access, "access-entity", "", "new access entity")
			fs.Func("clear", "empty a `field`: evidence or tags (repeatable)", func(s string) error {
				if s != "evidence" && s != "tags" {
					return fmt.Errorf("can clear evidence or tags, not %q", s)
				}
				clears[s] = true
				return nil
			})
		},
		run: func(ctx context.Context, c *client.Client, o *output, args []string) error {
			var p memory.Patch
			var err error
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "content":
					var s string
					if s, err = readContent(content, e.stdin); err == nil {
						p.Content = &s
					}
				case "category":
					p.Category = ptr(memory.Category(category))
				case "scope":
					p.Scope = ptr(memory.Scope(scope))
				case "artifact-type":
					p.ArtifactType = ptr(memory.ArtifactType(artifactType))
				case "artifact-ref":
					p.ArtifactRef = &artifactRef
				case "entity":
					p.Entity = &entity
				case "evidence":
					p.Evidence = &evidence.v
				case "tag":
					p.Tags = ptr(tagMap(tags.v))
				case "access-entity":
					p.AccessEntity = &access
				}
			})
			if err != nil {
				return err
			}
			if clears["evidence"] {
				if p.Evidence != nil {
					return usageError("--clear evidence and --evidence contradict each other")
				}
				p.Evidence = &[]string{}
			}
			if clears["tags"] {
				if p.Tags != nil {
					return usageError("--clear tags and --tag contradict each other")
				}
				p.Tags = &map[string]any{}
			}
			if p == (memory.Patch{}) {
				return usageError("nothing to change; give at least one field flag")
			}
			m, err := c.Update(ctx, args[0], p)
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(m)
			}
			return o.printf("updated %s\n", m.ID)
		},
	}
}

func ptr[T any](v T) *T { return &v }

func runDelete(ctx context.Context, c *client.Client, o *output, args []string) error {
	m, err := c.Delete(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		return o.printJSON(m)
	}
	return o.printf("deleted %s\n", m.ID)
}

func runHistory(ctx context.Context, c *client.Client, o *output, args []string) error {
	h, err := c.History(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		if h == nil {
			h = []memory.HistoryEntry{}
		}
		return o.printJSON(map[string]any{"history": h})
	}
	return o.printHistory(h)
}

func runState(ctx context.Context, c *client.Client, o *output, args []string) error {
	action := memory.Action(args[1])
	switch action {
	case memory.ActionPause, memory.ActionArchive, memory.ActionRestore:
	default:
		return usageError(fmt.Sprintf("action %q is not one of pause, archive, restore", args[1]))
	}
	m, err := c.SetState(ctx, args[0], action)
	if err != nil {
		return err
	}
	if o.json {
		return o.printJSON(m)
	}
	return o.printf("%s %s\n", m.ID, m.State)
}
