//! The webhook outbox: events waiting for delivery to one webhook endpoint of
//! one app, delivered in insertion order, retried with back-off, and moved to
//! the dead letters once their retry budget is spent.
//!
//! A delivery is at-least-once: rows are deleted only after the endpoint
//! answered 2xx, so a crash between the answer and the delete redelivers them.

use crate::backend::{dispatch, per_backend};
use crate::{Store, StoreError};

per_backend!(queries, "outbox/queries.rs");

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxEvent {
    /// The app's id.
    pub app_id: String,
    /// The webhook endpoint (URL) it goes to.
    pub endpoint: String,
    /// One Pusher webhook event object, as JSON text.
    pub event: String,
    /// When it happened (Unix ms).
    pub created_ms: i64,
}

/// A change to the occupancy journal (see [`Store::outbox_append_journaled`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupancyChange {
    /// The app's id.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// The presence member, or empty for the channel itself.
    pub user_id: String,
    /// True: occupied / added; false: vacated / removed.
    pub open: bool,
}

/// An entry of the occupancy journal: a channel (empty `user_id`) or a
/// presence member whose vacated / removed event has not been emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupied {
    /// The app's id.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// The presence member, or empty for the channel itself.
    pub user_id: String,
}

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Its id; ids grow in insertion order.
    pub id: i64,
    /// The app's id.
    pub app_id: String,
    /// The webhook endpoint.
    pub endpoint: String,
    /// The event object (JSON text).
    pub event: String,
    /// When it happened (Unix ms).
    pub created_ms: i64,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Not to be sent before this time (Unix ms).
    pub next_attempt_ms: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// An event whose retry budget ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id (the id it had in the outbox).
    pub id: i64,
    /// The app's id.
    pub app_id: String,
    /// The webhook endpoint.
    pub endpoint: String,
    /// The event object (JSON text).
    pub event: String,
    /// When it happened (Unix ms).
    pub created_ms: i64,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When it was given up (Unix ms).
    pub failed_ms: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// One delivery queue: an endpoint of an app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The app's id.
    pub app_id: String,
    /// The webhook endpoint.
    pub endpoint: String,
}

/// What [`Store::outbox_failed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Events kept for another attempt.
    pub retrying: u64,
    /// Events moved to the dead letters.
    pub dead: u64,
}

/// Pending and dead events of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppCounts {
    /// The app's id.
    pub app_id: String,
    /// Events waiting in the outbox.
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

impl Store {
    /// Appends events in one transaction; each becomes due at once.
    pub async fn outbox_append(&self, events: &[NewOutboxEvent]) -> Result<(), StoreError> {
        self.outbox_append_journaled(events, &[]).await
    }

    /// Appends events and applies `changes` to the occupancy journal in one
    /// transaction, so the journal never disagrees with what was emitted
    /// (an open change records a channel or member, a close removes it).
    pub async fn outbox_append_journaled(
        &self,
        events: &[NewOutboxEvent],
        changes: &[OccupancyChange],
    ) -> Result<(), StoreError> {
        if events.is_empty() && changes.is_empty() {
            return Ok(());
        }
        dispatch!(&self.backend, queries::outbox_append(events, changes))
    }

    /// Everything in the occupancy journal: after a crash, the channels and
    /// members that never got their vacated / removed event.
    pub async fn occupancy(&self) -> Result<Vec<Occupied>, StoreError> {
        dispatch!(&self.backend, queries::occupancy())
    }

    /// Every (app, endpoint) with events in the outbox.
    pub async fn outbox_targets(&self) -> Result<Vec<Target>, StoreError> {
        dispatch!(&self.backend, queries::outbox_targets())
    }

    /// The oldest `limit` events of one target, in order. The caller sends
    /// them once the first one is due (`next_attempt_ms`): a failing head holds
    /// back the rest, so the endpoint sees events in order.
    pub async fn outbox_next_batch(
        &self,
        target: &Target,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        dispatch!(&self.backend, queries::outbox_next_batch(target, limit))
    }

    /// Deletes delivered events. Returns how many were deleted.
    pub async fn outbox_delivered(&self, ids: &[i64]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        dispatch!(&self.backend, queries::outbox_delivered(ids))
    }

    /// Records a failed attempt on `ids`: one more attempt, due again at
    /// `next_attempt_ms`, with `error`. Events that have now made
    /// `max_attempts` attempts move to the dead letters (in the same
    /// transaction).
    pub async fn outbox_failed(
        &self,
        ids: &[i64],
        now_ms: i64,
        next_attempt_ms: i64,
        error: &str,
        max_attempts: u32,
    ) -> Result<FailureOutcome, StoreError> {
        if ids.is_empty() {
            return Ok(FailureOutcome::default());
        }
        dispatch!(
            &self.backend,
            queries::outbox_failed(ids, now_ms, next_attempt_ms, error, max_attempts)
        )
    }

    /// Moves every outbox event of `target` to the dead letters at once (its
    /// endpoint is no longer configured). Returns how many moved.
    pub async fn outbox_abandon(
        &self,
        target: &Target,
        now_ms: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        dispatch!(
            &self.backend,
            queries::outbox_abandon(target, now_ms, reason)
        )
    }

    /// Dead letters in id order, optionally of one app, at most `limit`.
    pub async fn dead_letters(
        &self,
        app_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        dispatch!(&self.backend, queries::dead_letters(app_id, limit))
    }

    /// Puts dead letters back into the outbox (as new events at the end of
    /// their queue, zero attempts, due now): those with `ids`, or all of them
    /// (optionally of one app) when `ids` is `None`. Returns how many moved.
    pub async fn retry_dead_letters(
        &self,
        ids: Option<&[i64]>,
        app_id: Option<&str>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        dispatch!(
            &self.backend,
            queries::retry_dead_letters(ids, app_id, now_ms)
        )
    }

    /// Deletes dead letters: those with `ids`, or all (optionally of one app).
    /// Returns how many were deleted.
    pub async fn purge_dead_letters(
        &self,
        ids: Option<&[i64]>,
        app_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        dispatch!(&self.backend, queries::purge_dead_letters(ids, app_id))
    }

    /// Takes or renews the delivery lease of `target`'s queue for `holder`
    /// (a node's id) until `now_ms + lease_ms`, unless another holder's
    /// lease still runs at `now_ms`; `true` when `holder` holds it. Only the
    /// holder delivers the queue, so the nodes sharing a store deliver each
    /// event once while they live; a dead holder's queue is taken over when
    /// its lease ends (the batch it had in flight may be sent again:
    /// at-least-once).
    pub async fn outbox_lease(
        &self,
        target: &Target,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now_ms.saturating_add(lease_ms);
        dispatch!(
            &self.backend,
            queries::outbox_lease(target, holder, now_ms, until)
        )
    }

    /// Gives up every lease of `holder` (a node stopping), so other nodes
    /// take its queues at once. Returns how many it held.
    pub async fn outbox_release(&self, holder: &str) -> Result<u64, StoreError> {
        dispatch!(&self.backend, queries::outbox_release(holder))
    }

    /// Pending and dead counts per app (apps with neither are absent), sorted
    /// by app id.
    pub async fn outbox_counts(&self) -> Result<Vec<AppCounts>, StoreError> {
        dispatch!(&self.backend, queries::outbox_counts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    use crate::testing::{TestDb, both_backends};

    both_backends!(
        the_occupancy_journal_follows_the_changes_in_order,
        append_fetch_in_order_and_deliver,
        failures_retry_then_dead_letter_then_retry_and_purge,
        abandon_moves_a_whole_target,
        survives_reopen_and_concurrent_opens
    );

    both_backends!(
        one_lease_holder_per_queue_until_it_runs_out,
        two_nodes_racing_deliver_every_event_exactly_once,
    );

    const LEASE: i64 = 30_000;

    /// A queue has one holder at a time; it renews, others wait for the end
    /// of its lease (a dead node), or take over at once once it released.
    async fn one_lease_holder_per_queue_until_it_runs_out(db: &TestDb) {
        let (a, b) = (db.open().await, db.open().await);
        let t = target("1", "http://a");
        assert!(a.outbox_lease(&t, "node-a", 1_000, LEASE).await.unwrap());
        assert!(!b.outbox_lease(&t, "node-b", 1_001, LEASE).await.unwrap());
        // Renewed by its holder; another queue is free.
        assert!(a.outbox_lease(&t, "node-a", 20_000, LEASE).await.unwrap());
        assert!(!b.outbox_lease(&t, "node-b", 40_000, LEASE).await.unwrap());
        assert!(
            b.outbox_lease(&target("1", "http://b"), "node-b", 40_000, LEASE)
                .await
                .unwrap()
        );
        // node-a dies: its lease runs out at 50 000, then node-b has it.
        drop(a);
        assert!(!b.outbox_lease(&t, "node-b", 49_999, LEASE).await.unwrap());
        assert!(b.outbox_lease(&t, "node-b", 50_000, LEASE).await.unwrap());
        assert!(!b.outbox_lease(&t, "node-c", 60_000, LEASE).await.unwrap());
        // A node stopping releases its queues at once.
        assert_eq!(b.outbox_release("node-b").await.unwrap(), 2);
        assert!(b.outbox_lease(&t, "node-c", 60_001, LEASE).await.unwrap());
    }

    /// Two nodes run the delivery loop on the same queues (as two servers
    /// on one database): each event is taken by exactly one, in order per
    /// queue; when the holder of a queue dies mid-batch, the other delivers
    /// that batch after the lease (at-least-once), and nothing is lost.
    async fn two_nodes_racing_deliver_every_event_exactly_once(db: &TestDb) {
        let setup = db.open().await;
        let targets: Vec<Target> = (0..4)
            .map(|n| target("1", &format!("http://e{n}")))
            .collect();
        let mut events = Vec::new();
        for t in &targets {
            events.extend((0..60).map(|n| ev("1", &t.endpoint, n)));
        }
        setup.outbox_append(&events).await.unwrap();

        // A node that takes the first queue's lease and a batch, then dies.
        let dead = db.open().await;
        let now = crate::now_ms();
        assert!(
            dead.outbox_lease(&targets[0], "dead", now, LEASE)
                .await
                .unwrap()
        );
        let in_flight: Vec<i64> = dead
            .outbox_next_batch(&targets[0], 5)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        dead.close().await;

        async fn node(
            store: Store,
            me: &'static str,
            targets: Vec<Target>,
            now: i64,
        ) -> Vec<(usize, i64)> {
            let mut taken = Vec::new();
            // Until the outbox is empty (queues held by the other node are
            // skipped, as the delivery loop does).
            while !store.outbox_counts().await.unwrap().is_empty() {
                for (i, t) in targets.iter().enumerate() {
                    if !store.outbox_lease(t, me, now, LEASE).await.unwrap() {
                        continue;
                    }
                    let batch = store.outbox_next_batch(t, 7).await.unwrap();
                    let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
                    taken.extend(ids.iter().map(|id| (i, *id)));
                    tokio::task::yield_now().await;
                    store.outbox_delivered(&ids).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
            taken
        }
        // Both live nodes see "now" past the dead node's lease.
        let later = now + LEASE;
        let (x, y) = tokio::join!(
            node(db.open().await, "node-x", targets.clone(), later),
            node(db.open().await, "node-y", targets.clone(), later),
        );
        let mut all: Vec<i64> = x.iter().chain(&y).map(|(_, id)| *id).collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "an event was taken twice");
        assert_eq!(all.len(), events.len(), "an event was lost");
        assert!(in_flight.iter().all(|id| all.binary_search(id).is_ok()));
        // One holder per queue: each queue's events went through one node,
        // in id order.
        for i in 0..targets.len() {
            let (in_x, in_y) = (
                x.iter().filter(|(q, _)| *q == i).count(),
                y.iter().filter(|(q, _)| *q == i).count(),
            );
            assert!(in_x == 0 || in_y == 0, "queue {i} was split between nodes");
            let ids: Vec<i64> = x
                .iter()
                .chain(&y)
                .filter(|(q, _)| *q == i)
                .map(|(_, id)| *id)
                .collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(setup.outbox_counts().await.unwrap().is_empty());
    }

    /// PostgreSQL stops abruptly mid-way and comes back: the pool
    /// reconnects (dead connections are tested and replaced), nothing
    /// committed is lost, a lease taken before still holds, and the queue
    /// goes on where it stopped.
    #[tokio::test]
    async fn postgres_restart_loses_nothing_and_the_pool_reconnects() {
        use crate::testing::pg_server::Postgres;
        let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
        let url = pg.create_database();
        let s = Store::open(&url, &StoreOptions::default()).await.unwrap();
        let t = target("1", "http://a");
        let events: Vec<_> = (0..10).map(|n| ev("1", "http://a", n)).collect();
        s.outbox_append(&events).await.unwrap();
        let now = crate::now_ms();
        assert!(s.outbox_lease(&t, "node-a", now, LEASE).await.unwrap());
        let first: Vec<i64> = s
            .outbox_next_batch(&t, 4)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        s.outbox_delivered(&first).await.unwrap();

        let pg = tokio::task::spawn_blocking(move || {
            pg.stop();
            pg
        })
        .await
        .unwrap();
        // While it is down: errors, not hangs or panics.
        assert!(s.ping().await.is_err());
        let pg = tokio::task::spawn_blocking(move || {
            pg.start_again();
            pg
        })
        .await
        .unwrap();

        s.ping().await.unwrap();
        assert!(!s.outbox_lease(&t, "node-b", now + 1, LEASE).await.unwrap());
        assert!(s.outbox_lease(&t, "node-a", now + 1, LEASE).await.unwrap());
        let rest = s.outbox_next_batch(&t, 100).await.unwrap();
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[0].event, events[4].event);
        s.outbox_append(&[ev("1", "http://a", 99)]).await.unwrap();
        assert_eq!(s.outbox_counts().await.unwrap()[0].pending, 7);
        drop(pg);
    }

    #[tokio::test]
    async fn sqlite_creates_the_directory_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/hush.sqlite3", dir.path().display());
        let s = Store::open(&url, &StoreOptions::default()).await.unwrap();
        s.ping().await.unwrap();
        assert!(dir.path().join("sub/hush.sqlite3").exists());
    }

    fn change(channel: &str, user: &str, open: bool) -> OccupancyChange {
        OccupancyChange {
            app_id: "a".into(),
            channel: channel.into(),
            user_id: user.into(),
            open,
        }
    }

    async fn the_occupancy_journal_follows_the_changes_in_order(db: &TestDb) {
        let s = db.open().await;
        s.outbox_append_journaled(
            &[ev("a", "http://x/", 1)],
            &[
                change("c1", "", true),
                change("p", "", true),
                change("p", "u1", true),
                // Twice is once.
                change("p", "u1", true),
            ],
        )
        .await
        .unwrap();
        // Vacated then re-occupied in one batch: still occupied.
        s.outbox_append_journaled(
            &[],
            &[
                change("c1", "", false),
                change("c1", "", true),
                change("p", "u1", false),
                change("gone", "", false),
            ],
        )
        .await
        .unwrap();
        let left: Vec<(String, String)> = s
            .occupancy()
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.channel, o.user_id))
            .collect();
        assert_eq!(
            left,
            [("c1".into(), String::new()), ("p".into(), String::new())]
        );
        let target = Target {
            app_id: "a".into(),
            endpoint: "http://x/".into(),
        };
        assert_eq!(s.outbox_next_batch(&target, 10).await.unwrap().len(), 1);
    }

    fn ev(app: &str, endpoint: &str, n: i64) -> NewOutboxEvent {
        NewOutboxEvent {
            app_id: app.into(),
            endpoint: endpoint.into(),
            event: format!(r#"{{"name":"channel_occupied","channel":"c{n}"}}"#),
            created_ms: 1_000 + n,
        }
    }

    fn target(app: &str, endpoint: &str) -> Target {
        Target {
            app_id: app.into(),
            endpoint: endpoint.into(),
        }
    }

    async fn append_fetch_in_order_and_deliver(db: &TestDb) {
        let s = db.open().await;
        s.ping().await.unwrap();
        let events: Vec<_> = (0..1200).map(|n| ev("1", "http://a", n)).collect();
        s.outbox_append(&events).await.unwrap();
        s.outbox_append(&[ev("1", "http://b", 0), ev("2", "http://a", 0)])
            .await
            .unwrap();
        assert_eq!(
            s.outbox_targets().await.unwrap(),
            vec![
                target("1", "http://a"),
                target("1", "http://b"),
                target("2", "http://a")
            ]
        );
        let t = target("1", "http://a");
        let batch = s.outbox_next_batch(&t, 100).await.unwrap();
        assert_eq!(batch.len(), 100);
        assert!(batch.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(batch[0].event, events[0].event);
        assert_eq!(batch[0].next_attempt_ms, 1_000);
        assert_eq!(batch[0].attempts, 0);
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        assert_eq!(s.outbox_delivered(&ids).await.unwrap(), 100);
        let next = s.outbox_next_batch(&t, 100).await.unwrap();
        assert_eq!(next[0].event, events[100].event);
        let counts = s.outbox_counts().await.unwrap();
        assert_eq!(
            counts,
            vec![
                AppCounts {
                    app_id: "1".into(),
                    pending: 1101,
                    dead: 0
                },
                AppCounts {
                    app_id: "2".into(),
                    pending: 1,
                    dead: 0
                }
            ]
        );
    }

    async fn failures_retry_then_dead_letter_then_retry_and_purge(db: &TestDb) {
        let s = db.open().await;
        s.outbox_append(&[ev("1", "http://a", 0), ev("1", "http://a", 1)])
            .await
            .unwrap();
        let t = target("1", "http://a");
        let ids: Vec<i64> = s
            .outbox_next_batch(&t, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let o = s
            .outbox_failed(&ids, 5_000, 6_000, "HTTP 500", 2)
            .await
            .unwrap();
        assert_eq!(
            o,
            FailureOutcome {
                retrying: 2,
                dead: 0
            }
        );
        let b = s.outbox_next_batch(&t, 10).await.unwrap();
        assert_eq!(b[0].attempts, 1);
        assert_eq!(b[0].next_attempt_ms, 6_000);
        assert_eq!(b[0].last_error.as_deref(), Some("HTTP 500"));
        // A new event joins the queue; only the two failing ones die.
        s.outbox_append(&[ev("1", "http://a", 2)]).await.unwrap();
        let all: Vec<i64> = s
            .outbox_next_batch(&t, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let o = s
            .outbox_failed(&all, 7_000, 8_000, "timeout", 2)
            .await
            .unwrap();
        assert_eq!(
            o,
            FailureOutcome {
                retrying: 1,
                dead: 2
            }
        );
        let dead = s.dead_letters(None, 100).await.unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(dead[0].id, ids[0]);
        assert_eq!(dead[0].attempts, 2);
        assert_eq!(dead[0].failed_ms, 7_000);
        assert_eq!(dead[0].last_error.as_deref(), Some("timeout"));
        assert!(s.dead_letters(Some("other"), 100).await.unwrap().is_empty());
        assert_eq!(
            s.outbox_counts().await.unwrap(),
            vec![AppCounts {
                app_id: "1".into(),
                pending: 1,
                dead: 2
            }]
        );
        // Retry one by id: it goes back at the end of the queue, fresh.
        assert_eq!(
            s.retry_dead_letters(Some(&[ids[1]]), None, 9_000)
                .await
                .unwrap(),
            1
        );
        let q = s.outbox_next_batch(&t, 10).await.unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].event, ev("1", "http://a", 1).event);
        assert_eq!((q[1].attempts, q[1].next_attempt_ms), (0, 9_000));
        assert_eq!(q[1].created_ms, 1_001);
        // Purge the rest.
        assert_eq!(s.purge_dead_letters(Some(&[]), None).await.unwrap(), 0);
        assert_eq!(s.purge_dead_letters(None, Some("2")).await.unwrap(), 0);
        assert_eq!(s.purge_dead_letters(None, None).await.unwrap(), 1);
        assert!(s.dead_letters(None, 100).await.unwrap().is_empty());
    }

    async fn abandon_moves_a_whole_target(db: &TestDb) {
        let s = db.open().await;
        s.outbox_append(&[ev("1", "http://gone", 0), ev("1", "http://kept", 0)])
            .await
            .unwrap();
        let n = s
            .outbox_abandon(&target("1", "http://gone"), 10, "not configured")
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            s.outbox_targets().await.unwrap(),
            vec![target("1", "http://kept")]
        );
        let d = s.dead_letters(Some("1"), 10).await.unwrap();
        assert_eq!(d[0].last_error.as_deref(), Some("not configured"));
        assert_eq!(s.retry_dead_letters(None, Some("1"), 20).await.unwrap(), 1);
        assert_eq!(s.outbox_targets().await.unwrap().len(), 2);
    }

    async fn survives_reopen_and_concurrent_opens(db: &TestDb) {
        let url = &db.url;
        let a = Store::open(url, &StoreOptions::default()).await.unwrap();
        a.outbox_append(&[ev("1", "http://a", 0)]).await.unwrap();
        // A second handle on the same file while the first is open (the CLI
        // next to a running server), then a reopen after close.
        let b = Store::open(url, &StoreOptions::default()).await.unwrap();
        assert_eq!(b.outbox_counts().await.unwrap()[0].pending, 1);
        b.close().await;
        a.close().await;
        let c = Store::open(url, &StoreOptions::default()).await.unwrap();
        assert_eq!(
            c.outbox_next_batch(&target("1", "http://a"), 5)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn memory_store_works_across_pooled_connections() {
        let s = Store::open("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        s.outbox_append(&[ev("1", "http://a", 0)]).await.unwrap();
        let mut handles = Vec::new();
        for _ in 0..4 {
            let s = s.clone();
            handles.push(tokio::spawn(
                async move { s.outbox_counts().await.unwrap() },
            ));
        }
        for h in handles {
            assert_eq!(h.await.unwrap()[0].pending, 1);
        }
    }
}
