-- 0001: memories, their history, the access log and the lexical index; and,
-- unused until hybrid search lands, embeddings and the entity graph.
--
-- org_id is the tenant. It leads every primary key, foreign key and btree
-- index: it is the distribution column should these tables be sharded with
-- Citus (which requires it in every unique constraint and in foreign keys
-- between distributed tables), and it keeps one org's rows together in each
-- index. GIN indexes do not lead with it (that needs btree_gin, and with one
-- large org an org_id key matches every row); on Citus each shard has its
-- own GIN index anyway.
--
-- Identifiers, hashes and keys use the "C" collation: byte order, as the
-- embedded store compares them, for keyset pagination and access-entity
-- matching alike, and cheaper comparisons.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE memories (
    org_id          text COLLATE "C" NOT NULL,
    id              text COLLATE "C" NOT NULL,
    access_entity   text COLLATE "C" NOT NULL,
    state           text        NOT NULL CHECK (state IN ('active', 'paused', 'archived', 'deleted')),
    category        text        NOT NULL DEFAULT '',
    scope           text        NOT NULL,
    app             text        NOT NULL DEFAULT '',
    entity          text        NOT NULL DEFAULT '',
    artifact_ref    text        NOT NULL DEFAULT '',
    artifact_type   text        NOT NULL DEFAULT '',
    source          text        NOT NULL,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    valid_from      timestamptz,
    valid_to        timestamptz,
    content_hash    text COLLATE "C" NOT NULL,
    idempotency_key text COLLATE "C",
    evidence        text[],                -- ADR/PR/issue references
    tags            jsonb,                 -- object of scalars
    metadata        jsonb,                 -- any object
    content         text        NOT NULL,
    -- The lexical index: content, entity (weighted highest), artifact ref and
    -- tag keys and values, stemmed with the english configuration. Content
    -- comes first, so its positions are those of the content alone.
    lexemes         tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, content), 'B') ||
        setweight(to_tsvector('english'::regconfig, entity), 'A') ||
        setweight(to_tsvector('english'::regconfig, artifact_ref), 'C') ||
        setweight(jsonb_to_tsvector('english'::regconfig, coalesce(tags, '{}'::jsonb), '["all"]'), 'D')
    ) STORED,
    PRIMARY KEY (org_id, id)
);

-- Exact duplicates are not stored twice among live memories.
CREATE UNIQUE INDEX memories_live_content
    ON memories (org_id, access_entity, content_hash) WHERE state <> 'deleted';
CREATE UNIQUE INDEX memories_idempotency
    ON memories (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Keyset pagination on (sort column, id) within an org.
CREATE INDEX memories_org_created ON memories (org_id, created_at, id);
CREATE INDEX memories_org_updated ON memories (org_id, updated_at, id);
-- Visibility (org, access entity) with the columns stats and apps group by.
CREATE INDEX memories_org_access ON memories (org_id, access_entity, state, category, scope, app);
-- Lexical search, tag filters (? and @>), and fuzzy entity names later.
CREATE INDEX memories_lexemes ON memories USING gin (lexemes);
CREATE INDEX memories_tags ON memories USING gin (tags);
CREATE INDEX memories_entity_trgm ON memories USING gin (entity gin_trgm_ops);

CREATE TABLE history (
    org_id    text COLLATE "C" NOT NULL,
    id        bigserial   NOT NULL,
    memory_id text COLLATE "C" NOT NULL,
    actor     text        NOT NULL,
    action    text        NOT NULL,
    at        timestamptz NOT NULL,
    before    jsonb,                       -- the memory before; NULL for a create
    after     jsonb,                       -- the memory after
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX history_memory ON history (org_id, memory_id, id);
CREATE INDEX history_org_at ON history (org_id, at);

CREATE TABLE access_log (
    org_id    text COLLATE "C" NOT NULL,
    id        bigserial   NOT NULL,
    memory_id text COLLATE "C" NOT NULL,
    actor     text        NOT NULL,
    app       text        NOT NULL DEFAULT '',
    via       text        NOT NULL,
    query     text        NOT NULL DEFAULT '',
    at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX access_log_memory ON access_log (org_id, memory_id);
CREATE INDEX access_log_org_at ON access_log (org_id, at);

-- Embeddings of memories, for vector search (the nearest-neighbour index is
-- built in process from these rows). vector holds dims float32 values,
-- little-endian; model and dims say what produced it, so a model change can
-- be detected and re-embedded.
CREATE TABLE embeddings (
    org_id     text COLLATE "C" NOT NULL,
    memory_id  text COLLATE "C" NOT NULL,
    model      text        NOT NULL,
    dims       integer     NOT NULL CHECK (dims > 0),
    vector     bytea       NOT NULL CHECK (length(vector) = 4 * dims),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, memory_id),
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX embeddings_org_model ON embeddings (org_id, model, dims);

-- Entities (services, modules, people, …) named by memories. name is the
-- normalized form (lower case, single spaces) used for matching;
-- display_name is as first written.
CREATE TABLE entities (
    org_id       text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    name         text        NOT NULL,
    display_name text        NOT NULL,
    kind         text        NOT NULL DEFAULT '',
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, kind, name)
);

CREATE INDEX entities_org_name ON entities (org_id, name);
CREATE INDEX entities_name_trgm ON entities USING gin (name gin_trgm_ops);

-- Edges between entities, each optionally backed by the memory it was
-- learned from (deleting the memory deletes its edges).
CREATE TABLE edges (
    org_id    text COLLATE "C" NOT NULL,
    id        bigserial   NOT NULL,
    src       text COLLATE "C" NOT NULL,
    dst       text COLLATE "C" NOT NULL,
    kind      text        NOT NULL,
    weight    real        NOT NULL DEFAULT 1,
    memory_id text COLLATE "C",
    PRIMARY KEY (org_id, id),
    UNIQUE NULLS NOT DISTINCT (org_id, src, kind, dst, memory_id),
    FOREIGN KEY (org_id, src) REFERENCES entities (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, dst) REFERENCES entities (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, memory_id) REFERENCES memories (org_id, id) ON DELETE CASCADE
);

CREATE INDEX edges_dst ON edges (org_id, dst, kind);
CREATE INDEX edges_memory ON edges (org_id, memory_id);
