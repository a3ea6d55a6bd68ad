//! The server configuration (`hush_server::Config::from_toml`: figment
//! layering over the built-in defaults, then validation).
//!
//! Oracles: no panic on any TOML; an accepted configuration serialised back
//! to TOML is accepted again and serialises to the same text (what the
//! validator accepts, it accepts in its own printed form).
#![no_main]

use hush_server::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    assert!(!config.effective_apps().is_empty());
    assert!(!config.store_url().is_empty());
    let Ok(printed) = toml::to_string(&config) else {
        // Values TOML cannot print (an integer above i64::MAX) stop here.
        return;
    };
    let again = Config::from_toml(&printed)
        .unwrap_or_else(|e| panic!("printed configuration refused ({e}):\n{printed}"));
    assert_eq!(
        toml::to_string(&again).expect("printable once printed"),
        printed
    );
});
