-- The webhook outbox: one row per (event, webhook endpoint), delivered in id order.
CREATE TABLE webhook_outbox (
    id              BIGSERIAL PRIMARY KEY,
    app_id          TEXT   NOT NULL,
    endpoint        TEXT   NOT NULL,
    event           TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    last_error      TEXT
);
CREATE INDEX webhook_outbox_queue ON webhook_outbox (app_id, endpoint, id);

-- Events whose retry budget ran out; kept until retried or purged.
CREATE TABLE webhook_dead_letters (
    id          BIGINT PRIMARY KEY,
    app_id      TEXT   NOT NULL,
    endpoint    TEXT   NOT NULL,
    event       TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    failed_ms   BIGINT NOT NULL,
    last_error  TEXT
);
CREATE INDEX webhook_dead_letters_app ON webhook_dead_letters (app_id, id);
