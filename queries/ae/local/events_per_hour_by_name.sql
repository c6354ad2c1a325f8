-- Local (SQLite/D1) version of ../events_per_hour_by_name.sql.
SELECT substr(timestamp, 1, 13) || ':00:00' AS hour, blob3 AS kind, blob4 AS name,
       SUM(_sample_interval) AS events
FROM telegram_bot_events
WHERE timestamp > datetime('now', '-1 day')
GROUP BY hour, kind, name
ORDER BY hour, events DESC
