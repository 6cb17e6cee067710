// Package embed turns text into vectors for semantic search. Embedder is
// the one interface the rest of the server sees; the built-in offline
// embedder is the default, and an OpenAI-compatible HTTP embedder serves
// remote models (OpenAI, Ollama, vLLM, LM Studio, TEI).
package embed

import (
	"context"
	"errors"
)

// Embedder maps texts to vectors.
type Embedder interface {
	// Embed returns one vector per text, in order, each of length Dim()
	// and L2-normalized, so that a dot product is the cosine similarity.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Model names the model and its version, e.g. "builtin-v1" or
	// "openai:text-embedding-3-small". Stored vectors record it, so that a
	// model change is detected and the vectors rebuilt (reindex).
	Model() string
	// Dim is the length of every vector.
	Dim() int
}

// ErrUnavailable wraps failures of an embedder that cannot answer now
// (unreachable, timing out, circuit open). Search degrades to lexical and
// graph retrieval and says so; writes keep the memory and embed it later.
var ErrUnavailable = errors.New("embedder unavailable")
