-- The most recent events of one error group.
SELECT bot,
       event_id,
       datetime(occurred_at / 1000, 'unixepoch') AS occurred,
       user_id,
       chat_id,
       release,
       message
FROM error_events
WHERE fingerprint = ':fingerprint'
ORDER BY occurred_at DESC
LIMIT :limit
