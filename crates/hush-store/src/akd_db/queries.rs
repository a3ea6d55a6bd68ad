// The statements behind `AkdDb` and the epoch heads, compiled once per
// backend (see `crate::backend::per_backend`).

use akd::errors::StorageError;
use akd::storage::Storable;
use akd::storage::types::{DbRecord, StorageType, ValueState, ValueStateRetrievalFlag};
use akd::tree_node::TreeNodeWithPreviousValue;
use akd::{AkdLabel, AkdValue, NodeLabel};
use sqlx::{QueryBuilder, Row};

use crate::StoreError;
use crate::akd_db::codec;
use crate::akd_db::heads::{EpochHead, MAX_EPOCH_HEADS_PER_READ};

/// Rows per multi-row INSERT (7 parameters a value state: 14,000 bound
/// parameters, under SQLite's 32,766 and PostgreSQL's 65,535).
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
        e => StorageError::Other(format!("database: {e}")),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("corrupt akd row: {what}"))
}

/// akd's u64 epochs and versions are SQL BIGINTs (i64); larger values
/// cannot be stored.
fn to_sql(what: &str, v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::Other(format!("{what} {v} exceeds i64::MAX")))
}

fn from_sql(what: &str, v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| corrupt(format_args!("{what} = {v}")))
}

/// Writes `records` (and `head`) in one transaction; later records replace
/// earlier ones with the same key, as in akd's in-memory database (an
/// upsert may not touch one row twice in a statement on PostgreSQL: the
/// earlier ones are dropped first).
pub(crate) async fn batch_set(
    pool: &Pool,
    app: &str,
    records: &[DbRecord],
    head: Option<&EpochHead>,
) -> Result<(), StorageError> {
    let mut states = Vec::new();
    let mut others = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let last_of_each: Vec<&DbRecord> = records
        .iter()
        .rev()
        .filter(|r| seen.insert(r.get_full_binary_id()))
        .collect();
    for r in last_of_each.into_iter().rev() {
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
    let mut tx = begin_write(pool).await.map_err(sql_err)?;
    for chunk in states.chunks(WRITE_CHUNK) {
        QueryBuilder::<Db>::new(
            "INSERT INTO akd_value_states \
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
        .push(
            " ON CONFLICT (app_id, label, epoch) DO UPDATE SET version = excluded.version, \
             node_label_len = excluded.node_label_len, \
             node_label_val = excluded.node_label_val, value = excluded.value",
        )
        .build()
        .execute(&mut *tx)
        .await
        .map_err(sql_err)?;
    }
    for chunk in others.chunks(WRITE_CHUNK) {
        QueryBuilder::<Db>::new("INSERT INTO akd_records (app_id, kind, id, data) ")
            .push_values(chunk, |mut b, (kind, id, data)| {
                b.push_bind(app)
                    .push_bind(*kind as i64)
                    .push_bind(&id[..])
                    .push_bind(&data[..]);
            })
            .push(" ON CONFLICT (app_id, kind, id) DO UPDATE SET data = excluded.data")
            .build()
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
    }
    if let Some(head) = head {
        insert_head(&mut tx, app, head)
            .await
            .map_err(|e| StorageError::Transaction(e.to_string()))?;
    }
    tx.commit().await.map_err(sql_err)
}

/// The record of type `kind` with full binary id `bin`.
pub(crate) async fn get(
    pool: &Pool,
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
pub(crate) async fn batch_get(
    pool: &Pool,
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
            QueryBuilder::<Db>::new("SELECT kind, id, data FROM akd_records WHERE app_id = ");
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
pub(crate) async fn user_states(
    pool: &Pool,
    app: &str,
    label: &AkdLabel,
) -> Result<Vec<ValueState>, StorageError> {
    sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM akd_value_states s \
         WHERE s.app_id = $1 AND s.label = $2 ORDER BY s.epoch"
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
pub(crate) async fn user_states_at(
    pool: &Pool,
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
pub(crate) fn states_by_key<'a>(app: &'a str, keys: &'a [(Vec<u8>, i64)]) -> QueryBuilder<'a, Db> {
    let mut q = QueryBuilder::<Db>::new(format!(
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
pub(crate) fn states_at<'a>(
    app: &'a str,
    labels: &'a [AkdLabel],
    pick: Pick,
) -> QueryBuilder<'a, Db> {
    let push_labels = |q: &mut QueryBuilder<'a, Db>, column: &str| {
        q.push(format!(" AND {column} IN ("));
        let mut sep = q.separated(", ");
        for label in labels {
            sep.push_bind(&label.0[..]);
        }
        q.push(")");
    };
    let (aggregate, condition, param) = match pick {
        Pick::Epoch(e) => {
            let mut q = QueryBuilder::<Db>::new(format!(
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
    let mut q = QueryBuilder::<Db>::new(format!(
        "SELECT {STATE_COLUMNS} FROM (SELECT t.label AS l, {aggregate}(t.epoch) AS e \
         FROM akd_value_states t WHERE t.app_id = "
    ));
    q.push_bind(app);
    push_labels(&mut q, "t.label");
    if let Some(p) = param {
        q.push(condition).push_bind(p);
    }
    // CROSS JOIN: m is the outer loop (SQLite keeps that order), so each
    // selected row is one primary-key lookup, whatever the statistics say
    // (PostgreSQL plans the join itself).
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
pub(crate) enum Pick {
    Epoch(i64),
    EarliestWithVersion(i64),
    LatestUpTo(i64),
    Latest,
    Earliest,
}

impl Pick {
    /// `None`: no stored state can match (a value beyond i64::MAX).
    pub(crate) fn of(flag: ValueStateRetrievalFlag) -> Option<Self> {
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
pub(crate) async fn all_of_type(
    pool: &Pool,
    app: &str,
    kind: Option<StorageType>,
) -> Result<Vec<DbRecord>, StorageError> {
    let mut out = Vec::new();
    if kind.is_none_or(|k| k != StorageType::ValueState) {
        let mut q =
            QueryBuilder::<Db>::new("SELECT kind, id, data FROM akd_records WHERE app_id = ");
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
            "SELECT {STATE_COLUMNS} FROM akd_value_states s WHERE s.app_id = $1"
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

fn record_row(r: &DbRow) -> Result<DbRecord, StorageError> {
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

fn state_row(r: &DbRow) -> Result<ValueState, StorageError> {
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
/// Records `head` on `conn` (a pooled connection or an open transaction).
pub(crate) async fn insert_head(
    conn: &mut Conn,
    app_id: &str,
    head: &EpochHead,
) -> Result<bool, StoreError> {
    let range = |what: &str, v: u64| {
        i64::try_from(v)
            .map_err(|_| StoreError::Corrupt(format!("epoch head {what} {v} out of range")))
    };
    let epoch = range("epoch", head.epoch)?;
    let log_size = range("log size", head.log_size)?;
    let inserted = sqlx::query(
        "INSERT INTO akd_epoch_heads (app_id, epoch, root_hash, published_ms, log_size) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, epoch) DO NOTHING",
    )
    .bind(app_id)
    .bind(epoch)
    .bind(&head.root_hash[..])
    .bind(head.published_ms)
    .bind(log_size)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    let row = sqlx::query(
        "SELECT epoch, root_hash, published_ms, log_size FROM akd_epoch_heads \
         WHERE app_id = $1 AND epoch = $2",
    )
    .bind(app_id)
    .bind(epoch)
    .fetch_one(&mut *conn)
    .await?;
    if head_row(&row)? == *head {
        Ok(false)
    } else {
        Err(StoreError::Conflict(format!(
            "app {app_id:?} already has a different head for epoch {}",
            head.epoch
        )))
    }
}

pub(crate) fn head_row(r: &DbRow) -> Result<EpochHead, StoreError> {
    let unsigned = |name: &str| -> Result<u64, StoreError> {
        let v: i64 = r.try_get(name)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("epoch head {name} = {v}")))
    };
    let hash: Vec<u8> = r.try_get("root_hash")?;
    Ok(EpochHead {
        epoch: unsigned("epoch")?,
        root_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("epoch head root hash is not 32 bytes".into()))?,
        published_ms: r.try_get("published_ms")?,
        log_size: unsigned("log_size")?,
    })
}

/// Records `head` on a pooled connection (see `Store::record_epoch_head`).
pub(crate) async fn record_head(
    pool: &Pool,
    app_id: &str,
    head: &EpochHead,
) -> Result<bool, StoreError> {
    insert_head(&mut *pool.acquire().await?, app_id, head).await
}

const HEAD_COLUMNS: &str = "SELECT epoch, root_hash, published_ms, log_size FROM akd_epoch_heads";

pub(crate) async fn head_at(
    pool: &Pool,
    app_id: &str,
    epoch: i64,
) -> Result<Option<EpochHead>, StoreError> {
    let row = sqlx::query(&format!("{HEAD_COLUMNS} WHERE app_id = $1 AND epoch = $2"))
        .bind(app_id)
        .bind(epoch)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(head_row).transpose()
}

pub(crate) async fn heads_between(
    pool: &Pool,
    app_id: &str,
    start: i64,
    end: i64,
) -> Result<Vec<EpochHead>, StoreError> {
    let rows = sqlx::query(&format!(
        "{HEAD_COLUMNS} WHERE app_id = $1 AND epoch >= $2 AND epoch < $3 ORDER BY epoch LIMIT $4"
    ))
    .bind(app_id)
    .bind(start)
    .bind(end)
    .bind(MAX_EPOCH_HEADS_PER_READ as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(head_row).collect()
}

pub(crate) async fn latest_head(
    pool: &Pool,
    app_id: &str,
) -> Result<Option<EpochHead>, StoreError> {
    let row = sqlx::query(&format!(
        "{HEAD_COLUMNS} WHERE app_id = $1 ORDER BY epoch DESC LIMIT 1"
    ))
    .bind(app_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(head_row).transpose()
}
