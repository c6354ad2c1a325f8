-- Local (SQLite/D1) version of ../daily_active_users.sql.
SELECT substr(timestamp, 1, 10) AS day, count(DISTINCT blob5) AS users
FROM telegram_bot_events
WHERE blob5 != '' AND timestamp > datetime('now', '-30 days')
GROUP BY day
ORDER BY day
