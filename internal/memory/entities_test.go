package memory

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeEntity(t *testing.T) {
	for in, want := range map[string]string{
		"Payments Service":         "payments-service",
		"  payments_service ":      "payments-service",
		"PAYMENTS--SERVICE":        "payments-service",
		"payments \t\n service":    "payments-service",
		"payments\u2013service":    "payments-service", // en dash
		"ｐａｙｍｅｎｔｓ":                 "payments",         // full width, NFKC
		"Straße":                   "straße",
		"e\u0301clair":             "éclair", // combining accent composed
		"github.com/Acme/Payments": "github.com/acme/payments",
		"api.go":                   "api.go",
		"lang=Go":                  "lang=go",
		"a\x00b\x07c":              "abc",
		"-_-":                      "",
		"":                         "",
		strings.Repeat("x", 513):   "",
		strings.Repeat("x", 512):   strings.Repeat("x", 512),
		"_leading and trailing_ ":  "leading-and-trailing",
		"Ω Service":                "ω-service",
		"svc-mk000q":               "svc-mk000q",
	} {
		if got := NormalizeEntity(in); got != want {
			t.Errorf("NormalizeEntity(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExtractGraph(t *testing.T) {
	m := Memory{
		Entity: "Payments", ArtifactRef: "payments", // the same name twice: one mention, as entity
		Tags: map[string]any{
			"lang": "Go", "flaky": true, "prio": 2.0, "none": nil, "long": strings.Repeat("y", 129),
			"relation:depends_on": "Ledger, fx rates,, payments", "relation:unknown": "x",
		},
	}
	ms, rels := ExtractGraph(m)
	var got []string
	for _, x := range ms {
		got = append(got, fmt.Sprintf("%s|%s|%s", x.Name, x.Kind, x.Display))
	}
	want := []string{
		"flaky|tag|flaky", "fx-rates|explicit|fx rates", "lang=go|tag|lang=Go", "ledger|explicit|Ledger",
		"long|tag|long", "none|tag|none", "payments|entity|Payments", "prio|tag|prio",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mentions:\n got  %q\n want %q", got, want)
	}
	wantRels := []GraphRelation{
		{From: "payments", To: "fx-rates", Type: "relation:depends_on"},
		{From: "payments", To: "ledger", Type: "relation:depends_on"},
	}
	if !slices.Equal(rels, wantRels) {
		t.Errorf("relations: %+v, want %+v", rels, wantRels)
	}
	// Without an entity, relations start at the artifact.
	_, rels = ExtractGraph(Memory{ArtifactRef: "svc/a", Tags: map[string]any{"relation:similar": "svc/b"}})
	if !slices.Equal(rels, []GraphRelation{{From: "svc/a", To: "svc/b", Type: EdgeSimilar}}) {
		t.Errorf("relations from an artifact: %+v", rels)
	}
	if ms, rels := ExtractGraph(Memory{}); len(ms) != 0 || len(rels) != 0 {
		t.Errorf("an empty memory names %+v, %+v", ms, rels)
	}
}

func TestValidateRelationTags(t *testing.T) {
	for _, c := range []struct {
		m     Memory
		field string
	}{
		{Memory{Entity: "a", Tags: map[string]any{"relation:uses": "b, c"}}, ""},
		{Memory{ArtifactRef: "a", Tags: map[string]any{"relation:uses": "b"}}, ""},
		{Memory{Entity: "a", Tags: map[string]any{"relation": "b"}}, ""}, // a plain tag
		{Memory{Entity: "a", Tags: map[string]any{"relation:loves": "b"}}, "tags.relation:loves"},
		{Memory{Tags: map[string]any{"relation:uses": "b"}}, "tags.relation:uses"},
		{Memory{Entity: "a", Tags: map[string]any{"relation:uses": true}}, "tags.relation:uses"},
		{Memory{Entity: "a", Tags: map[string]any{"relation:uses": strings.Repeat("b,", 21)}}, "tags.relation:uses"},
		{Memory{Entity: "a", Tags: map[string]any{"relation:uses": strings.Repeat("b", 600)}}, "tags.relation:uses"},
	} {
		err := validateRelationTags(&c.m)
		var field string
		if ve, ok := err.(*ValidationError); ok {
			field = ve.Field
		} else if err != nil {
			field = "?" + err.Error()
		}
		if field != c.field {
			t.Errorf("%+v: error %v, want one on %q", c.m.Tags, err, c.field)
		}
	}
}

func TestQueryEntityNames(t *testing.T) {
	got := QueryEntityNames("How does the Payments Service call github.com/acme/ledger?")
	for _, want := range []string{"payments", "payments-service", "github.com/acme/ledger", "the-payments-service", "how"} {
		if !slices.Contains(got, want) {
			t.Errorf("QueryEntityNames: %q lacks %q", got, want)
		}
	}
	if slices.Contains(got, "ledger?") || slices.Contains(got, "github.com/acme/ledger?") {
		t.Errorf("QueryEntityNames keeps trailing punctuation: %q", got)
	}
	if n := len(QueryEntityNames(strings.Repeat("word", 1) + strings.Repeat(" w", 500))); n > 200 {
		t.Errorf("QueryEntityNames returned %d names", n)
	}
}
