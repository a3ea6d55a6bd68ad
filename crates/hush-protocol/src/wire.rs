//! Frames on the WebSocket under their historical names: the codec lives in
//! [`crate::msgs`] (one type per message, both directions); this module
//! re-exports the pieces the server has always called (the client frame
//! parser and the server's single-build encoders).

pub use crate::msgs::client::RawFrame;
pub use crate::msgs::encode::*;
pub use crate::msgs::hush::{MAX_REQUEST_ID_LEN, RequestFrame};
pub use crate::msgs::json::{is_json_object, push_json_str};
pub use crate::msgs::{ClientMessage, FrameError, SubscribeData};

/// Parses one text frame from a client ([`ClientMessage::decode`]).
pub fn parse_client_frame(text: &str) -> Result<ClientMessage, FrameError> {
    ClientMessage::decode(text)
}

#[cfg(test)]
mod hush_request_tests {
    use super::*;

    #[test]
    fn requests_and_responses() {
        let m = parse_client_frame(
            r#"{"event":"hush:request","data":{"id":"r1","method":"log.head","params":{"a":1}}}"#,
        )
        .unwrap();
        let ClientMessage::HushRequest(r) = m else {
            panic!("{m:?}")
        };
        assert_eq!((r.id.as_str(), r.method.as_str()), ("r1", "log.head"));
        assert_eq!(r.params.unwrap().get(), r#"{"a":1}"#);
        // String data (as pusher-js would send it) works too; params optional.
        let m = parse_client_frame(
            r#"{"event":"hush:request","data":"{\"id\":\"x\",\"method\":\"m\"}"}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMessage::HushRequest(RequestFrame { params: None, .. })
        ));
        for bad in [
            r#"{"event":"hush:request","data":{"id":"","method":"m"}}"#,
            r#"{"event":"hush:request","data":{"id":"a\u0000","method":"m"}}"#,
            r#"{"event":"hush:request","data":{"method":"m"}}"#,
            r#"{"event":"hush:request"}"#,
        ] {
            assert!(parse_client_frame(bad).is_err(), "{bad}");
        }
        let long = format!(
            r#"{{"event":"hush:request","data":{{"id":"{}","method":"m"}}}}"#,
            "a".repeat(65)
        );
        assert!(parse_client_frame(&long).is_err());

        let ok: serde_json::Value =
            serde_json::from_str(&hush_response_ok("r\"1", r#"{"n":1}"#)).unwrap();
        assert_eq!(ok["event"], "hush:response");
        let inner: serde_json::Value = serde_json::from_str(ok["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner, serde_json::json!({"id":"r\"1","result":{"n":1}}));
        let err: serde_json::Value =
            serde_json::from_str(&hush_response_err("r", "bad_request", "no \"x\"")).unwrap();
        let inner: serde_json::Value = serde_json::from_str(err["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            inner,
            serde_json::json!({"id":"r","error":{"code":"bad_request","message":"no \"x\""}})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::value::RawValue;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn frames_and_their_data_are_objects() {
        // Found by fuzzing (fuzz/fuzz_targets/client_frame.rs): serde's
        // derived structs also read JSON arrays, so `["pusher:ping"]` was a
        // ping and `["private-x","key:sig"]` a subscription's data.
        for text in [
            r#"["pusher:ping"]"#,
            r#"["client-x","private-x",{}]"#,
            r#" ["pusher:subscribe",{"channel":"x"}]"#,
        ] {
            assert!(
                matches!(parse_client_frame(text), Err(FrameError::Malformed(_))),
                "{text}"
            );
        }
        for text in [
            r#"{"event":"pusher:subscribe","data":["my-channel"]}"#,
            r#"{"event":"pusher:subscribe","data":"[\"my-channel\"]"}"#,
            r#"{"event":"pusher:unsubscribe","data":["my-channel"]}"#,
            r#"{"event":"pusher:signin","data":["key:sig","{}"]}"#,
            r#"{"event":"hush:request","data":["1","log.head"]}"#,
        ] {
            assert!(
                matches!(parse_client_frame(text), Err(FrameError::BadData { .. })),
                "{text}"
            );
        }
        // Objects, with JSON whitespace around them, still parse.
        assert!(matches!(
            parse_client_frame(
                " {\"event\":\"pusher:subscribe\",\"data\":\" {\\\"channel\\\":\\\"a\\\"}\"}"
            ),
            Ok(ClientMessage::Subscribe(_))
        ));
    }

    #[test]
    fn parses_client_frames() {
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientMessage::Ping)
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:ping"}"#),
            Ok(ClientMessage::Ping)
        ));
        match parse_client_frame(
            r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"news"}}"#,
        )
        .unwrap()
        {
            ClientMessage::Subscribe(d) => assert_eq!(d.channel, "news"),
            m => panic!("{m:?}"),
        }
        // data as a JSON-encoded string is accepted too.
        match parse_client_frame(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"news\"}"}"#)
            .unwrap()
        {
            ClientMessage::Subscribe(d) => assert_eq!(d.channel, "news"),
            m => panic!("{m:?}"),
        }
        match parse_client_frame(
            r#"{"event":"client-x","channel":"private-a","data":{"a":1},"user_id":"forged"}"#,
        )
        .unwrap()
        {
            ClientMessage::ClientEvent { data, .. } => {
                assert_eq!(data.unwrap().get(), r#"{"a":1}"#)
            }
            m => panic!("{m:?}"),
        }
        assert!(matches!(
            parse_client_frame("nope"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"data":{}}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":1}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(FrameError::BadData { .. })
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:subscribe"}"#),
            Err(FrameError::BadData { .. })
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:whatever"}"#),
            Ok(ClientMessage::UnknownPusher(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"hello"}"#),
            Ok(ClientMessage::NotAllowed(_))
        ));
    }

    #[test]
    fn encodes_with_documented_encodings() {
        let f = v(&connection_established("1.2", 120));
        let inner: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner["socket_id"], "1.2");
        assert_eq!(inner["activity_timeout"], 120);
        assert_eq!(v(&error(None, "x"))["data"]["code"], Value::Null);
        assert_eq!(v(&error(Some(4001), "x"))["data"]["code"], 4001);
        let f = v(&channel_event("e\"", "c", "{\"a\":\"\\n\"}"));
        assert_eq!(f["data"].as_str().unwrap(), "{\"a\":\"\\n\"}");
        assert_eq!(f["event"], "e\"");
        let d = presence_data([("10", r#"{"name":"x"}"#), ("11", "{}")].into_iter());
        assert_eq!(
            v(&d),
            v(r#"{"presence":{"ids":["10","11"],"hash":{"10":{"name":"x"},"11":{}},"count":2}}"#)
        );
        let f = v(&subscription_error(
            "private-a",
            SubscriptionErrorType::AuthError,
            "bad",
        ));
        assert_eq!(f["data"]["status"], 401);
        assert_eq!(f["channel"], "private-a");
        let raw = RawValue::from_string("\"s\"".into()).unwrap();
        let f = v(&client_event(
            "client-a",
            "presence-x",
            Some(&raw),
            Some("7"),
        ));
        assert_eq!(f["data"], "s");
        assert_eq!(f["user_id"], "7");
        let f = v(&member_added("presence-x", "7", r#"{"a":1}"#));
        let inner: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner["user_info"]["a"], 1);
        let f = v(&signin_success(r#"{"id":"1"}"#));
        assert_eq!(f["data"]["user_data"], r#"{"id":"1"}"#);
        let f = v(&watchlist_events(&["1"], &["2", "3"]));
        assert_eq!(f["data"]["events"][1]["user_ids"][1], "3");
        v(&cache_miss("cache-x"));
        v(&subscription_count("x", 3));
        v(PING);
        v(PONG);
        // Control characters are escaped; everything round-trips.
        for s in [
            "\u{1}\u{1f}",
            "a\"b\\c\nd\re\tf",
            "héllo ✓ \u{7f}",
            "",
            "\"\"",
        ] {
            let mut o = String::new();
            push_json_str(&mut o, s);
            assert_eq!(serde_json::from_str::<String>(&o).unwrap(), s);
            assert_eq!(o, serde_json::to_string(s).unwrap());
        }
    }
}
