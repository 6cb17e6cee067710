-- 0005: embeddings of memories (embeddings.go), for vector search; the
-- nearest-neighbour index is built in process from these rows.
--
-- One row per memory: the vector of its content as model computed it, dims
-- float32 values in little-endian byte order, and the memory's content_hash
-- at the time, so that a changed memory (or a change of model) shows as a
-- missing embedding and is computed again. Rows go with their memory (ON
-- DELETE CASCADE).
--
-- memories gets a unique index on (org_id, id) — id alone is already unique
-- — so that embeddings can reference a memory by (org_id, id) as on
-- PostgreSQL, and so that the walks over every org's memories in
-- (org_id, id) order (backfill, reindex) read an index instead of sorting.
-- Rows hold a 1 KiB or larger vector, so the table keeps its rowid (SQLite
-- advises WITHOUT ROWID only for small rows).

CREATE UNIQUE INDEX memories_org_id ON memories (org_id, id);

CREATE TABLE embeddings (
    org_id       TEXT    NOT NULL,
    memory_id    TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    dims         INTEGER NOT NULL CHECK (dims > 0),
    vector       BLOB    NOT NULL CHECK (length(vector) = 4 * dims),
    content_hash TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (org_id, memory_id),
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
) STRICT;
