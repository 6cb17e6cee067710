-- 0002: the change feed (changes.go). Every write to a memory gives it the
-- next number of a one-row counter (change_seq), in triggers, so that no
-- write path can forget it. SQLite runs one write transaction at a time, for
-- all processes on the file, and the number is taken inside it: numbers are
-- handed out in commit order, and a reader that has seen number n has seen
-- every commit below it.
--
-- A counter rather than max(change_seq) + 1: it never hands out a number
-- twice, also when the row holding the highest number is deleted (a purge,
-- a restore, a fix by hand) — max + 1 would give that number to the next
-- write, and a follower already past it would skip the write. It costs one
-- small row write per change instead of an index lookup.
--
-- Existing memories are numbered in rowid (insertion) order.

CREATE TABLE change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
) STRICT;

ALTER TABLE memories ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE memories SET change_seq = seq;
INSERT INTO change_counter (id, seq) SELECT 1, coalesce(max(change_seq), 0) FROM memories;

CREATE INDEX memories_change_seq ON memories (change_seq);

-- SQLite triggers cannot assign to NEW, so the row is numbered right after
-- it is written, in the same statement. The update trigger skips its own
-- update and any statement that sets change_seq itself (WHEN), so it never
-- recurses; writers never set change_seq.
CREATE TRIGGER memories_change_insert AFTER INSERT ON memories BEGIN
    UPDATE change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE memories SET change_seq = (SELECT seq FROM change_counter WHERE id = 1) WHERE seq = new.seq;
END;

CREATE TRIGGER memories_change_update AFTER UPDATE ON memories
WHEN new.change_seq IS old.change_seq BEGIN
    UPDATE change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE memories SET change_seq = (SELECT seq FROM change_counter WHERE id = 1) WHERE seq = new.seq;
END;
