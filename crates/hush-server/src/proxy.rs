//! Which address a request comes from: the peer, or, when the peer is a
//! configured trusted proxy, the client named by `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Parses `10.0.0.0/8`, `::1/128` or a bare address (a one-address range).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not an IP address or CIDR range".to_owned())
}

/// The trusted proxies of a node.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// From `server.trusted_proxies` (entries that do not parse are skipped;
    /// the configuration was validated at load).
    pub fn new(entries: &[String]) -> Self {
        Self {
            nets: entries.iter().filter_map(|e| parse_net(e).ok()).collect(),
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address. `X-Forwarded-For` is read right to left, skipping
    /// trusted proxies, only when the peer itself is trusted; the first
    /// untrusted hop is the client (a malformed hop stops the walk).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = canonical(peer.ip());
        if self.nets.is_empty() || !self.trusts(peer_ip) {
            return peer_ip;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer_ip;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // A malformed hop: nothing left of it can be believed.
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// `::ffff:1.2.3.4` is `1.2.3.4`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let peer: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let none = TrustedProxies::new(&[]);
        assert_eq!(
            none.client_ip(peer, &headers(&["203.0.113.9"])).to_string(),
            "10.1.2.3"
        );
        let t = TrustedProxies::new(&["10.0.0.0/8".into(), "192.0.2.1".into()]);
        assert_eq!(
            t.client_ip(peer, &headers(&["203.0.113.9"])).to_string(),
            "203.0.113.9"
        );
        // Right to left, skipping trusted hops; a spoofed leftmost entry is ignored.
        assert_eq!(
            t.client_ip(peer, &headers(&["1.1.1.1, 203.0.113.9", "192.0.2.1"]))
                .to_string(),
            "203.0.113.9"
        );
        // Untrusted peer: header ignored.
        let outside: SocketAddr = "198.51.100.7:1".parse().unwrap();
        assert_eq!(
            t.client_ip(outside, &headers(&["203.0.113.9"])).to_string(),
            "198.51.100.7"
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            t.client_ip(peer, &headers(&["1.1.1.1, garbage"]))
                .to_string(),
            "10.1.2.3"
        );
        // IPv4-mapped IPv6 peers match IPv4 ranges.
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        assert_eq!(
            t.client_ip(mapped, &headers(&["203.0.113.9"])).to_string(),
            "203.0.113.9"
        );
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("::1").is_ok());
    }
}
