-- 0002: the change feed (changes.go). Every write to a memory stamps the row
-- with the next number of a sequence (change_seq) and the id of the writing
-- transaction (change_xid), in a trigger, so that no write path — Create,
-- CreateBatch, Update, COPY, a fix by hand in psql — can forget it.
--
-- Existing rows get numbers in table order and this migration's
-- transaction id; the volatile defaults fill them as the table is rewritten
-- and are dropped again: afterwards only the trigger sets the columns.
--
-- The sequence must not cache values per session (CACHE 1, the default):
-- numbers are then handed out in the order the writes happen.
--
-- The two indexes do not lead with org_id, unlike every other: the feed is
-- read across all orgs, in change_seq order. (Sharded by org, the feed would
-- need a sequence and a snapshot per shard anyway.)

CREATE SEQUENCE memories_change_seq_seq AS bigint CACHE 1;

ALTER TABLE memories
    ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('memories_change_seq_seq'),
    ADD COLUMN change_xid xid8   NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE memories
    ALTER COLUMN change_seq DROP DEFAULT,
    ALTER COLUMN change_xid DROP DEFAULT;
ALTER SEQUENCE memories_change_seq_seq OWNED BY memories.change_seq;

-- New changes: change_seq > cursor. Changes of transactions that were still
-- open at the previous read: change_xid >= horizon.
CREATE INDEX memories_change_seq ON memories (change_seq);
CREATE INDEX memories_change_xid ON memories (change_xid);

-- pg_current_xact_id() is the top-level transaction's id, also inside a
-- savepoint: the id a snapshot lists while the transaction is open.
CREATE FUNCTION memories_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    NEW.change_seq := nextval('memories_change_seq_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER memories_stamp_change BEFORE INSERT OR UPDATE ON memories
    FOR EACH ROW EXECUTE FUNCTION memories_stamp_change();
