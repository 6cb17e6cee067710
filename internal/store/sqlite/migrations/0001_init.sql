-- 0001: memories, their history, the access log and the lexical index.
--
-- Times are UTC text in a fixed-width RFC 3339 form with nanoseconds
-- (2006-01-02T15:04:05.000000000Z), so text order is time order.
-- Small columns come before the large ones (tags … content) so that filters
-- read a row without walking its overflow pages.

CREATE TABLE memories (
    seq             INTEGER PRIMARY KEY,   -- stable rowid for the FTS index
    id              TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL,
    access_entity   TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'paused', 'archived', 'deleted')),
    category        TEXT NOT NULL DEFAULT '',
    scope           TEXT NOT NULL,
    app             TEXT NOT NULL DEFAULT '',
    entity          TEXT NOT NULL DEFAULT '',
    artifact_ref    TEXT NOT NULL DEFAULT '',
    artifact_type   TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    valid_from      TEXT,
    valid_to        TEXT,
    content_hash    TEXT NOT NULL,
    idempotency_key TEXT,
    acl             TEXT NOT NULL,         -- access tokens for the lexical index, see acl.go
    tags            TEXT,                  -- JSON object
    evidence        TEXT,                  -- JSON array
    metadata        TEXT,                  -- JSON object
    content         TEXT NOT NULL
) STRICT;

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

CREATE TABLE history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    org_id    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    at        TEXT NOT NULL,
    before    TEXT,                        -- JSON memory, NULL for a create
    after     TEXT                         -- JSON memory
) STRICT;

CREATE INDEX history_memory ON history (memory_id, id);
CREATE INDEX history_org_at ON history (org_id, at);

CREATE TABLE access_log (
    id        INTEGER PRIMARY KEY,
    memory_id TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    org_id    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    app       TEXT NOT NULL DEFAULT '',
    via       TEXT NOT NULL,
    query     TEXT NOT NULL DEFAULT '',
    at        TEXT NOT NULL
) STRICT;

CREATE INDEX access_log_memory ON access_log (memory_id);
CREATE INDEX access_log_org_at ON access_log (org_id, at);

-- Lexical index over the memories table (external content), kept in step by
-- the triggers below inside the writing transaction. The acl column indexes
-- opaque access tokens so that a search intersects the visible memories
-- inside the index instead of ranking every match of every tenant.
CREATE VIRTUAL TABLE memories_fts USING fts5 (
    content, entity, artifact_ref, tags, acl,
    content = 'memories', content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content, entity, artifact_ref, tags, acl)
    VALUES (new.seq, new.content, new.entity, new.artifact_ref, new.tags, new.acl);
END;

CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, entity, artifact_ref, tags, acl)
    VALUES ('delete', old.seq, old.content, old.entity, old.artifact_ref, old.tags, old.acl);
END;

CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, entity, artifact_ref, tags, acl ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, entity, artifact_ref, tags, acl)
    VALUES ('delete', old.seq, old.content, old.entity, old.artifact_ref, old.tags, old.acl);
    INSERT INTO memories_fts (rowid, content, entity, artifact_ref, tags, acl)
    VALUES (new.seq, new.content, new.entity, new.artifact_ref, new.tags, new.acl);
END;
