//! Linear memory of one SmartModule instance after N records, for any module with our exports
//! (README.md measures the SDK-generated `map` with it):
//!
//!     MASKFLOW_SMARTMODULE=path/to/module.wasm cargo run --release --example memory

use maskflow_fluvio_test::{chain, events::run, memory_size, test_config_json};

fn main() {
    let config = test_config_json();
    let limit = 256 << 20;
    let mut previous: Option<(usize, usize)> = None;
    for n in [0, 10_000, 50_000, 100_000, 200_000] {
        let mut engine = chain(&[("config", &config)], Some(limit)).expect("init");
        run(&mut engine, n);
        let bytes = memory_size(engine, limit);
        let per_record = previous
            .map_or(String::new(), |(pn, pb)| format!("  {:+.1} bytes/record since {pn}", (bytes as f64 - pb as f64) / (n - pn) as f64));
        println!("{n:>7} records: {:>7.2} MiB{per_record}", bytes as f64 / (1 << 20) as f64);
        previous = Some((n, bytes));
    }
}
