//! ClickHouse's WebAssembly UDF protocol `BUFFERED_V1` (ABI.md, "ClickHouse"): the same module,
//! called by ClickHouse (or chDB) once per block with the argument columns serialised as
//! RowBinary, returning the result column as RowBinary.
//!
//! Exports: `clickhouse_create_buffer`, `clickhouse_destroy_buffer`, and the functions
//! - `maskflow_typed(body String, sent_ms Int64, config String) -> Tuple(...)`: per row the
//!   columns and the rejection's fields as typed values ([`typed`]);
//! - `maskflow_batch(events Array(Tuple(body String, sent_ms Int64)), config String) ->
//!   Array(Tuple(...))`: the same for an array of events per row, what the pipeline calls;
//! - `maskflow(body String, sent_ms Int64, config String) -> String`: the same outcome as JSON
//!   (the golden vectors' shape), for ad hoc queries;
//! - `maskflow_check(config String) -> String`: `""` or why the config is refused.
//!
//! A buffer handle points at `{ptr: u32, size: u32}`; ClickHouse frees both the input and the
//! result buffer with `clickhouse_destroy_buffer`.
//!
//! The config column carries the key (from a table the query joins, never from the query's
//! text); the initialised transformer is cached per config, so a block, and every block after
//! it with the same config, sets the keys up once.

mod rowbinary;
mod typed;

use std::cell::RefCell;

use rowbinary::{put_string, put_varint, Reader};
use typed::Shape;

use crate::config::Config;
use crate::error::Error;
use crate::outcome::OutcomeJson;
use crate::transformer::{Message, Transformer};

/// The layout ClickHouse reads (its first 8 bytes); `cap` lets us free the data as the `Vec`
/// it was.
#[repr(C)]
pub struct Buffer {
    ptr: *mut u8,
    size: u32,
    cap: u32,
}

thread_local! {
    /// The config bytes the cached transformer was built from (the key included: it never
    /// leaves the module's memory).
    static CACHED: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

struct Cached {
    config: Vec<u8>,
    transformer: Transformer,
    /// A copy of the column names, so a row borrowed from the transformer can be named.
    columns: Vec<String>,
    shape: Shape,
}

fn into_handle(mut data: Vec<u8>) -> *mut Buffer {
    let buffer =
        Buffer { ptr: data.as_mut_ptr(), size: data.len() as u32, cap: data.capacity() as u32 };
    std::mem::forget(data);
    Box::into_raw(Box::new(buffer))
}

/// A buffer of `size` bytes for ClickHouse to write the input block into; 0 when out of memory
/// (ClickHouse then fails the query).
#[no_mangle]
pub extern "C" fn clickhouse_create_buffer(size: u32) -> *mut Buffer {
    let mut data: Vec<u8> = Vec::new();
    if data.try_reserve_exact(size as usize).is_err() {
        return std::ptr::null_mut();
    }
    data.resize(size as usize, 0);
    into_handle(data)
}

/// Frees a buffer from `clickhouse_create_buffer` or a function's result.
///
/// # Safety
/// `handle` must come from this module, freed once.
#[no_mangle]
pub unsafe extern "C" fn clickhouse_destroy_buffer(handle: *mut Buffer) {
    if handle.is_null() {
        return;
    }
    let buffer = Box::from_raw(handle);
    drop(Vec::from_raw_parts(buffer.ptr, 0, buffer.cap as usize));
}

fn build(config: &[u8]) -> Result<(Transformer, Shape), String> {
    let text = std::str::from_utf8(config).map_err(|_| "config is not UTF-8".to_owned())?;
    let config = Config::from_json(text).map_err(|e| match e {
        // Only a `key_file` gives this here (a `keys` list is the transformer's to refuse): the
        // host's words for such a file, not the CLI's hint about MASKFLOW_KEY.
        Error::NoKey => "key file holds no key line (`id:base64`)".to_owned(),
        e => e.to_string(),
    })?;
    let shape = Shape::new(config.mapping.columns.iter().map(|c| c.kind).collect());
    let transformer = Transformer::new(config).map_err(|e| e.to_string())?;
    Ok((transformer, shape))
}

/// Whether two byte strings are equal, compared eight bytes at a time. Every row of a block
/// brings the config, and wasm's `memcmp` goes byte by byte: comparing a 140-byte config that way
/// cost a measurable part of a row inside ClickHouse.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    a.len() == b.len()
        && a.chunks_exact(8).zip(b.chunks_exact(8)).all(|(x, y)| word(x) == word(y))
        && a.chunks_exact(8).remainder() == b.chunks_exact(8).remainder()
}

/// Runs `f` with the transformer for `config`, building it only when the config changed.
fn with_transformer<T>(config: &[u8], f: impl FnOnce(&mut Cached) -> T) -> T {
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.as_ref().is_none_or(|c| !same_bytes(&c.config, config)) {
            *cached = None;
            match build(config) {
                Ok((transformer, shape)) => {
                    let columns = transformer.columns().to_vec();
                    *cached = Some(Cached { config: config.to_vec(), transformer, columns, shape })
                }
                // A refused config fails the whole query (nothing half-written). A module
                // without imports cannot hand ClickHouse a message, so the reason (which never
                // carries key material) is `maskflow_check`'s; maskflow.sql checks the config
                // when it loads it, so the pipeline fails with that reason there.
                Err(_) => core::arch::wasm32::unreachable(),
            }
        }
        f(cached.as_mut().unwrap_or_else(|| core::arch::wasm32::unreachable()))
    })
}

/// Calls `each` with every row of a `(body String, sent_ms Int64, config String)` block.
///
/// # Safety
/// `input` must be a handle from `clickhouse_create_buffer` holding `rows` RowBinary rows.
unsafe fn for_each_event(
    input: *const Buffer,
    rows: u32,
    mut each: impl FnMut(&mut Cached, Message),
) {
    let data = std::slice::from_raw_parts((*input).ptr, (*input).size as usize);
    let mut reader = Reader::new(data);
    for _ in 0..rows {
        let body = reader.string();
        // Int64, as in ABI v1: a UInt64 column coerces to it (same wasm kind), and a negative or
        // out-of-range time is the transform's invalid_timestamp, not a query error.
        let sent_timestamp_ms = reader.i64();
        let config = reader.string();
        with_transformer(config, |cached| {
            each(cached, Message { id: "", body, sent_timestamp_ms })
        });
    }
}

/// `maskflow_typed(body String, sent_ms Int64, config String) -> Tuple(<columns>, reason,
/// message, encrypted_body)`: per row the typed outcome ([`typed`]).
///
/// # Safety
/// As for [`for_each_event`].
#[no_mangle]
pub unsafe extern "C" fn maskflow_typed(input: *const Buffer, rows: u32) -> *mut Buffer {
    let mut out = Vec::with_capacity(rows as usize * 160);
    for_each_event(input, rows, |Cached { transformer, shape, .. }, message| {
        shape.put_outcome(&mut out, transformer, &message)
    });
    into_handle(out)
}

/// `maskflow_batch(events Array(Tuple(body String, sent_ms Int64)), config String) ->
/// Array(Tuple(<columns>, reason, message, encrypted_body))`: every event's typed outcome, in
/// order. What the pipeline calls: ClickHouse spends about 2 µs on every row a UDF is called
/// with, whatever the function does (chDB 26.9; docs/benchmarks.md, "ClickHouse"), so an array
/// of events per row pays it once per array instead of once per event.
///
/// # Safety
/// `input` must be a handle from `clickhouse_create_buffer` holding `rows` RowBinary rows.
#[no_mangle]
pub unsafe extern "C" fn maskflow_batch(input: *const Buffer, rows: u32) -> *mut Buffer {
    let data = std::slice::from_raw_parts((*input).ptr, (*input).size as usize);
    let mut reader = Reader::new(data);
    let mut out = Vec::new();
    for _ in 0..rows {
        // The config follows the events: skip over them to it, then read them again.
        let mut events = reader.clone();
        let count = reader.varint();
        for _ in 0..count {
            reader.string();
            reader.i64();
        }
        let config = reader.string();
        events.varint();
        out.reserve(count * 160);
        put_varint(&mut out, count);
        with_transformer(config, |Cached { transformer, shape, .. }| {
            for _ in 0..count {
                let body = events.string();
                let sent_timestamp_ms = events.i64();
                shape.put_outcome(
                    &mut out,
                    transformer,
                    &Message { id: "", body, sent_timestamp_ms },
                );
            }
        });
    }
    into_handle(out)
}

/// `maskflow(body String, sent_ms Int64, config String) -> String`: per row, the outcome JSON
/// `{"row": {...}}` or `{"rejection": {...}}`.
///
/// # Safety
/// As for [`for_each_event`].
#[no_mangle]
pub unsafe extern "C" fn maskflow(input: *const Buffer, rows: u32) -> *mut Buffer {
    let mut out = Vec::with_capacity(rows as usize * 256);
    let mut json = Vec::with_capacity(512);
    for_each_event(input, rows, |Cached { transformer, columns, .. }, message| {
        json.clear();
        let written = match transformer.transform(&message) {
            Ok(row) => serde_json::to_writer(&mut json, &OutcomeJson::Row { columns, row }),
            Err(rejection) => serde_json::to_writer(&mut json, &OutcomeJson::Rejection(&rejection)),
        };
        if written.is_err() {
            core::arch::wasm32::unreachable();
        }
        put_string(&mut out, &json);
    });
    into_handle(out)
}

/// `maskflow_check(config String) -> String`: `""` for a usable config, else why not (the
/// message never contains key material). `maskflow.sql` runs it when it loads the config;
/// `maskflow` and `maskflow_typed` fail the query on a refused config.
///
/// # Safety
/// `input` must be a handle from `clickhouse_create_buffer` holding `rows` RowBinary strings.
#[no_mangle]
pub unsafe extern "C" fn maskflow_check(input: *const Buffer, rows: u32) -> *mut Buffer {
    let data = std::slice::from_raw_parts((*input).ptr, (*input).size as usize);
    let mut reader = Reader::new(data);
    let mut out = Vec::new();
    for _ in 0..rows {
        let verdict = build(reader.string()).err().unwrap_or_default();
        put_string(&mut out, verdict.as_bytes());
    }
    into_handle(out)
}
