-- 0003: API keys for service accounts (auth.APIKey). A key is the token
-- cb_<id>_<secret>; only SHA-256 of the secret is stored (secret_hash), never
-- the secret. Revoking sets revoked_at: rows are kept, for audit and so that
-- an id is never handed out twice.
--
-- Unlike every other table, the primary key does not lead with org_id: a
-- presented key names only its id, so it is looked up by id across orgs.
-- The table is small and read far more than written; under Citus it would
-- be a reference table (copied to every node), not distributed by org.
-- Listing and revoking always filter by org_id (api_keys_org).

CREATE TABLE api_keys (
    id           text COLLATE "C" NOT NULL,
    org_id       text COLLATE "C" NOT NULL,
    subject      text        NOT NULL,
    scopes       text[]      NOT NULL,
    grants       text[]      NOT NULL,
    app          text        NOT NULL DEFAULT '',
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL,
    created_by   text        NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    PRIMARY KEY (id)
);

CREATE INDEX api_keys_org ON api_keys (org_id, created_at, id);
