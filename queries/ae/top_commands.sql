-- Top commands. Portable: runs unchanged on the Analytics Engine SQL API and locally.
SELECT blob4 AS command, SUM(_sample_interval) AS uses
FROM telegram_bot_events
WHERE blob3 = 'command'
GROUP BY command
ORDER BY uses DESC
LIMIT 20
