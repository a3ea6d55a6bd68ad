-- Key directory v2 (issue 13): the storage of akd (Meta's auditable key
-- directory), one directory per app, written through hush_store::AkdDb.

-- akd's Azks and tree-node records under akd's full binary id (its first
-- byte is the record type, also in `kind`), in hush's compact encoding.
CREATE TABLE akd_records (
    app_id TEXT    NOT NULL,
    kind   INTEGER NOT NULL,
    id     BLOB    NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (app_id, kind, id)
) WITHOUT ROWID;

-- akd's value states: one row per (akd label, epoch), as in akd's reference
-- database. Every retrieval flag is one primary-key range lookup per label
-- (a label has few states, so SpecificVersion scans only that label's).
CREATE TABLE akd_value_states (
    app_id         TEXT    NOT NULL,
    label          BLOB    NOT NULL,
    epoch          INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    node_label_len INTEGER NOT NULL,
    node_label_val BLOB    NOT NULL,
    value          BLOB    NOT NULL,
    PRIMARY KEY (app_id, label, epoch)
) WITHOUT ROWID;

-- The published epochs: root hash, publication time and the directory's log
-- size at that epoch. Rows are never updated.
CREATE TABLE akd_epoch_heads (
    app_id       TEXT    NOT NULL,
    epoch        INTEGER NOT NULL,
    root_hash    BLOB    NOT NULL CHECK (length(root_hash) = 32),
    published_ms INTEGER NOT NULL,
    log_size     INTEGER NOT NULL,
    PRIMARY KEY (app_id, epoch)
) WITHOUT ROWID;
