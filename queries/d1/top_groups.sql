-- Top error groups seen since :since_ms (ms since the epoch), most frequent first.
-- Counts are over the events in the window; total is the group's all-time count. :bot is one
-- bot's name, or '' for every bot (`make errors ARGS="--bot NAME top"`).
SELECT g.fingerprint,
       g.bot,
       g.kind,
       g.location,
       COUNT(*) AS events,
       g.count AS total,
       datetime(MAX(e.occurred_at) / 1000, 'unixepoch') AS last_seen,
       g.last_message
FROM error_events e
JOIN error_groups g ON g.fingerprint = e.fingerprint
WHERE e.occurred_at >= :since_ms AND (:bot = '' OR e.bot = :bot)
GROUP BY g.fingerprint
ORDER BY events DESC, last_seen DESC
LIMIT :limit
