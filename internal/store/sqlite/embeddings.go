package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/codingbrain/codingbrain/internal/memory"
)

var _ memory.EmbeddingStore = (*Store)(nil)

// putEmbedding writes one embedding if its memory is live and still has the
// content hash it was computed from: ?1 model, ?2 dims, ?3 vector, ?4
// updated_at, ?5 org_id, ?6 memory_id, ?7 content_hash.
const putEmbedding = `INSERT INTO embeddings (org_id, memory_id, model, dims, vector, content_hash, updated_at)
	SELECT m.org_id, m.id, ?1, ?2, ?3, m.content_hash, ?4 FROM memories m
	WHERE m.org_id = ?5 AND m.id = ?6 AND m.content_hash = ?7 AND m.state <> 'deleted'
	ON CONFLICT (org_id, memory_id) DO UPDATE SET model = excluded.model, dims = excluded.dims,
		vector = excluded.vector, content_hash = excluded.content_hash, updated_at = excluded.updated_at`

// PutEmbeddings stores es in one transaction; see memory.EmbeddingStore.
func (s *Store) PutEmbeddings(ctx context.Context, es []memory.Embedding) (int, error) {
	if len(es) == 0 {
		return 0, nil
	}
	es = memory.DedupEmbeddings(es)
	now := time.Now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("put embeddings: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, putEmbedding)
	if err != nil {
		return 0, fmt.Errorf("put embeddings: %w", err)
	}
	defer st.Close()
	stored := 0
	for _, e := range es {
		if len(e.Vector) == 0 {
			return 0, fmt.Errorf("put embedding of memory %s: empty vector", e.MemoryID)
		}
		at := e.UpdatedAt
		if at.IsZero() {
			at = now
		}
		res, err := st.ExecContext(ctx, e.Model, len(e.Vector), memory.EncodeVector(e.Vector), formatTime(at),
			e.OrgID, e.MemoryID, e.ContentHash)
		if err != nil {
			return 0, fmt.Errorf("put embedding of memory %s: %w", e.MemoryID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("put embedding of memory %s: %w", e.MemoryID, err)
		}
		stored += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("put embeddings: %w", err)
	}
	return stored, nil
}

// embeddingColumns are read by scanEmbedding, from embeddings e.
const embeddingColumns = `e.org_id, e.memory_id, e.model, e.dims, e.vector, e.content_hash, e.updated_at`

// currentEmbedding joins embeddings e to their memories m and keeps the
// current ones for the model given as ?1.
const currentEmbedding = `FROM embeddings e JOIN memories m ON m.org_id = e.org_id AND m.id = e.memory_id
	WHERE e.model = ?1 AND e.content_hash = m.content_hash AND m.state <> 'deleted'`

// keysParam passes memory keys as one JSON parameter, [[org, id], …], read
// back with json_each: one statement text for any number of keys, so it
// stays in the statement cache.
func keysParam(keys []memory.MemoryKey) (string, error) {
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.OrgID, k.ID}
	}
	b, err := json.Marshal(pairs)
	return string(b), err
}

// inKeys matches (org_id, id) of memories m against the keys in ?2.
const inKeys = `(m.org_id, m.id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?2))`

// Embeddings returns the current embeddings of keys; see
// memory.EmbeddingStore.
func (s *Store) Embeddings(ctx context.Context, model string, keys []memory.MemoryKey) ([]memory.Embedding, error) {
	if len(keys) == 0 {
		return []memory.Embedding{}, nil
	}
	if len(keys) > memory.MaxEmbeddingKeys {
		return nil, fmt.Errorf("read embeddings: %d keys, at most %d", len(keys), memory.MaxEmbeddingKeys)
	}
	p, err := keysParam(keys)
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	return s.readEmbeddings(ctx, `SELECT `+embeddingColumns+` `+currentEmbedding+` AND `+inKeys+`
		ORDER BY e.org_id, e.memory_id`, model, p)
}

// EmbeddingsAfter returns a page of current embeddings in key order; see
// memory.EmbeddingStore.
func (s *Store) EmbeddingsAfter(ctx context.Context, model string, after memory.MemoryKey, limit int) ([]memory.Embedding, error) {
	return s.readEmbeddings(ctx, `SELECT `+embeddingColumns+` `+currentEmbedding+`
		AND (e.org_id, e.memory_id) > (?2, ?3) ORDER BY e.org_id, e.memory_id LIMIT ?4`,
		model, after.OrgID, after.ID, max(limit, 1))
}

func (s *Store) readEmbeddings(ctx context.Context, query string, args ...any) ([]memory.Embedding, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	defer rows.Close()
	out := []memory.Embedding{}
	for rows.Next() {
		var (
			e    memory.Embedding
			dims int
			blob []byte
			at   string
		)
		if err := rows.Scan(&e.OrgID, &e.MemoryID, &e.Model, &dims, &blob, &e.ContentHash, &at); err != nil {
			return nil, fmt.Errorf("read embeddings: %w", err)
		}
		if e.Vector, err = memory.DecodeVector(blob, dims); err != nil {
			return nil, fmt.Errorf("read embedding of memory %s: %w", e.MemoryID, err)
		}
		if e.UpdatedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read embedding of memory %s: %w", e.MemoryID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	return out, nil
}

// EmbeddingModels counts the embeddings of live memories by model.
func (s *Store) EmbeddingModels(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT e.model, count(*) FROM embeddings e
		JOIN memories m ON m.org_id = e.org_id AND m.id = e.memory_id
		WHERE m.state <> 'deleted' GROUP BY e.model`)
	if err != nil {
		return nil, fmt.Errorf("count embeddings: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var model string
		var n int
		if err := rows.Scan(&model, &n); err != nil {
			return nil, fmt.Errorf("count embeddings: %w", err)
		}
		out[model] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count embeddings: %w", err)
	}
	return out, nil
}

// missingEmbedding selects, from memories m, the live ones without a current
// embedding for the model given as ?1.
const missingEmbedding = `FROM memories m LEFT JOIN embeddings e ON e.org_id = m.org_id AND e.memory_id = m.id
	WHERE m.state <> 'deleted' AND (e.memory_id IS NULL OR e.model <> ?1 OR e.content_hash <> m.content_hash)`

// MissingEmbeddings returns a page of live memories without a current
// embedding, in key order; see memory.EmbeddingStore.
func (s *Store) MissingEmbeddings(ctx context.Context, model string, after memory.MemoryKey, limit int) ([]memory.EmbeddingSource, error) {
	return s.readSources(ctx, `SELECT m.org_id, m.id, m.content, m.content_hash `+missingEmbedding+`
		AND (m.org_id, m.id) > (?2, ?3) ORDER BY m.org_id, m.id LIMIT ?4`,
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
	p, err := keysParam(keys)
	if err != nil {
		return nil, fmt.Errorf("read memories to embed: %w", err)
	}
	return s.readSources(ctx, `SELECT m.org_id, m.id, m.content, m.content_hash `+missingEmbedding+`
		AND `+inKeys+` ORDER BY m.org_id, m.id`, model, p)
}

func (s *Store) readSources(ctx context.Context, query string, args ...any) ([]memory.EmbeddingSource, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read memories to embed: %w", err)
	}
	defer rows.Close()
	out := []memory.EmbeddingSource{}
	for rows.Next() {
		var src memory.EmbeddingSource
		if err := rows.Scan(&src.OrgID, &src.MemoryID, &src.Content, &src.ContentHash); err != nil {
			return nil, fmt.Errorf("read memories to embed: %w", err)
		}
		out = append(out, src)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read memories to embed: %w", err)
	}
	return out, nil
}

// CountMissingEmbeddings counts the live memories without a current
// embedding for model.
func (s *Store) CountMissingEmbeddings(ctx context.Context, model string) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT count(*) `+missingEmbedding, model).Scan(&n); err != nil {
		return 0, fmt.Errorf("count memories to embed: %w", err)
	}
	return n, nil
}
