//! Cold passes of the transform for `perf record` (docs/benchmarks.md, "Where the time goes"):
//! the native library, or the embedded wasm module in a wasmtime engine of its own with
//! `ProfilingStrategy::PerfMap`, so that perf names the module's functions
//! (`/tmp/perf-<pid>.map`). The wasm path does what the host's `WasmInstance` does: encode the
//! batch, copy it in, `transform_batch`, decode the outcomes.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use maskflow::EMBEDDED_MODULE;
use maskflow_transform::wire;
use maskflow_transform::Transformer;
use wasmtime::{Config, Engine, Instance, Module, ProfilingStrategy, Store, TypedFunc};

use crate::data;

#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// `native` or `wasm`.
    #[arg(long, default_value = "native")]
    runtime: String,
    /// `realistic` or `distinct` (the data sets of the criterion benches), or `repeat:P`:
    /// valid events whose ip and device id repeat a recent event's with probability P percent.
    #[arg(long, default_value = "realistic")]
    data: String,
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Cold passes (a fresh transformer or instance each).
    #[arg(long, default_value_t = 5)]
    passes: usize,
    #[arg(long, default_value_t = 4096)]
    cache_size: usize,
    /// Keep the native cache always on instead of switching itself off below break-even (the
    /// module's cache is the module's: pass an older build with `--module` to compare).
    #[arg(long)]
    cache_always_on: bool,
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Another build of the module (one with its name section, for named frames), instead of
    /// the embedded one.
    #[arg(long)]
    module: Option<std::path::PathBuf>,
}

pub fn run(args: &ProfileArgs) -> Result<()> {
    let bodies = match args.data.as_str() {
        "realistic" => data::realistic(args.events),
        "distinct" => data::distinct(args.events),
        other => match other.strip_prefix("repeat:").and_then(|p| p.parse().ok()) {
            Some(percent) => data::repeating(args.events, percent),
            None => bail!("unknown data set {other}"),
        },
    };
    let ids = data::ids(args.events);
    let messages = data::messages(&ids, &bodies);
    let config = data::config(args.cache_size);
    let started = Instant::now();
    // What the (native) cache did in the last pass.
    let mut cache = serde_json::Value::Null;
    match args.runtime.as_str() {
        "native" => {
            for _ in 0..args.passes {
                let mut transformer = Transformer::new(config.clone())?;
                transformer.set_cache_adaptive(!args.cache_always_on);
                for m in &messages {
                    let _ = std::hint::black_box(transformer.transform(m));
                }
                let stats = transformer.cache_stats();
                cache = serde_json::json!({"hits": stats.hits, "lookups": stats.lookups,
                                           "bypassed": stats.bypassed});
            }
        }
        "wasm" => {
            let mut engine_config = Config::new();
            engine_config.profiler(ProfilingStrategy::PerfMap);
            let engine = Engine::new(&engine_config).map_err(|e| anyhow!("{e}"))?;
            let bytes = match &args.module {
                Some(path) => std::fs::read(path)?,
                None => EMBEDDED_MODULE.to_vec(),
            };
            let module = Module::new(&engine, bytes).map_err(|e| anyhow!("{e}"))?;
            let config_json = serde_json::to_string(&config)?;
            for _ in 0..args.passes {
                let mut store = Store::new(&engine, ());
                let instance =
                    Instance::new(&mut store, &module, &[]).map_err(|e| anyhow!("{e}"))?;
                let call = |store: &mut Store<()>, name: &str, input: &[u8]| -> Result<Vec<u8>> {
                    let alloc: TypedFunc<u32, u32> = instance
                        .get_typed_func(&mut *store, "alloc")
                        .map_err(|e| anyhow!("{e}"))?;
                    let func: TypedFunc<(u32, u32), u64> =
                        instance.get_typed_func(&mut *store, name).map_err(|e| anyhow!("{e}"))?;
                    let dealloc: TypedFunc<(u32, u32), ()> = instance
                        .get_typed_func(&mut *store, "dealloc")
                        .map_err(|e| anyhow!("{e}"))?;
                    let memory = instance.get_memory(&mut *store, "memory").context("memory")?;
                    let len = input.len() as u32;
                    let ptr = alloc.call(&mut *store, len).map_err(|e| anyhow!("{e}"))?;
                    memory.write(&mut *store, ptr as usize, input)?;
                    let packed = func.call(&mut *store, (ptr, len)).map_err(|e| anyhow!("{e}"))?;
                    let (at, n) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
                    let result = memory.data(&*store)[at..at + n].to_vec();
                    dealloc.call(&mut *store, (ptr, len)).map_err(|e| anyhow!("{e}"))?;
                    match wire::split_result(&result)? {
                        Ok(payload) => Ok(payload.to_vec()),
                        Err(failure) => bail!("{name}: {failure}"),
                    }
                };
                let columns =
                    wire::decode_columns(&call(&mut store, "init", config_json.as_bytes())?)?;
                let mut input = Vec::new();
                for chunk in messages.chunks(args.batch) {
                    input.clear();
                    wire::encode_batch(&mut input, chunk);
                    let payload = call(&mut store, "transform_batch", &input)?;
                    std::hint::black_box(wire::decode_outcomes(
                        &payload,
                        chunk.len(),
                        columns.len(),
                    )?);
                }
            }
        }
        other => bail!("unknown runtime {other}"),
    }
    let seconds = started.elapsed().as_secs_f64();
    let records = (args.events * args.passes) as f64;
    println!(
        "{}",
        serde_json::json!({"runtime": args.runtime, "data": args.data, "records": records,
                           "seconds": seconds, "records_per_s": records / seconds, "cache": cache})
    );
    Ok(())
}
