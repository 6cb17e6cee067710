package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// transferTimeout is the default --timeout of export and import, which
// move many memories.
const transferTimeout = 30 * time.Minute

// runExport is "codingbrain export": the memories the token may see, as a
// JSON Lines export file, through GET /api/v1/export.
func runExport(ctx context.Context, args []string, e env) error {
	var (
		p                                client.ExportParams
		out, since                       string
		categories, scopes, states, tags list
		noHistory                        bool
	)
	cmd := memoryCmd{
		about: `Export the memories your token may see as a JSON Lines file: a header line
({"format":"codingbrain-export","version":1,…} with the count), then one memory
per line with every field and its history. "codingbrain import" reads it back.`,
		timeout: transferTimeout,
		flags: func(fs *flag.FlagSet) {
			categories.split, scopes.split, states.split = true, true, true
			fs.StringVar(&out, "o", "-", "write to this `file` (- for standard output)")
			fs.StringVar(&p.Team, "team", "", "only memories of this `team` (<team> or <org>/<team>)")
			fs.StringVar(&p.Project, "project", "", "only memories of this `project` (<project> or <org>/<project>)")
			fs.StringVar(&p.AccessEntity, "access-entity", "", "only this access entity, e.g. user:alice")
			fs.StringVar(&p.Entity, "entity", "", "only memories about this entity")
			fs.StringVar(&p.App, "app", "", "only memories written through this app")
			fs.Var(&categories, "category", "only this `category` (repeatable, or comma-separated)")
			fs.Var(&scopes, "scope", "only this `scope` (repeatable, or comma-separated)")
			fs.Var(&states, "state", "only this `state`, or all (repeatable, or comma-separated; default: all but deleted)")
			fs.Var(&tags, "tag", "has this `tag` key, or key=value (repeatable)")
			fs.StringVar(&since, "since", "", "only memories updated at or after this RFC 3339 `time`")
			fs.BoolVar(&noHistory, "no-history", false, "leave the memories' history out")
		},
		run: func(ctx context.Context, c *client.Client, o *output, _ []string) error {
			p.Categories, p.Scopes, p.States, p.Tags, p.NoHistory = categories.v, scopes.v, states.v, tags.v, noHistory
			var err error
			if p.Since, err = parseTime("since", since); err != nil {
				return err
			}
			w, done, err := createOutput(out, o.w)
			if err != nil {
				return err
			}
			n, err := c.Export(ctx, p, w)
			if err = errors.Join(err, done(err == nil)); err != nil {
				return err
			}
			if out != "-" {
				fmt.Fprintf(e.stderr, "exported %d bytes to %s\n", n, out)
			}
			return nil
		},
	}
	return runClientCmd(ctx, "export", cmd, args, e)
}

// createOutput opens the file an export writes (stdout for "-"). done
// closes it; when the export failed it removes the partial file.
func createOutput(name string, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if name == "-" {
		return stdout, func(bool) error { return nil }, nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("export: %w", err)
	}
	return f, func(ok bool) error {
		err := f.Close()
		if !ok {
			os.Remove(name)
			return nil
		}
		return err
	}, nil
}

// runImport is "codingbrain import FILE": an export file, or with
// --openmemory an OpenMemory export zip, through POST /api/v1/import.
func runImport(ctx context.Context, args []string, e env) error {
	var (
		mode       string
		openMemory bool
	)
	cmd := memoryCmd{
		args: "FILE ", nargs: 1,
		about: `Import an export file ("-" reads standard input), or with --openmemory an
OpenMemory export zip, all or nothing: every line is checked first, and a
memory of an access entity your grants do not cover refuses the whole import.`,
		timeout: transferTimeout,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&mode, "on-conflict", "fail", "when an id, idempotency key or content is already stored: fail (import nothing), skip, or remap (new id)")
			fs.BoolVar(&openMemory, "openmemory", false, "FILE is an OpenMemory export zip (memories.json inside)")
		},
		run: func(ctx context.Context, c *client.Client, o *output, args []string) error {
			var r io.Reader = e.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			ct := client.ExportContentType
			if openMemory {
				ct = client.OpenMemoryContentType
			}
			rep, err := c.Import(ctx, r, ct, mode)
			var ie *client.ImportError
			if errors.As(err, &ie) {
				if o.json {
					if perr := o.printJSON(rep); perr != nil {
						return perr
					}
				} else {
					printImportErrors(e.stderr, rep)
				}
				return fmt.Errorf("import refused, nothing imported: %s", ie.Err.Message)
			}
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(rep)
			}
			return printImportReport(o, rep)
		},
	}
	return runClientCmd(ctx, "import", cmd, args, e)
}

func printImportReport(o *output, rep memory.ImportReport) error {
	if err := o.printf("imported %d of %d memories; %d skipped, %d remapped\n",
		rep.Imported, rep.Read, len(rep.Skipped), len(rep.Remapped)); err != nil {
		return err
	}
	if rep.Links > 0 || rep.LinksDropped > 0 {
		if err := o.printf("links between memories: %d imported, %d dropped (source not imported or target not visible)\n",
			rep.Links, rep.LinksDropped); err != nil {
			return err
		}
	}
	for _, s := range rep.Skipped {
		detail := ""
		if s.ExistingID != "" {
			detail = " (same content as " + s.ExistingID + ")"
		}
		if err := o.printf("  line %d: skipped %s: %s taken%s\n", s.Line, s.ID, s.Conflict, detail); err != nil {
			return err
		}
	}
	for _, r := range rep.Remapped {
		what := "id " + r.OldID + " -> " + r.NewID
		if r.DroppedKey {
			what = r.NewID + ": idempotency key dropped (taken)"
		}
		if err := o.printf("  line %d: remapped %s\n", r.Line, what); err != nil {
			return err
		}
	}
	return nil
}

func printImportErrors(w io.Writer, rep memory.ImportReport) {
	for _, le := range rep.Errors {
		field := ""
		if le.Field != "" {
			field = " " + le.Field
		}
		fmt.Fprintf(w, "line %d%s: %s\n", le.Line, field, le.Message)
	}
	if rep.ErrorsOmitted > 0 {
		fmt.Fprintf(w, "… and %d more\n", rep.ErrorsOmitted)
	}
}
