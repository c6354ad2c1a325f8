-- The consumer's bookkeeping per day, last 14 days: queue messages stored, events, events the
-- producers dropped (by reason), events dropped as another attempt's duplicates (a Telegram
-- update handled twice), points Analytics Engine got twice during a D1 outage, and how many
-- messages waited out an outage as deferred messages (docs/reliability.md).
SELECT date(received_at / 1000, 'unixepoch') AS day,
       COUNT(*) AS envelopes,
       SUM(event_count) AS events,
       SUM(dropped_send_failed) AS dropped_send_failed,
       SUM(dropped_oversize) AS dropped_oversize,
       SUM(dropped_buffer_full) AS dropped_buffer_full,
       SUM(dropped_cancelled) AS dropped_cancelled,
       SUM(duplicate_events) AS duplicate_events,
       SUM(points_written_twice) AS points_written_twice,
       SUM(deferrals > 0) AS deferred_envelopes,
       SUM(points_written = 0) AS points_pending
FROM processed_envelopes
WHERE received_at >= (strftime('%s', 'now') - 14 * 86400) * 1000
GROUP BY day
ORDER BY day DESC
