-- 0003: API keys for service accounts (auth.APIKey). A key is the token
-- cb_<id>_<secret>; only SHA-256 of the secret is stored (secret_hash), never
-- the secret. Revoking sets revoked_at: rows are kept, for audit and so that
-- an id is never handed out twice.
--
-- A presented key names only its id, so the primary key is the id alone;
-- listing and revoking always filter by org_id (api_keys_org). Times are
-- UTC text in the fixed-width form of 0001; scopes and grants are JSON
-- arrays of strings.

CREATE TABLE api_keys (
    id           TEXT NOT NULL PRIMARY KEY,
    org_id       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    grants       TEXT NOT NULL,
    app          TEXT NOT NULL DEFAULT '',
    secret_hash  BLOB NOT NULL CHECK (length(secret_hash) = 32),
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
) STRICT;

CREATE INDEX api_keys_org ON api_keys (org_id, created_at, id);
