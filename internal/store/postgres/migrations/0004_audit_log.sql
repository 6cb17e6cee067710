-- 0004: the audit log (audit.go; internal/audit says what a record is and
-- how its hash is computed).
--
-- One hash chain over every org: seq runs 1, 2, 3, … without gaps, each
-- row's prev_hash is the hash of the row before it. An append takes a
-- transaction-scoped advisory lock, reads the last row and inserts the next
-- in the same transaction, so appends from every replica form one linear
-- chain. Unlike every other table, org_id does not lead the primary key:
-- the chain is global (a failed authentication belongs to no org), so this
-- table would stay on one node if the others were sharded by org.
--
-- detail is text, not jsonb: it holds the canonical JSON exactly as it was
-- hashed, and jsonb would rewrite numbers and key order.
--
-- Append-only: the triggers below raise on UPDATE, DELETE and TRUNCATE, for
-- every role. Nothing in Coding Brain prunes the log. An operator who must
-- (a retention rule) can only do it visibly: as the table's owner,
-- ALTER TABLE audit_log DISABLE TRIGGER USER, DELETE, ENABLE TRIGGER USER —
-- DDL that the server's logs record (log_statement = ddl) — and the chain
-- then no longer starts at seq 1, which `codingbrain audit verify` reports
-- as a broken link at the first remaining record. Give the role that runs
-- serve INSERT and SELECT on audit_log and not ownership where the
-- deployment allows it (migrations then run as the owner).

CREATE TABLE audit_log (
    seq         bigint      PRIMARY KEY,
    at          timestamptz NOT NULL,
    org_id      text COLLATE "C" NOT NULL DEFAULT '',
    actor       text        NOT NULL,
    action      text COLLATE "C" NOT NULL,
    target      text        NOT NULL DEFAULT '',
    outcome     text COLLATE "C" NOT NULL,
    remote_addr text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    detail      text        NOT NULL DEFAULT '{}',
    prev_hash   text COLLATE "C" NOT NULL,
    hash        text COLLATE "C" NOT NULL
);

-- One org's records in seq order (GET /api/v1/audit).
CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
