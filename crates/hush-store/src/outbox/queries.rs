// The webhook outbox's queries, compiled once per backend (see
// `crate::backend::per_backend`): `Db`, `Pool` and `DbRow` are that
// backend's types.

use sqlx::{QueryBuilder, Row};

use crate::StoreError;
use crate::outbox::{
    AppCounts, DeadLetter, FailureOutcome, NewOutboxEvent, OccupancyChange, Occupied, OutboxEvent,
    Target,
};

/// Rows per multi-row statement (5 parameters each, far below either
/// database's limit).
const CHUNK: usize = 500;

pub(crate) async fn outbox_append(
    pool: &Pool,
    events: &[NewOutboxEvent],
    changes: &[OccupancyChange],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    // In order: a channel vacated and re-occupied in one batch ends occupied.
    for c in changes {
        let sql = if c.open {
            "INSERT INTO webhook_occupancy (app_id, channel, user_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM webhook_occupancy WHERE app_id = $1 AND channel = $2 AND user_id = $3"
        };
        sqlx::query(sql)
            .bind(&c.app_id)
            .bind(&c.channel)
            .bind(&c.user_id)
            .execute(&mut *tx)
            .await?;
    }
    for chunk in events.chunks(CHUNK) {
        QueryBuilder::<Db>::new(
            "INSERT INTO webhook_outbox (app_id, endpoint, event, created_ms, next_attempt_ms) ",
        )
        .push_values(chunk, |mut b, e| {
            b.push_bind(&e.app_id)
                .push_bind(&e.endpoint)
                .push_bind(&e.event)
                .push_bind(e.created_ms)
                .push_bind(e.created_ms);
        })
        .build()
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn occupancy(pool: &Pool) -> Result<Vec<Occupied>, StoreError> {
    let rows = sqlx::query(
        "SELECT app_id, channel, user_id FROM webhook_occupancy ORDER BY app_id, channel, user_id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Occupied {
                app_id: r.try_get(0)?,
                channel: r.try_get(1)?,
                user_id: r.try_get(2)?,
            })
        })
        .collect()
}

pub(crate) async fn outbox_targets(pool: &Pool) -> Result<Vec<Target>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT app_id, endpoint FROM webhook_outbox ORDER BY app_id, endpoint",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Target {
                app_id: r.try_get("app_id")?,
                endpoint: r.try_get("endpoint")?,
            })
        })
        .collect()
}

fn attempts(r: &DbRow) -> Result<u32, StoreError> {
    let n: i64 = r.try_get("attempts")?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("attempts = {n}")))
}

fn outbox_row(r: &DbRow) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        endpoint: r.try_get("endpoint")?,
        event: r.try_get("event")?,
        created_ms: r.try_get("created_ms")?,
        attempts: attempts(r)?,
        next_attempt_ms: r.try_get("next_attempt_ms")?,
        last_error: r.try_get("last_error")?,
    })
}

fn dead_row(r: &DbRow) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        endpoint: r.try_get("endpoint")?,
        event: r.try_get("event")?,
        created_ms: r.try_get("created_ms")?,
        attempts: attempts(r)?,
        failed_ms: r.try_get("failed_ms")?,
        last_error: r.try_get("last_error")?,
    })
}

pub(crate) async fn outbox_next_batch(
    pool: &Pool,
    target: &Target,
    limit: u32,
) -> Result<Vec<OutboxEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, app_id, endpoint, event, created_ms, attempts, next_attempt_ms, last_error \
         FROM webhook_outbox WHERE app_id = $1 AND endpoint = $2 ORDER BY id LIMIT $3",
    )
    .bind(&target.app_id)
    .bind(&target.endpoint)
    .bind(i64::from(limit.max(1)))
    .fetch_all(pool)
    .await?;
    rows.iter().map(outbox_row).collect()
}

/// `prefix (id1, id2, …) suffix` as a query builder.
fn with_ids<'a>(prefix: &str, ids: &'a [i64]) -> QueryBuilder<'a, Db> {
    let mut q = QueryBuilder::<Db>::new(prefix);
    q.push(" (");
    let mut s = q.separated(", ");
    for id in ids {
        s.push_bind(*id);
    }
    q.push(")");
    q
}

pub(crate) async fn outbox_delivered(pool: &Pool, ids: &[i64]) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut n = 0;
    for chunk in ids.chunks(CHUNK) {
        n += with_ids("DELETE FROM webhook_outbox WHERE id IN", chunk)
            .build()
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

const TO_DEAD: &str = "INSERT INTO webhook_dead_letters \
     (id, app_id, endpoint, event, created_ms, attempts, failed_ms, last_error) \
     SELECT id, app_id, endpoint, event, created_ms, attempts, ";

pub(crate) async fn outbox_failed(
    pool: &Pool,
    ids: &[i64],
    now_ms: i64,
    next_attempt_ms: i64,
    error: &str,
    max_attempts: u32,
) -> Result<FailureOutcome, StoreError> {
    let mut tx = pool.begin().await?;
    let mut out = FailureOutcome::default();
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_ms = ",
        );
        q.push_bind(next_attempt_ms)
            .push(", last_error = ")
            .push_bind(error)
            .push(" WHERE id IN (");
        let mut s = q.separated(", ");
        for id in chunk {
            s.push_bind(*id);
        }
        q.push(")");
        let touched = q.build().execute(&mut *tx).await?.rows_affected();

        let mut q = QueryBuilder::<Db>::new(TO_DEAD);
        q.push_bind(now_ms)
            .push(", last_error FROM webhook_outbox WHERE attempts >= ")
            .push_bind(i64::from(max_attempts))
            .push(" AND id IN (");
        let mut s = q.separated(", ");
        for id in chunk {
            s.push_bind(*id);
        }
        q.push(")");
        let dead = q.build().execute(&mut *tx).await?.rows_affected();

        let mut q = QueryBuilder::<Db>::new("DELETE FROM webhook_outbox WHERE attempts >= ");
        q.push_bind(i64::from(max_attempts)).push(" AND id IN (");
        let mut s = q.separated(", ");
        for id in chunk {
            s.push_bind(*id);
        }
        q.push(")");
        q.build().execute(&mut *tx).await?;
        out.dead += dead;
        out.retrying += touched - dead;
    }
    tx.commit().await?;
    Ok(out)
}

pub(crate) async fn outbox_abandon(
    pool: &Pool,
    target: &Target,
    now_ms: i64,
    reason: &str,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let sql = format!("{TO_DEAD} $1, $2 FROM webhook_outbox WHERE app_id = $3 AND endpoint = $4");
    let n = sqlx::query(&sql)
        .bind(now_ms)
        .bind(reason)
        .bind(&target.app_id)
        .bind(&target.endpoint)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM webhook_outbox WHERE app_id = $1 AND endpoint = $2")
        .bind(&target.app_id)
        .bind(&target.endpoint)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

pub(crate) async fn dead_letters(
    pool: &Pool,
    app_id: Option<&str>,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, app_id, endpoint, event, created_ms, attempts, failed_ms, last_error \
         FROM webhook_dead_letters WHERE ($1 IS NULL OR app_id = $1) ORDER BY id LIMIT $2",
    )
    .bind(app_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(dead_row).collect()
}

/// `WHERE` clause selecting dead letters by ids and/or app.
fn dead_filter<'a>(q: &mut QueryBuilder<'a, Db>, ids: Option<&'a [i64]>, app_id: Option<&'a str>) {
    q.push(" WHERE 1 = 1");
    if let Some(app) = app_id {
        q.push(" AND app_id = ").push_bind(app);
    }
    if let Some(ids) = ids {
        q.push(" AND id IN (");
        let mut s = q.separated(", ");
        for id in ids {
            s.push_bind(*id);
        }
        q.push(")");
    }
}

pub(crate) async fn retry_dead_letters(
    pool: &Pool,
    ids: Option<&[i64]>,
    app_id: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    if ids.is_some_and(<[i64]>::is_empty) {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let mut q = QueryBuilder::<Db>::new(
        "INSERT INTO webhook_outbox (app_id, endpoint, event, created_ms, attempts, next_attempt_ms) \
         SELECT app_id, endpoint, event, created_ms, 0, ",
    );
    q.push_bind(now_ms).push(" FROM webhook_dead_letters");
    dead_filter(&mut q, ids, app_id);
    q.push(" ORDER BY id");
    let n = q.build().execute(&mut *tx).await?.rows_affected();
    let mut q = QueryBuilder::<Db>::new("DELETE FROM webhook_dead_letters");
    dead_filter(&mut q, ids, app_id);
    q.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(n)
}

pub(crate) async fn purge_dead_letters(
    pool: &Pool,
    ids: Option<&[i64]>,
    app_id: Option<&str>,
) -> Result<u64, StoreError> {
    if ids.is_some_and(<[i64]>::is_empty) {
        return Ok(0);
    }
    let mut q = QueryBuilder::<Db>::new("DELETE FROM webhook_dead_letters");
    dead_filter(&mut q, ids, app_id);
    Ok(q.build().execute(pool).await?.rows_affected())
}

pub(crate) async fn outbox_counts(pool: &Pool) -> Result<Vec<AppCounts>, StoreError> {
    let rows = sqlx::query(
        "SELECT app_id, CAST(SUM(pending) AS BIGINT) AS pending, CAST(SUM(dead) AS BIGINT) AS dead FROM ( \
           SELECT app_id, COUNT(*) AS pending, 0 AS dead FROM webhook_outbox GROUP BY app_id \
           UNION ALL \
           SELECT app_id, 0 AS pending, COUNT(*) AS dead FROM webhook_dead_letters GROUP BY app_id \
         ) AS c GROUP BY app_id ORDER BY app_id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let count = |col: &str| -> Result<u64, StoreError> {
                let n: i64 = r.try_get(col)?;
                u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{col} = {n}")))
            };
            Ok(AppCounts {
                app_id: r.try_get("app_id")?,
                pending: count("pending")?,
                dead: count("dead")?,
            })
        })
        .collect()
}

/// Takes or renews the delivery lease of `target` for `holder` until
/// `until_ms`, unless another holder's lease is still running at `now_ms`.
/// One statement, atomic on both databases: of two nodes racing, one row
/// wins and the other sees it. Returns whether `holder` holds the lease.
pub(crate) async fn outbox_lease(
    pool: &Pool,
    target: &Target,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, StoreError> {
    let won = sqlx::query(
        "INSERT INTO webhook_leases (app_id, endpoint, holder, until_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_id, endpoint) DO UPDATE SET holder = excluded.holder, \
         until_ms = excluded.until_ms \
         WHERE webhook_leases.holder = excluded.holder OR webhook_leases.until_ms <= $5",
    )
    .bind(&target.app_id)
    .bind(&target.endpoint)
    .bind(holder)
    .bind(until_ms)
    .bind(now_ms)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(won == 1)
}

/// Gives up `holder`'s leases (a node stopping), so another node takes its
/// queues at once. Returns how many were released.
pub(crate) async fn outbox_release(pool: &Pool, holder: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM webhook_leases WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await?
        .rows_affected())
}
