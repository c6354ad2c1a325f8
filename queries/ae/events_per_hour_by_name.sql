-- Events per hour by kind and name, last 24 hours. Analytics Engine only (toStartOfHour,
-- INTERVAL); the local equivalent is local/events_per_hour_by_name.sql.
SELECT toStartOfHour(timestamp) AS hour, blob3 AS kind, blob4 AS name,
       SUM(_sample_interval) AS events
FROM telegram_bot_events
WHERE timestamp > NOW() - INTERVAL '1' DAY
GROUP BY hour, kind, name
ORDER BY hour, events DESC
