-- Local mirror of Analytics Engine (written only when AE_LOCAL_MIRROR is set: local dev and
-- tests). Column names are Analytics Engine's, so the saved AE SQL runs here too.
CREATE TABLE IF NOT EXISTS analytics_points_local (
    dataset          TEXT NOT NULL,
    timestamp        TEXT NOT NULL,   -- 'YYYY-MM-DD HH:MM:SS' UTC, time of the write
    _sample_interval INTEGER NOT NULL DEFAULT 1,
    index1           TEXT NOT NULL,
    blob1 TEXT, blob2 TEXT, blob3 TEXT, blob4 TEXT, blob5 TEXT,
    blob6 TEXT, blob7 TEXT, blob8 TEXT, blob9 TEXT, blob10 TEXT,
    blob11 TEXT, blob12 TEXT, blob13 TEXT, blob14 TEXT, blob15 TEXT,
    blob16 TEXT, blob17 TEXT, blob18 TEXT, blob19 TEXT, blob20 TEXT,
    double1 REAL, double2 REAL, double3 REAL, double4 REAL, double5 REAL,
    double6 REAL, double7 REAL, double8 REAL, double9 REAL, double10 REAL,
    double11 REAL, double12 REAL, double13 REAL, double14 REAL, double15 REAL,
    double16 REAL, double17 REAL, double18 REAL, double19 REAL, double20 REAL
);

CREATE INDEX IF NOT EXISTS analytics_points_local_by_time ON analytics_points_local (timestamp);
CREATE INDEX IF NOT EXISTS analytics_points_local_by_event ON analytics_points_local (blob7);

-- The dataset's name as a view, so saved Analytics Engine SQL (FROM telegram_bot_events) runs
-- unchanged against the local mirror where the SQL dialects agree.
CREATE VIEW IF NOT EXISTS telegram_bot_events AS SELECT * FROM analytics_points_local;
