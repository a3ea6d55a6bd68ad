//! Admission of TCP connections before they are a WebSocket: how many
//! sockets may sit in the HTTP phase (request line, headers, body, the
//! WebSocket handshake, keep-alive idle), per node and per source address,
//! and which one gives way when the node runs short.
//!
//! Every accepted socket holds a [`Slot`] until its HTTP connection ends or
//! upgrades. The [`Gate`] decides at accept time, before any byte is read:
//!
//! - a source address already holding `max_per_ip` slots is refused at once
//!   (trusted proxies are exempt: every client behind them shares their
//!   address);
//! - when `max_pending` slots are taken, the **oldest** one is evicted to make
//!   room, so a slowloris attacker who fills the table cannot keep
//!   legitimate requests out; they only evict each other;
//! - when the process runs short of file descriptors (open sockets within
//!   `reserve` of the limit), the oldest pending slot is evicted, and if
//!   there is none the new socket is shed: WebSocket connections already
//!   open are never closed to make room;
//! - a socket accepted while the node is at `max_connections` (WebSockets
//!   plus pending sockets, counted from accept on) is marked over capacity:
//!   it is still served over HTTP (`/up`, the API), but a WebSocket upgrade
//!   on it is refused with 4100.
//!
//! The gate is pure bookkeeping (no I/O, no clock); eviction is a
//! notification the connection's task acts on.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::lock::lock;

/// Metric: sockets the gate closed or refused, by reason (`evicted`,
/// `per_address`, `descriptors`). Counted here, where the decision is made,
/// once per socket.
pub const METRIC_SHED: &str = "hush_connections_shed_total";

/// What the per-address cap counts by: an IPv4 address, or the /64 an IPv6
/// address belongs to (one host usually has a whole /64, so counting single
/// IPv6 addresses would cap nothing). IPv4-mapped IPv6 addresses count as
/// their IPv4 address.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// The gate's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Sockets in the HTTP phase, node-wide (at least 1).
    pub max_pending: usize,
    /// Sockets in the HTTP phase from one address (0 = no per-address cap).
    pub max_per_ip: usize,
    /// Sockets (pending and WebSocket) the process may hold: the descriptor
    /// limit minus a reserve for the store, logs and the listeners.
    pub max_sockets: usize,
    /// Node capacity in connections, counted from accept (0 = unlimited).
    pub max_connections: usize,
}

/// Why a new socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Its address already holds `max_per_ip` pending sockets.
    PerAddress,
    /// The process is out of descriptors and no pending socket could give way.
    Descriptors,
}

impl Shed {
    /// Counts this refusal in [`METRIC_SHED`].
    fn counted(self) -> Self {
        metrics::counter!(METRIC_SHED, "reason" => self.label()).increment(1);
        self
    }

    /// A label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Descriptors => "descriptors",
        }
    }
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    evict: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    /// Pending sockets by accept order (oldest first).
    pending: BTreeMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    /// Evicts the oldest pending socket; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        match self.pending.pop_first() {
            Some((_, e)) => {
                self.release_ip(e.ip);
                e.evict.notify_one();
                metrics::counter!(METRIC_SHED, "reason" => "evicted").increment(1);
                true
            }
            None => false,
        }
    }

    fn release_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// Decides which sockets are admitted; shared by the accept loop and the
/// connection tasks (whose [`Slot`]s release their place on drop).
pub struct Gate {
    limits: GateLimits,
    exempt: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    table: Mutex<Table>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("limits", &self.limits)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate with `limits`; addresses for which `exempt` is true (trusted
    /// proxies) have no per-address cap.
    pub fn new(
        limits: GateLimits,
        exempt: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            limits: GateLimits {
                max_pending: limits.max_pending.max(1),
                ..limits
            },
            exempt: Box::new(exempt),
            table: Mutex::new(Table::default()),
        }
    }

    /// Admits a socket from `ip` while `websockets` WebSocket connections are
    /// open, evicting the oldest pending socket where the rules above say so.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, websockets: usize) -> Result<Slot, Shed> {
        let exempt = (self.exempt)(ip);
        let ip = source_key(ip);
        let mut t = lock(&self.table);
        if self.limits.max_per_ip > 0
            && t.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_per_ip
            && !exempt
        {
            return Err(Shed::PerAddress.counted());
        }
        if t.pending.len() >= self.limits.max_pending {
            t.evict_oldest();
        }
        if websockets.saturating_add(t.pending.len()) >= self.limits.max_sockets
            && !t.evict_oldest()
        {
            return Err(Shed::Descriptors.counted());
        }
        let over_capacity = self.limits.max_connections > 0
            && websockets.saturating_add(t.pending.len()) >= self.limits.max_connections;
        let id = t.next;
        t.next += 1;
        let evict = Arc::new(Notify::new());
        t.pending.insert(
            id,
            Entry {
                ip,
                evict: evict.clone(),
            },
        );
        *t.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            gate: self.clone(),
            id,
            evict,
            over_capacity,
        })
    }

    /// Evicts the oldest pending socket (the accept loop calls this when the
    /// kernel refuses a descriptor). False if there was none.
    pub fn evict_oldest(&self) -> bool {
        lock(&self.table).evict_oldest()
    }

    /// Sockets in the HTTP phase now.
    pub fn pending(&self) -> usize {
        lock(&self.table).pending.len()
    }
}

/// One admitted socket's place in the HTTP phase; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    id: u64,
    evict: Arc<Notify>,
    over_capacity: bool,
}

impl Slot {
    /// Resolves when the gate evicts this socket (close it then).
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Accepted while the node was at `max_connections`: serve HTTP, refuse a
    /// WebSocket upgrade with 4100.
    pub fn over_capacity(&self) -> bool {
        self.over_capacity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = lock(&self.gate.table);
        if let Some(e) = t.pending.remove(&self.id) {
            t.release_ip(e.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn gate(max_pending: usize, max_per_ip: usize, max_sockets: usize) -> Arc<Gate> {
        Arc::new(Gate::new(
            GateLimits {
                max_pending,
                max_per_ip,
                max_sockets,
                max_connections: 0,
            },
            |ip| ip == IpAddr::from([10, 0, 0, 1]),
        ))
    }

    async fn is_evicted(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(20), slot.evicted())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_full_table_evicts_the_oldest_not_the_newcomer() {
        let g = gate(3, 0, 1000);
        let a = g.admit(ip(2), 0).unwrap();
        let b = g.admit(ip(3), 0).unwrap();
        let c = g.admit(ip(4), 0).unwrap();
        let d = g.admit(ip(5), 0).unwrap();
        assert!(is_evicted(&a).await);
        assert!(!is_evicted(&b).await && !is_evicted(&c).await && !is_evicted(&d).await);
        assert_eq!(g.pending(), 3);
        // The evicted slot's drop does not free anyone else's place.
        drop(a);
        assert_eq!(g.pending(), 3);
        drop(b);
        assert_eq!(g.pending(), 2);
    }

    #[tokio::test]
    async fn one_address_cannot_take_more_than_its_share() {
        let g = gate(100, 2, 1000);
        let _a = g.admit(ip(2), 0).unwrap();
        let b = g.admit(ip(2), 0).unwrap();
        assert_eq!(g.admit(ip(2), 0).unwrap_err(), Shed::PerAddress);
        // Others still get in; a freed place can be taken again.
        let _c = g.admit(ip(3), 0).unwrap();
        drop(b);
        let _d = g.admit(ip(2), 0).unwrap();
        // A trusted proxy carries many clients: no per-address cap.
        let proxied: Vec<Slot> = (0..10)
            .map(|_| g.admit(IpAddr::from([10, 0, 0, 1]), 0).unwrap())
            .collect();
        assert_eq!(proxied.len(), 10);
    }

    #[tokio::test]
    async fn one_ipv6_host_is_one_address_for_the_cap() {
        let g = gate(100, 2, 1000);
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, last]);
        let _a = g.admit(v6(1), 0).unwrap();
        let _b = g.admit(v6(2), 0).unwrap();
        // Another address of the same /64 is the same source.
        assert_eq!(g.admit(v6(3), 0).unwrap_err(), Shed::PerAddress);
        // Another /64 is another source.
        let _c = g
            .admit(IpAddr::from([0x2001, 0xdb8, 1, 3, 0, 0, 0, 1]), 0)
            .unwrap();
        // An IPv4-mapped address counts as its IPv4 address.
        let _d = g.admit(ip(9), 0).unwrap();
        let _e = g.admit(ip(9), 0).unwrap();
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(127, 0, 0, 9).to_ipv6_mapped());
        assert_eq!(g.admit(mapped, 0).unwrap_err(), Shed::PerAddress);
    }

    #[tokio::test]
    async fn out_of_descriptors_evicts_pending_but_never_a_websocket() {
        let g = gate(100, 0, 10);
        // 8 WebSockets and 2 pending sockets use all 10 descriptors.
        let a = g.admit(ip(2), 8).unwrap();
        let b = g.admit(ip(3), 8).unwrap();
        // The next one makes room by evicting the oldest pending socket.
        let c = g.admit(ip(4), 8).unwrap();
        assert!(is_evicted(&a).await);
        assert!(!is_evicted(&b).await);
        drop((b, c));
        // With every descriptor held by WebSockets, newcomers are shed.
        assert_eq!(g.admit(ip(5), 10).unwrap_err(), Shed::Descriptors);
    }

    #[tokio::test]
    async fn capacity_counts_pending_sockets_from_accept() {
        let g = Arc::new(Gate::new(
            GateLimits {
                max_pending: 100,
                max_per_ip: 0,
                max_sockets: 1000,
                max_connections: 3,
            },
            |_| false,
        ));
        let a = g.admit(ip(2), 1).unwrap();
        assert!(!a.over_capacity());
        let b = g.admit(ip(3), 1).unwrap();
        assert!(!b.over_capacity());
        // 1 WebSocket + 2 pending = 3: this one is over capacity.
        let c = g.admit(ip(4), 1).unwrap();
        assert!(c.over_capacity());
        drop((a, b, c));
        assert!(!g.admit(ip(4), 1).unwrap().over_capacity());
    }
}
