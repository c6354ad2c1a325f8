-- Erases one Telegram user from every D1 table that holds user ids (`make errors ARGS="forget
-- <raw id>"` fills :user_id with the stored id: the user's pseudonym, unless raw ids are kept).
-- Group counts stay equal to the events counted in them; a group's sample event, last message
-- and release move to the latest event of someone else (blanked when none is left); groups left
-- with no events go. first_seen and last_seen are times without identity: last_seen moves to
-- the latest remaining event when there is one, first_seen stays.
-- 0. A tombstone: the consumer stores no error or owner analytics row of this id from now
--    on, so a record of the user still in flight (deferred during an outage) cannot bring the
--    rows back. Retention deletes it after 14 days.
INSERT INTO forgotten_users (user_id, forgotten_at)
VALUES (:user_id, CAST(strftime('%s', 'now') AS INTEGER) * 1000)
ON CONFLICT (user_id) DO UPDATE SET forgotten_at = excluded.forgotten_at;
-- 1. Groups lose the user's events from their counts.
UPDATE error_groups
SET count = count - (SELECT count(*) FROM error_events e
                     WHERE e.fingerprint = error_groups.fingerprint
                       AND (e.user_id = :user_id OR e.chat_id = :user_id))
WHERE fingerprint IN (SELECT fingerprint FROM error_events
                      WHERE user_id = :user_id OR chat_id = :user_id);
-- 2. Samples, last messages and releases move away from the user.
UPDATE error_groups
SET sample_event_id = COALESCE((SELECT e.event_id FROM error_events e
                                WHERE e.fingerprint = error_groups.fingerprint
                                  AND ifnull(e.user_id, 0) != :user_id AND ifnull(e.chat_id, 0) != :user_id
                                ORDER BY e.occurred_at DESC LIMIT 1), ''),
    last_message = COALESCE((SELECT e.message FROM error_events e
                             WHERE e.fingerprint = error_groups.fingerprint
                               AND ifnull(e.user_id, 0) != :user_id AND ifnull(e.chat_id, 0) != :user_id
                             ORDER BY e.occurred_at DESC LIMIT 1), ''),
    release = COALESCE((SELECT e.release FROM error_events e
                        WHERE e.fingerprint = error_groups.fingerprint
                          AND ifnull(e.user_id, 0) != :user_id AND ifnull(e.chat_id, 0) != :user_id
                        ORDER BY e.occurred_at DESC LIMIT 1), release),
    last_seen = COALESCE((SELECT max(e.occurred_at) FROM error_events e
                          WHERE e.fingerprint = error_groups.fingerprint
                            AND ifnull(e.user_id, 0) != :user_id AND ifnull(e.chat_id, 0) != :user_id), last_seen)
WHERE fingerprint IN (SELECT fingerprint FROM error_events
                      WHERE user_id = :user_id OR chat_id = :user_id);
-- 3. The user's error events go.
DELETE FROM error_events WHERE user_id = :user_id OR chat_id = :user_id;
-- 4. Groups with nothing left go.
DELETE FROM error_groups WHERE count <= 0;
-- 5. The local Analytics Engine mirror (local dev only; real Analytics Engine cannot delete).
DELETE FROM analytics_points_local
WHERE index1 = ':user_id' OR double4 = :user_id OR double5 = :user_id;
-- 6. Owner analytics (docs/owner-analytics.md): the user's row per bot, active days, blocks
--    and payments. The tombstone keeps the consumer from inserting them again. The daily
--    rollup holds only counts per bot and day, no user.
DELETE FROM bot_users WHERE user_id = :user_id;
DELETE FROM user_days WHERE user_id = :user_id;
DELETE FROM user_events WHERE user_id = :user_id;
-- What is left of the user: 0 rows when the erasure is complete.
SELECT (SELECT count(*) FROM error_events WHERE user_id = :user_id OR chat_id = :user_id) AS error_events_left,
       (SELECT count(*) FROM analytics_points_local
        WHERE index1 = ':user_id' OR double4 = :user_id OR double5 = :user_id) AS local_points_left,
       (SELECT count(*) FROM bot_users WHERE user_id = :user_id) AS bot_users_left,
       (SELECT count(*) FROM user_days WHERE user_id = :user_id) AS user_days_left,
       (SELECT count(*) FROM user_events WHERE user_id = :user_id) AS user_events_left
