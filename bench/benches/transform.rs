//! Transform throughput, per record and per core: the native library against the wasm module
//! under wasmtime (the host's `WasmInstance`, batch ABI), and the levers one at a time.
//! Group names are read by scripts/bench (bench/report.py); keep them stable.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use maskflow::runtime::{ModuleLimits, WasmModule, EMBEDDED_MODULE};
use maskflow_bench::{data, naive::Naive};
use maskflow_transform::config::IP_NONCE;
use maskflow_transform::{Message, Transformer};

const BATCHES: [usize; 4] = [1, 10, 100, 1000];
/// Realistic: 10,000 events where every value recurs about four times. Distinct: 60,000 events,
/// all ip and device ids different, more than the 4,096-slot cache can ever hold.
const REALISTIC: usize = 10_000;
const DISTINCT: usize = 60_000;

/// The next `batch` messages, cycling through the data set.
struct Cycle<'a> {
    messages: &'a [Message<'a>],
    at: usize,
}

impl<'a> Cycle<'a> {
    fn next(&mut self, batch: usize) -> &'a [Message<'a>] {
        if self.at + batch > self.messages.len() {
            self.at = 0;
        }
        self.at += batch;
        &self.messages[self.at - batch..self.at]
    }
}

fn wasm(cache_size: usize) -> maskflow::runtime::WasmInstance {
    let config = serde_json::to_string(&data::config(cache_size)).expect("config");
    let limits = ModuleLimits { memory_bytes: 256 << 20, call_timeout: Duration::from_secs(60) };
    WasmModule::compile(EMBEDDED_MODULE, limits, &config)
        .and_then(|m| m.instantiate())
        .expect("module loads")
}

fn benches(c: &mut Criterion) {
    let ids = data::ids(DISTINCT);
    let realistic = data::realistic(REALISTIC);
    let distinct = data::distinct(DISTINCT);
    for (name, bodies) in [("realistic", &realistic), ("distinct", &distinct)] {
        let messages = data::messages(&ids, bodies);

        // (a) Native library and (b) wasm module, batch sizes 1..1000, cache on (the default).
        let mut group = c.benchmark_group(format!("native/{name}"));
        for batch in BATCHES {
            group.throughput(Throughput::Elements(batch as u64));
            let mut transformer = Transformer::new(data::config(4096)).expect("config");
            let mut cycle = Cycle { messages: &messages, at: 0 };
            group.bench_function(BenchmarkId::from_parameter(batch), |b| {
                b.iter(|| {
                    for m in cycle.next(batch) {
                        let _ = black_box(transformer.transform(m));
                    }
                })
            });
        }
        group.finish();
        let mut group = c.benchmark_group(format!("wasm/{name}"));
        for batch in BATCHES {
            group.throughput(Throughput::Elements(batch as u64));
            let mut instance = wasm(4096);
            let mut cycle = Cycle { messages: &messages, at: 0 };
            group.bench_function(BenchmarkId::from_parameter(batch), |b| {
                b.iter(|| black_box(instance.transform(cycle.next(batch)).expect("module runs")))
            });
        }
        group.finish();

        // Levers, one at a time, 1,000 records per iteration.
        let mut group = c.benchmark_group(format!("levers/{name}"));
        group.throughput(Throughput::Elements(1000));
        let key = data::key();
        for (lever, mut naive) in [
            ("1 naive: Value + aes-siv", Naive::with_crate(&key)),
            ("2 + precomputed S2V", Naive::with_precomputed_s2v(&key)),
        ] {
            let mut cycle = Cycle { messages: &messages, at: 0 };
            group.bench_function(lever, |b| {
                b.iter(|| {
                    for m in cycle.next(1000) {
                        black_box(naive.transform(m.body, m.sent_timestamp_ms));
                    }
                })
            });
        }
        for (lever, cache) in [("3 + typed scan, no allocation", 0), ("4 + mask cache", 4096)] {
            let mut transformer = Transformer::new(data::config(cache)).expect("config");
            let mut cycle = Cycle { messages: &messages, at: 0 };
            group.bench_function(lever, |b| {
                b.iter(|| {
                    for m in cycle.next(1000) {
                        let _ = black_box(transformer.transform(m));
                    }
                })
            });
        }
        for (lever, cache) in [("wasm, no cache", 0), ("wasm, mask cache", 4096)] {
            let mut instance = wasm(cache);
            let mut cycle = Cycle { messages: &messages, at: 0 };
            group.bench_function(lever, |b| {
                b.iter(|| black_box(instance.transform(cycle.next(1000)).expect("module runs")))
            });
        }
        group.finish();
    }

    // One 15-byte value (an IPv4 address), masked with the crate's full AES-SIV and with the
    // precomputed S2V prefix (the cache is measured above, on whole events).
    let mut group = c.benchmark_group("mask");
    group.throughput(Throughput::Elements(1));
    let key = data::key();
    for (name, mut naive) in [
        ("aes-siv crate", Naive::with_crate(&key)),
        ("precomputed S2V", Naive::with_precomputed_s2v(&key)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(naive.mask(IP_NONCE, black_box("192.168.100.200"))))
        });
    }
    group.finish();
}

criterion_group! {
    name = transform;
    // Short and repeated: the whole suite runs in about three minutes on 2 cores.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = benches
}
criterion_main!(transform);
