package isolation

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPUpdatedAcrossOrgs: on PostgreSQL, where memory ids are unique per
// org, globex can hold a memory under the id of one of acme's (an import
// keeps the ids it is given). A change to globex's memory must not reach
// acme's subscribers of that id as resources/updated: that would announce
// another tenant's writes, as timing, to a session that can never see
// them. The barrier is the subscriber's own update
// on another memory, whose notification arrives after any sent before it
// on the same stream.
func TestMCPUpdatedAcrossOrgs(t *testing.T) {
	t.Parallel()
	w := newWorldOn(t, openPostgres(t))
	acme, globex := w.principal("ada@acme"), w.principal("ada@globex")
	target := w.entries[9] // org:acme, active
	if target.m.OrgID != "acme" || !acme.sees(target.m) {
		t.Fatalf("seed 9 is %s/%s", target.m.OrgID, target.m.AccessEntity)
	}
	updated := make(chan string, 16)
	client := mcp.NewClient(&mcp.Implementation{Name: "isolation-suite", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) { updated <- req.Params.URI },
	})
	tr := &mcp.StreamableClientTransport{Endpoint: w.url + "/mcp", HTTPClient: &http.Client{Transport: bearer(acme.token)}, MaxRetries: -1}
	sub, err := client.Connect(t.Context(), tr, &mcp.ClientSessionOptions{ProtocolVersion: eras[0]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	uri, barrier := "memory://"+target.m.ID, w.entries[10]
	for _, u := range []string{uri, "memory://" + barrier.m.ID} {
		if err := sub.Subscribe(t.Context(), &mcp.SubscribeParams{URI: u}); err != nil {
			t.Fatalf("ada@acme subscribes to %s: %v", u, err)
		}
	}

	// globex's ada imports a memory of her own under that id and changes it.
	rep, r := w.importFile(t, globex, "remap", importLine(target.m.ID, "globex's note under acme's id", globex.UserEntity(), globex.Subject, nil))
	if r.status != http.StatusOK || rep.Imported != 1 {
		t.Fatalf("ada@globex: import: %d %s", r.status, r.body)
	}
	if len(rep.Remapped) != 0 {
		t.Fatalf("the store gave the import a new id (%+v): ids are not per org here", rep.Remapped)
	}
	gs := w.connect(t, globex, eras[0])
	if res := call(t, gs, "update_memory", map[string]any{"id": target.m.ID, "content": "globex's note, changed"}); res.failed() {
		t.Fatalf("ada@globex: update her own %s: %s", target.m.ID, res.raw)
	}

	// The barrier: acme's ada changes another memory she subscribed to;
	// notifications on her stream arrive in order, so any sent for
	// globex's write has arrived once she hears of hers.
	if res := call(t, sub, "update_memory", map[string]any{"id": barrier.m.ID, "tags": map[string]any{"touched": "by ada@acme"}}); res.failed() {
		t.Fatalf("ada@acme: update %s: %s", barrier.m.ID, res.raw)
	}
	w.refresh(t, barrier, 1)
	timeout := time.After(time.Minute)
	for {
		select {
		case got := <-updated:
			if got == uri {
				t.Errorf("ada@acme heard resources/updated for %s, her memory, when globex changed its own memory under that id", uri)
				continue
			}
			if got != "memory://"+barrier.m.ID {
				t.Errorf("ada@acme heard of %s", got)
			}
			return
		case <-timeout:
			t.Fatalf("ada@acme never heard of her own update of %s", barrier.m.ID)
		}
	}
}
