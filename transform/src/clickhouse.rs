//! ClickHouse's WebAssembly UDF protocol `BUFFERED_V1` (ABI.md, "ClickHouse"): the same module,
//! called by ClickHouse (or chDB) once per block with the argument columns serialised as
//! RowBinary, returning the result column as RowBinary.
//!
//! Exports: `clickhouse_create_buffer`, `clickhouse_destroy_buffer`, and the functions
//! `maskflow(body String, sent_ms Int64, config String) -> String` (one outcome JSON per row,
//! the golden vectors' shape) and `maskflow_check(config String) -> String` (`""` or why the
//! config is refused). A buffer handle points at `{ptr: u32, size: u32}`; ClickHouse frees both
//! the input and the result buffer with `clickhouse_destroy_buffer`.
//!
//! The config column carries the key (from a table the query joins, never from the query's
//! text); the initialised transformer is cached per config, so a block, and every block after
//! it with the same config, sets the keys up once.

use std::cell::RefCell;

use crate::{Config, Message, OutcomeJson, Transformer};

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

/// RowBinary reader over the input block. ClickHouse writes it, so malformed input is a broken
/// host: the function traps rather than guess.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        if n > self.data.len() {
            core::arch::wasm32::unreachable();
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn varint(&mut self) -> usize {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)[0];
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        core::arch::wasm32::unreachable()
    }

    fn string(&mut self) -> &'a [u8] {
        let len = self.varint();
        self.take(len)
    }

    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().unwrap_or([0; 8]))
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

fn build(config: &[u8]) -> Result<Transformer, String> {
    let text = std::str::from_utf8(config).map_err(|_| "config is not UTF-8".to_owned())?;
    Config::from_json(text).and_then(Transformer::new).map_err(|e| e.to_string())
}

/// Runs `f` with the transformer for `config`, building it only when the config changed.
fn with_transformer<T>(config: &[u8], f: impl FnOnce(&mut Cached) -> T) -> T {
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.as_ref().is_none_or(|c| c.config.as_slice() != config) {
            *cached = None;
            match build(config) {
                Ok(transformer) => {
                    let columns = transformer.columns().to_vec();
                    *cached = Some(Cached { config: config.to_vec(), transformer, columns })
                }
                // A refused config fails the whole query (nothing half-written); its reason,
                // which never carries key material, is what `maskflow_check` returns.
                Err(_) => core::arch::wasm32::unreachable(),
            }
        }
        f(cached.as_mut().unwrap_or_else(|| core::arch::wasm32::unreachable()))
    })
}

/// `maskflow(body String, sent_ms Int64, config String) -> String`: per row, the outcome JSON
/// `{"row": {...}}` or `{"rejection": {...}}`.
///
/// # Safety
/// `input` must be a handle from `clickhouse_create_buffer` holding `rows` RowBinary rows.
#[no_mangle]
pub unsafe extern "C" fn maskflow(input: *const Buffer, rows: u32) -> *mut Buffer {
    let data = std::slice::from_raw_parts((*input).ptr, (*input).size as usize);
    let mut reader = Reader { data };
    let mut out = Vec::with_capacity(rows as usize * 256);
    let mut json = Vec::with_capacity(512);
    for _ in 0..rows {
        let body = reader.string();
        // Int64, as in ABI v1: a UInt64 column coerces to it (same wasm kind), and a negative or
        // out-of-range time is the transform's invalid_timestamp, not a query error.
        let sent_timestamp_ms = reader.i64();
        let config = reader.string();
        json.clear();
        with_transformer(config, |Cached { transformer, columns, .. }| {
            let message = Message { id: "", body, sent_timestamp_ms };
            let written = match transformer.transform(&message) {
                Ok(row) => serde_json::to_writer(&mut json, &OutcomeJson::Row { columns, row }),
                Err(rejection) => {
                    serde_json::to_writer(&mut json, &OutcomeJson::Rejection(&rejection))
                }
            };
            if written.is_err() {
                core::arch::wasm32::unreachable();
            }
        });
        put_string(&mut out, &json);
    }
    into_handle(out)
}

/// `maskflow_check(config String) -> String`: `""` for a usable config, else why not (the
/// message never contains key material). Run it once when setting up; `maskflow` itself fails
/// the query on a refused config.
///
/// # Safety
/// As for [`maskflow`].
#[no_mangle]
pub unsafe extern "C" fn maskflow_check(input: *const Buffer, rows: u32) -> *mut Buffer {
    let data = std::slice::from_raw_parts((*input).ptr, (*input).size as usize);
    let mut reader = Reader { data };
    let mut out = Vec::new();
    for _ in 0..rows {
        let verdict = build(reader.string()).err().unwrap_or_default();
        put_string(&mut out, verdict.as_bytes());
    }
    into_handle(out)
}
