//! The directory's defences against one user stalling it: a per-user write
//! rate, a bounded set of lookup workers with a bounded queue, and the
//! cancellation of lookups whose client is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hush_protocol::UserId;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::DirError;
use crate::ratelimit::TokenBucket;

/// Users whose write buckets are kept before idle (full) ones are dropped.
const PRUNE_AT: usize = 4096;

/// Per (app, user) write rate: `per_minute` writes a minute, bursts up to
/// the same number; 0 = unlimited. Pure: the caller passes the time.
#[derive(Debug)]
pub(super) struct WriteLimiter {
    per_minute: u32,
    buckets: Mutex<Buckets>,
}

/// The write buckets, and the size at which idle ones are next dropped.
#[derive(Debug)]
struct Buckets {
    map: HashMap<(String, UserId), TokenBucket>,
    prune_at: usize,
}

impl WriteLimiter {
    /// A limiter of `per_minute` writes per user (0 = unlimited).
    pub(super) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    /// Takes one write of `user` in `app` if the rate allows it.
    pub(super) fn try_take(&self, app: &str, user: &UserId, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (app.to_owned(), user.clone());
        if !buckets.map.contains_key(&key) && buckets.map.len() >= buckets.prune_at {
            // A full bucket is the state of a user who never wrote. When
            // few are idle (many users writing within the minute), the next
            // prune waits until the map has doubled: amortised O(1) a write,
            // not a scan of every bucket on each one.
            buckets.map.retain(|_, b| !b.is_full(now));
            buckets.prune_at = PRUNE_AT.max(buckets.map.len().saturating_mul(2));
        }
        buckets
            .map
            .entry(key)
            .or_insert_with(|| TokenBucket::per_minute(self.per_minute, now))
            .try_take(now)
    }
}

/// Lookup workers: at most `workers` lookups computed at once (each on a
/// blocking thread), and at most `max_queued` waiting for one.
#[derive(Debug)]
pub(super) struct Jobs {
    permits: Semaphore,
    /// Lookups running or waiting.
    entered: AtomicUsize,
    limit: usize,
}

/// A lookup's place among the workers (freed on drop).
pub(super) struct Job<'a> {
    _permit: SemaphorePermit<'a>,
    entered: &'a AtomicUsize,
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.entered.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a lookup that gave up waiting out again.
struct Entered<'a>(&'a AtomicUsize);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Jobs {
    /// `workers` at once (0 = half the CPUs, at least 1); `max_queued`
    /// waiting.
    pub(super) fn new(workers: usize, max_queued: usize) -> Self {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        } else {
            workers
        };
        Self {
            permits: Semaphore::new(workers),
            entered: AtomicUsize::new(0),
            limit: workers.saturating_add(max_queued),
        }
    }

    /// Waits for a worker; `Busy` at once when the queue is full.
    pub(super) async fn enter(&self) -> Result<Job<'_>, DirError> {
        if self.entered.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.entered.fetch_sub(1, Ordering::Relaxed);
            return Err(DirError::Busy(
                "the key directory is busy; retry shortly".into(),
            ));
        }
        let entered = Entered(&self.entered);
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DirError::Busy("the key directory is shutting down".into()))?;
        std::mem::forget(entered);
        Ok(Job {
            _permit: permit,
            entered: &self.entered,
        })
    }
}

/// Set when the lookup's future is dropped (its client is gone): the
/// blocking work checks its [`CancelToken`] and stops.
#[derive(Debug, Default)]
pub(super) struct Cancel(Arc<AtomicBool>);

/// The blocking side of a [`Cancel`].
#[derive(Debug, Clone)]
pub(super) struct CancelToken(Arc<AtomicBool>);

impl Cancel {
    /// The token the blocking work checks.
    pub(super) fn token(&self) -> CancelToken {
        CancelToken(self.0.clone())
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl CancelToken {
    /// `Busy` once the lookup was cancelled.
    pub(super) fn check(&self) -> Result<(), DirError> {
        if self.0.load(Ordering::Relaxed) {
            Err(DirError::Busy("lookup cancelled".into()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::time::Duration;

    #[test]
    fn writes_are_capped_per_user_and_app() {
        let t0 = Instant::now();
        let w = WriteLimiter::new(3);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        assert_eq!((0..5).filter(|_| w.try_take("1", &alice, t0)).count(), 3);
        assert!(w.try_take("1", &bob, t0));
        assert!(w.try_take("2", &alice, t0));
        assert!(w.try_take("1", &alice, t0 + Duration::from_secs(21)));
        let unlimited = WriteLimiter::new(0);
        assert!((0..100).all(|_| unlimited.try_take("1", &alice, t0)));
    }

    /// Many users writing within the minute (none idle): the prune that
    /// finds nothing to drop is not repeated on every new user's write (the
    /// threshold doubles), and idle users are dropped once they refilled.
    #[test]
    fn busy_buckets_are_not_rescanned_on_every_write() {
        let t0 = Instant::now();
        let w = WriteLimiter::new(3);
        let user = |i: usize| UserId::parse(&format!("u{i}")).unwrap();
        for i in 0..=PRUNE_AT {
            assert!(w.try_take("1", &user(i), t0));
        }
        let state = |w: &WriteLimiter| {
            let b = w.buckets.lock().unwrap();
            (b.map.len(), b.prune_at)
        };
        assert_eq!(state(&w), (PRUNE_AT + 1, 2 * PRUNE_AT));
        for i in PRUNE_AT + 1..PRUNE_AT + 100 {
            assert!(w.try_take("1", &user(i), t0));
        }
        assert_eq!(state(&w).1, 2 * PRUNE_AT);
        // A minute later the first users' buckets are full again: the next
        // prune drops them (and keeps the users writing now).
        let later = t0 + Duration::from_secs(61);
        for i in 0..2 * PRUNE_AT {
            let v = UserId::parse(&format!("v{i}")).unwrap();
            assert!(w.try_take("1", &v, later));
        }
        let b = w.buckets.lock().unwrap();
        assert!(!b.map.keys().any(|(_, u)| u.as_str().starts_with('u')));
        assert!(b.map.len() <= 2 * PRUNE_AT, "{}", b.map.len());
    }

    #[tokio::test]
    async fn jobs_queue_is_bounded_and_freed() {
        let jobs = Jobs::new(1, 1);
        let first = jobs.enter().await.unwrap();
        // One may wait; the third is refused at once.
        let waiting = jobs.enter();
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none());
        assert!(matches!(jobs.enter().await, Err(DirError::Busy(_))));
        drop(first);
        let second = waiting.await.unwrap();
        drop(second);
        assert_eq!(jobs.entered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place() {
        let jobs = Jobs::new(1, 0);
        let first = jobs.enter().await.unwrap();
        assert!(matches!(jobs.enter().await, Err(DirError::Busy(_))));
        drop(first);
        let jobs = Jobs::new(1, 1);
        let first = jobs.enter().await.unwrap();
        {
            let waiting = jobs.enter();
            tokio::pin!(waiting);
            assert!(waiting.as_mut().now_or_never().is_none());
        }
        assert_eq!(jobs.entered.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(jobs.entered.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn dropping_the_cancel_stops_the_token() {
        let c = Cancel::default();
        let t = c.token();
        assert!(t.check().is_ok());
        drop(c);
        assert!(t.check().is_err());
    }
}
