//! Hand-written modules that break the ABI's promises, for containment tests. Each is a
//! minimal ABI v1 module (WAT) whose `transform_batch` misbehaves in one way.

/// `init` succeeds with one column, `user_id`; `transform_batch` is `$body`.
fn module(abi_version: u32, imports: &str, transform_batch_body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          {imports}
          (memory (export "memory") 2 65536)
          (func (export "abi_version") (result i32) i32.const {abi_version})
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (data (i32.const 512) "\00\01\00\00\00\07\00\00\00user_id")
          (data (i32.const 768) "\01memory.grow refused at ")
          (data (i32.const 800) "\01table.grow refused at ")
          (data (i32.const 900) " pages")
          (data (i32.const 920) " elements")
          (func (export "init") (param i32 i32) (result i64) i64.const 0x0000020000000010)
          (func (export "transform_batch") (param $p i32) (param $n i32) (result i64)
            (local $i i32) (local $count i32) (local $out i32)
            {transform_batch_body}))"#
    );
    wat::parse_str(wat).expect("valid WAT")
}

pub fn traps() -> Vec<u8> {
    module(1, "", "unreachable")
}

pub fn loops_forever() -> Vec<u8> {
    module(1, "", "(loop $forever (br $forever)) unreachable")
}

/// Grows memory a page at a time until refused, then traps (what an allocator does).
pub fn grows_memory_without_bound() -> Vec<u8> {
    module(1, "", "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable")
}

/// Grows memory one 64 KiB page at a time until it has `target_pages`, then rejects every
/// message with reason `wrong_type` (as [`traps_on_poison`] does). If `memory.grow` is refused first,
/// it answers with the module's own error `memory.grow refused at N pages`, N being its
/// `memory.size` then: how far it got, in its own words.
pub fn grows_memory_to(target_pages: u32) -> Vec<u8> {
    module(
        1,
        "",
        &format!(
            r#"
        (block $grown (loop $grow
          (br_if $grown (i32.ge_u (memory.size) (i32.const {target_pages})))
          (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
            (then
              ;; The decimal digits of memory.size, written backwards to end at 900, where
              ;; " pages" is; the status byte and "memory.grow refused at " copied before them.
              (local.set $i (memory.size))
              (local.set $out (i32.const 900))
              (loop $digit
                (local.set $out (i32.sub (local.get $out) (i32.const 1)))
                (i32.store8 (local.get $out) (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 10))))
                (local.set $i (i32.div_u (local.get $i) (i32.const 10)))
                (br_if $digit (i32.ne (local.get $i) (i32.const 0))))
              (local.set $out (i32.sub (local.get $out) (i32.const 24)))
              (memory.copy (local.get $out) (i32.const 768) (i32.const 24))
              (return (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
                              (i64.extend_i32_u (i32.sub (i32.const 906) (local.get $out)))))))
          (br $grow)))
        {REJECT_ALL_AS_WRONG_TYPE}"#
        ),
    )
}

/// Grows a function table 1,000 elements at a time until it has `target` elements, then
/// rejects every message with reason `wrong_type`. If `table.grow` is refused first, it answers with
/// the module's own error `table.grow refused at N elements`, N being its `table.size` then.
pub fn grows_table_to(target: u32) -> Vec<u8> {
    module(
        1,
        "(table $t 0 funcref)",
        &format!(
            r#"
        (block $grown (loop $grow
          (br_if $grown (i32.ge_u (table.size $t) (i32.const {target})))
          (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))
            (then
              ;; As in grows_memory_to: the digits of table.size end at 920, where " elements"
              ;; is; the status byte and "table.grow refused at " (23 bytes) go before them.
              (local.set $i (table.size $t))
              (local.set $out (i32.const 920))
              (loop $digit
                (local.set $out (i32.sub (local.get $out) (i32.const 1)))
                (i32.store8 (local.get $out) (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 10))))
                (local.set $i (i32.div_u (local.get $i) (i32.const 10)))
                (br_if $digit (i32.ne (local.get $i) (i32.const 0))))
              (local.set $out (i32.sub (local.get $out) (i32.const 23)))
              (memory.copy (local.get $out) (i32.const 800) (i32.const 23))
              (return (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
                              (i64.extend_i32_u (i32.sub (i32.const 929) (local.get $out)))))))
          (br $grow)))
        {REJECT_ALL_AS_WRONG_TYPE}"#
        ),
    )
}

/// Grows a function table until refused, then traps (as [`grows_memory_without_bound`]).
pub fn grows_table_without_bound() -> Vec<u8> {
    module(
        1,
        "(table $t 0 funcref)",
        "(loop $grow (br_if $grow (i32.ne (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1)))) unreachable",
    )
}

pub fn wrong_abi_version() -> Vec<u8> {
    module(2, "", "unreachable")
}

pub fn imports_a_function() -> Vec<u8> {
    module(1, r#"(import "env" "log" (func $log (param i32)))"#, "unreachable")
}

/// Rejects every message with reason `wrong_type`, but traps on any batch holding a `!` byte.
pub fn traps_on_poison() -> Vec<u8> {
    module(
        1,
        "",
        &format!(
            r#"
        (block $scanned (loop $scan
          (br_if $scanned (i32.ge_u (local.get $i) (local.get $n)))
          (if (i32.eq (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 33)) (then unreachable))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $scan)))
{REJECT_ALL_AS_WRONG_TYPE}"#
        ),
    )
}

/// The ok answer rejecting each of the batch's messages as `wrong_type`, with message and body
/// `x` (the batch's message count is its first u32, at `$p`). A host accepts only ABI.md's
/// reason codes.
const REJECT_ALL_AS_WRONG_TYPE: &str = r#"
        (local.set $count (i32.load (local.get $p)))
        (i32.store8 (i32.const 65536) (i32.const 0))
        (i32.store (i32.const 65537) (local.get $count))
        (local.set $out (i32.const 65541))
        (local.set $i (i32.const 0))
        (block $emitted (loop $emit
          (br_if $emitted (i32.ge_u (local.get $i) (local.get $count)))
          (i32.store8 (local.get $out) (i32.const 1))
          (i32.store (i32.add (local.get $out) (i32.const 1)) (i32.const 10))
          ;; "wrong_type", little-endian: "wrong_ty" then "pe"
          (i64.store (i32.add (local.get $out) (i32.const 5)) (i64.const 0x79745f676e6f7277))
          (i32.store16 (i32.add (local.get $out) (i32.const 13)) (i32.const 0x6570))
          (i32.store (i32.add (local.get $out) (i32.const 15)) (i32.const 1))
          (i32.store8 (i32.add (local.get $out) (i32.const 19)) (i32.const 120))
          (i32.store (i32.add (local.get $out) (i32.const 20)) (i32.const 1))
          (i32.store8 (i32.add (local.get $out) (i32.const 24)) (i32.const 120))
          (local.set $out (i32.add (local.get $out) (i32.const 25)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $emit)))
        (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.extend_i32_u (i32.sub (local.get $out) (i32.const 65536))))"#;
