//! Activity tracking for one connection (PROTOCOL.md §1.6), pure: the caller
//! passes the time, so timeouts are tested without sleeping.

use std::time::{Duration, Instant};

/// What the connection must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing yet.
    Wait,
    /// Send `pusher:ping`.
    SendPing,
    /// No answer to our ping: close with 4201.
    PongTimeout,
}

/// Server-side keepalive: ping after `idle` of client silence, give up
/// `pong_timeout` after the ping.
#[derive(Debug, Clone)]
pub struct Keepalive {
    idle: Duration,
    pong_timeout: Duration,
    last_seen: Instant,
    ping_sent: Option<Instant>,
}

impl Keepalive {
    /// Starts tracking at `now`.
    pub fn new(idle: Duration, pong_timeout: Duration, now: Instant) -> Self {
        Self {
            idle,
            pong_timeout,
            last_seen: now,
            ping_sent: None,
        }
    }

    /// Any frame from the client proves it is alive.
    pub fn on_activity(&mut self, now: Instant) {
        self.last_seen = now;
        self.ping_sent = None;
    }

    /// When [`Keepalive::poll`] should next be called.
    pub fn deadline(&self) -> Instant {
        match self.ping_sent {
            Some(at) => at + self.pong_timeout,
            None => self.last_seen + self.idle,
        }
    }

    /// Advances to `now`.
    pub fn poll(&mut self, now: Instant) -> KeepaliveAction {
        if now < self.deadline() {
            return KeepaliveAction::Wait;
        }
        match self.ping_sent {
            Some(_) => KeepaliveAction::PongTimeout,
            None => {
                self.ping_sent = Some(now);
                KeepaliveAction::SendPing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_then_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut k = Keepalive::new(s(125), s(30), t0);
        assert_eq!(k.poll(t0 + s(124)), KeepaliveAction::Wait);
        assert_eq!(k.poll(t0 + s(125)), KeepaliveAction::SendPing);
        assert_eq!(k.deadline(), t0 + s(155));
        assert_eq!(k.poll(t0 + s(150)), KeepaliveAction::Wait);
        assert_eq!(k.poll(t0 + s(155)), KeepaliveAction::PongTimeout);
    }

    #[test]
    fn activity_resets() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut k = Keepalive::new(s(10), s(5), t0);
        assert_eq!(k.poll(t0 + s(10)), KeepaliveAction::SendPing);
        k.on_activity(t0 + s(12));
        assert_eq!(k.deadline(), t0 + s(22));
        assert_eq!(k.poll(t0 + s(16)), KeepaliveAction::Wait);
    }
}
