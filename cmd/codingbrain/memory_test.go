package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/memory"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		pos     []string
		json    bool
		limit   int
		wantErr bool
	}{
		{args: []string{"a", "--json", "b", "--limit", "3"}, pos: []string{"a", "b"}, json: true, limit: 3},
		{args: []string{"--limit=2", "a"}, pos: []string{"a"}, limit: 2},
		{args: []string{"a", "--", "--json", "-x"}, pos: []string{"a", "--json", "-x"}},
		{args: nil, pos: nil},
		{args: []string{"a", "--nope"}, wantErr: true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		l := fs.Int("limit", 0, "")
		pos, err := parseInterspersed(fs, tc.args)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.args, err)
			continue
		}
		if tc.wantErr {
			continue
		}
		if !reflect.DeepEqual(pos, tc.pos) || *j != tc.json || *l != tc.limit {
			t.Errorf("%q: pos %q json %v limit %d; want %q %v %d", tc.args, pos, *j, *l, tc.pos, tc.json, tc.limit)
		}
	}
}

func TestTagMap(t *testing.T) {
	got := tagMap([]string{"db", "lang=go", "empty=", "k=a=b"})
	want := map[string]any{"db": true, "lang": "go", "empty": "", "k": "a=b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tagMap = %v, want %v", got, want)
	}
	if tagMap(nil) != nil {
		t.Error("no tags should be nil, so that none are sent")
	}
}

func TestSnippetAndChangedFields(t *testing.T) {
	long := strings.Repeat("é", 100)
	if s := snippet(long); len([]rune(s)) != snippetRunes || !strings.HasSuffix(s, "…") {
		t.Errorf("snippet of 100 runes = %q", s)
	}
	if s := snippet("two\n  lines"); s != "two lines" {
		t.Errorf("snippet = %q", s)
	}
	before := &memory.Memory{ID: "m", Content: "a", State: memory.StateActive}
	after := &memory.Memory{ID: "m", Content: "b", State: memory.StatePaused, Tags: map[string]any{"x": true}}
	if got := changedFields(before, after); !reflect.DeepEqual(got, []string{"content", "state", "tags"}) {
		t.Errorf("changedFields = %v", got)
	}
	if got := changedFields(nil, after); got != nil {
		t.Errorf("changedFields of a create = %v", got)
	}
}

// runMemoryCmd runs "codingbrain memory args..." in process with no
// environment and returns stdout, stderr and the error.
func runMemoryCmd(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"memory"}, args...), func(string) string { return "" },
		strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestMemoryUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{nil, "Usage: codingbrain memory <command>"},
		{[]string{"frobnicate"}, `unknown memory command "frobnicate"`},
		{[]string{"get"}, "Usage: codingbrain memory get ID"},
		{[]string{"get", "a", "b"}, "want 1 argument(s)"},
		{[]string{"list", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"state", "id", "explode", "--token", "t"}, `action "explode" is not one of pause, archive, restore`},
		{[]string{"update", "id", "--token", "t"}, "nothing to change"},
		{[]string{"update", "id", "--token", "t", "--tag", "a", "--clear", "tags"}, "contradict"},
		{[]string{"list", "--token", "t", "--created-after", "soon"}, "not an RFC 3339 time"},
	} {
		_, stderr, err := runMemoryCmd(tc.args...)
		if !errors.Is(err, errUsage) || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: err %v, stderr %q; want usage error containing %q", tc.args, err, stderr, tc.stderr)
		}
	}
}

func TestMemoryNeedsToken(t *testing.T) {
	_, _, err := runMemoryCmd("list")
	if err == nil || !strings.Contains(err.Error(), "CODINGBRAIN_TOKEN") {
		t.Errorf("err = %v, want one naming CODINGBRAIN_TOKEN", err)
	}
}

func TestMemoryHelpNeverShowsToken(t *testing.T) {
	var stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "CODINGBRAIN_TOKEN" {
			return "tok-SECRET"
		}
		return ""
	}
	err := run(context.Background(), []string{"memory", "add", "-h"}, getenv, strings.NewReader(""), io.Discard, &stderr)
	if err != nil || strings.Contains(stderr.String(), "tok-SECRET") || !strings.Contains(stderr.String(), "-idempotency-key") {
		t.Errorf("add -h: err %v, output %q", err, stderr.String())
	}
}
