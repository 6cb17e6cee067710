package memory

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Embedding is the vector of one memory's content as one model computed it.
// It is derived data: it can always be computed again from the memory.
type Embedding struct {
	OrgID    string
	MemoryID string
	// Model names the embedder and its version (embed.Embedder.Model).
	Model string
	// ContentHash is the memory's ContentHash when the vector was computed:
	// once the content changes, the embedding is stale.
	ContentHash string
	// Vector has the embedder's dimension; its length is the stored dims.
	Vector    []float32
	UpdatedAt time.Time
}

// MemoryKey names one memory across orgs. Keys order by OrgID, then ID.
type MemoryKey struct {
	OrgID string
	ID    string
}

// Less reports whether k sorts before o.
func (k MemoryKey) Less(o MemoryKey) bool {
	return k.OrgID < o.OrgID || k.OrgID == o.OrgID && k.ID < o.ID
}

// EmbeddingSource is what an embedder needs to embed one memory: its content
// and the hash to store with the vector.
type EmbeddingSource struct {
	OrgID       string
	MemoryID    string
	Content     string
	ContentHash string
}

// Key is the memory's key.
func (s EmbeddingSource) Key() MemoryKey { return MemoryKey{OrgID: s.OrgID, ID: s.MemoryID} }

// EmbeddingStore keeps at most one embedding per memory, in the system of
// record, next to the memory (deleting the memory row deletes it). Both
// stores implement it; it is not part of Store, and like ChangeFeed it is
// internal: it reads every org and must never be exposed to callers as it
// is.
//
// A memory's embedding is current for a model when it was computed by that
// model from the memory's present content (same ContentHash) and the memory
// is live (not deleted). A live memory without a current embedding is
// missing one: it never had one, has one of another model, or its content
// changed since.
type EmbeddingStore interface {
	// PutEmbeddings stores each embedding in place of the memory's previous
	// one, if the memory is still live and still has the embedding's
	// ContentHash; embeddings of memories that are gone, deleted or changed
	// since are skipped, so a late writer never stores a stale vector. It
	// returns how many it stored. A zero UpdatedAt is the store's now.
	PutEmbeddings(ctx context.Context, es []Embedding) (stored int, err error)

	// Embeddings returns the current embeddings for model of the memories
	// named by keys (at most MaxEmbeddingKeys), in key order; memories
	// without one are left out.
	Embeddings(ctx context.Context, model string, keys []MemoryKey) ([]Embedding, error)

	// EmbeddingsAfter returns current embeddings for model of every org, in
	// key order, after the key after (the zero key is the start), at most
	// limit: pages for loading an in-process index.
	EmbeddingsAfter(ctx context.Context, model string, after MemoryKey, limit int) ([]Embedding, error)

	// EmbeddingModels counts the stored embeddings of live memories by
	// model, stale or not, to detect a change of model.
	EmbeddingModels(ctx context.Context) (map[string]int, error)

	// MissingEmbeddings returns live memories of every org that miss a
	// current embedding for model, in key order, after the key after, at
	// most limit. Walking it to the end visits each such memory once.
	MissingEmbeddings(ctx context.Context, model string, after MemoryKey, limit int) ([]EmbeddingSource, error)

	// MissingEmbeddingsOf is MissingEmbeddings among the memories named by
	// keys (at most MaxEmbeddingKeys), in key order.
	MissingEmbeddingsOf(ctx context.Context, model string, keys []MemoryKey) ([]EmbeddingSource, error)

	// CountMissingEmbeddings counts the live memories that miss a current
	// embedding for model.
	CountMissingEmbeddings(ctx context.Context, model string) (int, error)
}

// MaxEmbeddingKeys bounds the keys of one Embeddings or MissingEmbeddingsOf
// call (a page of the change feed fits).
const MaxEmbeddingKeys = 1000

// EncodeVector is the stored form of a vector: each float32 in
// little-endian byte order, 4 bytes per dimension.
func EncodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// DecodeVector reads the stored form of a vector of dims dimensions.
func DecodeVector(b []byte, dims int) ([]float32, error) {
	if dims <= 0 || len(b) != 4*dims {
		return nil, fmt.Errorf("decode vector: %d bytes for %d dimensions", len(b), dims)
	}
	v := make([]float32, dims)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// DedupEmbeddings keeps the last embedding of each memory in es, in their
// original order of last appearance; stores use it so one batch writes a
// memory once.
func DedupEmbeddings(es []Embedding) []Embedding {
	last := make(map[MemoryKey]int, len(es))
	for i, e := range es {
		last[MemoryKey{e.OrgID, e.MemoryID}] = i
	}
	if len(last) == len(es) {
		return es
	}
	out := make([]Embedding, 0, len(last))
	for i, e := range es {
		if last[MemoryKey{e.OrgID, e.MemoryID}] == i {
			out = append(out, e)
		}
	}
	return out
}
