-- Consumer reliability (docs/reliability.md): atomic point claims, one stored attempt per
-- request, the fourth drop reason, duplicate counts, and a cheaper envelope table.

-- The points of an envelope are claimed by one writer at a time: the statement that inserts an
-- envelope claims it, and a later delivery may take the claim over only when the points are not
-- written and the claim is older than two minutes or its own. Same row: no extra row written.
ALTER TABLE processed_envelopes ADD COLUMN points_claimed_by TEXT;
ALTER TABLE processed_envelopes ADD COLUMN points_claimed_at INTEGER;
-- The producer's fourth drop reason (wire format version 2).
ALTER TABLE processed_envelopes ADD COLUMN dropped_cancelled INTEGER NOT NULL DEFAULT 0;
-- Events of this envelope dropped because another attempt of their request was stored first.
ALTER TABLE processed_envelopes ADD COLUMN duplicate_events INTEGER NOT NULL DEFAULT 0;
-- Points of this envelope that reached Analytics Engine twice: written while D1 was down, then
-- found to be duplicates (of another copy of the envelope, or of another attempt).
ALTER TABLE processed_envelopes ADD COLUMN points_written_twice INTEGER NOT NULL DEFAULT 0;
-- The writers whose extra points are counted above ('|w1|w2|'), so a count is never repeated
-- when its transaction's answer was lost. Almost always NULL.
ALTER TABLE processed_envelopes ADD COLUMN points_twice_by TEXT;
-- How many times the envelope waited out a D1 outage as a deferred queue message.
ALTER TABLE processed_envelopes ADD COLUMN deferrals INTEGER NOT NULL DEFAULT 0;

-- No query reads envelopes by time but retention, which walks the primary key instead: the
-- index cost a row written on every insert and every delete.
DROP INDEX IF EXISTS processed_envelopes_by_time;

-- One row per request key (a Telegram update, or another unit of work): the attempt whose events
-- are stored. The first attempt stored wins; events of other attempts are duplicates. No
-- secondary index, no rowid: one row written per request, and one when retention deletes it
-- (after a week, REQUEST_RETENTION_DAYS).
CREATE TABLE IF NOT EXISTS request_attempts (
    request_key TEXT PRIMARY KEY,   -- 16 hex digits, bytes 0-7 of the event ids
    attempt     INTEGER NOT NULL,   -- bytes 8-13 of the event ids (below 2^48)
    received_at INTEGER NOT NULL    -- ms since the epoch, when the consumer first stored it
) WITHOUT ROWID;
