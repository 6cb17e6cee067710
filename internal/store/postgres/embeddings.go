package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.EmbeddingStore = (*Store)(nil)

// putEmbeddings writes a batch, passed as arrays, in one statement: each
// embedding whose memory is live and still has the content hash it was
// computed from replaces the memory's previous one. The arrays hold one
// entry per memory (ON CONFLICT cannot touch a row twice).
const putEmbeddings = `INSERT INTO embeddings (org_id, memory_id, model, dims, vector, content_hash, updated_at)
	SELECT m.org_id, m.id, u.model, u.dims, u.vector, m.content_hash, u.updated_at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bytea[], $6::text[], $7::timestamptz[])
		AS u(org_id, memory_id, model, dims, vector, content_hash, updated_at)
	JOIN memories m ON m.org_id = u.org_id AND m.id = u.memory_id
	WHERE m.content_hash = u.content_hash AND m.state <> 'deleted'
	ON CONFLICT (org_id, memory_id) DO UPDATE SET model = excluded.model, dims = excluded.dims,
		vector = excluded.vector, content_hash = excluded.content_hash, updated_at = excluded.updated_at`

// PutEmbeddings stores es in one statement; see memory.EmbeddingStore.
func (s *Store) PutEmbeddings(ctx context.Context, es []memory.Embedding) (int, error) {
	if len(es) == 0 {
		return 0, nil
	}
	es = memory.DedupEmbeddings(es)
	n := len(es)
	orgs, ids, models, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	dims, vectors, ats := make([]int32, n), make([][]byte, n), make([]time.Time, n)
	now := time.Now()
	for i, e := range es {
		if len(e.Vector) == 0 {
			return 0, fmt.Errorf("put embedding of memory %s: empty vector", e.MemoryID)
		}
		orgs[i], ids[i], models[i], hashes[i] = e.OrgID, e.MemoryID, e.Model, e.ContentHash
		dims[i], vectors[i] = int32(len(e.Vector)), memory.EncodeVector(e.Vector)
		ats[i] = now
		if !e.UpdatedAt.IsZero() {
			ats[i] = e.UpdatedAt
		}
		ats[i] = utc(ats[i])
	}
	tag, err := s.pool.Exec(ctx, putEmbeddings, orgs, ids, models, dims, vectors, hashes, ats)
	if err != nil {
		return 0, fmt.Errorf("put embeddings: %w", s.dbErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// embeddingColumns are read by scanEmbedding, from embeddings e.
const embeddingColumns = `e.org_id, e.memory_id, e.model, e.dims, e.vector, e.content_hash, e.updated_at`

// currentEmbedding joins embeddings e to their memories m and keeps the
// current ones for the model given as $1.
const currentEmbedding = `FROM embeddings e JOIN memories m ON m.org_id = e.org_id AND m.id = e.memory_id
	WHERE e.model = $1 AND e.content_hash = m.content_hash AND m.state <> 'deleted'`

// inKeys matches (org_id, id) of memories m against the keys passed as the
// arrays $2 (orgs) and $3 (ids).
const inKeys = `(m.org_id, m.id) IN (SELECT * FROM unnest($2::text[], $3::text[]))`

func keyArrays(keys []memory.MemoryKey) (orgs, ids []string) {
	orgs, ids = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		orgs[i], ids[i] = k.OrgID, k.ID
	}
	return orgs, ids
}

// Embeddings returns the current embeddings of keys; see
// memory.EmbeddingStore.
func (s *Store) Embeddings(ctx context.Context, model string, keys []memory.MemoryKey) ([]memory.Embedding, error) {
	if len(keys) == 0 {
		return []memory.Embedding{}, nil
	}
	if len(keys) > memory.MaxEmbeddingKeys {
		return nil, fmt.Errorf("read embeddings: %d keys, at most %d", len(keys), memory.MaxEmbeddingKeys)
	}
	orgs, ids := keyArrays(keys)
	return s.readEmbeddings(ctx, `SELECT `+embeddingColumns+` `+currentEmbedding+` AND `+inKeys+`
		ORDER BY e.org_id, e.memory_id`, model, orgs, ids)
}

// EmbeddingsAfter returns a page of current embeddings in key order; see
// memory.EmbeddingStore.
func (s *Store) EmbeddingsAfter(ctx context.Context, model string, after memory.MemoryKey, limit int) ([]memory.Embedding, error) {
	return s.readEmbeddings(ctx, `SELECT `+embeddingColumns+` `+currentEmbedding+`
		AND (e.org_id, e.memory_id) > ($2, $3) ORDER BY e.org_id, e.memory_id LIMIT $4`,
		model, after.OrgID, after.ID, max(limit, 1))
}

func (s *Store) readEmbeddings(ctx context.Context, query string, args ...any) ([]memory.Embedding, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.Embedding, error) {
		var (
			e    memory.Embedding
			dims int
			blob []byte
		)
		if err := r.Scan(&e.OrgID, &e.MemoryID, &e.Model, &dims, &blob, &e.ContentHash, &e.UpdatedAt); err != nil {
			return e, err
		}
		v, err := memory.DecodeVector(blob, dims)
		if err != nil {
			return e, fmt.Errorf("embedding of memory %s: %w", e.MemoryID, err)
		}
		e.Vector, e.UpdatedAt = v, e.UpdatedAt.UTC()
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", s.dbErr(err))
	}
	if out == nil {
		out = []memory.Embedding{}
	}
	return out, nil
}

// EmbeddingModels counts the embeddings of live memories by model.
func (s *Store) EmbeddingModels(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.model, count(*) FROM embeddings e
		JOIN memories m ON m.org_id = e.org_id AND m.id = e.memory_id
		WHERE m.state <> 'deleted' GROUP BY e.model`)
	if err != nil {
		return nil, fmt.Errorf("count embeddings: %w", s.dbErr(err))
	}
	out := map[string]int{}
	var (
		model string
		n     int
	)
	_, err = pgx.ForEachRow(rows, []any{&model, &n}, func() error { out[model] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("count embeddings: %w", s.dbErr(err))
	}
	return out, nil
}

// missingEmbedding selects, from memories m, the live ones without a current
// embedding for the model given as $1.
const missingEmbedding = `FROM memories m LEFT JOIN embeddings e ON e.org_id = m.org_id AND e.memory_id = m.id
	WHERE m.state <> 'deleted' AND (e.memory_id IS NULL OR e.model <> $1 OR e.content_hash <> m.content_hash)`

// MissingEmbeddings returns a page of live memories without a current
// embedding, in key order; see memory.EmbeddingStore.
func (s *Store) MissingEmbeddings(ctx context.Context, model string, after memory.MemoryKey, limit int) ([]memory.EmbeddingSource, error) {
	return s.readSources(ctx, `SELECT m.org_id, m.id, m.content, m.content_hash `+missingEmbedding+`
		AND (m.org_id, m.id) > ($2, $3) ORDER BY m.org_id, m.id LIMIT $4`,
		model, after.OrgID, after.ID, max(limit, 1))
}

// MissingEmbeddingsOf is MissingEmbeddings among keys.
func (s *Store) MissingEmbeddingsOf(ctx context.Context, model string, keys []memory.MemoryKey) ([]memory.EmbeddingSource, error) {
	if len(keys) == 0 {
		return []memory.EmbeddingSource{}, nil
	}
	if len(keys) > memory.MaxEmbeddingKeys {
		return nil, fmt.Errorf("read memories to embed: %d keys, at most %d", len(keys), memory.MaxEmbeddingKeys)
	}
	orgs, ids := keyArrays(keys)
	return s.readSources(ctx, `SELECT m.org_id, m.id, m.content, m.content_hash `+missingEmbedding+`
		AND `+inKeys+` ORDER BY m.org_id, m.id`, model, orgs, ids)
}

func (s *Store) readSources(ctx context.Context, query string, args ...any) ([]memory.EmbeddingSource, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read memories to embed: %w", s.dbErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.EmbeddingSource, error) {
		var src memory.EmbeddingSource
		err := r.Scan(&src.OrgID, &src.MemoryID, &src.Content, &src.ContentHash)
		return src, err
	})
	if err != nil {
		return nil, fmt.Errorf("read memories to embed: %w", s.dbErr(err))
	}
	if out == nil {
		out = []memory.EmbeddingSource{}
	}
	return out, nil
}

// CountMissingEmbeddings counts the live memories without a current
// embedding for model.
func (s *Store) CountMissingEmbeddings(ctx context.Context, model string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) `+missingEmbedding, model).Scan(&n); err != nil {
		return 0, fmt.Errorf("count memories to embed: %w", s.dbErr(err))
	}
	return n, nil
}
