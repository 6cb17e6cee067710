package gdpr_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/gdpr"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/redistest"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestSharedStateOnValkey: export lists and erasure removes the subject's
// MCP session bindings and rate-limit buckets in a real Valkey (Redis),
// and nothing of other subjects or orgs.
func TestSharedStateOnValkey(t *testing.T) {
	srv := redistest.New(t)
	v, err := kv.NewValkey(srv.URL(), "codingbrain:")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "brain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	for key, val := range map[string]string{
		"mcp:session:s1": `{"user":"acme/alice","protocol":"2025-11-25"}`,
		"mcp:session:s2": `{"user":"acme/dave"}`,
		"mcp:session:s3": `{"user":"globex/alice"}`,
	} {
		if err := v.Set(ctx, key, []byte(val), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"ratelimit:read:p:acme/alice", "ratelimit:read:p:acme/dave", "ratelimit:read:p:globex/alice"} {
		if _, err := v.Allow(ctx, b, 1, 5); err != nil {
			t.Fatal(err)
		}
	}
	svc := gdpr.New(st, gdpr.Options{Shared: v})
	alice := gdpr.Subject{OrgID: "acme", ID: "alice"}
	x, err := svc.Export(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Sessions) != 1 || x.Sessions[0].Data["user"] != "acme/alice" || len(x.SharedKeys) != 1 || x.SharedKeys[0].Key != "ratelimit:read:p:acme/alice" {
		t.Fatalf("export of the shared state: sessions %+v, keys %+v", x.Sessions, x.SharedKeys)
	}
	res, err := svc.Erase(ctx, gdpr.EraseRequest{Subject: alice, Reason: "DSR"})
	if err != nil || !res.Check.Clean || res.Receipt.Removed[gdpr.SourceSessions] != 1 || res.Receipt.Removed[gdpr.SourceSharedKeys] != 1 {
		t.Fatalf("erase: %+v, %v", res, err)
	}
	left, err := v.Keys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mcp:session:s2", "mcp:session:s3", "ratelimit:read:p:acme/dave", "ratelimit:read:p:globex/alice"}
	if !slices.Equal(left, want) {
		t.Errorf("keys left: %v, want %v", left, want)
	}
}
