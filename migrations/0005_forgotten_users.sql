-- `forget` (queries/d1/forget_user.sql) leaves a tombstone of the stored id it erased, and the
-- consumer inserts no error row of that id afterwards: a record of the user still in flight
-- (a deferred message waiting out an outage, a dead-lettered message) cannot bring the erased
-- rows back. Retention deletes tombstones after FORGOTTEN_RETENTION_DAYS (14: longer than a
-- record can stay in flight: 4 days on a queue, 4 on its dead letter queue, about 41 hours of
-- deferrals). No secondary index: the consumer reads it by primary key (rows read, not written),
-- retention scans the few rows it has.
CREATE TABLE IF NOT EXISTS forgotten_users (
    user_id      INTEGER PRIMARY KEY,   -- the stored id forget erased (a pseudonym)
    forgotten_at INTEGER NOT NULL       -- ms since the epoch, when it was erased
) WITHOUT ROWID;
