-- Daily active users (distinct Telegram users with any event), last 30 days. Analytics Engine
-- samples by index1 = user, so every active user keeps rows. Analytics Engine only
-- (toStartOfDay, INTERVAL); the local equivalent is local/daily_active_users.sql.
SELECT toStartOfDay(timestamp) AS day, count(DISTINCT blob5) AS users
FROM telegram_bot_events
WHERE blob5 != '' AND timestamp > NOW() - INTERVAL '30' DAY
GROUP BY day
ORDER BY day
