//! The TCP option iterator on arbitrary bytes: never panics, yields at most one error and
//! then stops, and whatever it parses re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{TcpOptionIter, WireError};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(40)];
    let mut out = [0u8; 40];
    let mut at = 0;
    let mut it = TcpOptionIter::new(data);
    for opt in it.by_ref() {
        match opt {
            Ok(o) => {
                at += o
                    .emit(&mut out[at..])
                    .expect("a parsed option fits where it came from")
            }
            Err(e) => {
                assert_eq!(e, WireError::BadTcpOption);
                break;
            }
        }
    }
    assert!(it.next().is_none());
    assert_eq!(&out[..at], &data[..at]);
});
