#!/usr/bin/env python3
"""An independent oracle for maskflow's golden vectors (issue 14).

Recomputes every vector's outcome from the message (body, SentTimestamp) and the written spec
alone -- transform/ABI.md, README.md ("Validation", "Normalisation", "Masking", "app_version")
and docs/bad-inputs.md -- and compares it with the vector's `expected`. It shares no code with
the Rust transform: its own JSON reader, `ipaddress` for IPs, `datetime` for dates and the
`cryptography` package's AESSIV for masks.

How an outcome is decided: every check of the spec runs on its own and reports a *fault*
(reason code + field). No fault: a row, every cell recomputed. Faults that all share one
reason code: a rejection with that code. Faults with different codes: the spec gives no
priority between them, so the reason is *undecided* (the encrypted body is still checked).
A few rules the docs leave open also make a vector undecided (see `Undecided` raises). Every
undecided vector must be listed in UNDECIDED_ALLOWED, with why, or the run fails.

Prints one line per difference and ends with `oracle: N passed, M failed`. Never prints key
material. `--self-test` proves the oracle catches planted mistakes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import datetime
import ipaddress
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESSIV

HERE = Path(__file__).resolve().parent
DEFAULT_VECTORS = HERE.parent / "vectors" / "golden.jsonl"
DEFAULT_KEY_FILE = HERE.parent / "vectors" / "test.key"

# Vectors whose reason the spec alone cannot decide: name -> why. Keep it short; a vector that
# turns undecided without being listed here fails the run.
UNDECIDED_ALLOWED: dict[str, str] = {}

# ---------------------------------------------------------------------------------------------
# The spec's constants (ABI.md "Default mapping", README "Validation" and "Masking").

MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 32
RAW_BODY_NONCE = b"maskflow.raw.v01"
MAX_MAJOR = 2146  # docs/bad-inputs.md: "major <= 2146 and minor, patch <= 999"

REASONS = (
    "body_too_large", "body_not_utf8", "body_not_json", "body_not_object", "nesting_too_deep",
    "duplicate_key", "invalid_timestamp", "missing_field", "wrong_type", "invalid_character",
    "value_too_long", "invalid_ip", "invalid_version", "mask_too_long",
)


@dataclass(frozen=True)
class Column:
    name: str
    path: str | None  # dotted input path; None for sent_date
    kind: str  # text | ip | version | sent_date
    required: bool = False
    max_len: int | None = None  # characters; for a masked column, of the mask (README: "mask over 256 characters")
    mask_nonce: bytes | None = None


USER_LOGINS = (
    Column("user_id", "user_id", "text", required=True, max_len=128),
    Column("device_type", "device_type", "text", max_len=32),
    Column("masked_ip", "ip", "ip", max_len=256, mask_nonce=b"maskflow.ip.v001"),
    Column("masked_device_id", "device_id", "text", max_len=256, mask_nonce=b"maskflow.did.v01"),
    Column("locale", "locale", "text", max_len=32),
    Column("app_version", "app_version", "version"),
    Column("create_date", None, "sent_date"),
)


class Undecided(Exception):
    """The spec does not decide this input's outcome (the message says which rule is open)."""


# ---------------------------------------------------------------------------------------------
# Keys and masks (ABI.md "Masks").


@dataclass(frozen=True)
class Key:
    id: str
    secret: bytes = field(repr=False)


def load_keys(path: Path) -> list[Key]:
    """`id:base64` lines, the first key masks; blank lines and `#` comments are skipped."""
    keys = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, b64 = line.partition(":")
        # Errors name the line, never its content: it is key material.
        if not sep or not re.fullmatch(r"[a-z0-9]{1,16}", key_id):
            sys.exit(f"{path}:{number}: not an `id:base64` key line")
        try:
            secret = base64.b64decode(b64.strip(), validate=True)
        except binascii.Error:
            sys.exit(f"{path}:{number}: key is not valid base64")
        if len(secret) != 64:
            sys.exit(f"{path}:{number}: an AES-256-SIV key is 64 bytes")
        keys.append(Key(key_id, secret))
    if not keys:
        sys.exit(f"{path}: no key")
    return keys


def mask(key: Key, nonce: bytes, value: bytes) -> str:
    """`<key id>.<unpadded base64url of tag || ciphertext>`.

    ABI.md: the `aes-siv` crate's AEAD encrypt(nonce, plaintext, aad = ""). That AEAD runs
    RFC 5297's S2V over the strings [aad, nonce, plaintext], so the associated data list is
    [b"", nonce] (an empty first component, not none). cryptography's AESSIV returns the
    16-byte tag first, then the ciphertext: the layout the mask needs.
    """
    sealed = AESSIV(key.secret).encrypt(value, [b"", nonce])
    return key.id + "." + base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")


# ---------------------------------------------------------------------------------------------
# JSON (RFC 8259), read iteratively so that a 256 KiB body of brackets cannot exhaust the stack,
# and recording the structural faults as it goes (it keeps reading after a duplicate key or a
# too-deep container, to find every fault up to the end or the first syntax error).


class JsonObject:
    """An object as its members in order; duplicates are kept (the checks want to see them)."""

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: list[tuple[str, object]] = []

    def values_of(self, key: str) -> list[object]:
        return [v for k, v in self.members if k == key]


@dataclass(frozen=True)
class JsonNumber:
    text: str  # the literal as written: the spec's version rules may read either it or its value

    @property
    def is_integer_literal(self) -> bool:
        return not any(c in self.text for c in ".eE")


@dataclass
class Document:
    value: object = None  # the top-level value, when the whole body is valid JSON
    not_json: bool = False
    begins_non_object: bool = False  # the top-level value starts as something other than `{`
    too_deep: bool = False
    duplicate_key: bool = False
    number_beyond_f64: bool = False


class _SyntaxError(Exception):
    pass


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING = re.compile(r'"((?:[^"\\\x00-\x1f]+|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*)"')
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = (("true", True), ("false", False), ("null", None))
_OPENED = object()


@dataclass
class _Frame:
    container: object  # JsonObject or list
    seen: set = field(default_factory=set)
    key: str | None = None


def _unescape(raw: str) -> str:
    text = _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else _SIMPLE_ESCAPES[m[2]], raw)
    # \ud83d\ude80 arrives as two surrogates: a UTF-16 round trip joins pairs and refuses a lone
    # one (a string that is not Unicode text is not JSON text we can store).
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise _SyntaxError from None


class _Reader:
    def __init__(self, text: str, doc: Document, max_depth: int) -> None:
        self.text, self.doc, self.max_depth, self.pos = text, doc, max_depth, 0

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, token: str) -> None:
        if self.peek() != token:
            raise _SyntaxError
        self.pos += 1
        self.skip_ws()

    def document(self) -> object:
        self.skip_ws()
        first = self.peek()
        self.doc.begins_non_object = first != "" and first in '["-0123456789tfn'
        stack: list[_Frame] = []
        while True:
            value = self.value_start(stack)
            if value is _OPENED:
                continue
            while True:  # a complete value: attach it, then close or continue its container
                if not stack:
                    if self.pos != len(self.text):
                        raise _SyntaxError
                    return value
                frame = stack[-1]
                is_object = isinstance(frame.container, JsonObject)
                if is_object:
                    frame.container.members.append((frame.key, value))
                else:
                    frame.container.append(value)
                if self.peek() == ",":
                    self.pos += 1
                    self.skip_ws()
                    if is_object:
                        self.member_key(frame)
                    break
                self.expect("}" if is_object else "]")
                value = stack.pop().container

    def value_start(self, stack: list[_Frame]) -> object:
        """A scalar, an empty container, or _OPENED after pushing a non-empty one."""
        opener = self.peek()
        if opener not in ("{", "["):
            return self.scalar()
        if len(stack) + 1 > self.max_depth:  # the top-level value is depth 1
            self.doc.too_deep = True
        self.pos += 1
        self.skip_ws()
        frame = _Frame(JsonObject() if opener == "{" else [])
        closer = "}" if opener == "{" else "]"
        if self.peek() == closer:
            self.pos += 1
            self.skip_ws()
            return frame.container
        stack.append(frame)
        if opener == "{":
            self.member_key(frame)
        return _OPENED

    def member_key(self, frame: _Frame) -> None:
        match = _STRING.match(self.text, self.pos)
        if not match:
            raise _SyntaxError
        key = _unescape(match[1])  # keys compare as text: "user\u005fid" repeats "user_id"
        if key in frame.seen:
            self.doc.duplicate_key = True
        frame.seen.add(key)
        frame.key = key
        self.pos = match.end()
        self.skip_ws()
        self.expect(":")

    def scalar(self) -> object:
        if match := _STRING.match(self.text, self.pos):
            value: object = _unescape(match[1])
        elif match := _NUMBER.match(self.text, self.pos):
            value = JsonNumber(match[0])
            if math.isinf(float(match[0])):
                self.doc.number_beyond_f64 = True
        else:
            for literal, value in _LITERALS:
                if self.text.startswith(literal, self.pos):
                    self.pos += len(literal)
                    break
            else:
                raise _SyntaxError
            self.skip_ws()
            return value
        self.pos = match.end()
        self.skip_ws()
        return value


def read_json(text: str, max_depth: int = MAX_DEPTH) -> Document:
    doc = Document()
    try:
        doc.value = _Reader(text, doc, max_depth).document()
    except _SyntaxError:
        doc.not_json = True
    return doc


# ---------------------------------------------------------------------------------------------
# Value rules (README "Normalisation", "app_version"; ABI.md "Default mapping").

# Unicode's White_Space property: what "trimmed" means for text in general.
_UNICODE_WS = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_JSON_WS = " \t\n\r"


def trim(value: str) -> str:
    trimmed = value.strip(_UNICODE_WS)
    # The spec says "trimmed" without saying of what; where Unicode white space and JSON's own
    # four white-space characters give different results, it does not decide.
    if trimmed != value.strip(_JSON_WS):
        raise Undecided("`trimmed` of non-JSON white space (e.g. U+00A0, \\v): the spec does not say which")
    return trimmed


def canonical_ip(text: str) -> str | None:
    """IPv4 dotted quad, IPv6 lower-case compressed (RFC 5952), IPv4-mapped IPv6 as IPv4.

    `ipaddress` refuses IPv4 leading zeros and shorthand (010.0.0.1, 10.1), ports and
    brackets; it accepts IPv6 zone ids, which docs/bad-inputs.md refuses (`fe80::1%eth0`).
    """
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


def version_code(major: int, minor: int = 0, patch: int = 0) -> int | None:
    if 0 <= major <= MAX_MAJOR and 0 <= minor <= 999 and 0 <= patch <= 999:
        return major * 1_000_000 + minor * 1_000 + patch
    return None


def version_from_text(text: str) -> int | None:
    """`major[.minor[.patch]]` of ASCII digits; `"2.00"` is 2.0.0, `"0.96"` is 0.96.0."""
    parts = text.split(".")
    if len(parts) > 3 or not all(p and p.isascii() and p.isdigit() for p in parts):
        return None
    code = version_code(*map(int, parts))
    if code is not None and any(len(p) > 4 for p in parts):
        raise Undecided("version part of more than 4 digits (leading zeros): the spec sets no digit limit")
    return code


def version_from_number(number: JsonNumber) -> int | None:
    """README "app_version": a JSON number is read from its literal text, never its value.

    An integer literal is a major version (`2` is 2.0.0). Any other literal is read as a version
    string would be: `1.10` is 1.10.0 (not 1.1.0, which would merge it with "1.1"), `2.50` is
    2.50.0, and `1e2` or `-1.5` are no version.
    """
    if number.is_integer_literal:
        return version_code(int(number.text))
    return version_from_text(number.text)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def utc_date(sent_timestamp_ms: int) -> str | None:
    """`YYYY-MM-DD` of the timestamp, if its year is 1970..9999 (docs/bad-inputs.md)."""
    try:
        moment = _EPOCH + datetime.timedelta(milliseconds=sent_timestamp_ms)
    except OverflowError:
        return None
    return moment.date().isoformat() if 1970 <= moment.year <= 9999 else None


# ---------------------------------------------------------------------------------------------
# The outcome of one message.


@dataclass(frozen=True)
class Fault:
    reason: str
    field: str


@dataclass
class Verdict:
    encrypted_body: str  # what a rejection of this body carries, whatever its reason
    faults: list[Fault] = field(default_factory=list)
    row: dict[str, str | None] | None = None  # when there is no fault
    undecided: str | None = None
    rejected: bool | None = None  # None: not even that is decided
    clear_values: list[str] = field(default_factory=list)  # masked inputs, for the leak check

    @property
    def reason(self) -> str | None:
        reasons = {f.reason for f in self.faults}
        return reasons.pop() if len(reasons) == 1 else None


def lookup(obj: JsonObject, path: str) -> list[object]:
    """Values at a dotted path (several if a key repeats); [] if absent."""
    values: list[object] = [obj]
    for segment in path.split("."):
        found = []
        for value in values:
            if value is None:
                continue  # a null on the way: the field is absent
            if not isinstance(value, JsonObject):
                raise Undecided(f"path `{path}` runs into a non-object: the spec does not say what that is")
            found.extend(value.values_of(segment))
        values = found
    return values


def column_faults(column: Column, value: object, key: Key) -> tuple[list[str], str | None]:
    """Reasons this one input value breaks, and its cell (None: SQL NULL) when it breaks none."""
    reasons: list[str] = []
    cell: str | None = None
    if isinstance(value, str):
        text = trim(value)
        if "\0" in text:
            reasons.append("invalid_character")
        if text and column.kind == "ip":
            cell = canonical_ip(text)
            if cell is None:
                reasons.append("invalid_ip")
        elif text and column.kind == "version":
            code = version_from_text(text)
            cell = None if code is None else str(code)
            if code is None:
                reasons.append("invalid_version")
        elif text:
            cell = text
    elif isinstance(value, JsonNumber) and column.kind == "version":
        code = version_from_number(value)
        cell = None if code is None else str(code)
        if code is None:
            reasons.append("invalid_version")
    elif value is not None:  # bool, object, array, or a number for a string column
        reasons.append("wrong_type")
    if cell is None and not reasons and column.required:
        reasons.append("missing_field")
    if cell is not None and column.mask_nonce is not None:
        cell = mask(key, column.mask_nonce, cell.encode("utf-8"))
        if column.max_len is not None and len(cell) > column.max_len:
            reasons.append("mask_too_long")
    elif cell is not None and column.max_len is not None and len(cell) > column.max_len:
        reasons.append("value_too_long")  # characters = code points, never truncated
    return reasons, (None if reasons else cell)


def evaluate_columns(obj: JsonObject, sent_timestamp_ms: int, key: Key, verdict: Verdict) -> dict:
    row: dict[str, str | None] = {}
    for column in USER_LOGINS:
        if column.kind == "sent_date":
            row[column.name] = utc_date(sent_timestamp_ms)
            continue  # a bad timestamp is a fault of the message: evaluate_faults checks it
        values = lookup(obj, column.path) or [None]  # absent reads as null
        cells = set()
        for value in values:  # one value, unless a repeated key gives several (also a fault)
            reasons, cell = column_faults(column, value, key)
            verdict.faults.extend(Fault(r, column.path) for r in reasons)
            cells.add(cell)
            if column.mask_nonce is not None and isinstance(value, str):
                verdict.clear_values += [value, value.strip(_UNICODE_WS)]
        row[column.name] = cells.pop() if len(cells) == 1 else None
    return row


def evaluate(body: bytes, sent_timestamp_ms: int, key: Key) -> Verdict:
    verdict = Verdict(encrypted_body=mask(key, RAW_BODY_NONCE, body))
    try:
        row = evaluate_faults(body, sent_timestamp_ms, key, verdict)
    except Undecided as why:
        verdict.undecided = str(why)
        verdict.faults.clear()  # partial: the open rule may add or remove any of them
        return verdict
    verdict.rejected = bool(verdict.faults)
    if not verdict.faults:
        verdict.row = row
    elif verdict.reason is None:
        codes = ", ".join(sorted({f.reason for f in verdict.faults}))
        verdict.undecided = f"faults with different reason codes ({codes}); the spec orders none"
    return verdict


def evaluate_faults(body: bytes, sent_timestamp_ms: int, key: Key, verdict: Verdict) -> dict | None:
    """Runs every check, each on its own, adding its faults; returns the row's cells."""
    faults = verdict.faults
    if len(body) > MAX_BODY_BYTES:
        faults.append(Fault("body_too_large", "body"))
    if utc_date(sent_timestamp_ms) is None:
        faults.append(Fault("invalid_timestamp", "sent timestamp"))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        faults.append(Fault("body_not_utf8", "body"))
        return None  # no text, so no JSON checks
    doc = read_json(text)
    if doc.number_beyond_f64:
        raise Undecided("a number beyond binary64's range: RFC 8259 leaves such numbers to the reader")
    structural = {
        "body_not_json": doc.not_json,
        "body_not_object": doc.begins_non_object or (not doc.not_json and not isinstance(doc.value, JsonObject)),
        "nesting_too_deep": doc.too_deep,
        "duplicate_key": doc.duplicate_key,
    }
    faults.extend(Fault(reason, "body") for reason, broken in structural.items() if broken)
    if not isinstance(doc.value, JsonObject):
        return None  # fields exist only in a complete object
    return evaluate_columns(doc.value, sent_timestamp_ms, key, verdict)


# ---------------------------------------------------------------------------------------------
# Comparing with a vector.


def vector_body(vector: dict) -> bytes:
    """tests/src/lib.rs `Vector::body`: `body` text or `body_base64`, then `pad_body_to` spaces."""
    if "body" in vector and vector["body"] is not None:
        body = vector["body"].encode("utf-8")
    else:
        body = base64.b64decode(vector["body_base64"], validate=True)
    pad = vector.get("pad_body_to")
    if pad is not None:
        body = body[:pad].ljust(pad, b" ")
    return body


@dataclass
class Difference:
    field: str
    expected: object
    oracle: object


def short(value: object, limit: int = 90) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def compare(vector: dict, verdict: Verdict) -> list[Difference]:
    expected = vector.get("expected") or {}
    row, rejection = expected.get("row"), expected.get("rejection")
    if (row is None) == (rejection is None):
        return [Difference("expected", "exactly one of row/rejection", sorted(expected))]
    diffs: list[Difference] = []
    if verdict.rejected is not None and verdict.rejected != (rejection is not None):
        said = f"rejection {rejection['reason']}" if rejection else "row"
        got = f"rejection {'/'.join(sorted({f.reason for f in verdict.faults}))}" if verdict.rejected else "row"
        return [Difference("outcome", said, got)]
    if row is not None and verdict.row is not None:
        for name in sorted(set(row) | set(verdict.row)):
            if row.get(name, "<missing>") != verdict.row.get(name, "<missing>"):
                diffs.append(Difference(name, row.get(name, "<missing>"), verdict.row.get(name, "<missing>")))
    if rejection is not None:
        if verdict.reason is not None and rejection.get("reason") != verdict.reason:
            diffs.append(Difference("reason", rejection.get("reason"), verdict.reason))
        diffs += compare_encrypted_body(rejection.get("encrypted_body"), verdict.encrypted_body)
        diffs += leaks(rejection.get("message", ""), verdict.clear_values)
    return diffs


# gen-vectors stores `null` instead of an encrypted body longer than this (it would bloat the file).
OMITTED_ENCRYPTED_BODY_OVER = 4096


def compare_encrypted_body(expected: str | None, oracle: str) -> list[Difference]:
    if expected is None and len(oracle) > OMITTED_ENCRYPTED_BODY_OVER:
        return []  # omitted from the file, as huge ones are: nothing to compare
    return [] if expected == oracle else [Difference("encrypted_body", expected, oracle)]


def leaks(message: str, clear_values: list[str]) -> list[Difference]:
    """Rejection messages name the field and rule, never the value (ABI.md)."""
    # Values under 4 characters can occur in any prose by chance; they prove nothing.
    found = sorted({v for v in clear_values if len(v) >= 4 and v in message})
    return [Difference("message", "no clear masked value", f"contains {v!r}") for v in found]


@dataclass
class Report:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, list[Difference]] = field(default_factory=dict)
    undecided: dict[str, str] = field(default_factory=dict)  # allow-listed only

    @property
    def ok(self) -> bool:
        return not self.failed


def check(vectors: list[dict], key: Key, allowed: dict[str, str]) -> Report:
    report = Report()
    for vector in vectors:
        name = vector.get("name", "<unnamed>")
        verdict = evaluate(vector_body(vector), vector["sent_timestamp_ms"], key)
        diffs = compare(vector, verdict)
        if verdict.undecided and not diffs:
            if name in allowed:
                report.undecided[name] = verdict.undecided
                continue
            diffs = [Difference("undecided", "listed in UNDECIDED_ALLOWED", verdict.undecided)]
        if diffs:
            report.failed[name] = diffs
        else:
            report.passed.append(name)
    return report


def print_report(report: Report, allowed: dict[str, str]) -> None:
    for name, diffs in report.failed.items():
        for d in diffs:
            print(f"FAIL {name}: {d.field}: expected {short(d.expected)}, oracle {short(d.oracle)}")
    for name in sorted(set(allowed) - set(report.undecided)):
        print(f"note: UNDECIDED_ALLOWED lists {name}, which is not undecided (any more): remove it")
    if report.undecided:
        listed = "; ".join(f"{n} ({why})" for n, why in report.undecided.items())
        print(f"oracle: {len(report.undecided)} undecided, reason not compared: {listed}")
    print(f"oracle: {len(report.passed)} passed, {len(report.failed)} failed")


def read_vectors(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# Self-test: plant one mistake at a time in memory and require the oracle to name it.


def _first(vectors: list[dict], wanted) -> int:
    return next(i for i, v in enumerate(vectors) if wanted(v))


def _row(v: dict, column: str | None = None) -> bool:
    row = (v.get("expected") or {}).get("row")
    return row is not None and (column is None or row.get(column) is not None)


def _rejection(v: dict) -> bool:
    return "rejection" in (v.get("expected") or {})


def _stored_rejection(v: dict) -> bool:
    return _rejection(v) and v["expected"]["rejection"].get("encrypted_body") is not None


def _flip_mask_byte(text: str) -> str:
    key_id, _, b64 = text.partition(".")
    sealed = bytearray(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))
    sealed[len(sealed) // 2] ^= 0x01
    return key_id + "." + base64.urlsafe_b64encode(bytes(sealed)).decode().rstrip("=")


def _mutations(vectors: list[dict], key: Key):
    """(label, mutated vectors, {vector name: field the oracle must name})."""

    def plant(label, index, fieldname, change):
        mutated = copy.deepcopy(vectors)
        change(mutated[index]["expected"])
        return label, mutated, {mutated[index]["name"]: fieldname}

    i = _first(vectors, lambda v: _row(v, "masked_ip"))
    yield plant("(a) one mask byte changed", i, "masked_ip",
                lambda e: e["row"].update(masked_ip=_flip_mask_byte(e["row"]["masked_ip"])))
    i = _first(vectors, lambda v: _row(v, "create_date"))
    next_day = lambda d: (datetime.date.fromisoformat(d) + datetime.timedelta(days=1)).isoformat()
    yield plant("(b) create_date off by one day", i, "create_date",
                lambda e: e["row"].update(create_date=next_day(e["row"]["create_date"])))
    i = _first(vectors, lambda v: _row(v, "app_version"))
    yield plant("(c) app_version changed", i, "app_version",
                lambda e: e["row"].update(app_version=str(int(e["row"]["app_version"]) + 1000)))
    i = _first(vectors, _stored_rejection)
    other = lambda r: next(c for c in REASONS if c != r)
    yield plant("(d) rejection reason changed", i, "reason",
                lambda e: e["rejection"].update(reason=other(e["rejection"]["reason"])))

    mutated = copy.deepcopy(vectors)
    a = _first(mutated, _stored_rejection)
    b = _first(mutated, lambda v: _stored_rejection(v) and vector_body(v) != vector_body(mutated[a]))
    ra, rb = mutated[a]["expected"]["rejection"], mutated[b]["expected"]["rejection"]
    ra["encrypted_body"], rb["encrypted_body"] = rb["encrypted_body"], ra["encrypted_body"]
    yield "(e) encrypted_body swapped between two vectors", mutated, {
        mutated[a]["name"]: "encrypted_body", mutated[b]["name"]: "encrypted_body"}

    i = _first(vectors, lambda v: _rejection(v) and '"199.172.111.135"' in v.get("body", ""))
    yield plant("(f) clear ip in a rejection message", i, "message",
                lambda e: e["rejection"].update(message=e["rejection"]["message"] + " (199.172.111.135)"))

    # Two faults with different codes (a number for user_id, an invalid ip): undecided, and not
    # on the allow-list, so the run must fail on it.
    body = '{"user_id": 7, "ip": "999.1.1.1"}'
    two_faults = {"name": "self_test_two_faults", "message_id": "st-1", "sent_timestamp_ms": 0, "body": body,
                  "expected": {"rejection": {"reason": "wrong_type", "message": "field `user_id`: expected a string",
                                             "encrypted_body": mask(key, RAW_BODY_NONCE, body.encode())}}}
    yield "(g) undecided vector not on the allow-list", vectors + [two_faults], {"self_test_two_faults": "undecided"}


def self_test(vectors: list[dict], key: Key) -> bool:
    baseline = check(vectors, key, UNDECIDED_ALLOWED)
    if not baseline.ok:
        print(f"self-test: the unmodified vectors already fail ({sorted(baseline.failed)}); fix that first")
        return False
    caught = 0
    mutations = list(_mutations(vectors, key))
    for label, mutated, planted in mutations:
        report = check(mutated, key, UNDECIDED_ALLOWED)
        named = {name: {d.field for d in diffs} for name, diffs in report.failed.items()}
        hit = named.keys() == planted.keys() and all(planted[n] in named[n] for n in planted)
        caught += hit
        where = ", ".join(f"{n}: {'/'.join(sorted(fs))}" for n, fs in named.items()) or "nothing"
        print(f"self-test {label}: {'caught' if hit else 'MISSED'} (oracle failed {where}; run exits {int(not report.ok)})")
    # And the allow-list works: the same undecided vector, once listed, passes as undecided.
    label, mutated, planted = mutations[-1]
    allowed = {**UNDECIDED_ALLOWED, "self_test_two_faults": "self-test"}
    listed = check(mutated, key, allowed)
    allow_ok = listed.ok and "self_test_two_faults" in listed.undecided
    print(f"self-test (h) the same vector allow-listed: {'undecided, run passes' if allow_ok else 'WRONG'}")
    print(f"oracle self-test: {caught + allow_ok} of {len(mutations) + 1} planted mistakes caught")
    return caught == len(mutations) and allow_ok


# ---------------------------------------------------------------------------------------------
# `maskflow mask`: the mask of a clear value must be the row's (issue 23). Every string `ip` and
# `device_id` of every vector's body is given to the binary alone; the oracle judges the same
# value with the same column rules (column_faults): a mask, a rejection with its reason, or
# nothing (an empty value is stored as NULL).


def check_mask_cli(vectors: list[dict], key_file: Path, binary: str) -> tuple[int, list[str]]:
    import os
    import subprocess

    key = load_keys(key_file)[0]
    env = {**os.environ, "MASKFLOW_KEY": key_file.read_text()}
    env.pop("MASKFLOW_KEY_FILE", None)
    columns = {c.path: c for c in USER_LOGINS if c.mask_nonce is not None}
    seen: set[tuple[str, str]] = set()
    failures: list[str] = []
    for vector in vectors:
        try:
            body = json.loads(vector_body(vector))
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(body, dict):
            continue
        for path, column in columns.items():
            value = body.get(path)
            # argv cannot carry NUL; a line feed would split a stdin line: both left to the Rust tests.
            if not isinstance(value, str) or "\0" in value or (path, value) in seen:
                continue
            seen.add((path, value))
            reasons, cell = column_faults(column, value, key)
            run = subprocess.run([binary, "mask", "--column", path, "--", value], env=env,
                                 capture_output=True, text=True)
            got = run.stdout.strip()
            where = f"{vector.get('name')}: mask --column {path}"
            if len(value.strip()) >= 6 and value.strip() in run.stdout + run.stderr:
                failures.append(f"{where}: the clear value appears in the output")
            if cell is not None:
                if run.returncode != 0 or got != cell:
                    failures.append(f"{where}: expected {short(cell)}, got {short(got)} (exit {run.returncode})")
            elif reasons:
                if run.returncode == 0 or got or f"rejected: {reasons[0]}" not in run.stderr:
                    failures.append(f"{where}: expected rejection {reasons[0]}, got {short(got or run.stderr.strip())}")
            elif run.returncode == 0 or got:
                failures.append(f"{where}: expected no mask (NULL), got {short(got)}")
    return len(seen), failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS, help="golden vectors (JSON lines)")
    parser.add_argument("--key-file", type=Path, default=DEFAULT_KEY_FILE, help="key file: `id:base64` lines")
    parser.add_argument("--self-test", action="store_true", help="plant mistakes in memory and require each caught")
    parser.add_argument("--mask-cli", metavar="MASKFLOW", help="also check `MASKFLOW mask` on every ip and device_id")
    args = parser.parse_args()
    vectors = read_vectors(args.vectors)
    if args.mask_cli:
        checked, failures = check_mask_cli(vectors, args.key_file, args.mask_cli)
        for failure in failures:
            print(f"FAIL {failure}")
        print(f"oracle mask: {checked - len(failures)} values passed, {len(failures)} failed")
        return 1 if failures or checked == 0 else 0
    key = load_keys(args.key_file)[0]  # the first key masks
    if args.self_test:
        return 0 if self_test(vectors, key) else 1
    report = check(vectors, key, UNDECIDED_ALLOWED)
    print_report(report, UNDECIDED_ALLOWED)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
