-- 0006: the entity graph (graph.go, memory/graph.go).
--
-- 0001 created entities (text ids, kind and display name on the entity)
-- and edges (every edge stored, with an optional memory) for this, but no
-- release ever wrote or read them. They are replaced: no binary that runs
-- against this schema, older or newer, depends on their old shape.
--
-- entities: one row per normalized name (memory.NormalizeEntity) in an
-- org, and nothing else, so that nothing about an entity can be read
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
-- org_id leads every key (the Citus distribution column); every row goes
-- with its memory (ON DELETE CASCADE). Entities no memory mentions any more
-- stay behind, invisible, until a prune. The mentions and edges of
-- memories stored before this migration are written, in this migration's
-- transaction, by the Go hook of this version (graph.go, backfillGraph).

DROP TABLE edges;
DROP TABLE entities;

CREATE TABLE entities (
    org_id text COLLATE "C" NOT NULL,
    id     bigserial        NOT NULL,
    name   text COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE mentions (
    org_id    text COLLATE "C" NOT NULL,
    entity_id bigint           NOT NULL,
    memory_id text COLLATE "C" NOT NULL,
    kind      text             NOT NULL CHECK (kind IN ('entity', 'artifact', 'tag', 'explicit')),
    display   text COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, entity_id, memory_id),
    FOREIGN KEY (org_id, entity_id) REFERENCES entities (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX mentions_memory ON mentions (org_id, memory_id, entity_id);

CREATE TABLE edges (
    org_id    text COLLATE "C" NOT NULL,
    src       bigint           NOT NULL,
    dst       bigint           NOT NULL,
    kind      text COLLATE "C" NOT NULL CHECK (kind LIKE 'relation:%' OR kind = 'similar'),
    memory_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, src, kind, dst, memory_id),
    FOREIGN KEY (org_id, src) REFERENCES entities (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, dst) REFERENCES entities (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX edges_dst ON edges (org_id, dst, kind, src);
CREATE INDEX edges_memory ON edges (org_id, memory_id);

CREATE TABLE memory_links (
    org_id     text COLLATE "C" NOT NULL,
    src_id     text COLLATE "C" NOT NULL,
    dst_id     text COLLATE "C" NOT NULL,
    type       text COLLATE "C" NOT NULL,
    created_by text             NOT NULL,
    created_at timestamptz      NOT NULL,
    PRIMARY KEY (org_id, src_id, type, dst_id),
    FOREIGN KEY (org_id, src_id) REFERENCES memories (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, dst_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX memory_links_dst ON memory_links (org_id, dst_id);
