-- Key directory v2 (issue 13): the storage of akd (Meta's auditable key
-- directory), one directory per app, written through hush_store::AkdDb.

-- akd's Azks and tree-node records under akd's full binary id (its first
-- byte is the record type, also in `kind`), in hush's compact encoding.
CREATE TABLE akd_records (
    app_id TEXT   NOT NULL,
    kind   BIGINT NOT NULL,
    id     BYTEA  NOT NULL,
    data   BYTEA  NOT NULL,
    PRIMARY KEY (app_id, kind, id)
);

-- akd's value states: one row per (akd label, epoch).
CREATE TABLE akd_value_states (
    app_id         TEXT   NOT NULL,
    label          BYTEA  NOT NULL,
    epoch          BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    node_label_len BIGINT NOT NULL,
    node_label_val BYTEA  NOT NULL,
    value          BYTEA  NOT NULL,
    PRIMARY KEY (app_id, label, epoch)
);

-- The published epochs: root hash, publication time and the directory's log
-- size at that epoch. Rows are never updated.
CREATE TABLE akd_epoch_heads (
    app_id       TEXT   NOT NULL,
    epoch        BIGINT NOT NULL,
    root_hash    BYTEA  NOT NULL CHECK (length(root_hash) = 32),
    published_ms BIGINT NOT NULL,
    log_size     BIGINT NOT NULL,
    PRIMARY KEY (app_id, epoch)
);
