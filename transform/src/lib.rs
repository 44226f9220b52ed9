//! maskflow's transform: one SQS message in, one `user_logins` row or one rejection out.
//!
//! Pure computation, no I/O: the same code runs natively (the host's `unmask`, the tests) and
//! as a WebAssembly module with the ABI in `ABI.md` (exports in `abi`, the wire format both
//! sides share in [`wire`]); the thin crates in `integrations/` (Node's wasm-bindgen binding,
//! Fluvio's SmartModule) wrap the same [`Transformer`] in other exports.
//!
//! ```
//! use maskflow_transform::{Config, Key, Message, Transformer};
//! let key = Key::new("k1", [7; 64]).unwrap();
//! let mut t = Transformer::new(Config::with_keys(vec![key])).unwrap();
//! let body = br#"{"user_id": "u1", "ip": "10.0.0.1", "app_version": "2.3.0"}"#;
//! let row = t.transform(&Message { id: "m1", body, sent_timestamp_ms: 1_700_000_000_000 }).unwrap();
//! assert_eq!(row.get(0), Some("u1"));
//! assert!(row.get(2).unwrap().starts_with("k1."));
//! assert_eq!(row.get(5), Some("2003000"));
//! ```

mod cache;
pub mod config;
mod config_json;
mod date;
mod error;
mod flat;
mod ip;
mod key;
mod keyfile;
pub mod mask;
mod outcome;
mod reason;
mod scan;
mod sealer;
mod transformer;
pub mod version;
pub mod wire;

// The ABI v1 and ClickHouse exports; other faces of the rules (Node, Fluvio) live in thin
// crates under integrations/ that depend on this one with `no-abi`.
#[cfg(all(target_arch = "wasm32", not(feature = "no-abi")))]
pub mod abi;
#[cfg(all(target_arch = "wasm32", not(feature = "no-abi")))]
pub mod clickhouse;

pub use cache::CacheStats;
pub use config::{Column, Config, KeyConfig, Kind, Mapping};
pub use error::{Error, KeyFileRule};
pub use mask::{ColumnCipher, Key};
pub use outcome::{Outcome, OutcomeJson, Row};
pub use reason::{Reason, Rejection};
pub use sealer::BodySealer;
pub use transformer::{Message, Transformer, Unmasked};
pub use wire::ABI_VERSION;
