-- Error group lifecycle and Telegram alerts (docs/alerts.md).
--
-- A group is 'unresolved' (the default), 'resolved' (in the release it had when resolved),
-- 'muted', or 'regressed': resolved, then seen again in another release. Resolve, mute and
-- unmute come from the dashboard's group page; 'regressed' is set by the trigger below.
ALTER TABLE error_groups ADD COLUMN status TEXT NOT NULL DEFAULT 'unresolved';
ALTER TABLE error_groups ADD COLUMN resolved_in_release TEXT;
ALTER TABLE error_groups ADD COLUMN status_changed_at INTEGER;
-- A pending alert ('new' or 'regressed'), set by the trigger in the same write as the group's
-- upsert (no extra row written), claimed by the consumer after its transaction: it sets it to
-- NULL and copies it to last_alert in one UPDATE … RETURNING, so only one invocation ever
-- gets it (a redelivered batch inserts no event, so the trigger sets nothing again).
-- Groups stored before this migration have none pending.
ALTER TABLE error_groups ADD COLUMN alert TEXT;
ALTER TABLE error_groups ADD COLUMN last_alert TEXT;

DROP TRIGGER IF EXISTS error_events_group;
CREATE TRIGGER IF NOT EXISTS error_events_group AFTER INSERT ON error_events
BEGIN
    INSERT INTO error_groups (fingerprint, kind, location, first_seen, last_seen, count,
                              last_message, sample_event_id, release, bot, alert)
    VALUES (NEW.fingerprint, NEW.kind, NEW.location, NEW.occurred_at, NEW.occurred_at, 1,
            NEW.message, NEW.event_id, NEW.release, NEW.bot, 'new')
    ON CONFLICT (fingerprint) DO UPDATE SET
        count = count + 1,
        first_seen = min(first_seen, excluded.first_seen),
        last_seen = max(last_seen, excluded.last_seen),
        last_message = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_message ELSE last_message END,
        release = CASE WHEN excluded.last_seen >= last_seen THEN excluded.release ELSE release END,
        -- Every right-hand side reads the row as it was: these three see the old status.
        status = CASE WHEN status = 'resolved' AND excluded.release <> coalesce(resolved_in_release, '')
                      THEN 'regressed' ELSE status END,
        status_changed_at = CASE WHEN status = 'resolved' AND excluded.release <> coalesce(resolved_in_release, '')
                      THEN excluded.last_seen ELSE status_changed_at END,
        alert = CASE WHEN status = 'resolved' AND excluded.release <> coalesce(resolved_in_release, '')
                      THEN 'regressed' ELSE alert END;
END;

-- One row per alert condition (a group, the spike, a pipeline condition, a bot's webhook):
-- when its last message was claimed. A claim is an upsert that succeeds only when the last one
-- is an hour old (ingest_policy::alerts::throttle_statement), so two invocations (a
-- redelivered batch, a cron that runs twice) cannot both send it.
CREATE TABLE IF NOT EXISTS alert_state (
    key          TEXT PRIMARY KEY,
    last_sent_at INTEGER NOT NULL
) WITHOUT ROWID;

-- What getWebhookInfo last answered for each bot the consumer knows a token of (the cron, every
-- 5 minutes). No URL, no token: only counts, times and Telegram's error text (scrubbed).
CREATE TABLE IF NOT EXISTS webhook_health (
    bot                   TEXT PRIMARY KEY,
    checked_at            INTEGER NOT NULL,
    ok                    INTEGER NOT NULL,    -- 1 when getWebhookInfo answered
    pending_update_count  INTEGER,
    last_error_date       INTEGER,             -- ms since the epoch
    last_error_message    TEXT,
    max_connections       INTEGER,
    problem               TEXT                 -- why the call failed, when ok = 0
) WITHOUT ROWID;
