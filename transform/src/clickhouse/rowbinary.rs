//! The pieces of ClickHouse's RowBinary format the UDFs read and write: `String` (LEB128 length,
//! then the bytes), `Int64`/`Int32`/`Date32` (little-endian), `Nullable(T)` (a byte: 1 for
//! NULL, else 0 and the `T`) and `Array(T)` (LEB128 count, then the elements). Tuples are their
//! elements one after the other, with no header.

/// RowBinary reader over an input block. ClickHouse writes it, so malformed input is a broken
/// host: reading traps rather than guess.
#[derive(Clone)]
pub(super) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        if n > self.data.len() {
            core::arch::wasm32::unreachable();
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A LEB128 number: a `String`'s length, an `Array`'s element count.
    pub(super) fn varint(&mut self) -> usize {
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

    pub(super) fn string(&mut self) -> &'a [u8] {
        let len = self.varint();
        self.take(len)
    }

    pub(super) fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().unwrap_or([0; 8]))
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// `Nullable(T)`'s marker byte for NULL; a present value is 0 followed by the value.
pub(super) const NULL: u8 = 1;
pub(super) const PRESENT: u8 = 0;

pub(super) fn put_nullable_string(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(NULL),
        Some(bytes) => {
            out.push(PRESENT);
            put_string(out, bytes);
        }
    }
}

/// `Nullable(Int32)` and `Nullable(Date32)` (days since 1970-01-01) share one encoding.
pub(super) fn put_nullable_i32(out: &mut Vec<u8>, value: Option<i32>) {
    match value {
        None => out.push(NULL),
        Some(n) => {
            out.push(PRESENT);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}
