//! The HTTP API's query string, body digest and signature check (auth version
//! 1.0, PROTOCOL.md §12.2), as `hush_protocol::api` does them for every API
//! request before anything else happens.
//!
//! Oracles: no panic; accepted parameters have lower-case, unique keys and
//! survive `to_query_string` → `parse` unchanged; a request signed by
//! `signed_query` verifies, and stops verifying when the method, path, body,
//! clock or any parameter changes; a hostile query verifies only if it carries
//! exactly the signature of what it says.
#![no_main]

use arbitrary::Arbitrary;
use hush_protocol::api::{self, ApiAuthError, MAX_TIMESTAMP_SKEW_SECS, QueryParams};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "278d425bdf160c739803";
const SECRET: &[u8] = b"7ad3773142a6692b25b8";

#[derive(Arbitrary, Debug)]
struct Input {
    query: String,
    method: String,
    path: String,
    body: Vec<u8>,
    now: u64,
    skew: i16,
    params: Vec<(String, String)>,
    tamper: Tamper,
}

#[derive(Arbitrary, Debug)]
enum Tamper {
    Method(String),
    Path(String),
    Body(Vec<u8>),
    Param(String, String),
}

fn check_hostile(input: &Input) {
    let Ok(params) = QueryParams::parse(&input.query) else {
        return;
    };
    let keys: Vec<&str> = params.keys().collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(*k, k.to_ascii_lowercase());
        assert!(!keys[..i].contains(k), "duplicate key {k}");
    }
    let encoded = params.to_query_string();
    if encoded.len() <= api::MAX_QUERY_BYTES {
        // Percent-encoding can grow a query past the cap; otherwise it
        // must come back unchanged.
        let again = QueryParams::parse(&encoded).expect("re-encoded query parses");
        assert_eq!(again, params);
    }
    match api::verify_request(
        SECRET,
        &input.method,
        &input.path,
        &params,
        &input.body,
        input.now,
    ) {
        Ok(()) => {
            let expected = api::sign_request(SECRET, &input.method, &input.path, &params).to_hex();
            let given = params.get("auth_signature").expect("signature present");
            assert!(given.eq_ignore_ascii_case(&expected));
            let ts: u64 = params
                .get("auth_timestamp")
                .and_then(|t| t.parse().ok())
                .expect("timestamp");
            assert!(ts.abs_diff(input.now) <= MAX_TIMESTAMP_SKEW_SECS);
        }
        Err(e) => assert!(matches!(e.status(), 400 | 401)),
    }
}

fn check_signed(input: &Input) {
    // What an SDK sends: the app's own parameters (not auth_*), signed.
    let mut own: Vec<(String, String)> = Vec::new();
    for (k, v) in &input.params {
        let k = k.to_ascii_lowercase();
        if !k.starts_with("auth_") && k != "body_md5" && !own.iter().any(|(have, _)| *have == k) {
            own.push((k, v.clone()));
        }
    }
    let ts = input.now.saturating_add_signed(i64::from(input.skew));
    let query = api::signed_query(
        KEY,
        SECRET,
        &input.method,
        &input.path,
        QueryParams::from_pairs(own.iter().map(|(k, v)| (k.as_str(), v.clone()))),
        &input.body,
        ts,
    );
    let params = match QueryParams::parse(&query) {
        Ok(p) => p,
        // Keys that differ only after percent-decoding can collide; an SDK
        // never sends such a pair, and the server refuses it (400).
        Err(ApiAuthError::DuplicateParam(_)) => return,
        // Over the server's caps (checked before anything else is parsed):
        // refused, whoever signed it.
        Err(ApiAuthError::QueryTooLarge) => {
            assert!(
                query.len() > api::MAX_QUERY_BYTES
                    || query.split('&').filter(|p| !p.is_empty()).count() > api::MAX_QUERY_PARAMS
            );
            return;
        }
        Err(e) => panic!("signed query does not parse: {e}"),
    };
    let verdict = api::verify_request(
        SECRET,
        &input.method,
        &input.path,
        &params,
        &input.body,
        input.now,
    );
    if ts >= 10_000_000_000_000_000_000 {
        // 20 digits: refused as malformed (no clock gets there).
        assert_eq!(verdict, Err(ApiAuthError::BadTimestamp));
        return;
    }
    if ts.abs_diff(input.now) <= MAX_TIMESTAMP_SKEW_SECS {
        // Methods are case-insensitive in the string to sign; keys whose
        // decoded forms differ from the sent ones are the one known way to
        // fail here, and from_pairs/parse agree on lower-casing.
        assert_eq!(verdict, Ok(()), "signed request refused: {query}");
    } else {
        assert!(
            matches!(verdict, Err(ApiAuthError::Expired { .. })),
            "{verdict:?} for timestamp {ts} at {}",
            input.now
        );
        return;
    }
    let (method, path, body, mut tampered) = (
        input.method.clone(),
        input.path.clone(),
        input.body.clone(),
        params.clone(),
    );
    let (method, path, body) = match &input.tamper {
        Tamper::Method(m) => (m.clone(), path, body),
        Tamper::Path(p) => (method, p.clone(), body),
        Tamper::Body(b) => (method, path, b.clone()),
        Tamper::Param(k, v) => {
            tampered.set(k, v.clone());
            (method, path, body)
        }
    };
    let unchanged = method.eq_ignore_ascii_case(&input.method)
        && path == input.path
        && body == input.body
        && api::string_to_sign(&method, &path, &tampered)
            == api::string_to_sign(&input.method, &input.path, &params);
    let ok = api::verify_request(SECRET, &method, &path, &tampered, &body, input.now).is_ok();
    if !unchanged {
        // A changed body with the same MD5 is not something a fuzzer finds.
        assert!(
            !ok,
            "tampered request accepted: {method} {path} {tampered:?}"
        );
    }
}

fuzz_target!(|input: Input| {
    check_hostile(&input);
    check_signed(&input);
});
