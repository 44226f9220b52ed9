//! maskflow's benchmarks (run them all with `scripts/bench`; results in docs/benchmarks.md).
//!
//! - `benches/transform.rs` (criterion): native library vs wasm module, batch sizes, levers;
//! - [`sink`]: PostgreSQL write paths at batch sizes 100, 1,000 and 10,000;
//! - [`rekey`]: `maskflow rekey` over 1M rows masked under an old key;
//! - [`replay`]: rejections (a renamed field) for `maskflow replay`, timed by `bench/run.py`;
//! - [`ceiling`]: an SQS consumer that only receives and deletes, the bound on any pipeline;
//! - [`relay`]: a network in front of LocalStack (a round trip, jitter, bandwidth), counting requests;
//! - `baselines/*.py`: the original design and a good Python consumer, for the end-to-end table.

pub mod ceiling;
pub mod data;
pub mod naive;
pub mod profile;
pub mod rekey;
pub mod relay;
pub mod replay;
pub mod sink;
