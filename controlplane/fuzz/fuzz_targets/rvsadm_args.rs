//! rvsadm's two parsers on arbitrary input: its command line (ipvsadm 1.31's syntax, also
//! what `-R` reads line by line) and the REST documents it reads from rvsd (which it
//! formats as ipvsadm listings).
//!
//! Properties:
//! * no panic, whatever the arguments or the documents;
//! * a refused command line has a message and ipvsadm's exit status (2 or 255);
//! * a command that changes something maps to exactly one REST request under `/v1/`
//!   (`exec::call_for`), with a JSON object as body when it has one; a read-only one maps
//!   to none (`rvsadm admin` changes a server's state but is no `-R` verb: it has a request);
//! * every listing layout, `-S`, `rvsadm status` and the connection and rate listings
//!   format whatever documents deserialize.
//!
//! Input: a document when it starts with `{` (tried as every document type rvsadm reads);
//! otherwise the command line, one argument per line, after which each line is also
//! parsed as an `-R` line would be. Host names do not reach the resolver under
//! `cfg(fuzzing)` (see `rvsadm::args`), so no input waits on DNS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvsadm::args::{self, Command};
use rvsadm::exec::call_for;
use rvsadm::format::{self, Columns};
use rvsadm::model::{ConnPage, ServiceList, StatsDoc, StatusDoc, Timeouts};

fn command_line(words: &[&str]) {
    match args::parse(words) {
        Ok(inv) => {
            let call = call_for(&inv.command);
            if inv.command.is_change() {
                let call = call.unwrap_or_else(|| panic!("{words:?}: a change without a request"));
                assert!(call.path.starts_with("/v1/"), "{words:?}: {}", call.path);
                if let Some(body) = &call.body {
                    assert!(body.is_object(), "{words:?}: {body}");
                }
            } else if !matches!(inv.command, Command::Admin { .. }) {
                assert!(call.is_none(), "{words:?}: a read-only verb makes a request");
            }
        }
        Err(e) => {
            assert!(!e.0.is_empty(), "{words:?}: a usage error without a message");
            assert!(matches!(e.exit_status(), 2 | 255), "{words:?}: exit status {}", e.exit_status());
        }
    }
}

fn documents(text: &str) {
    if let Ok(mut doc) = serde_json::from_str::<ServiceList>(text) {
        format::sort_services(&mut doc.services);
        for columns in [
            Columns::Plain,
            Columns::Stats,
            Columns::Thresholds,
            Columns::PersistConn,
            Columns::TunInfo,
            Columns::Health,
        ] {
            for (full, exact) in [(true, false), (false, true)] {
                format::services_exact(&doc.services, columns, full, exact);
            }
        }
        format::save(&doc.services);
    }
    if let Ok(mut doc) = serde_json::from_str::<StatsDoc>(text) {
        format::sort_stats(&mut doc.services);
        format::rates_exact(&doc.services, true, false);
        format::rates_exact(&doc.services, false, true);
    }
    if let Ok(doc) = serde_json::from_str::<ConnPage>(text) {
        format::connections_with(&doc.connections, false);
        format::connections_with(&doc.connections, true);
    }
    if let Ok(doc) = serde_json::from_str::<Timeouts>(text) {
        format::timeouts(&doc);
    }
    if let Ok(doc) = serde_json::from_str::<StatusDoc>(text) {
        format::status(&doc);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.starts_with('{') {
        documents(text);
        return;
    }
    let words: Vec<&str> = text.split('\n').take(64).collect();
    command_line(&words);
    for line in text.lines().take(64) {
        let words = args::split_line(line);
        if !words.is_empty() {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            command_line(&words);
        }
    }
});
