-- Error log, grouped like Sentry issues, and the bookkeeping that makes redelivery harmless.

-- One row per error event. The event id (UUIDv7) is the primary key: the consumer inserts with
-- INSERT OR IGNORE, so a redelivered message cannot add a row.
CREATE TABLE IF NOT EXISTS error_events (
    event_id    TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,   -- ms since the epoch, after clock-skew correction
    received_at INTEGER NOT NULL,   -- ms since the epoch, consumer clock
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    location    TEXT,
    user_id     INTEGER,
    chat_id     INTEGER,
    bot         TEXT NOT NULL,
    release     TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS error_events_by_group ON error_events (fingerprint, occurred_at);
CREATE INDEX IF NOT EXISTS error_events_by_time ON error_events (occurred_at);
CREATE INDEX IF NOT EXISTS error_events_by_user ON error_events (user_id, occurred_at);
CREATE INDEX IF NOT EXISTS error_events_by_release ON error_events (release, occurred_at);

-- One row per fingerprint. Maintained only by the trigger below, which fires on real inserts
-- (an ignored INSERT OR IGNORE fires nothing), so counts cannot double. Retention deletes events
-- but keeps the groups and their counts.
CREATE TABLE IF NOT EXISTS error_groups (
    fingerprint     TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    location        TEXT,
    first_seen      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    last_message    TEXT NOT NULL,
    sample_event_id TEXT NOT NULL,
    release         TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS error_groups_by_last_seen ON error_groups (last_seen);

CREATE TRIGGER IF NOT EXISTS error_events_group AFTER INSERT ON error_events
BEGIN
    INSERT INTO error_groups (fingerprint, kind, location, first_seen, last_seen, count,
                              last_message, sample_event_id, release)
    VALUES (NEW.fingerprint, NEW.kind, NEW.location, NEW.occurred_at, NEW.occurred_at, 1,
            NEW.message, NEW.event_id, NEW.release)
    ON CONFLICT (fingerprint) DO UPDATE SET
        count = count + 1,
        first_seen = min(first_seen, excluded.first_seen),
        last_seen = max(last_seen, excluded.last_seen),
        last_message = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_message ELSE last_message END,
        release = CASE WHEN excluded.last_seen >= last_seen THEN excluded.release ELSE release END;
END;

-- One row per envelope (queue message content) ever stored. Its key is the envelope's first
-- event id. Analytics Engine points are written only for envelopes whose points_written is 0,
-- then it is set to 1: neither a redelivery nor a duplicate send counts twice, and a delivery
-- that crashed between the commit and the points gets them on its redelivery. Also where the
-- producers' drop counts become visible.
CREATE TABLE IF NOT EXISTS processed_envelopes (
    key                 TEXT PRIMARY KEY,
    queue_message_id    TEXT NOT NULL,
    bot                 TEXT NOT NULL,
    event_count         INTEGER NOT NULL,
    dropped_send_failed INTEGER NOT NULL,
    dropped_oversize    INTEGER NOT NULL,
    dropped_buffer_full INTEGER NOT NULL,
    received_at         INTEGER NOT NULL,
    points_written      INTEGER NOT NULL DEFAULT 0  -- set once its AE points were written
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS processed_envelopes_by_time ON processed_envelopes (received_at);

-- Messages that could not be decoded (or arrived on the dead letter queue and could not be
-- stored): kept with their payload, acknowledged, never lost.
CREATE TABLE IF NOT EXISTS rejected_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    payload     BLOB,
    received_at INTEGER NOT NULL,
    UNIQUE (queue, message_id)
);
