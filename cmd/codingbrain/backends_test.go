package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// fakeSchema is a store's migrations for ensureSchema.
type fakeSchema struct {
	ms    []migration
	upErr error
	ups   int
}

func (f *fakeSchema) status(context.Context) ([]migration, error) { return f.ms, nil }

func (f *fakeSchema) up(context.Context) ([]migration, error) {
	f.ups++
	if f.upErr != nil {
		return nil, f.upErr
	}
	var done []migration
	for i, m := range f.ms {
		if !m.Applied {
			f.ms[i].Applied = true
			done = append(done, f.ms[i])
		}
	}
	return done, nil
}

// schema has migrations 1..known, the first applied of them applied, plus
// unknown versions applied by a newer binary.
func schema(known, applied int, unknown ...int) *fakeSchema {
	f := &fakeSchema{}
	for v := 1; v <= known; v++ {
		f.ms = append(f.ms, migration{Version: v, Name: "m", Known: true, Applied: v <= applied})
	}
	for _, v := range unknown {
		f.ms = append(f.ms, migration{Version: v, Name: "future", Applied: true})
	}
	return f
}

func TestEnsureSchema(t *testing.T) {
	for _, tc := range []struct {
		name             string
		f                *fakeSchema
		allow, initEmpty bool
		wantUp           bool
		wantErr, wantLog string
	}{
		{"current", schema(2, 2), false, false, false, "", ""},
		{"behind refused", schema(2, 1), false, true, false,
			"database schema is at version 1, this binary needs 2; run `HINT` or start serve with --migrate", ""},
		{"behind with --migrate", schema(2, 1), true, false, true, "", "applied migration"},
		{"empty postgres refused", schema(2, 0), false, false, false, "database schema is at version 0, this binary needs 2", ""},
		{"empty postgres with --migrate", schema(2, 0), true, false, true, "", "applied migration"},
		{"empty sqlite initialised", schema(2, 0), false, true, true, "", "applied migration"},
		{"ahead", schema(2, 2, 3), false, false, false, "", "ahead of this binary"},
		{"ahead with --migrate", schema(2, 2, 3), true, false, false, "", "ahead of this binary"},
		{"migration fails", &fakeSchema{ms: schema(1, 0).ms, upErr: errors.New("boom")}, true, false, true, "migrate: boom", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			err := ensureSchema(t.Context(), tc.f.status, tc.f.up, tc.allow, tc.initEmpty, "HINT", log)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if got := tc.f.ups > 0; got != tc.wantUp {
				t.Errorf("migrated = %v, want %v", got, tc.wantUp)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}

func TestVersions(t *testing.T) {
	if c, l := versions(schema(3, 1).ms); c != 1 || l != 3 {
		t.Errorf("versions = %d, %d; want 1, 3", c, l)
	}
	if c, l := versions(schema(1, 1, 5).ms); c != 5 || l != 1 {
		t.Errorf("versions with a newer migration = %d, %d; want 5, 1", c, l)
	}
	if c, l := versions(nil); c != 0 || l != 0 {
		t.Errorf("versions of nothing = %d, %d", c, l)
	}
}
