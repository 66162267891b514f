-- 0001_chat_history.sql: channel history of the chat-history service.
--
-- hist_channels holds one counter row per channel: a publishing transaction
-- claims the next offsets of its channels by raising last_offset (which locks
-- the rows, in name order, until COMMIT), so offsets stay unique and dense
-- across replicas and a rolled-back transaction leaves no gap.
CREATE TABLE hist_channels (
    channel text PRIMARY KEY,
    last_offset bigint NOT NULL DEFAULT 0
);

-- One row per retained message; the newest RT_HISTORY_RETAIN per channel are kept.
CREATE TABLE hist_messages (
    channel text NOT NULL,
    msg_offset bigint NOT NULL,
    event text NOT NULL,
    data bytea NOT NULL,
    from_user text NOT NULL,
    msg_id text NOT NULL DEFAULT '',
    ts_ms bigint NOT NULL,
    from_conn text NOT NULL DEFAULT '',
    origin_edge text NOT NULL DEFAULT '',
    PRIMARY KEY (channel, msg_offset)
);

-- Idempotency: a (user, channel, id) is stored once; a resend gets the first
-- offset back for as long as that message is retained.
CREATE UNIQUE INDEX hist_messages_idempotency ON hist_messages (channel, from_user, msg_id) WHERE msg_id <> '';
