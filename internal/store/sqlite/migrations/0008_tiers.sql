-- 0008: hot and cold tiers (tier.go; docs/scaling.md "Tiering").
--
-- tier says where a memory is kept: 'hot' memories are searched by default
-- and held by the in-process indexes; 'cold' ones only by a search that
-- includes them. The column is added with its default, so existing rows
-- are hot and the change triggers do not fire (no rows are updated). A
-- move between tiers is an UPDATE, so the change trigger numbers it and
-- every replica's indexes see it on the feed.
--
-- One table with a tier column rather than a memories_cold table: history,
-- the access log, embeddings, links and the graph reference memories by id
-- (and by seq), and a memory keeps its id, history and edges when it moves;
-- a second table would need every reference to follow it.
--
-- memories_hot_updated serves the tiering job, which looks for hot memories
-- not written since a time; it holds hot rows only.

ALTER TABLE memories ADD COLUMN tier TEXT NOT NULL DEFAULT 'hot' CHECK (tier IN ('hot', 'cold'));

CREATE INDEX memories_hot_updated ON memories (updated_at) WHERE tier = 'hot';
