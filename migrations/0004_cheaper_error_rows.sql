-- Cheaper error rows (docs/economy.md): every index on a written column costs a D1 row written.
-- An error event cost 7 rows written (its row, 4 indexes, the group upsert and its index); these
-- two indexes served no saved query or dashboard page that needs them, so it costs 5:
-- - error_events_by_user: only `make errors ARGS="user <id>"` and `forget` look errors up by
--   user, rarely; they read the table instead (rows read cost a thousandth of rows written).
-- - error_groups_by_last_seen: one row per distinct error; the errors page sorts them in memory.
-- Kept: error_events_by_group (group pages), error_events_by_time (time windows, retention),
-- error_events_by_release (the dashboard's release filter and list).
DROP INDEX IF EXISTS error_events_by_user;
DROP INDEX IF EXISTS error_groups_by_last_seen;
