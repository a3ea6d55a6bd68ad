//! Per-app allowed origins for WebSocket connections (the behaviour of
//! sockudo, a Pusher-compatible server): an empty list allows every origin;
//! otherwise the `Origin` header must match a pattern, and a connection without
//! one is refused. Refusals get `pusher:error` 4009 and close 4009.

/// A compiled list of origin patterns.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// `Some("https")` when the pattern names a scheme.
    scheme: Option<String>,
    /// Host (and `:port`), lower case; for wildcards, the suffix after `*.`.
    host: String,
    wildcard: bool,
    any: bool,
}

impl Pattern {
    fn parse(p: &str) -> Self {
        let p = p.trim().trim_end_matches('/').to_ascii_lowercase();
        if p == "*" {
            return Self {
                scheme: None,
                host: String::new(),
                wildcard: false,
                any: true,
            };
        }
        let (scheme, rest) = match p.split_once("://") {
            Some((s, r)) => (Some(s.to_owned()), r.to_owned()),
            None => (None, p),
        };
        let (wildcard, host) = match rest.strip_prefix("*.") {
            Some(h) => (true, h.to_owned()),
            None => (false, rest),
        };
        Self {
            scheme,
            host,
            wildcard,
            any: false,
        }
    }

    fn matches(&self, scheme: &str, host: &str) -> bool {
        if self.any {
            return true;
        }
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.wildcard {
            // `*.example.com` matches `a.example.com`, `a.b.example.com`, not `example.com`.
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl AllowedOrigins {
    /// Compiles `allowed_origins` from an app's configuration.
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns.iter().map(|p| Pattern::parse(p)).collect(),
        }
    }

    /// Whether a connection with this `Origin` header value may proceed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let Some(origin) = origin else {
            return false;
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let Some((scheme, host)) = origin.split_once("://") else {
            // `null` (sandboxed frames, file://) and anything malformed.
            return false;
        };
        self.patterns.iter().any(|p| p.matches(scheme, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(p: &[&str]) -> AllowedOrigins {
        AllowedOrigins::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn empty_allows_everything_even_without_origin() {
        assert!(o(&[]).allows(None));
        assert!(o(&[]).allows(Some("https://evil.example")));
    }

    #[test]
    fn patterns() {
        let a = o(&[
            "https://app.example.com",
            "localhost:3000",
            "*.staging.example.com",
            "https://*.secure.example",
        ]);
        assert!(a.allows(Some("https://app.example.com")));
        assert!(a.allows(Some("HTTPS://App.Example.com/")));
        assert!(!a.allows(Some("http://app.example.com")));
        assert!(!a.allows(Some("https://app.example.com.evil.test")));
        assert!(a.allows(Some("http://localhost:3000")));
        assert!(a.allows(Some("https://localhost:3000")));
        assert!(!a.allows(Some("http://localhost:3001")));
        assert!(a.allows(Some("http://a.staging.example.com")));
        assert!(a.allows(Some("https://a.b.staging.example.com")));
        assert!(!a.allows(Some("https://staging.example.com")));
        assert!(!a.allows(Some("https://evilstaging.example.com")));
        assert!(a.allows(Some("https://x.secure.example")));
        assert!(!a.allows(Some("http://x.secure.example")));
        assert!(!a.allows(None));
        assert!(!a.allows(Some("null")));
        assert!(o(&["*"]).allows(Some("https://anything.test")));
        assert!(!o(&["*"]).allows(None));
    }
}
