-- The key directory: one append-only transparency log per app. Each row is
-- one leaf (tag byte || signed card or revocation), at its log index.
CREATE TABLE directory_log (
    app_id     TEXT   NOT NULL,
    idx        BIGINT NOT NULL,
    leaf       BYTEA  NOT NULL,
    user_id    TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, idx)
);
CREATE INDEX directory_log_user ON directory_log (app_id, user_id, idx);

-- Keys the server itself signs with (the transparency log's tree-head key).
-- None of them opens user content. One row per key for the whole cluster:
-- the first node inserts it, the others read it back.
CREATE TABLE server_keys (
    name       TEXT   PRIMARY KEY,
    secret     BYTEA  NOT NULL,
    created_ms BIGINT NOT NULL
);
