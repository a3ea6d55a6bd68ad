-- The key directory: one append-only transparency log per app. Each row is
-- one leaf (tag byte || signed card or revocation), at its log index.
CREATE TABLE directory_log (
    app_id     TEXT    NOT NULL,
    idx        INTEGER NOT NULL,
    leaf       BLOB    NOT NULL,
    user_id    TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, idx)
);
CREATE INDEX directory_log_user ON directory_log (app_id, user_id, idx);

-- Keys the server itself signs with (the transparency log's tree-head key).
-- None of them opens user content.
CREATE TABLE server_keys (
    name       TEXT    PRIMARY KEY,
    secret     BLOB    NOT NULL,
    created_ms INTEGER NOT NULL
);
