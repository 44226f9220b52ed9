//! The WebAssembly ABI's exports (ABI.md is the contract; the bytes are [`crate::wire`]'s).
//!
//! Exports: `memory`, `abi_version`, `alloc`, `dealloc`, `init`, `transform_batch`, `unmask`.
//! No imports. (ClickHouse's UDF exports are in [`crate::clickhouse`].)
//! Calls return a packed `u64` = `ptr << 32 | len` of a result buffer owned by the module and
//! valid until the next `init`, `transform_batch` or `unmask`. Errors are values in that buffer,
//! never traps: a status byte by kind ([`crate::wire::FailureKind`]) and the message.

use std::cell::RefCell;

use crate::config::Config;
use crate::transformer::Transformer;
use crate::wire::{self, BatchReader, FailureKind, ModuleFailure, ABI_VERSION, STATUS_OK};

thread_local! {
    static TRANSFORMER: RefCell<Option<Transformer>> = const { RefCell::new(None) };
    static RESULT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[no_mangle]
pub extern "C" fn abi_version() -> u32 {
    ABI_VERSION
}

/// `len` bytes of module memory for the host to write into; 0 when memory is exhausted.
#[no_mangle]
pub extern "C" fn alloc(len: u32) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::new();
    if buf.try_reserve_exact(len as usize).is_err() {
        return std::ptr::null_mut();
    }
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

/// Frees what `alloc(len)` returned.
///
/// # Safety
/// `ptr` and `len` must come from one `alloc` call, freed once.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: u32) {
    if !ptr.is_null() {
        drop(Vec::from_raw_parts(ptr, 0, len as usize));
    }
}

/// `config`: UTF-8 JSON (ABI.md). Result: status, then the column names or an error message.
///
/// # Safety
/// `ptr..ptr+len` must be memory the host wrote (from `alloc`).
#[no_mangle]
pub unsafe extern "C" fn init(ptr: *const u8, len: u32) -> u64 {
    let input = std::slice::from_raw_parts(ptr, len as usize);
    respond(|out| {
        let text = std::str::from_utf8(input).map_err(|_| ModuleFailure {
            kind: FailureKind::ConfigRefused,
            message: "invalid config: not UTF-8".into(),
        })?;
        let transformer = Config::from_json(text)
            .and_then(Transformer::new)
            .map_err(|e| ModuleFailure::from(&e))?;
        wire::encode_columns(out, transformer.columns());
        TRANSFORMER.with(|t| *t.borrow_mut() = Some(transformer));
        Ok(())
    })
}

/// `batch`: count, then per message id, sent timestamp, body (ABI.md). Result: status, then one
/// row or rejection per message, in input order.
///
/// # Safety
/// `ptr..ptr+len` must be memory the host wrote (from `alloc`).
#[no_mangle]
pub unsafe extern "C" fn transform_batch(ptr: *const u8, len: u32) -> u64 {
    let input = std::slice::from_raw_parts(ptr, len as usize);
    respond(|out| {
        TRANSFORMER.with(|cell| {
            let mut guard = cell.borrow_mut();
            let transformer = guard.as_mut().ok_or_else(|| {
                ModuleFailure::other("transform_batch called before a successful init")
            })?;
            let malformed = |e| ModuleFailure::other(format!("batch: {e}"));
            let mut batch = BatchReader::new(input).map_err(malformed)?;
            wire::put_u32(out, batch.len());
            while let Some(message) = batch.next_message().map_err(malformed)? {
                match transformer.transform(&message) {
                    Ok(row) => wire::encode_row(out, row),
                    Err(rejection) => wire::encode_rejection(out, &rejection),
                }
            }
            Ok(())
        })
    })
}

/// `mask`: UTF-8 text of a mask or an encrypted body. Result: status, then `str column` (the
/// column name, or `raw_body`) and the clear value's bytes to the end of the buffer.
///
/// # Safety
/// `ptr..ptr+len` must be memory the host wrote (from `alloc`).
#[no_mangle]
pub unsafe extern "C" fn unmask(ptr: *const u8, len: u32) -> u64 {
    let input = std::slice::from_raw_parts(ptr, len as usize);
    respond(|out| {
        TRANSFORMER.with(|cell| {
            let guard = cell.borrow();
            let transformer = guard
                .as_ref()
                .ok_or_else(|| ModuleFailure::other("unmask called before a successful init"))?;
            let text = std::str::from_utf8(input).map_err(|_| ModuleFailure {
                kind: FailureKind::NotAMask,
                message: "not a mask: the text is not UTF-8".into(),
            })?;
            let unmasked = transformer.unmask(text).map_err(|e| ModuleFailure::from(&e))?;
            wire::put_bytes(out, unmasked.column.as_bytes());
            out.extend_from_slice(&unmasked.value);
            Ok(())
        })
    })
}

/// Runs `body` into the reused result buffer and packs its address.
fn respond(body: impl FnOnce(&mut Vec<u8>) -> Result<(), ModuleFailure>) -> u64 {
    RESULT.with(|cell| {
        let mut out = cell.borrow_mut();
        out.clear();
        out.push(STATUS_OK);
        if let Err(failure) = body(&mut out) {
            out.clear();
            wire::encode_failure(&mut out, &failure);
        }
        (out.as_ptr() as u64) << 32 | out.len() as u64
    })
}
