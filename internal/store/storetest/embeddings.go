package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

// EmbeddingSQLExecer is implemented, in test builds, by stores whose rows
// the embedding contract may change behind the store's back: ExecEmbeddingSQL
// runs stmt, one statement that reads the same on SQLite and PostgreSQL,
// and returns the number of rows it affected.
type EmbeddingSQLExecer interface {
	ExecEmbeddingSQL(ctx context.Context, stmt string) (int64, error)
}

// testEmbeddings is the contract of memory.EmbeddingStore, for stores that
// implement it: embeddings read back exactly (vector, model, hash, time in
// UTC); one embedding per memory, the last written winning; writes for
// memories that are gone, deleted or changed since are skipped; an
// embedding is current only for its model and the memory's present
// content; the walks across orgs go in key order and visit each memory
// once; deleting the memory row deletes its embedding.
func testEmbeddings(t *testing.T, e *env) {
	es, ok := e.store.(memory.EmbeddingStore)
	if !ok {
		t.Skip("the store does not keep embeddings")
	}
	ctx := t.Context()
	const modelA, modelB = "test-a-d4", "test-b-d3"

	// Memories of two orgs; keys sort by org, then id.
	var all []memory.Memory
	for i := range 4 {
		all = append(all, e.add(alice, memory.Input{Content: fmt.Sprintf("embedding contract memory %d", i)}))
	}
	all = append(all, e.add(eve, memory.Input{Content: "another tenant's memory"}))
	all = append(all, e.add(bob, memory.Input{Content: "bob's private memory"}))
	slices.SortFunc(all, func(a, b memory.Memory) int {
		if (memory.MemoryKey{OrgID: a.OrgID, ID: a.ID}).Less(memory.MemoryKey{OrgID: b.OrgID, ID: b.ID}) {
			return -1
		}
		return 1
	})
	keyOf := func(m memory.Memory) memory.MemoryKey { return memory.MemoryKey{OrgID: m.OrgID, ID: m.ID} }
	keys := func(ms []memory.Memory) []memory.MemoryKey {
		out := make([]memory.MemoryKey, len(ms))
		for i, m := range ms {
			out[i] = keyOf(m)
		}
		return out
	}
	vec := func(seed float32, dims int) []float32 {
		v := make([]float32, dims)
		for i := range v {
			v[i] = seed + float32(i)/8 - 0.3
		}
		return v
	}
	embedding := func(m memory.Memory, model string, seed float32, dims int) memory.Embedding {
		return memory.Embedding{OrgID: m.OrgID, MemoryID: m.ID, Model: model, ContentHash: m.ContentHash,
			Vector: vec(seed, dims), UpdatedAt: e.clock.Advance(time.Millisecond)}
	}
	put := func(want int, batch ...memory.Embedding) {
		t.Helper()
		n, err := es.PutEmbeddings(ctx, batch)
		if err != nil || n != want {
			t.Fatalf("put %d embeddings: stored %d, %v; want %d stored", len(batch), n, err, want)
		}
	}
	sourceKeys := func(srcs []memory.EmbeddingSource) []memory.MemoryKey {
		out := make([]memory.MemoryKey, len(srcs))
		for i, s := range srcs {
			out[i] = s.Key()
		}
		return out
	}
	missing := func(model string, limit int) []memory.MemoryKey {
		t.Helper()
		var out []memory.MemoryKey
		var after memory.MemoryKey
		for range 100 {
			page, err := es.MissingEmbeddings(ctx, model, after, limit)
			if err != nil {
				t.Fatalf("missing embeddings for %s after %+v: %v", model, after, err)
			}
			if len(page) > limit {
				t.Fatalf("missing embeddings: %d with limit %d", len(page), limit)
			}
			out = append(out, sourceKeys(page)...)
			if len(page) < limit {
				n, err := es.CountMissingEmbeddings(ctx, model)
				if err != nil || n != len(out) {
					t.Errorf("count missing for %s: %d, %v; the walk found %d", model, n, err, len(out))
				}
				return out
			}
			after = page[len(page)-1].Key()
		}
		t.Fatal("missing embeddings: more than 100 pages")
		return nil
	}
	current := func(model string, limit int) []memory.Embedding {
		t.Helper()
		var out []memory.Embedding
		var after memory.MemoryKey
		for range 100 {
			page, err := es.EmbeddingsAfter(ctx, model, after, limit)
			if err != nil {
				t.Fatalf("embeddings of %s after %+v: %v", model, after, err)
			}
			out = append(out, page...)
			if len(page) < limit {
				return out
			}
			after = memory.MemoryKey{OrgID: page[len(page)-1].OrgID, ID: page[len(page)-1].MemoryID}
		}
		t.Fatal("embeddings after: more than 100 pages")
		return nil
	}
	embKeys := func(es []memory.Embedding) []memory.MemoryKey {
		out := make([]memory.MemoryKey, len(es))
		for i, e := range es {
			out[i] = memory.MemoryKey{OrgID: e.OrgID, ID: e.MemoryID}
		}
		return out
	}
	models := func(want map[string]int) {
		t.Helper()
		got, err := es.EmbeddingModels(ctx)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("embedding models: %v, %v; want %v", got, err, want)
		}
	}

	// Nothing is embedded yet: every live memory of every org is missing,
	// in key order, and the walk visits each once whatever the page size.
	models(map[string]int{})
	for _, limit := range []int{1, 2, 100} {
		if got := missing(modelA, limit); !slices.Equal(got, keys(all)) {
			t.Errorf("missing with limit %d: %v, want %v", limit, got, keys(all))
		}
	}
	srcs, err := es.MissingEmbeddings(ctx, modelA, memory.MemoryKey{}, 1)
	if err != nil || len(srcs) != 1 || srcs[0].Content != all[0].Content || srcs[0].ContentHash != all[0].ContentHash {
		t.Errorf("first missing: %+v, %v; want memory %s with its content and hash", srcs, err, all[0].ID)
	}

	// Stored embeddings read back exactly and are no longer missing.
	e0, e1 := embedding(all[0], modelA, 1, 4), embedding(all[1], modelA, 2, 4)
	put(2, e0, e1)
	got, err := es.Embeddings(ctx, modelA, []memory.MemoryKey{keyOf(all[1]), keyOf(all[0]), keyOf(all[2])})
	if err != nil || len(got) != 2 {
		t.Fatalf("embeddings of 3 keys, 2 embedded: %+v, %v", got, err)
	}
	for i, want := range []memory.Embedding{e0, e1} {
		g := got[i]
		if g.OrgID != want.OrgID || g.MemoryID != want.MemoryID || g.Model != want.Model ||
			g.ContentHash != want.ContentHash || !slices.Equal(g.Vector, want.Vector) ||
			!g.UpdatedAt.Equal(want.UpdatedAt) || g.UpdatedAt.Location() != time.UTC {
			t.Errorf("embedding %d reads back as %+v, want %+v", i, g, want)
		}
	}
	if got := missing(modelA, 2); !slices.Equal(got, keys(all[2:])) {
		t.Errorf("missing after two were embedded: %v, want %v", got, keys(all[2:]))
	}
	models(map[string]int{modelA: 2})

	// Writes that would be stale are skipped: a hash the memory no longer
	// has, a memory that does not exist, a key naming the wrong org.
	stale := embedding(all[2], modelA, 3, 4)
	stale.ContentHash = memory.ContentHash("some other content")
	ghost := embedding(all[2], modelA, 3, 4)
	ghost.MemoryID = "01NOSUCHMEMORY0000000000000"
	wrongOrg := embedding(all[2], modelA, 3, 4)
	wrongOrg.OrgID = "no-such-org"
	put(0, stale, ghost, wrongOrg)
	put(0)

	// One embedding per memory: the last write wins, also within a batch.
	e2 := embedding(all[2], modelA, 4, 4)
	put(1, embedding(all[2], modelA, 9, 4), e2)
	if got, err := es.Embeddings(ctx, modelA, []memory.MemoryKey{keyOf(all[2])}); err != nil || len(got) != 1 || !slices.Equal(got[0].Vector, e2.Vector) {
		t.Errorf("after two writes in one batch: %+v, %v; want the second", got, err)
	}

	// EmbeddingsAfter pages through every org in key order.
	for _, m := range all[3:] {
		put(1, embedding(m, modelA, 5, 4))
	}
	for _, limit := range []int{1, 4, 100} {
		if got := embKeys(current(modelA, limit)); !slices.Equal(got, keys(all)) {
			t.Errorf("embeddings after, limit %d: %v, want %v", limit, got, keys(all))
		}
	}
	if got := missing(modelA, 10); len(got) != 0 {
		t.Errorf("missing with everything embedded: %v", got)
	}

	// A changed memory's embedding is stale: not current, missing again,
	// still counted by model; a write for the new content makes it current.
	alicesKey := keyOf(all[0]) // alice's first memory: the smallest key
	old := all[0]
	e.clock.Advance(time.Second)
	changed, err := e.svc.Update(e.as(alice), old.ID, memory.Patch{Content: ptr("embedding contract memory, edited")})
	if err != nil {
		t.Fatal(err)
	}
	all[0] = changed
	if got, err := es.Embeddings(ctx, modelA, []memory.MemoryKey{keyOf(changed)}); err != nil || len(got) != 0 {
		t.Errorf("embedding of a changed memory: %+v, %v; want none current", got, err)
	}
	if got := missing(modelA, 10); !slices.Equal(got, []memory.MemoryKey{keyOf(changed)}) {
		t.Errorf("missing after a change: %v, want %v", got, keyOf(changed))
	}
	if got, err := es.MissingEmbeddingsOf(ctx, modelA, keys(all)); err != nil || !slices.Equal(sourceKeys(got), []memory.MemoryKey{keyOf(changed)}) ||
		got[0].Content != changed.Content || got[0].ContentHash != changed.ContentHash {
		t.Errorf("missing of all keys after a change: %+v, %v; want %s with its new content", got, err, changed.ID)
	}
	models(map[string]int{modelA: len(all)})
	put(0, embedding(old, modelA, 6, 4))
	put(1, embedding(changed, modelA, 6, 4))
	if got := missing(modelA, 10); len(got) != 0 {
		t.Errorf("missing after re-embedding the change: %v", got)
	}

	// Another model: nothing is current for it, and its vectors (of another
	// dimension) replace model A's one memory at a time.
	if got := missing(modelB, 3); !slices.Equal(got, keys(all)) {
		t.Errorf("missing for a new model: %v, want every memory", got)
	}
	if got, err := es.Embeddings(ctx, modelB, keys(all)); err != nil || len(got) != 0 {
		t.Errorf("embeddings of a new model: %+v, %v", got, err)
	}
	put(1, embedding(all[0], modelB, 7, 3))
	models(map[string]int{modelA: len(all) - 1, modelB: 1})
	if got, err := es.Embeddings(ctx, modelB, []memory.MemoryKey{alicesKey}); err != nil || len(got) != 1 || len(got[0].Vector) != 3 {
		t.Errorf("embedding of model B: %+v, %v; want one of 3 dimensions", got, err)
	}
	if got := embKeys(current(modelA, 2)); slices.Contains(got, alicesKey) || len(got) != len(all)-1 {
		t.Errorf("model A's embeddings after one was replaced: %v", got)
	}

	// MissingEmbeddingsOf keeps to the keys given, skipping unknown ones.
	of, err := es.MissingEmbeddingsOf(ctx, modelB, []memory.MemoryKey{keyOf(all[2]), {OrgID: "acme", ID: "01NOSUCH"},
		{OrgID: "globex", ID: all[1].ID}, alicesKey, keyOf(all[1])})
	if want := []memory.MemoryKey{keyOf(all[1]), keyOf(all[2])}; err != nil || !slices.Equal(sourceKeys(of), want) {
		t.Errorf("missing of keys: %v, %v; want %v", sourceKeys(of), err, want)
	}
	if got, err := es.Embeddings(ctx, modelA, nil); err != nil || len(got) != 0 {
		t.Errorf("embeddings of no keys: %+v, %v", got, err)
	}

	// A deleted memory has no current embedding, misses none, is not
	// counted, and takes no new one.
	deleted := all[len(all)-1]
	for _, m := range all {
		if m.OrgID == "acme" && m.ID != changed.ID && m.AccessEntity != "user:bob" && m.ID != alicesKey.ID {
			deleted = m
		}
	}
	if _, err := e.svc.Delete(e.as(alice), deleted.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := es.Embeddings(ctx, modelA, []memory.MemoryKey{keyOf(deleted)}); err != nil || len(got) != 0 {
		t.Errorf("embedding of a deleted memory: %+v, %v; want none", got, err)
	}
	if got := missing(modelB, 10); slices.Contains(got, keyOf(deleted)) || len(got) != len(all)-2 {
		t.Errorf("missing for model B after a delete: %v; want every live memory but the one embedded", got)
	}
	models(map[string]int{modelA: len(all) - 2, modelB: 1})
	put(0, embedding(deleted, modelB, 8, 3))

	// Deleting a memory row deletes its embedding with it.
	x, ok := e.store.(EmbeddingSQLExecer)
	if !ok {
		return
	}
	victim := all[len(all)-1]
	if victim.ID == deleted.ID {
		victim = all[len(all)-2]
	}
	if n, err := x.ExecEmbeddingSQL(ctx, fmt.Sprintf(`DELETE FROM memories WHERE id = '%s'`, victim.ID)); err != nil || n != 1 {
		t.Fatalf("delete the memory row of %s: %d rows, %v", victim.ID, n, err)
	}
	if n, err := x.ExecEmbeddingSQL(ctx, fmt.Sprintf(`DELETE FROM embeddings WHERE memory_id = '%s'`, victim.ID)); err != nil || n != 0 {
		t.Errorf("the embedding of a deleted memory row is still there: %d rows, %v", n, err)
	}
}
