-- Error events per received update, per bot. Portable: runs unchanged on the Analytics Engine
-- SQL API and locally (a comparison is 0 or 1 in both dialects; the 1.0 keeps SQLite from
-- dividing integers, which ClickHouse never does).
SELECT blob1 AS bot,
       SUM(_sample_interval * (blob3 = 'error')) AS errors,
       SUM(_sample_interval * (blob3 = 'update')) AS updates,
       1.0 * SUM(_sample_interval * (blob3 = 'error')) / SUM(_sample_interval * (blob3 = 'update')) AS error_rate
FROM telegram_bot_events
GROUP BY bot
ORDER BY bot
