//! The WebAssembly ABI (ABI.md is the contract; keep the two in step).
//!
//! Exports: `memory`, `abi_version`, `alloc`, `dealloc`, `init`, `transform_batch`. No imports.
//! Calls return a packed `u64` = `ptr << 32 | len` of a result buffer owned by the module and
//! valid until the next `init` or `transform_batch`. Errors are values in that buffer, never traps.

use std::cell::RefCell;

use crate::{Config, Message, Transformer, ABI_VERSION};

const STATUS_OK: u8 = 0;
const STATUS_ERROR: u8 = 1;
const KIND_ROW: u8 = 0;
const KIND_REJECTION: u8 = 1;
const NULL: u32 = u32::MAX;

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
        let text = std::str::from_utf8(input).map_err(|_| "config is not UTF-8".to_owned())?;
        let transformer = Config::from_json(text).and_then(Transformer::new).map_err(|e| e.to_string())?;
        put_u32(out, transformer.columns().len() as u32);
        for name in transformer.columns() {
            put_str(out, name.as_bytes());
        }
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
    let mut input = Reader(std::slice::from_raw_parts(ptr, len as usize));
    respond(|out| {
        TRANSFORMER.with(|cell| {
            let mut guard = cell.borrow_mut();
            let transformer = guard.as_mut().ok_or("transform_batch called before a successful init")?;
            let count = input.u32()?;
            put_u32(out, count);
            for _ in 0..count {
                let id = std::str::from_utf8(input.bytes()?).map_err(|_| "message id is not UTF-8")?;
                let sent_timestamp_ms = input.i64()?;
                let body = input.bytes()?;
                match transformer.transform(&Message { id, body, sent_timestamp_ms }) {
                    Ok(row) => {
                        out.push(KIND_ROW);
                        for value in row.values() {
                            match value {
                                Some(text) => put_str(out, text.as_bytes()),
                                None => put_u32(out, NULL),
                            }
                        }
                    }
                    Err(rejection) => {
                        out.push(KIND_REJECTION);
                        put_str(out, rejection.reason.code().as_bytes());
                        put_str(out, rejection.message.as_bytes());
                        put_str(out, rejection.encrypted_body.as_bytes());
                    }
                }
            }
            if !input.0.is_empty() {
                return Err("trailing bytes after the last message".into());
            }
            Ok(())
        })
    })
}

/// Runs `body` into the reused result buffer and packs its address.
fn respond(body: impl FnOnce(&mut Vec<u8>) -> Result<(), String>) -> u64 {
    RESULT.with(|cell| {
        let mut out = cell.borrow_mut();
        out.clear();
        out.push(STATUS_OK);
        if let Err(message) = body(&mut out) {
            out.clear();
            out.push(STATUS_ERROR);
            out.extend_from_slice(message.as_bytes());
        }
        (out.as_ptr() as u64) << 32 | out.len() as u64
    })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("batch ends in the middle of a message".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
