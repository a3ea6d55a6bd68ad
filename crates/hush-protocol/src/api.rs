//! HTTP API request signatures, auth version 1.0 (PROTOCOL.md §12.2).

use md5::{Digest, Md5};

use crate::auth::{Signature, hmac_sha256, verify_hmac};

/// How far `auth_timestamp` may be from the server clock, in seconds.
pub const MAX_TIMESTAMP_SKEW_SECS: u64 = 600;

/// Most query parameters an API request may carry (Pusher's use at most
/// eight); more are refused before any is decoded.
pub const MAX_QUERY_PARAMS: usize = 64;

/// Longest raw query string accepted, bytes.
pub const MAX_QUERY_BYTES: usize = 8192;

/// MD5 of the empty body.
pub const EMPTY_BODY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// Query parameters of an API request: keys lower-cased, values decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams(Vec<(String, String)>);

/// Why an API request's query or signature was refused. Each maps to one HTTP
/// status ([`ApiAuthError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    /// A query key appears twice.
    #[error("Duplicate query parameter: {0}")]
    DuplicateParam(String),
    /// More than [`MAX_QUERY_PARAMS`] parameters, or a query string longer
    /// than [`MAX_QUERY_BYTES`].
    #[error(
        "Query string too large: at most {MAX_QUERY_PARAMS} parameters and {MAX_QUERY_BYTES} bytes"
    )]
    QueryTooLarge,
    /// A required auth parameter is missing.
    #[error("Missing query parameter: {0}")]
    MissingParam(&'static str),
    /// `auth_version` is not `1.0`.
    #[error("Unsupported auth_version: expected 1.0")]
    BadVersion,
    /// `auth_timestamp` is not a number.
    #[error("Invalid auth_timestamp")]
    BadTimestamp,
    /// `auth_timestamp` is too far from now.
    #[error("Timestamp expired: Given timestamp ({given}) not within 600s of server time ({now})")]
    Expired {
        /// The client's timestamp.
        given: u64,
        /// The server's clock.
        now: u64,
    },
    /// `body_md5` missing or wrong.
    #[error("Invalid body_md5: it must be the MD5 hex digest of the request body")]
    BodyMd5,
    /// The signature does not match.
    #[error("Invalid signature: you should have sent HmacSHA256Hex({0:?}, your_secret_key)")]
    BadSignature(String),
}

impl ApiAuthError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::DuplicateParam(_) | Self::QueryTooLarge => 400,
            Self::MissingParam(_)
            | Self::BadVersion
            | Self::BadTimestamp
            | Self::Expired { .. }
            | Self::BodyMd5
            | Self::BadSignature(_) => 401,
        }
    }
}

impl QueryParams {
    /// Parses a raw query string (`a=1&b=x%2Cy`): percent-decodes, turns `+`
    /// into space, lower-cases keys, and refuses duplicate keys. Linear in
    /// the input: its size and parameter count are checked before anything
    /// is decoded, and duplicates are found by sorting.
    pub fn parse(raw: &str) -> Result<Self, ApiAuthError> {
        if raw.len() > MAX_QUERY_BYTES
            || raw
                .split('&')
                .filter(|p| !p.is_empty())
                .nth(MAX_QUERY_PARAMS)
                .is_some()
        {
            return Err(ApiAuthError::QueryTooLarge);
        }
        let out: Vec<(String, String)> = form_urlencoded_pairs(raw)
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let mut keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(ApiAuthError::DuplicateParam(w[0].to_owned()));
        }
        Ok(Self(out))
    }

    /// Builds parameters from pairs (keys lower-cased).
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }

    /// The value of `key` (lower case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds or replaces a parameter.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let key = key.to_ascii_lowercase();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// All keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// `k=v&…` sorted by key, without `auth_signature`, values unescaped.
    pub fn canonical(&self) -> String {
        let mut pairs: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "auth_signature")
            .collect();
        pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut s = String::new();
        for (i, (k, v)) in pairs.into_iter().enumerate() {
            if i > 0 {
                s.push('&');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    /// Percent-encodes the parameters into a query string (for clients).
    pub fn to_query_string(&self) -> String {
        let mut s = String::new();
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push('&');
            }
            s.push_str(&percent_encode(k));
            s.push('=');
            s.push_str(&percent_encode(v));
        }
        s
    }
}

fn form_urlencoded_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = bytes.get(i + 1).and_then(|c| hex_val(*c));
                let l = bytes.get(i + 2).and_then(|c| hex_val(*c));
                match (h, l) {
                    (Some(h), Some(l)) => {
                        out.push((h << 4) | l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lower-case hex MD5 of a body.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// `METHOD\nPATH\nQUERY`.
pub fn string_to_sign(method: &str, path: &str, params: &QueryParams) -> String {
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        params.canonical()
    )
}

/// Signs a request (for clients and tests).
pub fn sign_request(secret: &[u8], method: &str, path: &str, params: &QueryParams) -> Signature {
    hmac_sha256(secret, string_to_sign(method, path, params).as_bytes())
}

/// Builds the full signed query string for a request, as the Pusher SDKs do.
pub fn signed_query(
    key: &str,
    secret: &[u8],
    method: &str,
    path: &str,
    mut params: QueryParams,
    body: &[u8],
    timestamp: u64,
) -> String {
    params.set("auth_key", key);
    params.set("auth_timestamp", timestamp.to_string());
    params.set("auth_version", "1.0");
    if !body.is_empty() {
        params.set("body_md5", body_md5(body));
    }
    let sig = sign_request(secret, method, path, &params);
    params.set("auth_signature", sig.to_hex());
    params.to_query_string()
}

/// Verifies a request whose app (found by `auth_key`) has `secret`.
///
/// Checks, in order: `auth_version`, the timestamp window, `body_md5`, and the
/// signature (constant time). `now` is Unix seconds.
pub fn verify_request(
    secret: &[u8],
    method: &str,
    path: &str,
    params: &QueryParams,
    body: &[u8],
    now: u64,
) -> Result<(), ApiAuthError> {
    if params
        .get("auth_version")
        .ok_or(ApiAuthError::MissingParam("auth_version"))?
        != "1.0"
    {
        return Err(ApiAuthError::BadVersion);
    }
    let ts = params
        .get("auth_timestamp")
        .ok_or(ApiAuthError::MissingParam("auth_timestamp"))?;
    if ts.is_empty() || ts.len() > 19 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiAuthError::BadTimestamp);
    }
    let given: u64 = ts.parse().map_err(|_| ApiAuthError::BadTimestamp)?;
    if given.abs_diff(now) > MAX_TIMESTAMP_SKEW_SECS {
        return Err(ApiAuthError::Expired { given, now });
    }
    match params.get("body_md5") {
        Some(md5) if !md5.eq_ignore_ascii_case(&body_md5(body)) => {
            return Err(ApiAuthError::BodyMd5);
        }
        Some(_) => {}
        None if !body.is_empty() => return Err(ApiAuthError::BodyMd5),
        None => {}
    }
    let sig_hex = params
        .get("auth_signature")
        .ok_or(ApiAuthError::MissingParam("auth_signature"))?;
    let to_sign = string_to_sign(method, path, params);
    let mut sig = [0u8; 32];
    let ok = sig_hex.len() == 64
        && hex::decode_to_slice(sig_hex, &mut sig).is_ok()
        && verify_hmac(secret, to_sign.as_bytes(), &sig);
    if ok {
        Ok(())
    } else {
        Err(ApiAuthError::BadSignature(to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &[u8] = b"7ad3773142a6692b25b8";
    const TS: u64 = 1353088179;

    fn base() -> QueryParams {
        QueryParams::from_pairs([
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
        ])
    }

    #[test]
    fn kat_trigger() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let mut p = base();
        p.set("body_md5", body_md5(body));
        assert_eq!(
            string_to_sign("POST", "/apps/3/events", &p),
            "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
        );
        let sig = sign_request(SECRET, "POST", "/apps/3/events", &p);
        assert_eq!(
            sig.to_hex(),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        let q = signed_query(
            KEY,
            SECRET,
            "POST",
            "/apps/3/events",
            QueryParams::default(),
            body,
            TS,
        );
        let parsed = QueryParams::parse(&q).unwrap();
        assert_eq!(
            parsed.get("auth_signature"),
            Some("da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c")
        );
        assert!(verify_request(SECRET, "POST", "/apps/3/events", &parsed, body, TS + 599).is_ok());
        assert!(matches!(
            verify_request(SECRET, "POST", "/apps/3/events", &parsed, body, TS + 601),
            Err(ApiAuthError::Expired { .. })
        ));
        assert_eq!(
            verify_request(SECRET, "POST", "/apps/3/events", &parsed, b"{}", TS),
            Err(ApiAuthError::BodyMd5)
        );
        assert!(matches!(
            verify_request(b"other", "POST", "/apps/3/events", &parsed, body, TS),
            Err(ApiAuthError::BadSignature(_))
        ));
        assert!(matches!(
            verify_request(SECRET, "POST", "/apps/4/events", &parsed, body, TS),
            Err(ApiAuthError::BadSignature(_))
        ));
    }

    #[test]
    fn kat_get_requests() {
        let raw = "filter_by_prefix=presence-&info=user_count&auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&auth_signature=16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291";
        let p = QueryParams::parse(raw).unwrap();
        assert!(verify_request(SECRET, "GET", "/apps/3/channels", &p, b"", TS).is_ok());
        // PHP percent-encodes the comma; the decoded value is signed.
        let raw = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&info=user_count%2Csubscription_count&auth_signature=377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d";
        let p = QueryParams::parse(raw).unwrap();
        assert!(
            verify_request(
                SECRET,
                "GET",
                "/apps/3/channels/presence-foobar",
                &p,
                b"",
                TS
            )
            .is_ok()
        );
    }

    #[test]
    fn kat_terminate_and_batch() {
        let mut p = base();
        p.set("body_md5", body_md5(b"{}"));
        assert_eq!(p.get("body_md5"), Some("99914b932bd37a50b983c5e7c90ae93b"));
        assert_eq!(
            sign_request(
                SECRET,
                "POST",
                "/apps/3/users/12345/terminate_connections",
                &p
            )
            .to_hex(),
            "01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e"
        );
        let body = br#"{"batch":[{"channel":"private-encrypted-foo","name":"my-event","data":"{\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"ciphertext\":\"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=\"}"}]}"#;
        let mut p = base();
        p.set("body_md5", body_md5(body));
        assert_eq!(p.get("body_md5"), Some("9034ba7ee3556955f58a183c7cb7ebc6"));
        assert_eq!(
            sign_request(SECRET, "POST", "/apps/3/batch_events", &p).to_hex(),
            "343d24955b6f45c0e65e8d4069f6edeccbe1f6eab3c7412cf200ce9532d1f5c5"
        );
        assert_eq!(body_md5(b""), EMPTY_BODY_MD5);
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            QueryParams::parse("a=1&A=2"),
            Err(ApiAuthError::DuplicateParam("a".into()))
        );
        let p = QueryParams::parse("Name=Something+else&x=%zz&y=%41").unwrap();
        assert_eq!(p.get("name"), Some("Something else"));
        assert_eq!(p.get("x"), Some("%zz"));
        assert_eq!(p.get("y"), Some("A"));
        assert_eq!(
            QueryParams::parse("auth_key=foo&Name=Something else")
                .unwrap()
                .canonical(),
            "auth_key=foo&name=Something else"
        );
        let p = QueryParams::parse("a=%").unwrap();
        assert_eq!(p.get("a"), Some("%"));
        let p = QueryParams::parse("a=%4").unwrap();
        assert_eq!(p.get("a"), Some("%4"));
    }

    #[test]
    fn oversized_queries_are_refused_before_decoding() {
        let many: String = (0..16_645)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(QueryParams::parse(&many), Err(ApiAuthError::QueryTooLarge));
        let at_limit: String = (0..MAX_QUERY_PARAMS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            QueryParams::parse(&at_limit).unwrap().keys().count(),
            MAX_QUERY_PARAMS
        );
        let one_more = format!("{at_limit}&z=1");
        assert_eq!(
            QueryParams::parse(&one_more),
            Err(ApiAuthError::QueryTooLarge)
        );
        let long = format!("a={}", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(QueryParams::parse(&long), Err(ApiAuthError::QueryTooLarge));
        // Empty pairs do not count; duplicates are still found after sorting.
        assert!(QueryParams::parse(&"&".repeat(100)).is_ok());
        assert_eq!(
            QueryParams::parse("b=1&a=2&B=3"),
            Err(ApiAuthError::DuplicateParam("b".into()))
        );
    }

    #[test]
    fn missing_and_bad_params() {
        let p = QueryParams::from_pairs([("auth_key", KEY)]);
        assert_eq!(
            verify_request(SECRET, "GET", "/", &p, b"", TS),
            Err(ApiAuthError::MissingParam("auth_version"))
        );
        let mut p = base();
        p.set("auth_version", "2.0");
        assert_eq!(
            verify_request(SECRET, "GET", "/", &p, b"", TS),
            Err(ApiAuthError::BadVersion)
        );
        let mut p = base();
        p.set("auth_timestamp", "-5");
        assert_eq!(
            verify_request(SECRET, "GET", "/", &p, b"", TS),
            Err(ApiAuthError::BadTimestamp)
        );
    }
}
