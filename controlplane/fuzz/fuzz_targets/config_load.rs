//! The configuration loader on arbitrary text: what `rvsd --config`, SIGHUP, `rvsd --check`
//! and `PUT /v1/config` all run.
//!
//! Properties:
//! * no panic, whatever the text;
//! * every refusal lists at least one problem, each with a message;
//! * a file that parses writes back as canonical TOML (`GET /v1/config`) that parses to the
//!   same file and validates to the same result (the same `Config`, or the same errors);
//! * a file that validates also starts: `Running::from_toml` (the daemon's and the REST
//!   API's first step) accepts it, so `rvsd --check` never passes a file that rvsd refuses.
//!
//! Input: the TOML text (UTF-8; anything else is not a configuration and is skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_controlplane::config::{parse_toml, Config, ConfigError};
use rvs_controlplane::runtime::{canonical, Running};

fn check_refusal(e: &ConfigError, what: &str) {
    assert!(!e.errors.is_empty(), "{what}: a refusal without a problem");
    for f in &e.errors {
        assert!(!f.message.trim().is_empty(), "{what}: a problem without a message at {:?}", f.field);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = match parse_toml(text) {
        Ok(f) => f,
        Err(e) => {
            check_refusal(&e, "parse");
            return;
        }
    };
    let validated = Config::from_file(&file);
    if let Err(e) = &validated {
        check_refusal(e, "validate");
    }
    assert_eq!(Config::from_toml(text), validated, "from_toml differs from parse then validate");

    let again = canonical(&file).unwrap_or_else(|e| panic!("a parsed file does not write back: {e}"));
    let file2 = parse_toml(&again).unwrap_or_else(|e| panic!("the canonical TOML does not parse: {e}\n{again}"));
    assert_eq!(file2, file, "the canonical TOML parses to another file:\n{again}");
    assert_eq!(Config::from_file(&file2), validated, "the canonical TOML validates differently:\n{again}");

    if validated.is_ok() {
        if let Err(e) = Running::from_toml(text, 1) {
            panic!("a valid configuration does not start: {e}\n{text}");
        }
    }
});
