-- The occupancy journal: channels (user_id = '') and presence members whose
-- channel_occupied / member_added went to the webhook outbox and whose
-- channel_vacated / member_removed did not yet. Written in the same
-- transaction as the outbox rows.
CREATE TABLE webhook_occupancy (
    app_id  TEXT NOT NULL,
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (app_id, channel, user_id)
);
