-- 0006: the entity graph (graph.go, memory/graph.go).
--
-- entities: one row per normalized name (memory.NormalizeEntity) in an
-- org. It holds nothing else, so that nothing about an entity can be read
-- except through a memory that mentions it.
--
-- mentions: a live (active or paused) memory names an entity — as its
-- entity, its artifact_ref, a tag, or the target of a relation it states
-- (kind) — written as display. Written in the memory's write transaction;
-- an archive or delete removes the memory's rows, a restore writes them
-- again. Co-mention and tag co-occurrence edges are not stored: queries
-- derive them from the mentions of the memories the caller may see.
--
-- edges: the typed relations a live memory states (relation:<type> tags),
-- stored with that memory and visible through it.
--
-- memory_links: typed relations between two memories, made by Relate;
-- visible to a caller who may see both memories.
--
-- Memories are referenced by seq (the rowid), the cheapest join; every row
-- goes with its memory (ON DELETE CASCADE). Entities no memory mentions any
-- more stay behind, invisible, until a prune.
--
-- The mentions and edges of memories stored before this migration are
-- written, in this migration's transaction, by the Go hook of this version
-- (graph.go, backfillGraph).

CREATE TABLE entities (
    id     INTEGER PRIMARY KEY,
    org_id TEXT NOT NULL,
    name   TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE mentions (
    entity_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    memory_seq INTEGER NOT NULL REFERENCES memories (seq) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('entity', 'artifact', 'tag', 'explicit')),
    display    TEXT    NOT NULL,
    PRIMARY KEY (entity_id, memory_seq)
) STRICT, WITHOUT ROWID;

-- By memory, with the kind: co-mention pairs are read from this index alone.
CREATE INDEX mentions_memory ON mentions (memory_seq, entity_id, kind);

CREATE TABLE edges (
    src        INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    dst        INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind LIKE 'relation:%' OR kind = 'similar'),
    memory_seq INTEGER NOT NULL REFERENCES memories (seq) ON DELETE CASCADE,
    PRIMARY KEY (src, kind, dst, memory_seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX edges_dst ON edges (dst, kind, src);
CREATE INDEX edges_memory ON edges (memory_seq);

CREATE TABLE memory_links (
    src_seq    INTEGER NOT NULL REFERENCES memories (seq) ON DELETE CASCADE,
    dst_seq    INTEGER NOT NULL REFERENCES memories (seq) ON DELETE CASCADE,
    type       TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (src_seq, type, dst_seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX memory_links_dst ON memory_links (dst_seq);
