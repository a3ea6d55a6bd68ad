//! The SQLite statements behind [`super::AkdDb`].

use akd::errors::StorageError;
use akd::storage::Storable;
use akd::storage::types::{DbRecord, StorageType, ValueState, ValueStateRetrievalFlag};
use akd::tree_node::TreeNodeWithPreviousValue;
use akd::{AkdLabel, AkdValue, NodeLabel};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::codec;
use super::heads::{self, EpochHead};

/// Rows per multi-row INSERT (7 parameters a value state: 14,000 bound
/// parameters, under SQLite's 32,766).
const WRITE_CHUNK: usize = 2000;
/// Keys per `IN (…)` read (2 parameters a value-state key).
const READ_CHUNK: usize = 4000;

const STATE_COLUMNS: &str =
    "s.label, s.epoch, s.version, s.node_label_len, s.node_label_val, s.value";

fn sql_err(e: sqlx::Error) -> StorageError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StorageError::Connection(e.to_string())
        }
        e => StorageError::Other(format!("sqlite: {e}")),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("corrupt akd row: {what}"))
}

/// akd's u64 epochs and versions are SQLite integers (i64); larger values
/// cannot be stored.
fn to_sql(what: &str, v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::Other(format!("{what} {v} exceeds i64::MAX")))
}

fn from_sql(what: &str, v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| corrupt(format_args!("{what} = {v}")))
}

/// Writes `records` (and `head`) in one transaction; later records replace
/// earlier ones with the same key, as in akd's in-memory database.
pub(super) async fn batch_set(
    pool: &SqlitePool,
    app: &str,
    records: &[DbRecord],
    head: Option<&EpochHead>,
) -> Result<(), StorageError> {
    let mut states = Vec::new();
    let mut others = Vec::new();
    for r in records {
        match r {
            DbRecord::ValueState(s) => {
                states.push((s, to_sql("epoch", s.epoch)?, to_sql("version", s.version)?))
            }
            DbRecord::Azks(a) => {
                others.push((
                    StorageType::Azks,
                    r.get_full_binary_id(),
                    codec::encode_azks(a),
                ));
            }
            DbRecord::TreeNode(n) => {
                others.push((
                    StorageType::TreeNode,
                    r.get_full_binary_id(),
                    codec::encode_node(n),
                ));
            }
        }
    }
    // IMMEDIATE: take the write lock first, so a concurrent writer waits
    // (busy timeout) instead of failing on a read-to-write upgrade.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql_err)?;
    for chunk in states.chunks(WRITE_CHUNK) {
        QueryBuilder::<Sqlite>::new(
            "INSERT OR REPLACE INTO akd_value_states \
             (app_id, label, epoch, version, node_label_len, node_label_val, value) ",
        )
        .push_values(chunk, |mut b, (s, epoch, version)| {
            b.push_bind(app)
                .push_bind(&s.username.0[..])
                .push_bind(*epoch)
                .push_bind(*version)
                .push_bind(i64::from(s.label.label_len))
                .push_bind(&s.label.label_val[..])
                .push_bind(&s.value.0[..]);
        })
        .build()
        .execute(&mut *tx)
        .await
        .map_err(sql_err)?;
    }
    for chunk in others.chunks(WRITE_CHUNK) {
        QueryBuilder::<Sqlite>::new("INSERT OR REPLACE INTO akd_records (app_id, kind, id, data) ")
            .push_values(chunk, |mut b, (kind, id, data)| {
                b.push_bind(app)
                    .push_bind(*kind as i64)
                    .push_bind(&id[..])
                    .push_bind(&data[..]);
            })
            .build()
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
    }
    if let Some(head) = head {
        heads::insert(&mut tx, app, head)
            .await
            .map_err(|e| StorageError::Transaction(e.to_string()))?;
    }
    tx.commit().await.map_err(sql_err)
}

/// The record of type `kind` with full binary id `bin`.
pub(super) async fn get(
    pool: &SqlitePool,
    app: &str,
    kind: StorageType,
    bin: &[u8],
) -> Result<Option<DbRecord>, StorageError> {
    Ok(
        batch_get(pool, app, kind, std::slice::from_ref(&bin.to_vec()))
            .await?
            .pop(),
    )
}

/// The records of type `kind` with these full binary ids (missing ones are
/// left out, in no particular order).
pub(super) async fn batch_get(
    pool: &SqlitePool,
    app: &str,
    kind: StorageType,
    bins: &[Vec<u8>],
) -> Result<Vec<DbRecord>, StorageError> {
    let mut out = Vec::with_capacity(bins.len());
    if kind == StorageType::ValueState {
        // (label, epoch) keys; an id that is not a value-state key names nothing.
        let keys: Vec<(Vec<u8>, i64)> = bins
            .iter()
            .filter_map(|b| ValueState::key_from_full_binary(b).ok())
            .filter_map(|k| Some((k.0, i64::try_from(k.1).ok()?)))
            .collect();
        for chunk in keys.chunks(READ_CHUNK / 2) {
            let mut q = states_by_key(app, chunk);
            for row in q.build().fetch_all(pool).await.map_err(sql_err)? {
                out.push(DbRecord::ValueState(state_row(&row)?));
            }
        }
        return Ok(out);
    }
    for chunk in bins.chunks(READ_CHUNK) {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT kind, id, data FROM akd_records WHERE app_id = ");
        q.push_bind(app)
            .push(" AND kind = ")
            .push_bind(kind as i64)
            .push(" AND id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(&id[..]);
        }
        q.push(")");
        for row in q.build().fetch_all(pool).await.map_err(sql_err)? {
            out.push(record_row(&row)?);
        }
    }
    Ok(out)
}

/// Every value state of `label`, by epoch.
pub(super) async fn user_states(
    pool: &SqlitePool,
    app: &str,
    label: &AkdLabel,
) -> Result<Vec<ValueState>, StorageError> {
    sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM akd_value_states s \
         WHERE s.app_id = ? AND s.label = ? ORDER BY s.epoch"
    ))
    .bind(app)
    .bind(&label.0[..])
    .fetch_all(pool)
    .await
    .map_err(sql_err)?
    .iter()
    .map(state_row)
    .collect()
}

/// The state `flag` selects for each of `labels` that has one (one query
/// per chunk of labels; each row is picked by a primary-key lookup).
pub(super) async fn user_states_at(
    pool: &SqlitePool,
    app: &str,
    labels: &[AkdLabel],
    flag: ValueStateRetrievalFlag,
) -> Result<Vec<ValueState>, StorageError> {
    let Some(pick) = Pick::of(flag) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(labels.len());
    for chunk in labels.chunks(READ_CHUNK) {
        let mut q = states_at(app, chunk, pick);
        for row in q.build().fetch_all(pool).await.map_err(sql_err)? {
            out.push(state_row(&row)?);
        }
    }
    Ok(out)
}

/// The value states with these (label, epoch) keys.
pub(super) fn states_by_key<'a>(
    app: &'a str,
    keys: &'a [(Vec<u8>, i64)],
) -> QueryBuilder<'a, Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {STATE_COLUMNS} FROM akd_value_states s WHERE s.app_id = "
    ));
    q.push_bind(app).push(" AND (s.label, s.epoch) IN (VALUES ");
    let mut sep = q.separated(", ");
    for (label, epoch) in keys {
        sep.push("(")
            .push_bind_unseparated(&label[..])
            .push_unseparated(", ")
            .push_bind_unseparated(*epoch)
            .push_unseparated(")");
    }
    q.push(")");
    q
}

/// The state `pick` selects for each of `labels`: the selected epoch per
/// label (a primary-key range read), then that row (a primary-key lookup).
pub(super) fn states_at<'a>(
    app: &'a str,
    labels: &'a [AkdLabel],
    pick: Pick,
) -> QueryBuilder<'a, Sqlite> {
    let push_labels = |q: &mut QueryBuilder<'a, Sqlite>, column: &str| {
        q.push(format!(" AND {column} IN ("));
        let mut sep = q.separated(", ");
        for label in labels {
            sep.push_bind(&label.0[..]);
        }
        q.push(")");
    };
    let (aggregate, condition, param) = match pick {
        Pick::Epoch(e) => {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {STATE_COLUMNS} FROM akd_value_states s WHERE s.app_id = "
            ));
            q.push_bind(app);
            push_labels(&mut q, "s.label");
            q.push(" AND s.epoch = ").push_bind(e);
            return q;
        }
        Pick::EarliestWithVersion(v) => ("MIN", " AND t.version = ", Some(v)),
        Pick::LatestUpTo(e) => ("MAX", " AND t.epoch <= ", Some(e)),
        Pick::Latest => ("MAX", "", None),
        Pick::Earliest => ("MIN", "", None),
    };
    let mut q = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {STATE_COLUMNS} FROM (SELECT t.label AS l, {aggregate}(t.epoch) AS e \
         FROM akd_value_states t WHERE t.app_id = "
    ));
    q.push_bind(app);
    push_labels(&mut q, "t.label");
    if let Some(p) = param {
        q.push(condition).push_bind(p);
    }
    // CROSS JOIN: m is the outer loop (SQLite keeps that order), so each
    // selected row is one primary-key lookup, whatever the statistics say.
    q.push(
        " GROUP BY t.label) m \
         CROSS JOIN akd_value_states s WHERE s.app_id = ",
    )
    .push_bind(app)
    .push(" AND s.label = m.l AND s.epoch = m.e");
    q
}

/// Which of a label's states a [`ValueStateRetrievalFlag`] selects, with
/// the reference semantics: SpecificVersion is the earliest state with that
/// version, LeqEpoch the latest at or before the epoch.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pick {
    Epoch(i64),
    EarliestWithVersion(i64),
    LatestUpTo(i64),
    Latest,
    Earliest,
}

impl Pick {
    /// `None`: no stored state can match (a value beyond i64::MAX).
    pub(super) fn of(flag: ValueStateRetrievalFlag) -> Option<Self> {
        use ValueStateRetrievalFlag as F;
        Some(match flag {
            F::SpecificEpoch(e) => Self::Epoch(i64::try_from(e).ok()?),
            F::SpecificVersion(v) => Self::EarliestWithVersion(i64::try_from(v).ok()?),
            // Every stored epoch is <= i64::MAX.
            F::LeqEpoch(e) => Self::LatestUpTo(i64::try_from(e).unwrap_or(i64::MAX)),
            F::MaxEpoch => Self::Latest,
            F::MinEpoch => Self::Earliest,
        })
    }
}

/// Every record of this app (of type `kind` if given).
pub(super) async fn all_of_type(
    pool: &SqlitePool,
    app: &str,
    kind: Option<StorageType>,
) -> Result<Vec<DbRecord>, StorageError> {
    let mut out = Vec::new();
    if kind.is_none_or(|k| k != StorageType::ValueState) {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT kind, id, data FROM akd_records WHERE app_id = ");
        q.push_bind(app);
        if let Some(k) = kind {
            q.push(" AND kind = ").push_bind(k as i64);
        }
        for row in q.build().fetch_all(pool).await.map_err(sql_err)? {
            out.push(record_row(&row)?);
        }
    }
    if kind.is_none_or(|k| k == StorageType::ValueState) {
        let rows = sqlx::query(&format!(
            "SELECT {STATE_COLUMNS} FROM akd_value_states s WHERE s.app_id = ?"
        ))
        .bind(app)
        .fetch_all(pool)
        .await
        .map_err(sql_err)?;
        for row in rows {
            out.push(DbRecord::ValueState(state_row(&row)?));
        }
    }
    Ok(out)
}

fn record_row(r: &SqliteRow) -> Result<DbRecord, StorageError> {
    let kind: i64 = r.try_get("kind").map_err(sql_err)?;
    let id: Vec<u8> = r.try_get("id").map_err(sql_err)?;
    let data: Vec<u8> = r.try_get("data").map_err(sql_err)?;
    if kind == StorageType::Azks as i64 {
        codec::decode_azks(&data)
            .map(DbRecord::Azks)
            .map_err(corrupt)
    } else if kind == StorageType::TreeNode as i64 {
        let key = TreeNodeWithPreviousValue::key_from_full_binary(&id).map_err(corrupt)?;
        codec::decode_node(key.0, &data)
            .map(DbRecord::TreeNode)
            .map_err(corrupt)
    } else {
        Err(corrupt(format_args!("record kind {kind}")))
    }
}

fn state_row(r: &SqliteRow) -> Result<ValueState, StorageError> {
    let label: Vec<u8> = r.try_get("label").map_err(sql_err)?;
    let epoch: i64 = r.try_get("epoch").map_err(sql_err)?;
    let version: i64 = r.try_get("version").map_err(sql_err)?;
    let len: i64 = r.try_get("node_label_len").map_err(sql_err)?;
    let val: Vec<u8> = r.try_get("node_label_val").map_err(sql_err)?;
    let value: Vec<u8> = r.try_get("value").map_err(sql_err)?;
    Ok(ValueState {
        value: AkdValue(value),
        version: from_sql("version", version)?,
        label: NodeLabel::new(
            val.try_into()
                .map_err(|_| corrupt("node label is not 32 bytes"))?,
            u32::try_from(len).map_err(|_| corrupt(format_args!("node label length {len}")))?,
        ),
        epoch: from_sql("epoch", epoch)?,
        username: AkdLabel(label),
    })
}
