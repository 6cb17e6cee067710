-- 0004: the audit log (audit.go; internal/audit says what a record is and
-- how its hash is computed).
--
-- One hash chain over every org: seq runs 1, 2, 3, … without gaps (rowid),
-- each row's prev_hash is the hash of the row before it. An append reads the
-- last row and inserts the next in one IMMEDIATE transaction; SQLite runs
-- one write transaction at a time for every process on the file, so the
-- chain stays linear.
--
-- detail is the canonical JSON text exactly as it was hashed. Times are UTC
-- text in the fixed-width form of the other tables, whole microseconds.
--
-- Append-only: the triggers below abort any UPDATE or DELETE. They guard
-- against the application and against mistakes, not against someone who
-- can write the file (who can drop the triggers first); what such a person
-- changes, Verify (`codingbrain audit verify`) finds as a broken link. There
-- is no pruning: the audit log is kept as long as the database.

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    org_id      TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL,
    remote_addr TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
) STRICT;

-- One org's records in seq order (GET /api/v1/audit).
CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
