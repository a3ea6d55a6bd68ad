-- The encrypted mailbox (issue 18): see migrations/sqlite/0006_mailbox.sql.
-- On PostgreSQL, deleted rows stay in the table's pages until VACUUM (and in
-- the write-ahead log until it is recycled): see docs/OPERATIONS.md.
CREATE TABLE mailbox_messages (
    -- A sequence: an id is never handed out twice, so an old
    -- acknowledgement can never delete a newer message.
    id            BIGSERIAL PRIMARY KEY,
    app_id        TEXT   NOT NULL,
    message_id    BYTEA  NOT NULL,
    sender_user   TEXT   NOT NULL,
    sender_device BYTEA  NOT NULL,
    envelope      BYTEA  NOT NULL,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    recipients    BIGINT NOT NULL,
    remaining     BIGINT NOT NULL,
    UNIQUE (app_id, sender_user, message_id)
);
CREATE INDEX mailbox_messages_expiry ON mailbox_messages (expires_ms);

CREATE TABLE mailbox_queue (
    app_id       TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    device_id    BYTEA  NOT NULL,
    message      BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    delivered_ms BIGINT,
    PRIMARY KEY (app_id, user_id, device_id, message)
);
CREATE INDEX mailbox_queue_message ON mailbox_queue (message);

CREATE TABLE mailbox_devices (
    app_id    TEXT   NOT NULL,
    user_id   TEXT   NOT NULL,
    device_id BYTEA  NOT NULL,
    messages  BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    PRIMARY KEY (app_id, user_id, device_id)
);
