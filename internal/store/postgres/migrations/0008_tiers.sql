-- 0008: hot and cold tiers (tier.go; docs/scaling.md "Tiering").
--
-- tier says where a memory is kept: 'hot' memories are searched by default
-- and held by the in-process indexes; 'cold' ones only by a search that
-- includes them. A constant default makes the new column a catalogue
-- change (no table rewrite; the CHECK reads the table once). A move
-- between tiers is an UPDATE, so the change trigger stamps it and every
-- replica's indexes see it on the feed.
--
-- Not a LIST-partitioned table: on a partitioned table every unique
-- constraint must include the partition key, so the primary key would
-- become (org_id, id, tier), the foreign keys of history, access_log,
-- embeddings and edges would have to carry the tier (and cascade every
-- move to them), and the live-duplicate and idempotency indexes could no
-- longer see across tiers (a duplicate of a cold memory would be stored).
-- Converting the table also means copying it whole. A tier column with
-- partial indexes keeps every key and reference as it is.
--
-- memories_hot_updated serves the tiering job, which looks for hot
-- memories not written since a time; it holds hot rows only. It does not
-- lead with org_id: the job runs across orgs, like the change feed.

ALTER TABLE memories ADD COLUMN tier text NOT NULL DEFAULT 'hot' CHECK (tier IN ('hot', 'cold'));

CREATE INDEX memories_hot_updated ON memories (updated_at) WHERE tier = 'hot';
