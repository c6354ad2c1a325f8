-- The errors one Telegram user ran into since :since_ms (:bot: one bot's name, or '' for every
-- bot).
SELECT datetime(occurred_at / 1000, 'unixepoch') AS occurred,
       bot,
       fingerprint,
       kind,
       location,
       message
FROM error_events
WHERE user_id = :user_id AND occurred_at >= :since_ms AND (:bot = '' OR bot = :bot)
ORDER BY occurred_at DESC
LIMIT :limit
