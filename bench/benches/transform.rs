//! Transform throughput, per record and per core: the native library against the wasm module
//! under wasmtime (the host's `WasmInstance`, batch ABI), and the levers one at a time.
//! Group names are read by scripts/bench (bench/report.py); keep them stable.
//!
//! Every measurement is ONE COLD PASS over [`EVENTS`] events: a fresh transformer (or module
//! instance), so an empty mask cache, sees each event once. No data set is cycled through the
//! cache; the hit rate each pass gets is printed beside the rates and written to
//! `<target>/criterion/maskflow-cache-hits.json` for bench/report.py.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use maskflow::{ModuleLimits, WasmModule, EMBEDDED_MODULE};
use maskflow_bench::{data, naive::Naive};
use maskflow_transform::config::IP_NONCE;
use maskflow_transform::{CacheStats, Message, Transformer};

/// Events per pass, for both data sets.
const EVENTS: usize = 200_000;
const WASM_BATCHES: [usize; 4] = [1, 10, 100, 1000];
const CACHE: usize = 4096;

fn module(cache_size: usize) -> WasmModule {
    let config = serde_json::to_string(&data::config(cache_size)).expect("config");
    let limits = ModuleLimits { memory_bytes: 256 << 20, call_timeout: Duration::from_secs(60) };
    WasmModule::compile(EMBEDDED_MODULE, limits, &config, None).expect("module compiles")
}

/// Times `pass` once per iteration, each after a fresh `setup` (not timed).
fn cold<S>(iters: u64, mut setup: impl FnMut() -> S, mut pass: impl FnMut(&mut S)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut state = setup();
        let started = Instant::now();
        pass(&mut state);
        total += started.elapsed();
    }
    total
}

fn native_pass(transformer: &mut Transformer, messages: &[Message]) {
    for m in messages {
        let _ = black_box(transformer.transform(m));
    }
}

/// What the cache does over one cold pass, always on (the data's hit rate: the module hashes
/// values to the same slots as the native library, so it is the module's too) and adaptive (the
/// default: it switches itself off below break-even, a threshold lower in the module, so the
/// module may look up more).
fn cache_stats(messages: &[Message], cache_size: usize, adaptive: bool) -> CacheStats {
    let mut transformer = Transformer::new(data::config(cache_size)).expect("config");
    transformer.set_cache_adaptive(adaptive);
    native_pass(&mut transformer, messages);
    transformer.cache_stats()
}

fn benches(c: &mut Criterion) {
    let ids = data::ids(EVENTS);
    let realistic = data::realistic(EVENTS);
    let distinct = data::distinct(EVENTS);
    let mut hits = serde_json::Map::new();
    for (name, bodies) in [("realistic", &realistic), ("distinct", &distinct)] {
        let messages = data::messages(&ids, bodies);
        let CacheStats { hits: hit, lookups, .. } = cache_stats(&messages, CACHE, false);
        let rate = hit as f64 / lookups.max(1) as f64;
        let adaptive = cache_stats(&messages, CACHE, true);
        eprintln!(
            "{name}: one cold pass over {EVENTS} events, {CACHE}-slot cache per masked column: \
             hit rate {:.1}% ({hit} of {lookups} lookups) always on; adaptive (the default): \
             {} lookups, {} hits, {} values bypassed",
            rate * 100.0,
            adaptive.lookups,
            adaptive.hits,
            adaptive.bypassed
        );
        hits.insert(
            name.into(),
            serde_json::json!({"events": EVENTS, "cache_size": CACHE, "hits": hit, "lookups": lookups, "hit_rate": rate,
                               "adaptive": {"hits": adaptive.hits, "lookups": adaptive.lookups, "bypassed": adaptive.bypassed}}),
        );
        let wasm = module(CACHE);

        // (a) Native library and (b) wasm module at batch sizes 1..1000, cache on (the default).
        let mut group = c.benchmark_group(format!("native/{name}"));
        group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(EVENTS as u64));
        group.bench_function("cold pass", |b| {
            b.iter_custom(|iters| {
                cold(
                    iters,
                    || Transformer::new(data::config(CACHE)).expect("config"),
                    |t| native_pass(t, &messages),
                )
            })
        });
        group.finish();
        let mut group = c.benchmark_group(format!("wasm/{name}"));
        group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(EVENTS as u64));
        for batch in WASM_BATCHES {
            group.bench_function(batch.to_string(), |b| {
                b.iter_custom(|iters| {
                    cold(
                        iters,
                        || wasm.instantiate().expect("module instantiates"),
                        |instance| {
                            for chunk in messages.chunks(batch) {
                                black_box(instance.transform(chunk).expect("module runs"));
                            }
                        },
                    )
                })
            });
        }
        group.finish();
        eprintln!(
            "{name}: cache hit rate {:.1}% always on, {:.1}% of values looked up adaptive \
             (the cold passes above)",
            rate * 100.0,
            100.0 * adaptive.lookups as f64 / (adaptive.lookups + adaptive.bypassed).max(1) as f64
        );

        // Levers, one at a time, each a cold pass.
        let mut group = c.benchmark_group(format!("levers/{name}"));
        group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(EVENTS as u64));
        let key = data::key();
        for (lever, make) in [
            ("1 naive: Value + aes-siv", Naive::with_crate as fn(&_) -> Naive),
            ("2 + precomputed S2V", Naive::with_precomputed_s2v),
        ] {
            group.bench_function(lever, |b| {
                b.iter_custom(|iters| {
                    cold(
                        iters,
                        || make(&key),
                        |naive| {
                            for m in &messages {
                                black_box(naive.transform(m.body, m.sent_timestamp_ms));
                            }
                        },
                    )
                })
            });
        }
        // Steps 4 and 5 use the default (adaptive) cache; the last two are step 5 with the cache
        // always on (as before it learnt to switch itself off) and with no cache.
        for (lever, cache, flat, adaptive) in [
            ("3 + typed scan, no allocation", 0, false, true),
            ("4 + mask cache", CACHE, false, true),
            ("5 + flat-object scanner", CACHE, true, true),
            ("5, cache always on", CACHE, true, false),
            ("5, no cache", 0, true, true),
        ] {
            group.bench_function(lever, |b| {
                b.iter_custom(|iters| {
                    cold(
                        iters,
                        || {
                            let mut t = Transformer::new(data::config(cache)).expect("config");
                            t.set_flat_scan(flat);
                            t.set_cache_adaptive(adaptive);
                            t
                        },
                        |t| native_pass(t, &messages),
                    )
                })
            });
        }
        let uncached = module(0);
        group.bench_function("wasm, no cache", |b| {
            b.iter_custom(|iters| {
                cold(
                    iters,
                    || uncached.instantiate().expect("module instantiates"),
                    |instance| {
                        for chunk in messages.chunks(1000) {
                            black_box(instance.transform(chunk).expect("module runs"));
                        }
                    },
                )
            })
        });
        group.finish();
    }
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let path = std::path::Path::new(&dir).join("criterion/maskflow-cache-hits.json");
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("criterion dir");
    std::fs::write(&path, serde_json::Value::Object(hits).to_string()).expect("hit rates written");

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
    // Ten cold passes per measurement (criterion's minimum sample count): the whole suite runs
    // in about six minutes on 2 cores.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10);
    targets = benches
}
criterion_main!(transform);
