//! maskflow's transform as a Fluvio SmartModule (integrations/fluvio/README.md): a thin face
//! over `maskflow-transform` (the pure rules, taken with `no-abi` so ABI v1's exports stay out).
//! Built for wasm32 only, by `scripts/build-wasm --smartmodule`; natively the crate is empty (the
//! `env.copy_records` import exists only inside Fluvio's engine).
//!
//! Exports `init` and `map` with the ABI that `fluvio-smartmodule` 0.50's `#[smartmodule]`
//! macro generates (`fn(ptr, len, version) -> i32`, output handed over through the imported
//! `env.copy_records`), plus the SDK's own `alloc`/`dealloc`. Written by hand because the
//! macro's `map` `mem::forget`s every output buffer and the engine never frees it: linear memory
//! grows with every batch until the store limit traps (README.md, "Memory"). Here the
//! output lives in one buffer that is reused; the engine copies it out before the next call.
//! (`init` by hand too, so no macro-generated extern needs `--allow-undefined` to link.)
//!
//! Record in: key = message id, value = message body, timestamp = sent time (ms).
//! Record out: the same record (key, timestamp, offset) with the value replaced by the outcome
//! JSON, `{"row": {...}}` or `{"rejection": {...}}`: one record per input, never an error, so a
//! bad message neither stops the chain nor vanishes (a `filter_map` would drop it silently).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::io::Cursor;

use fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
use fluvio_smartmodule::dataplane::smartmodule::{
    SmartModuleInitErrorStatus, SmartModuleInitInput, SmartModuleInitOutput,
    SmartModuleInitRuntimeError, SmartModuleInput, SmartModuleOutput,
    SmartModuleTransformErrorStatus,
};
use fluvio_smartmodule::Record;

use maskflow_transform::{Config, Message, OutcomeJson, Transformer};

/// The init parameter that carries the config JSON (ABI.md, "`init` input").
const CONFIG_PARAM: &str = "config";

thread_local! {
    static TRANSFORMER: RefCell<Option<Transformer>> = const { RefCell::new(None) };
    /// What `copy_records` last pointed the engine at; reused so memory stays flat.
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

// An explicit import module: the linker then knows this symbol is an import, so the module
// links without `--allow-undefined` (which the SDK's own macro-generated externs need).
#[link(wasm_import_module = "env")]
extern "C" {
    /// The engine copies `len` bytes at `ptr` out of linear memory after the export returns.
    fn copy_records(ptr: i32, len: i32);
}

/// Decodes the init params and builds the transformer from the `config` param.
/// 0 on success; on failure `InitError` with a message the engine reports as the init error.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer from the SDK's `alloc(len)`; it is freed here (as the
/// SDK-generated `init` does).
#[no_mangle]
pub unsafe extern "C" fn init(ptr: *mut u8, len: usize, version: i16) -> i32 {
    let input = Vec::from_raw_parts(ptr, len, len);
    let mut init_input = SmartModuleInitInput::default();
    if init_input.decode(&mut Cursor::new(input), version).is_err() {
        return SmartModuleInitErrorStatus::DecodingInput as i32;
    }
    let built = match init_input.params.get(CONFIG_PARAM) {
        None => Err(format!(
            "missing SmartModule parameter `{CONFIG_PARAM}`: pass the config JSON (keys, mapping, cache_size; transform/ABI.md)"
        )),
        // The crate's errors never carry key material (error.rs).
        Some(json) => Config::from_json(json).and_then(Transformer::new).map_err(|e| e.to_string()),
    };
    match built {
        Ok(transformer) => {
            TRANSFORMER.with(|t| *t.borrow_mut() = Some(transformer));
            0
        }
        Err(hint) => {
            let output = SmartModuleInitOutput { error: SmartModuleInitRuntimeError { hint } };
            match hand_over(|out| output.encode(out, version)) {
                Ok(()) => SmartModuleInitErrorStatus::InitError as i32,
                Err(()) => SmartModuleInitErrorStatus::EncodingOutput as i32,
            }
        }
    }
}

/// Transforms a batch: one output record per input record, in order. Returns the count.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer from the SDK's `alloc(len)`; it is freed here.
#[no_mangle]
pub unsafe extern "C" fn map(ptr: *mut u8, len: usize, version: i16) -> i32 {
    let input = Vec::from_raw_parts(ptr, len, len);
    let mut sm_input = SmartModuleInput::default();
    if sm_input.decode(&mut Cursor::new(input), version).is_err() {
        return SmartModuleTransformErrorStatus::DecodingBaseInput as i32;
    }
    let Ok(records) = sm_input.try_into_smartmodule_records(version) else {
        return SmartModuleTransformErrorStatus::DecodingRecords as i32;
    };
    let successes = TRANSFORMER.with(|cell| {
        let mut guard = cell.borrow_mut();
        // Unreachable through the engine, which fails the chain when init fails.
        let transformer = guard.as_mut()?;
        let columns = transformer.columns().to_vec();
        Some(
            records
                .into_iter()
                .map(|r| transform_record(transformer, &columns, r.timestamp(), r.into_inner()))
                .collect::<Vec<_>>(),
        )
    });
    let Some(successes) = successes else {
        return SmartModuleTransformErrorStatus::ParsingExtraParams as i32;
    };
    let count = successes.len() as i32;
    let output = SmartModuleOutput::new(successes);
    match hand_over(|out| output.encode(out, version)) {
        Ok(()) => count,
        Err(()) => SmartModuleTransformErrorStatus::EncodingOutput as i32,
    }
}

/// The record with its value replaced by the outcome JSON; key, timestamp and offset kept.
fn transform_record(
    transformer: &mut Transformer,
    columns: &[String],
    sent_timestamp_ms: i64,
    mut record: Record,
) -> Record {
    // The id only travels with the message (the rules never read it): a missing or non-UTF-8
    // key must not turn a good message into an error.
    let id = record.key().and_then(|k| std::str::from_utf8(k.as_ref()).ok()).unwrap_or("");
    let message = Message { id, body: record.value().as_ref(), sent_timestamp_ms };
    let json = match transformer.transform(&message) {
        Ok(row) => serde_json::to_vec(&OutcomeJson::Row { columns, row }),
        Err(rejection) => serde_json::to_vec(&OutcomeJson::Rejection(&rejection)),
    };
    // Serialising strings and nulls into a Vec cannot fail; an empty value would still be one
    // output per input rather than a trap.
    record.value = json.unwrap_or_default().into();
    record
}

/// Encodes into the reused output buffer and points the engine at it.
fn hand_over(encode: impl FnOnce(&mut Vec<u8>) -> Result<(), std::io::Error>) -> Result<(), ()> {
    OUTPUT.with(|cell| {
        let mut out = cell.borrow_mut();
        out.clear();
        encode(&mut out).map_err(|_| ())?;
        // SAFETY: the engine's import copies `len` bytes from our memory and keeps no pointer.
        unsafe { copy_records(out.as_ptr() as i32, out.len() as i32) };
        Ok(())
    })
}
