-- 0007: privacy (internal/gdpr; docs/privacy.md).
--
-- gdpr_erasures is the erasure ledger: one row per erasure, written in the
-- erasure's transaction. It names the subject only by subject_hash
-- (gdpr.Subject.Hash: SHA-256 of a domain tag, the org and the subject),
-- never by identifier, so that keeping it for ever keeps no personal data.
-- receipt is the erasure receipt's JSON (counts per source, policy, the
-- pseudonym, the requester); receipt_hash its SHA-256 as the receipt
-- states it. Rows replayed from a backup destination's ledger file after a
-- restore carry an empty receipt. A restore re-applies every row
-- (gdpr.ApplyLedger).
--
-- retention_policies holds one row per org that has set a policy; 0 days
-- keeps that kind of data for ever. The purge (gdpr.Purger) reads them.

CREATE TABLE gdpr_erasures (
    id           TEXT NOT NULL PRIMARY KEY,
    org_id       TEXT NOT NULL,
    subject_hash TEXT NOT NULL CHECK (length(subject_hash) = 64),
    policy       TEXT NOT NULL CHECK (policy IN ('delete', 'pseudonymize')),
    erased_at    TEXT NOT NULL,
    receipt_hash TEXT NOT NULL,
    receipt      TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX gdpr_erasures_org ON gdpr_erasures (org_id, subject_hash);

CREATE TABLE retention_policies (
    org_id                 TEXT    NOT NULL PRIMARY KEY,
    access_log_days        INTEGER NOT NULL DEFAULT 0 CHECK (access_log_days BETWEEN 0 AND 36500),
    archive_untouched_days INTEGER NOT NULL DEFAULT 0 CHECK (archive_untouched_days BETWEEN 0 AND 36500),
    purge_deleted_days     INTEGER NOT NULL DEFAULT 0 CHECK (purge_deleted_days BETWEEN 0 AND 36500),
    updated_at             TEXT    NOT NULL
) STRICT;
