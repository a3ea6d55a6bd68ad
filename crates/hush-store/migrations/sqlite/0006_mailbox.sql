-- The encrypted mailbox (issue 18). One row per message in mailbox_messages
-- holds the envelope once, whatever the number of recipient devices; one row
-- per recipient device in mailbox_queue says who still has to fetch and
-- acknowledge it. A device's acknowledgement deletes its row; the message
-- row goes with the last one (or at expiry). The connection runs with
-- PRAGMA secure_delete = ON, so deleted envelopes are overwritten, and the
-- mailbox's maintenance task checkpoints the WAL (TRUNCATE) after deletions.
--
-- What is kept is what routing needs: the envelope (ciphertext), the sender
-- user and device (for mailbox.status), recipient user and device, sizes and
-- times. Nothing here outlives the message.
CREATE TABLE mailbox_messages (
    -- AUTOINCREMENT: an id is never handed out twice, so an old
    -- acknowledgement can never delete a newer message.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        TEXT    NOT NULL,
    message_id    BLOB    NOT NULL,
    sender_user   TEXT    NOT NULL,
    sender_device BLOB    NOT NULL,
    envelope      BLOB    NOT NULL,
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    recipients    INTEGER NOT NULL,
    remaining     INTEGER NOT NULL,
    UNIQUE (app_id, sender_user, message_id)
);
CREATE INDEX mailbox_messages_expiry ON mailbox_messages (expires_ms);

CREATE TABLE mailbox_queue (
    app_id       TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    device_id    BLOB    NOT NULL,
    message      INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    delivered_ms INTEGER,
    PRIMARY KEY (app_id, user_id, device_id, message)
) WITHOUT ROWID;
CREATE INDEX mailbox_queue_message ON mailbox_queue (message);

-- Per-device totals, kept in the same transactions as mailbox_queue, so a
-- quota check reads one row.
CREATE TABLE mailbox_devices (
    app_id    TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    device_id BLOB    NOT NULL,
    messages  INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, device_id)
) WITHOUT ROWID;
