-- 0005: embeddings of memories (embeddings.go), for vector search; the
-- nearest-neighbour index is built in process from these rows.
--
-- 0001 created the table with one row per memory (org_id, memory_id), the
-- model, dims and the little-endian float32 vector, but nothing wrote it.
-- This adds content_hash, the memory's content_hash when the vector was
-- computed, so that a changed memory (or a change of model) shows as a
-- missing embedding and is computed again. The default '' matches no
-- memory: a row written before this migration counts as stale. Rows go
-- with their memory (ON DELETE CASCADE, from 0001).
--
-- The index on (org_id, model, dims) of 0001 serves no query: embeddings are
-- read by primary key, in key order across orgs, or counted by model over
-- the whole table. It is dropped rather than kept up on every write.

ALTER TABLE embeddings ADD COLUMN content_hash text COLLATE "C" NOT NULL DEFAULT '';
DROP INDEX IF EXISTS embeddings_org_model;
