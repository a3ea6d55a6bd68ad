//! Reconnection policy: what a close code means (PROTOCOL.md §1.5) and
//! exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng;

/// What to do after the connection closed with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseAction {
    /// 4000–4099 (and ≥ 4300): do not reconnect with the same parameters.
    Refused,
    /// 4100–4199: reconnect after at least 1 s, backing off.
    Backoff,
    /// 4200–4299: reconnect at once.
    RetryNow,
    /// Anything else (network loss, normal WebSocket codes): reconnect with backoff.
    Reconnect,
}

/// Classifies a close (or `pusher:error`) code.
pub(crate) fn classify(code: Option<u16>) -> CloseAction {
    match code {
        Some(4000..=4099) => CloseAction::Refused,
        Some(4100..=4199) => CloseAction::Backoff,
        Some(4200..=4299) => CloseAction::RetryNow,
        Some(4300..=4999) => CloseAction::Refused,
        _ => CloseAction::Reconnect,
    }
}

/// Exponential backoff with full jitter: attempt `n` waits a uniformly random
/// time in `[0, min(cap, base · 2ⁿ)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The ceiling for attempt `n` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random delay for attempt `n`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_classes() {
        assert_eq!(classify(Some(4001)), CloseAction::Refused);
        assert_eq!(classify(Some(4009)), CloseAction::Refused);
        assert_eq!(classify(Some(4100)), CloseAction::Backoff);
        assert_eq!(classify(Some(4200)), CloseAction::RetryNow);
        assert_eq!(classify(Some(4201)), CloseAction::RetryNow);
        assert_eq!(classify(Some(4301)), CloseAction::Refused);
        assert_eq!(classify(Some(1006)), CloseAction::Reconnect);
        assert_eq!(classify(None), CloseAction::Reconnect);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_inside() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(10), Duration::from_secs(2));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(2));
        for n in 0..50 {
            assert!(b.delay(n % 8) <= b.ceiling(n % 8));
        }
    }
}
