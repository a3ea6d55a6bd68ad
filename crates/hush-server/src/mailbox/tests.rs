use super::*;

#[test]
fn ids_are_strict_lowercase_hex() {
    assert_eq!(parse_hex16(&"0f".repeat(16), "device").unwrap(), [0x0f; 16]);
    for bad in [
        "0F".repeat(16),
        "0f".repeat(15),
        "0f".repeat(17),
        format!("{}g0", "0f".repeat(15)),
        format!("+{}", &"0f".repeat(16)[1..]),
    ] {
        assert!(parse_hex16(&bad, "device").is_err(), "{bad}");
    }
}
