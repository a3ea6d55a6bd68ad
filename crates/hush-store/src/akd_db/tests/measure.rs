//! Figures for the report (ignored: a measurement, not a check). Run with
//! `cargo test -p hush-store measure_publish_and_lookup -- --ignored --nocapture`.
//!
//! In a debug build akd's own work (VRF, hashing) dominates and is far from
//! release speed, so the time spent inside AkdDb is measured separately.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akd::ecvrf::HardCodedAkdVRF;
use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, ValueState, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable, StorageManager};
use akd::{AkdLabel, AkdValue, AzksParallelismConfig, Directory};

use super::{Rng, open};

type Tc = akd::ExperimentalConfiguration<akd::ExampleLabel>;

const EPOCHS: u64 = 20;
const USERS_PER_EPOCH: u64 = 1000;
const LOOKUPS: u64 = 200;

/// A Database that adds up the time spent in the one it wraps.
#[derive(Clone)]
struct Timed<D> {
    inner: D,
    reads: Arc<Mutex<Duration>>,
    writes: Arc<Mutex<Duration>>,
}

impl<D> Timed<D> {
    fn new(inner: D) -> Self {
        Self {
            inner,
            reads: Arc::default(),
            writes: Arc::default(),
        }
    }

    /// (read, write) ms since the last call.
    fn take(&self) -> (f64, f64) {
        let ms =
            |d: &Mutex<Duration>| std::mem::take(&mut *d.lock().unwrap()).as_secs_f64() * 1000.0;
        (ms(&self.reads), ms(&self.writes))
    }
}

async fn timed<T>(acc: &Mutex<Duration>, f: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = f.await;
    *acc.lock().unwrap() += t.elapsed();
    out
}

#[async_trait::async_trait]
impl<D: Database> Database for Timed<D> {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        timed(&self.writes, self.inner.set(record)).await
    }
    async fn batch_set(
        &self,
        records: Vec<DbRecord>,
        state: DbSetState,
    ) -> Result<(), StorageError> {
        timed(&self.writes, self.inner.batch_set(records, state)).await
    }
    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        timed(&self.reads, self.inner.get::<St>(id)).await
    }
    async fn batch_get<St: Storable>(
        &self,
        ids: &[St::StorageKey],
    ) -> Result<Vec<DbRecord>, StorageError> {
        timed(&self.reads, self.inner.batch_get::<St>(ids)).await
    }
    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        timed(&self.reads, self.inner.get_user_data(username)).await
    }
    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        timed(&self.reads, self.inner.get_user_state(username, flag)).await
    }
    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        timed(
            &self.reads,
            self.inner.get_user_state_versions(usernames, flag),
        )
        .await
    }
}

type Dir = Directory<Tc, Timed<crate::AkdDb>, HardCodedAkdVRF>;

fn label(i: u64) -> AkdLabel {
    AkdLabel(format!("user-{i:08}@app").into_bytes())
}

async fn directory(db: &Timed<crate::AkdDb>) -> Dir {
    // StorageManager's cache on, as the server will run it.
    let storage = StorageManager::new(db.clone(), None, None, None);
    Directory::new(storage, HardCodedAkdVRF, AzksParallelismConfig::default())
        .await
        .unwrap()
}

/// Mean ms of LOOKUPS lookups of random users, and of the AkdDb part.
async fn lookups(akd: &Dir, db: &Timed<crate::AkdDb>) -> (f64, f64) {
    let mut rng = Rng(12);
    db.take();
    let t = Instant::now();
    for _ in 0..LOOKUPS {
        akd.lookup(label(rng.below(EPOCHS * USERS_PER_EPOCH)))
            .await
            .unwrap();
    }
    let total = t.elapsed().as_secs_f64() * 1000.0;
    let (reads, writes) = db.take();
    (total / LOOKUPS as f64, (reads + writes) / LOOKUPS as f64)
}

fn row(v: &[f64]) -> String {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let rounded: Vec<u64> = v.iter().map(|t| t.round() as u64).collect();
    format!("mean {mean:.0} {rounded:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints figures"]
async fn measure_publish_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let db = Timed::new(store.akd_db("app"));
    let akd = directory(&db).await;
    let mut rng = Rng(11);
    let (mut totals, mut reads, mut commits) = (Vec::new(), Vec::new(), Vec::new());
    db.take();
    for epoch in 0..EPOCHS {
        let updates: Vec<_> = (0..USERS_PER_EPOCH)
            .map(|i| (label(epoch * USERS_PER_EPOCH + i), AkdValue(rng.bytes(64))))
            .collect();
        let t = Instant::now();
        akd.publish(updates).await.unwrap();
        totals.push(t.elapsed().as_secs_f64() * 1000.0);
        let (r, w) = db.take();
        reads.push(r);
        commits.push(w);
    }
    let warm = lookups(&akd, &db).await;
    drop(akd);
    store.close().await;
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
    let (file, wal) = (size("hush.sqlite3"), size("hush.sqlite3-wal"));

    let store = open(dir.path()).await;
    let db = Timed::new(store.akd_db("app"));
    let akd = directory(&db).await;
    let cold = lookups(&akd, &db).await;
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'records', count(*) FROM akd_records UNION ALL \
         SELECT 'value states', count(*) FROM akd_value_states",
    )
    .fetch_all(store.akd_db("app").sqlite_pool())
    .await
    .unwrap();

    println!("publish of {USERS_PER_EPOCH} new users, ms per epoch (debug build):");
    println!("  whole publish:        {}", row(&totals));
    println!("  in AkdDb reads:       {}", row(&reads));
    println!("  in AkdDb commit:      {}", row(&commits));
    println!(
        "lookup ms (whole / in AkdDb): warm cache {:.1} / {:.2}; after reopen (cold cache) {:.1} / {:.2}",
        warm.0, warm.1, cold.0, cold.1
    );
    println!(
        "SQLite file after {} users: {:.1} MiB (WAL {wal} bytes); rows {counts:?}",
        EPOCHS * USERS_PER_EPOCH,
        file as f64 / 1_048_576.0
    );
}
