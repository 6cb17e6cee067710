package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

const memoryUsage = `Usage: codingbrain memory <command> [arguments] [flags]

Commands:
  add "content"           store a memory ("-" reads the content from stdin)
  get ID                  show one memory
  list                    list memories, newest first
  search "query"          ranked search
  update ID               change fields of a memory
  delete ID               delete a memory (soft delete; history is kept)
  history ID              show the changes of a memory
  state ID ACTION         pause, archive or restore a memory

Every command takes:
  --server URL   server address (env CODINGBRAIN_SERVER, default ` + client.DefaultBaseURL + `)
  --token T      bearer token (env CODINGBRAIN_TOKEN; required)
  --json         print the JSON result, for scripts
  --timeout D    give up after this long (default 30s)

Flags may come before or after the arguments.
Run "codingbrain memory <command> -h" for the flags of a command.
`

// memoryCmd is one "codingbrain memory" subcommand.
type memoryCmd struct {
	args  string // positional arguments, for the usage line
	about string
	nargs int
	flags func(fs *flag.FlagSet) // registers the command's own flags
	run   func(ctx context.Context, c *client.Client, o *output, args []string) error
	// timeout is the default of --timeout; 30s when zero.
	timeout time.Duration
}

// runMemory is the command-line client of the REST API.
func runMemory(ctx context.Context, args []string, e env) error {
	return runClientCommand(ctx, "memory", memoryUsage, memoryCommands(e), args, e)
}

// runClientCommand runs one subcommand of a group of REST client commands
// (memory, apikey): it parses the shared and the command's own flags,
// checks the argument count, builds the client and runs the command.
func runClientCommand(ctx context.Context, group, usage string, commands map[string]memoryCmd, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return errUsage
	}
	name, rest := args[0], args[1:]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(e.stdout, usage)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "unknown %s command %q\n\n%s", group, name, usage)
		return errUsage
	}
	return runClientCmd(ctx, group+" "+name, cmd, rest, e)
}

// runClientCmd runs one REST client command (named label on the command
// line): it parses the shared and the command's own flags, checks the
// argument count, builds the client and runs the command.
func runClientCmd(ctx context.Context, label string, cmd memoryCmd, rest []string, e env) error {
	fs := flag.NewFlagSet(label, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: codingbrain %s %s[flags]\n\n%s\n\nFlags:\n", label, cmd.args, cmd.about)
		fs.PrintDefaults()
	}
	var g globalFlags
	g.register(fs)
	if cmd.timeout > 0 {
		g.timeout = cmd.timeout
		fs.Lookup("timeout").DefValue = cmd.timeout.String()
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return errUsage // the flag package printed the problem and the usage
	}
	if len(pos) != cmd.nargs {
		fmt.Fprintf(e.stderr, "%s: want %d argument(s) (%s), got %d\n", label, cmd.nargs, strings.TrimSpace(cmd.args), len(pos))
		fs.Usage()
		return errUsage
	}
	c, err := g.client(e)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := cmd.run(ctx, c, &output{w: e.stdout, json: g.json}, pos); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "%s: %s\n", label, ue)
			fs.Usage()
			return errUsage
		}
		return err
	}
	return nil
}

// usageError is a problem with the command line found after parsing; the
// subcommand usage is printed with it.
type usageError string

func (u usageError) Error() string { return string(u) }

// globalFlags are the flags every memory subcommand takes.
type globalFlags struct {
	server  string
	token   string
	json    bool
	timeout time.Duration
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	// The token's default is not the environment value, so that -h never
	// prints it; the environment is read after parsing.
	fs.StringVar(&g.server, "server", "", "server address (env CODINGBRAIN_SERVER, default "+client.DefaultBaseURL+")")
	fs.StringVar(&g.token, "token", "", "bearer token (env CODINGBRAIN_TOKEN)")
	fs.BoolVar(&g.json, "json", false, "print the JSON result")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "give up after this long")
}

func (g *globalFlags) client(e env) (*client.Client, error) {
	server, token := g.server, g.token
	if server == "" {
		server = e.getenv("CODINGBRAIN_SERVER")
	}
	if token == "" {
		token = e.getenv("CODINGBRAIN_TOKEN")
	}
	if token == "" {
		return nil, errors.New("no token: pass --token or set CODINGBRAIN_TOKEN (\"codingbrain token issue\" mints one)")
	}
	if g.timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	v, _, _ := buildInfo()
	return client.New(server, token,
		client.WithHTTPClient(&http.Client{Timeout: g.timeout}),
		client.WithUserAgent("codingbrain-cli/"+v)), nil
}

// parseInterspersed parses flags that may stand before, between or after
// positional arguments, and returns the positional ones. Everything after
// "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// list is a repeatable string flag. With split set, each value may also be
// a comma-separated list.
type list struct {
	v     []string
	split bool
}

func (l *list) String() string { return strings.Join(l.v, ",") }

func (l *list) Set(s string) error {
	if !l.split {
		l.v = append(l.v, s)
		return nil
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l.v = append(l.v, p)
		}
	}
	return nil
}

// tagMap turns "key=value" and "key" flags into memory tags; a bare key is
// the tag true.
func tagMap(tags []string) map[string]any {
	if len(tags) == 0 {
		return nil
	}
	m := make(map[string]any, len(tags))
	for _, t := range tags {
		if k, v, ok := strings.Cut(t, "="); ok {
			m[k] = v
		} else {
			m[t] = true
		}
	}
	return m
}

// filterFlags are the filters shared by list and search.
type filterFlags struct {
	categories, scopes, states, tags list
	entity, artifactRef, app, access string
	after, before, validAt           string
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	f.categories.split, f.scopes.split, f.states.split = true, true, true
	fs.Var(&f.categories, "category", "only this `category` (repeatable, or comma-separated)")
	fs.Var(&f.scopes, "scope", "only this `scope` (repeatable, or comma-separated)")
	fs.Var(&f.states, "state", "only this `state` (repeatable, or comma-separated; default: all but deleted)")
	fs.Var(&f.tags, "tag", "has this `tag` key, or key=value (repeatable)")
	fs.StringVar(&f.entity, "entity", "", "only this entity")
	fs.StringVar(&f.artifactRef, "artifact-ref", "", "only this artifact reference")
	fs.StringVar(&f.app, "app", "", "only memories written through this app")
	fs.StringVar(&f.access, "access-entity", "", "only this access entity, e.g. team:acme/core")
	fs.StringVar(&f.after, "created-after", "", "only memories created after this RFC 3339 time")
	fs.StringVar(&f.before, "created-before", "", "only memories created before this RFC 3339 time")
	fs.StringVar(&f.validAt, "valid-at", "", "only memories valid at this RFC 3339 time (not superseded then)")
}

func (f *filterFlags) filter() (memory.Filter, error) {
	mf := memory.Filter{
		Entity: f.entity, ArtifactRef: f.artifactRef, App: f.app, AccessEntity: f.access, Tags: f.tags.v,
	}
	for _, c := range f.categories.v {
		mf.Categories = append(mf.Categories, memory.Category(c))
	}
	for _, s := range f.scopes.v {
		mf.Scopes = append(mf.Scopes, memory.Scope(s))
	}
	for _, s := range f.states.v {
		mf.States = append(mf.States, memory.State(s))
	}
	var err error
	if mf.CreatedAfter, err = parseTime("created-after", f.after); err != nil {
		return memory.Filter{}, err
	}
	if mf.CreatedBefore, err = parseTime("created-before", f.before); err != nil {
		return memory.Filter{}, err
	}
	if mf.ValidAt, err = parseTime("valid-at", f.validAt); err != nil {
		return memory.Filter{}, err
	}
	return mf, nil
}

func parseTime(flagName, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, usageError(fmt.Sprintf("--%s %q is not an RFC 3339 time like 2026-01-02T15:04:05Z", flagName, s))
	}
	return &t, nil
}

// readContent returns s, or standard input when s is "-".
func readContent(s string, stdin io.Reader) (string, error) {
	if s != "-" {
		return s, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, memory.MaxContentBytes+1))
	if err != nil {
		return "", fmt.Errorf("read content from stdin: %w", err)
	}
	return string(b), nil
}
