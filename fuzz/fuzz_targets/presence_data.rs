//! Presence `channel_data` (from a subscription) and sign-in `user_data`
//! (PROTOCOL.md §8.1, §3.3): JSON chosen by whoever holds the app secret, but
//! relayed by the server to every member, so it must parse strictly.
//!
//! Oracles: no panic; an accepted `channel_data` is one JSON object whose
//! `user_id` is a non-empty string of at most 128 characters without control
//! characters (a number becomes text that denotes the same number), whose `user_info`
//! is at most the limit and re-parses to the JSON that was sent; an accepted
//! `user_data` has an `id` that is a valid user id; and the frames the server
//! builds from them (`member_added`, `subscription_succeeded`) are valid JSON
//! that give back the same user id and info.
#![no_main]

use hush_protocol::presence::{self, MemberDataError};
use hush_protocol::{UserId, wire};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_INFO: usize = 1024;

fn check_channel_data(text: &str) {
    let sent: Option<Value> = serde_json::from_str(text).ok();
    match presence::parse_channel_data(text, MAX_INFO) {
        Ok(member) => {
            // Always a JSON object (checked without `Value`, which cannot
            // hold the lone-surrogate escapes JSON allows).
            let raw: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_str(text).unwrap_or_else(|e| {
                    panic!("accepted channel_data that is not a JSON object ({e}): {text}")
                });
            assert!(raw.contains_key("user_id"));
            let Some(Value::Object(sent)) = sent else {
                return; // a lone surrogate somewhere: nothing more to compare
            };
            assert!(!member.user_id.is_empty());
            assert!(member.user_id.chars().count() <= 128);
            assert!(!member.user_id.chars().any(char::is_control));
            match &sent["user_id"] {
                Value::String(s) => assert_eq!(s, &member.user_id),
                // The same number (as text it may be kept exactly, or
                // normalised: either way it must denote the number sent).
                Value::Number(n) => {
                    let back: Value = serde_json::from_str(&member.user_id)
                        .unwrap_or_else(|e| panic!("numeric user_id {:?}: {e}", member.user_id));
                    assert_eq!(back.as_f64(), n.as_f64());
                }
                other => panic!("accepted user_id {other}"),
            }
            let info = member.info_json();
            assert!(info.len() <= MAX_INFO);
            let info_value: Value = serde_json::from_str(info).expect("info re-parses");
            match sent.get("user_info") {
                None | Some(Value::Null) => assert_eq!(info, "{}"),
                Some(v) => assert_eq!(&info_value, v),
            }
            // What members receive about this member.
            let added = wire::member_added("presence-x", &member.user_id, info);
            let added: Value = serde_json::from_str(&added).expect("member_added is JSON");
            let inner: Value = serde_json::from_str(added["data"].as_str().expect("string data"))
                .expect("member_added data is JSON");
            assert_eq!(inner["user_id"], member.user_id.as_str());
            assert_eq!(inner["user_info"], info_value);
            let list = wire::presence_data([(member.user_id.as_str(), info)].into_iter());
            let list: Value = serde_json::from_str(&list).expect("presence data is JSON");
            assert_eq!(list["presence"]["count"], 1);
            assert_eq!(list["presence"]["hash"][&member.user_id], info_value);
        }
        Err(MemberDataError::InfoTooLarge { max }) => assert_eq!(max, MAX_INFO),
        Err(_) => {}
    }
}

fn check_user_data(text: &str) {
    if let Ok(user) = presence::parse_user_data(text, MAX_INFO) {
        assert!(UserId::parse(user.id.as_str()).is_ok());
        let sent: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_str(text).expect("accepted user_data is a JSON object");
        assert_eq!(
            serde_json::from_str::<String>(sent["id"].get())
                .ok()
                .as_deref(),
            Some(user.id.as_str())
        );
        if let Some(info) = &user.user_info {
            assert!(info.get().len() <= MAX_INFO);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_channel_data(text);
    check_user_data(text);
});
