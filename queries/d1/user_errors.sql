-- The errors one Telegram user ran into since :since_ms.
SELECT datetime(occurred_at / 1000, 'unixepoch') AS occurred,
       fingerprint,
       kind,
       location,
       message
FROM error_events
WHERE user_id = :user_id AND occurred_at >= :since_ms
ORDER BY occurred_at DESC
LIMIT :limit
