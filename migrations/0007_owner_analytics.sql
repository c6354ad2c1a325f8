-- Owner analytics (docs/owner-analytics.md): who the users are, whether they come back, who
-- blocked the bot, who pays. Every row is keyed by a pseudonym (docs/privacy.md), never a raw
-- id; `forget` deletes a user's rows from every table here.

-- One row per user per bot. The consumer upserts it once per distinct user per batch; every
-- column is merged so that a redelivered or reordered batch leaves the same row (min, max, or
-- "the value of the latest event"), so no claim is needed.
CREATE TABLE IF NOT EXISTS bot_users (
    bot         TEXT NOT NULL,
    user_id     INTEGER NOT NULL,   -- pseudonym
    first_seen  INTEGER NOT NULL,   -- ms since the epoch
    last_seen   INTEGER NOT NULL,   -- ms since the epoch
    source      TEXT,               -- first-touch deep-link source (of the first /start with one)
    source_at   INTEGER,            -- when that /start happened
    lang        TEXT,               -- two lowercase letters, from the latest event that had one
    premium     INTEGER,            -- 1 or 0, from the latest event that said
    seen_at     INTEGER,            -- when lang/premium were last taken
    status      TEXT NOT NULL DEFAULT 'active',   -- active or blocked
    status_at   INTEGER,            -- when status last changed (NULL: never blocked)
    PRIMARY KEY (bot, user_id)
) WITHOUT ROWID;

-- New users per day and cohorts read this; first_seen rarely changes, so the index costs a
-- write only for a new user.
CREATE INDEX IF NOT EXISTS bot_users_by_first_seen ON bot_users (bot, first_seen);

-- One row per user per day they were active (sent the bot an update other than a membership
-- change). INSERT OR IGNORE: a write only the first time a day. Daily active users and the
-- retention cohorts read it; retention keeps USER_DAYS_RETENTION_DAYS (100: weeks 0-12).
CREATE TABLE IF NOT EXISTS user_days (
    bot     TEXT NOT NULL,
    day     INTEGER NOT NULL,       -- days since the epoch (UTC)
    user_id INTEGER NOT NULL,       -- pseudonym
    PRIMARY KEY (bot, day, user_id)
) WITHOUT ROWID;

-- Rare events kept exactly (Analytics Engine samples): blocks, unblocks, payments, refunds.
-- Keyed by event id, INSERT OR IGNORE: a redelivery adds nothing.
CREATE TABLE IF NOT EXISTS user_events (
    event_id    TEXT PRIMARY KEY,
    bot         TEXT NOT NULL,
    user_id     INTEGER NOT NULL,   -- pseudonym
    occurred_at INTEGER NOT NULL,   -- ms since the epoch
    name        TEXT NOT NULL,      -- user_blocked, user_unblocked, payment, refund
    currency    TEXT,               -- payments and refunds
    amount      REAL                -- in the currency's smallest units, as Telegram sends it
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS user_events_by_time ON user_events (bot, occurred_at);

-- One row per bot and day, kept two years (ROLLUP_RETENTION_DAYS): written by the consumer's
-- cron from the tables above, error_events and processed_envelopes, with INSERT OR REPLACE, so
-- a second run of the same day writes the same row.
CREATE TABLE IF NOT EXISTS daily_rollup (
    bot            TEXT NOT NULL,
    day            INTEGER NOT NULL,   -- days since the epoch (UTC)
    new_users      INTEGER NOT NULL,
    active_users   INTEGER NOT NULL,
    blocked        INTEGER NOT NULL,
    unblocked      INTEGER NOT NULL,
    payers         INTEGER NOT NULL,
    revenue        TEXT NOT NULL,      -- JSON object: currency -> amount (smallest units)
    events         INTEGER NOT NULL,
    events_by_kind TEXT NOT NULL,      -- JSON object: kind -> count
    errors         INTEGER NOT NULL,
    computed_at    INTEGER NOT NULL,   -- ms since the epoch
    PRIMARY KEY (bot, day)
) WITHOUT ROWID;

-- Events per kind of each envelope (JSON object kind -> count), for the rollup; written once
-- with the envelope's row.
ALTER TABLE processed_envelopes ADD COLUMN kind_counts TEXT;
