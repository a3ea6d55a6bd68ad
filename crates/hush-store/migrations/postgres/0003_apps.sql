-- Apps managed with `hush apps` (next to those of hush.toml / HUSH_*): one row
-- per app, its settings as the server's JSON form of an [apps.X] table
-- (secret included: protect the database like the configuration).
CREATE TABLE apps (
    id         TEXT   PRIMARY KEY,
    key        TEXT   NOT NULL UNIQUE,
    settings   TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);
