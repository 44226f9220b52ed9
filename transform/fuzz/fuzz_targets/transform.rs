//! Any body and timestamp: exactly one row or one rejection, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maskflow_transform::{Config, Key, Message, Transformer};

fuzz_target!(|input: (i64, &[u8])| {
    let (sent_timestamp_ms, body) = input;
    let mut t = Transformer::new(Config::with_keys(vec![Key::new("k1", [7; 64]).unwrap()])).unwrap();
    match t.transform(&Message { id: "fuzz", body, sent_timestamp_ms }) {
        Ok(row) => assert_eq!(row.len(), 7),
        Err(rejection) => assert!(rejection.encrypted_body.starts_with("k1.")),
    }
});
