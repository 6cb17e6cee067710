package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/codingbrain/codingbrain/internal/config"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/retrieval"
)

// benchIndex is the vector side of the bench's service and its stop.
type benchIndex struct {
	*retrieval.Vectors
	stop func()
}

// benchVectors builds the vector index of the bench's throw-away store for
// the embedder named by --embedder — builtin, or openai with the
// embedder_* settings read from the environment (CODINGBRAIN_EMBEDDER_URL,
// …) as serve reads them — and keeps it following the store, as serve
// does, until stop.
func benchVectors(ctx context.Context, st memory.Store, embedder string, getenv func(string) string) (*benchIndex, error) {
	src, ok := st.(retrieval.Source)
	if !ok {
		return nil, fmt.Errorf("bench: the %T store cannot hold vectors", st)
	}
	cfg := config.Default()
	if embedder == "openai" && getenv != nil {
		c, err := config.Load(nil, getenv)
		if err != nil {
			return nil, fmt.Errorf("bench: embedder settings: %w", err)
		}
		cfg = c
	}
	cfg.Embedder = embedder
	emb, err := openEmbedder(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	v := retrieval.New(emb, src, retrieval.Options{})
	if err := v.Load(ctx); err != nil {
		v.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = v.Run(ctx) }()
	return &benchIndex{Vectors: v, stop: func() { cancel(); <-done; v.Close() }}, nil
}
