-- Local (SQLite/D1) version of ../handler_latency_by_command.sql: nearest-rank percentiles
-- (local points are never sampled, so no weights are needed).
WITH ranked AS (
  SELECT blob13 AS command, double2 AS ms,
         ROW_NUMBER() OVER (PARTITION BY blob13 ORDER BY double2) AS rn,
         COUNT(*) OVER (PARTITION BY blob13) AS n
  FROM telegram_bot_events
  WHERE blob3 = 'performance' AND blob4 = 'handler' AND blob13 != ''
)
SELECT command,
       MIN(CASE WHEN rn >= 0.50 * n THEN ms END) AS p50_ms,
       MIN(CASE WHEN rn >= 0.95 * n THEN ms END) AS p95_ms,
       MAX(n) AS updates
FROM ranked
GROUP BY command
ORDER BY updates DESC
