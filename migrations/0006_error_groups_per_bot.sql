-- Several bots on one consumer: an error group belongs to one bot. Fingerprints now include
-- the sending bot (analytics_core::fingerprint::of_error), so two bots' errors at the same type
-- and line are two groups; the group row names its bot, for the dashboard's bot filter and
-- `make errors --bot`. No index: the errors page reads every group (one row per distinct
-- error) and filters in the query; an index would cost a row written per group upsert.
-- Groups stored before this migration keep their fingerprints and get their bot from their
-- latest event.
ALTER TABLE error_groups ADD COLUMN bot TEXT NOT NULL DEFAULT '';

UPDATE error_groups SET bot = coalesce(
    (SELECT e.bot FROM error_events e WHERE e.fingerprint = error_groups.fingerprint
     ORDER BY e.occurred_at DESC LIMIT 1), '');

DROP TRIGGER IF EXISTS error_events_group;
CREATE TRIGGER IF NOT EXISTS error_events_group AFTER INSERT ON error_events
BEGIN
    INSERT INTO error_groups (fingerprint, kind, location, first_seen, last_seen, count,
                              last_message, sample_event_id, release, bot)
    VALUES (NEW.fingerprint, NEW.kind, NEW.location, NEW.occurred_at, NEW.occurred_at, 1,
            NEW.message, NEW.event_id, NEW.release, NEW.bot)
    ON CONFLICT (fingerprint) DO UPDATE SET
        count = count + 1,
        first_seen = min(first_seen, excluded.first_seen),
        last_seen = max(last_seen, excluded.last_seen),
        last_message = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_message ELSE last_message END,
        release = CASE WHEN excluded.last_seen >= last_seen THEN excluded.release ELSE release END;
END;
