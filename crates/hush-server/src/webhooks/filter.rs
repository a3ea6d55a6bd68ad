//! Per-endpoint rules beyond event types: which channels an endpoint wants
//! (prefix, suffix, `*`/`?` pattern, like soketi's and sockudo's webhook
//! filters) and the extra headers it gets, checked when the configuration
//! is loaded.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::WebhookConfig;

/// Longest prefix, suffix or pattern (a channel name is at most 200 bytes).
const MAX_FILTER_CHARS: usize = 200;
/// Most extra headers per endpoint.
const MAX_HEADERS: usize = 32;
/// Headers hush sets itself or that change how the request is framed.
const RESERVED: [&str; 9] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "x-pusher-key",
    "x-pusher-signature",
    "proxy-authorization",
    "te",
];

/// The channel rules of one endpoint; every rule given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ChannelFilter {
    prefix: Option<String>,
    suffix: Option<String>,
    pattern: Option<Vec<char>>,
}

impl ChannelFilter {
    /// The rules of `w`.
    pub(super) fn of(w: &WebhookConfig) -> Self {
        Self {
            prefix: w.channel_prefix.clone(),
            suffix: w.channel_suffix.clone(),
            pattern: w.channel_pattern.as_ref().map(|p| p.chars().collect()),
        }
    }

    /// Whether events of `channel` go to the endpoint.
    pub(super) fn matches(&self, channel: &str) -> bool {
        self.prefix.as_ref().is_none_or(|p| channel.starts_with(p))
            && self.suffix.as_ref().is_none_or(|s| channel.ends_with(s))
            && self.pattern.as_ref().is_none_or(|p| {
                let text: Vec<char> = channel.chars().collect();
                glob(p, &text)
            })
    }
}

/// `*` matches any run of characters (also none), `?` exactly one, anything
/// else itself. Greedy with one back-track point: O(pattern × text) at worst.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == '*')
}

/// The extra headers of `w` as sent (validated by [`validate_endpoints`]).
pub(super) fn headers(w: &WebhookConfig) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in &w.headers {
        if let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            value.set_sensitive(true);
            map.insert(name, value);
        }
    }
    map
}

/// Checks the header and channel rules of an app's endpoints; the same URL
/// listed twice must carry the same headers (it is one queue).
pub fn validate_endpoints(hooks: &[WebhookConfig]) -> Result<(), String> {
    for (i, w) in hooks.iter().enumerate() {
        let url = hush_store::redact_url(&w.url);
        let bad = |why: String| format!("webhook {url}: {why}");
        if w.headers.len() > MAX_HEADERS {
            return Err(bad(format!("more than {MAX_HEADERS} headers")));
        }
        for (k, v) in &w.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("header '{k}' is not a valid header name")))?;
            if RESERVED.contains(&name.as_str()) {
                return Err(bad(format!(
                    "header '{k}' is set by hush and cannot be replaced"
                )));
            }
            HeaderValue::from_str(v).map_err(|_| {
                bad(format!(
                    "header '{k}': the value must be visible ASCII (no line breaks)"
                ))
            })?;
        }
        for (key, value) in [
            ("channel_prefix", &w.channel_prefix),
            ("channel_suffix", &w.channel_suffix),
            ("channel_pattern", &w.channel_pattern),
        ] {
            if let Some(v) = value {
                if v.is_empty() {
                    return Err(bad(format!(
                        "{key} is empty (omit it to match every channel)"
                    )));
                }
                if v.chars().count() > MAX_FILTER_CHARS {
                    return Err(bad(format!(
                        "{key} is longer than {MAX_FILTER_CHARS} characters"
                    )));
                }
            }
        }
        if hooks[..i]
            .iter()
            .any(|o| o.url == w.url && o.headers != w.headers)
        {
            return Err(bad(
                "listed twice with different headers (one URL is one delivery queue)".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, t: &str) -> bool {
        glob(
            &p.chars().collect::<Vec<_>>(),
            &t.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(g("private-*-orders", "private-shop-orders"));
        assert!(g("private-*-orders", "private--orders"));
        assert!(!g("private-*-orders", "private-shop-orders-x"));
        assert!(g("*", ""));
        assert!(g("*", "anything"));
        assert!(g("presence-*", "presence-room"));
        assert!(!g("presence-*", "private-room"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!g("*a*b*c*", "xxaxxcxxbxx"));
        assert!(g("exact", "exact"));
        assert!(!g("exact", "exactly"));
        assert!(!g("", "x"));
        assert!(g("", ""));
    }

    #[test]
    fn glob_worst_case_is_bounded() {
        // The classic exponential case for naive back-tracking matchers.
        let p = "*a".repeat(100);
        let t = "a".repeat(199) + "b";
        let start = std::time::Instant::now();
        assert!(!g(&p, &t));
        assert!(start.elapsed() < std::time::Duration::from_millis(200));
    }

    fn hook(extra: &str) -> WebhookConfig {
        toml::from_str(&format!("url='http://x/'\n{extra}")).unwrap()
    }

    #[test]
    fn every_given_rule_must_match() {
        let f = ChannelFilter::of(&hook(
            "channel_prefix='private-'\nchannel_suffix='-orders'\nchannel_pattern='*shop*'",
        ));
        assert!(f.matches("private-shop-orders"));
        assert!(!f.matches("private-bar-orders"));
        assert!(!f.matches("presence-shop-orders"));
        assert!(!f.matches("private-shop-order"));
        assert!(ChannelFilter::of(&hook("")).matches("anything"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for (extra, why) in [
            ("headers={'X-Pusher-Signature'='x'}", "set by hush"),
            ("headers={'content-length'='1'}", "set by hush"),
            ("headers={'bad name'='x'}", "not a valid header name"),
            ("headers={'X-A'=\"a\\nb\"}", "visible ASCII"),
            ("channel_prefix=''", "channel_prefix is empty"),
            ("channel_pattern=''", "channel_pattern is empty"),
        ] {
            let e = validate_endpoints(&[hook(extra)]).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
        }
        let long = format!("channel_pattern='{}'", "a".repeat(201));
        assert!(validate_endpoints(&[hook(&long)]).is_err());
        let a = hook("headers={'Authorization'='Bearer 1'}");
        let b = hook("headers={'Authorization'='Bearer 2'}");
        assert!(
            validate_endpoints(&[a.clone(), b])
                .unwrap_err()
                .contains("twice")
        );
        assert!(validate_endpoints(&[a.clone(), a.clone()]).is_ok());
        let h = headers(&a);
        assert_eq!(h["authorization"], "Bearer 1");
        assert!(h["authorization"].is_sensitive());
    }
}
