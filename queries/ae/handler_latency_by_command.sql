-- p50/p95 handler latency (ms) per command. Analytics Engine only (weighted quantiles); the
-- local equivalent is local/handler_latency_by_command.sql.
SELECT blob13 AS command,
       quantileExactWeighted(0.5)(double2, _sample_interval) AS p50_ms,
       quantileExactWeighted(0.95)(double2, _sample_interval) AS p95_ms,
       SUM(_sample_interval) AS updates
FROM telegram_bot_events
WHERE blob3 = 'performance' AND blob4 = 'handler' AND blob13 != ''
GROUP BY command
ORDER BY updates DESC
