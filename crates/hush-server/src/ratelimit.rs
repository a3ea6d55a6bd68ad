//! Rate limits: a token bucket for per-connection client-event rates, and a
//! lock-free shared limiter for per-app HTTP API requests (both pure: the
//! caller passes the time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Allows `rate` events per second with bursts of up to `rate`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second.
    rate: f64,
    /// Most tokens held.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` events per second, with bursts of up to
    /// `rate`.
    pub fn new(rate: u32, now: Instant) -> Self {
        Self::with_burst(rate, 0, now)
    }

    /// A full bucket for `rate` events per second with bursts of up to
    /// `burst` (at least `rate`).
    pub fn with_burst(rate: u32, burst: usize, now: Instant) -> Self {
        let rate = f64::from(rate);
        // usize → f64 loses precision only beyond 2^53: no real burst.
        #[allow(clippy::cast_precision_loss)]
        let burst = (burst as f64).max(rate);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// A full bucket for `n` events per minute, with bursts of up to `n`.
    pub fn per_minute(n: u32, now: Instant) -> Self {
        let burst = f64::from(n);
        Self {
            rate: burst / 60.0,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// True when the bucket would be full at `now` (an idle sender: its
    /// state carries no information and may be forgotten).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes one token if available.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A shared limiter of `rate` requests per second with bursts of up to `rate`,
/// as one atomic (GCRA: the "theoretical arrival time" of the next request),
/// so concurrent API requests never wait on a lock.
#[derive(Debug)]
pub struct SharedRate {
    /// Nanoseconds between requests at the steady rate (0 = unlimited).
    interval: u64,
    /// How far ahead of now the arrival time may run (the burst).
    tolerance: u64,
    origin: Instant,
    /// Theoretical arrival time, nanoseconds since `origin`.
    tat: AtomicU64,
}

impl SharedRate {
    /// A limiter for `rate` per second; 0 means unlimited.
    pub fn new(rate: u32, origin: Instant) -> Self {
        let interval = if rate == 0 {
            0
        } else {
            1_000_000_000 / u64::from(rate)
        };
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(rate).saturating_sub(1)),
            origin,
            tat: AtomicU64::new(0),
        }
    }

    /// Takes one request's worth if the rate allows it.
    pub fn try_take(&self, now: Instant) -> bool {
        if self.interval == 0 {
            return true;
        }
        let now = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn shared_rate() {
        let t0 = Instant::now();
        let r = SharedRate::new(5, t0);
        assert_eq!((0..20).filter(|_| r.try_take(t0)).count(), 5);
        assert!(!r.try_take(t0 + Duration::from_millis(100)));
        assert!(r.try_take(t0 + Duration::from_millis(210)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..20).filter(|_| r.try_take(later)).count(), 5);
        let unlimited = SharedRate::new(0, t0);
        assert!((0..1000).all(|_| unlimited.try_take(t0)));
        let one = SharedRate::new(1, t0);
        assert!(one.try_take(t0));
        assert!(!one.try_take(t0 + Duration::from_millis(500)));
        assert!(one.try_take(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn ten_per_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        assert_eq!((0..15).filter(|_| b.try_take(t0)).count(), 10);
        assert!(!b.try_take(t0 + Duration::from_millis(50)));
        assert!(b.try_take(t0 + Duration::from_millis(150)));
        // After a full second the bucket is full again, but no fuller.
        let t2 = t0 + Duration::from_secs(5);
        assert_eq!((0..15).filter(|_| b.try_take(t2)).count(), 10);
        let mut zero = TokenBucket::new(0, t0);
        assert!(!zero.try_take(t2));
    }

    #[test]
    fn per_minute_refills_one_token_every_sixtieth() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(6, t0);
        assert_eq!((0..10).filter(|_| b.try_take(t0)).count(), 6);
        assert!(!b.is_full(t0));
        assert!(!b.try_take(t0 + Duration::from_secs(9)));
        assert!(b.try_take(t0 + Duration::from_secs(11)));
        assert!(b.is_full(t0 + Duration::from_secs(120)));
        let t3 = t0 + Duration::from_secs(600);
        assert_eq!((0..10).filter(|_| b.try_take(t3)).count(), 6);
    }
}
