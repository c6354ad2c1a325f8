-- Error events per bot and release since :since_ms, with the number of distinct groups (:bot:
-- one bot's name, or '' for every bot).
SELECT bot,
       release,
       COUNT(*) AS events,
       COUNT(DISTINCT fingerprint) AS groups,
       datetime(MIN(occurred_at) / 1000, 'unixepoch') AS first_seen,
       datetime(MAX(occurred_at) / 1000, 'unixepoch') AS last_seen
FROM error_events
WHERE occurred_at >= :since_ms AND (:bot = '' OR bot = :bot)
GROUP BY bot, release
ORDER BY last_seen DESC
LIMIT :limit
