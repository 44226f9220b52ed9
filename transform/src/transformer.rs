use crate::cache::{CacheStats, MaskCache};
use crate::config::{nonce_bytes, Config, KeyConfig, Kind, Mapping, RAW_BODY_NONCE};
use crate::date;
use crate::error::Error;
use crate::flat::scan_flat;
use crate::ip;
use crate::mask::{self, ColumnCipher, Key, NONCE_LEN};
use crate::outcome::Row;
use crate::reason::{Reason, Rejection};
use crate::scan::{scan, Found};
use crate::sealer::BodySealer;
use crate::version;

/// One message as SQS delivers it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub id: &'a str,
    pub body: &'a [u8],
    /// SQS `SentTimestamp`: milliseconds since the epoch; gives `create_date`.
    pub sent_timestamp_ms: i64,
}

/// What `unmask` recovered, and from which column's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmasked {
    /// The column name, or `raw_body` for a rejected message's encrypted body.
    pub column: String,
    pub value: Vec<u8>,
}

/// Turns messages into rows. Build one per worker; it keeps its buffers and mask caches
/// between messages, so steady-state transformation does not allocate per record.
pub struct Transformer {
    columns: Vec<ColumnPlan>,
    names: Vec<String>,
    paths: Vec<Vec<String>>,
    max_depth: usize,
    max_body_bytes: usize,
    /// Every path has at most one segment: flat bodies go through [`scan_flat`] first.
    flat: bool,
    keys: Vec<Key>,
    raw_body: BodySealer,
    unmask_domains: Vec<(String, [u8; NONCE_LEN])>,
    row: Row,
    scratch: Vec<u8>,
    canonical: String,
    dates: date::Dates,
    /// Masks to compute once the row is otherwise complete: (column, start, length) of values
    /// in `pending_values`.
    pending: Vec<(usize, usize, usize)>,
    pending_values: Vec<u8>,
}

struct ColumnPlan {
    field: String,
    kind: Kind,
    required: bool,
    max_len: Option<usize>,
    masker: Option<(ColumnCipher, MaskCache)>,
}

type Failure = (Reason, String);

impl Config {
    /// The default `user_logins` mapping with these keys (the first one masks).
    pub fn with_keys(keys: Vec<Key>) -> Config {
        Config {
            keys: keys.iter().map(KeyConfig::from).collect(),
            mapping: Mapping::user_logins(),
            cache_size: 4096,
        }
    }
}

impl From<&Key> for KeyConfig {
    fn from(key: &Key) -> Self {
        let line = key.to_key_file_line();
        let (id, b64) = line.split_once(':').expect("key file line has an id");
        KeyConfig { id: id.to_owned(), key: b64.to_owned() }
    }
}

impl Transformer {
    pub fn new(config: Config) -> Result<Self, Error> {
        config.mapping.validate()?;
        let keys = config
            .keys
            .iter()
            .map(|k| Key::from_base64(&k.id, &k.key))
            .collect::<Result<Vec<_>, _>>()?;
        let active = keys.first().ok_or(Error::NoKey)?;
        if keys.iter().enumerate().any(|(i, k)| keys[..i].iter().any(|o| o.id() == k.id())) {
            return Err(Error::Config("two keys have the same id".into()));
        }
        let Mapping { columns, max_depth, max_body_bytes } = config.mapping;
        let mut unmask_domains = vec![("raw_body".to_owned(), nonce_bytes(RAW_BODY_NONCE))];
        let plans = columns
            .iter()
            .map(|c| {
                let masker = c.mask_nonce.as_deref().map(|nonce| {
                    unmask_domains.push((c.name.clone(), nonce_bytes(nonce)));
                    (
                        ColumnCipher::new(active, &nonce_bytes(nonce)),
                        MaskCache::new(config.cache_size),
                    )
                });
                let field = c.path.clone().unwrap_or_else(|| "sent timestamp".into());
                ColumnPlan { field, kind: c.kind, required: c.required, max_len: c.max_len, masker }
            })
            .collect();
        let paths: Vec<Vec<String>> = columns
            .iter()
            .map(|c| {
                c.path.as_deref().map_or(vec![], |p| p.split('.').map(str::to_owned).collect())
            })
            .collect();
        Ok(Transformer {
            columns: plans,
            names: columns.iter().map(|c| c.name.clone()).collect(),
            flat: paths.iter().all(|p| p.len() <= 1),
            paths,
            max_depth,
            max_body_bytes,
            raw_body: BodySealer::new(&keys)?,
            keys,
            unmask_domains,
            row: Row::default(),
            scratch: Vec::new(),
            canonical: String::new(),
            dates: date::Dates::default(),
            pending: Vec::new(),
            pending_values: Vec::new(),
        })
    }

    /// Output column names, in row order.
    pub fn columns(&self) -> &[String] {
        &self.names
    }

    /// Turns the flat-object scanner off (or back on, where the mapping allows it): every body
    /// then goes through the serde_json path alone. For the tests and benchmarks that compare
    /// the two paths; the outcomes are the same either way.
    #[doc(hidden)]
    pub fn set_flat_scan(&mut self, on: bool) {
        self.flat = on && self.paths.iter().all(|p| p.len() <= 1);
    }

    /// Makes the mask caches always look up (`false`), or switch themselves off below their
    /// break-even hit rate (`true`, the default; transform/src/cache.rs). For the tests and
    /// benchmarks that compare the two; the outcomes are the same either way.
    #[doc(hidden)]
    pub fn set_cache_adaptive(&mut self, adaptive: bool) {
        for (_, cache) in self.columns.iter_mut().filter_map(|c| c.masker.as_mut()) {
            cache.set_adaptive(adaptive);
        }
    }

    /// What the mask caches did over every masked column since this transformer was made
    /// (lookups made, their hits, values let through while a cache was off): what the
    /// benchmarks print beside their rates.
    pub fn cache_stats(&self) -> CacheStats {
        self.columns.iter().filter_map(|c| c.masker.as_ref()).fold(
            CacheStats::default(),
            |sum, (_, cache)| {
                let s = cache.stats();
                CacheStats {
                    hits: sum.hits + s.hits,
                    lookups: sum.lookups + s.lookups,
                    bypassed: sum.bypassed + s.bypassed,
                }
            },
        )
    }

    /// The row for `message`, or why there is none. The row is borrowed from the transformer
    /// and overwritten by the next call.
    pub fn transform(&mut self, message: &Message) -> Result<&Row, Rejection> {
        match self.fill_row(message) {
            Ok(()) => Ok(&self.row),
            Err((reason, message_text)) => Err(self.reject(message.body, reason, message_text)),
        }
    }

    fn reject(&self, body: &[u8], reason: Reason, message: String) -> Rejection {
        Rejection { reason, message, encrypted_body: self.encrypt_body(body) }
    }

    /// Encrypts a body exactly as rejections carry it, for hosts that record rejections of their
    /// own (a module that traps on a message, a database that refuses it).
    pub fn encrypt_body(&self, body: &[u8]) -> String {
        self.raw_body.seal(body)
    }

    /// Recovers the clear value of a mask made by any loaded key, from any masked column or a
    /// rejection's encrypted body.
    pub fn unmask(&self, text: &str) -> Result<Unmasked, Error> {
        let nonces: Vec<[u8; NONCE_LEN]> = self.unmask_domains.iter().map(|(_, n)| *n).collect();
        let (domain, value) = mask::unmask(&self.keys, &nonces, text)?;
        Ok(Unmasked { column: self.unmask_domains[domain].0.clone(), value })
    }

    fn fill_row(&mut self, message: &Message) -> Result<(), Failure> {
        let body = message.body;
        if body.len() > self.max_body_bytes {
            return Err((
                Reason::BodyTooLarge,
                format!("the body is {} bytes; the limit is {}", body.len(), self.max_body_bytes),
            ));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| (Reason::BodyNotUtf8, "the body is not valid UTF-8".to_owned()))?;
        let fast = if self.flat { scan_flat(text, &self.paths) } else { None };
        let values = match fast {
            Some(values) => values,
            None => scan(text, &self.paths, self.max_depth)
                .map_err(|reason| (reason, structural_message(reason, self.max_depth)))?,
        };

        let Transformer {
            columns, row, scratch, canonical, dates, pending, pending_values, ..
        } = self;
        pending.clear();
        pending_values.clear();
        row.reset(columns.len());
        for (i, (plan, found)) in columns.iter_mut().zip(values.iter()).enumerate() {
            let cell = &mut row.cells[i];
            let fail = |reason, rule: &str| (reason, format!("field `{}`: {rule}", plan.field));
            let value = match (plan.kind, found) {
                (Kind::SentDate, _) => match dates.push(message.sent_timestamp_ms, cell) {
                    Some(()) => Value::Written,
                    None => {
                        return Err(fail(Reason::InvalidTimestamp, "must be between 1970 and 9999"))
                    }
                },
                (_, Found::Absent | Found::Null) => Value::Null,
                (_, Found::Other(kind)) => {
                    return Err(fail(
                        Reason::WrongType,
                        &format!("expected {}, got {kind}", plan.kind.expected()),
                    ))
                }
                (Kind::Version, Found::Int(n)) => {
                    let code =
                        u32::try_from(*n).ok().and_then(|major| version::from_parts(major, 0, 0));
                    write_version(code, cell)
                        .map_err(|()| fail(Reason::InvalidVersion, VERSION_RULE))?
                }
                (Kind::Version, Found::Float(literal)) => {
                    write_version(version::encode_number_literal(literal), cell)
                        .map_err(|()| fail(Reason::InvalidVersion, VERSION_RULE))?
                }
                (_, Found::Int(_) | Found::Float(_)) => {
                    return Err(fail(
                        Reason::WrongType,
                        &format!("expected {}, got number", plan.kind.expected()),
                    ))
                }
                (kind, Found::Str(s)) => {
                    let s = s.trim();
                    if s.contains('\0') {
                        return Err(fail(
                            Reason::InvalidCharacter,
                            "contains U+0000, which PostgreSQL text cannot store",
                        ));
                    }
                    match kind {
                        _ if s.is_empty() => Value::Null,
                        Kind::Ip => {
                            canonical.clear();
                            if !ip::canonicalize(s, canonical) {
                                return Err(fail(
                                    Reason::InvalidIp,
                                    "not an IPv4 or IPv6 address in a standard form",
                                ));
                            }
                            Value::Text(canonical)
                        }
                        Kind::Version => write_version(version::encode(s), cell)
                            .map_err(|()| fail(Reason::InvalidVersion, VERSION_RULE))?,
                        Kind::Text | Kind::SentDate => Value::Text(s),
                    }
                }
            };
            let value = match value {
                Value::Null if plan.required => {
                    return Err(fail(Reason::MissingField, "is required"))
                }
                Value::Null => continue,
                Value::Written => {
                    row.nulls[i] = false;
                    continue;
                }
                Value::Text(text) => text,
            };
            row.nulls[i] = false;
            match &mut plan.masker {
                Some((cipher, cache)) => {
                    let limit = plan.max_len.unwrap_or(usize::MAX);
                    if cipher.mask_len(value.len()) > limit {
                        return Err(fail(
                            Reason::MaskTooLong,
                            &format!("too long to mask within {limit} characters"),
                        ));
                    }
                    match cache.get(value.as_bytes()) {
                        Some(mask) => cell.push_str(mask),
                        None => {
                            // Masked after the loop, two at a time where possible.
                            pending.push((i, pending_values.len(), value.len()));
                            pending_values.extend_from_slice(value.as_bytes());
                        }
                    }
                }
                None => {
                    if let Some(limit) = plan.max_len.filter(|&limit| value.chars().count() > limit)
                    {
                        return Err(fail(
                            Reason::ValueTooLong,
                            &format!("longer than {limit} characters"),
                        ));
                    }
                    cell.push_str(value);
                }
            }
        }
        mask_pending(columns, row, pending, pending_values, scratch);
        Ok(())
    }
}

/// Computes the masks `fill_row` left pending (cache misses, in column order) into their cells
/// and caches them: two short values of the same key share their AES calls.
fn mask_pending(
    columns: &mut [ColumnPlan],
    row: &mut Row,
    pending: &[(usize, usize, usize)],
    values: &[u8],
    scratch: &mut Vec<u8>,
) {
    let mut next = 0;
    while next < pending.len() {
        let (i, start, len) = pending[next];
        let value = &values[start..start + len];
        if let Some(&(j, start_b, len_b)) = pending.get(next + 1) {
            let value_b = &values[start_b..start_b + len_b];
            let (head, tail) = columns.split_at_mut(j);
            if let (Some((a, cache_a)), Some((b, cache_b))) =
                (&mut head[i].masker, &mut tail[0].masker)
            {
                if a.can_pair(b, len, len_b) {
                    let (cells_head, cells_tail) = row.cells.split_at_mut(j);
                    let (cell_a, cell_b) = (&mut cells_head[i], &mut cells_tail[0]);
                    a.mask_pair_into(value, b, value_b, cell_a, cell_b);
                    cache_a.insert(value, cell_a);
                    cache_b.insert(value_b, cell_b);
                    next += 2;
                    continue;
                }
            }
        }
        if let Some((cipher, cache)) = &mut columns[i].masker {
            let cell = &mut row.cells[i];
            cipher.mask_into(value, scratch, cell);
            cache.insert(value, cell);
        }
        next += 1;
    }
}

const VERSION_RULE: &str =
    "not a version `major[.minor[.patch]]` with major <= 2146 and minor, patch <= 999";

/// A column's value before masking and length checks.
enum Value<'v> {
    Null,
    /// Already in the cell (dates and versions: never masked, bounded length).
    Written,
    Text(&'v str),
}

fn write_version(code: Option<i32>, cell: &mut String) -> Result<Value<'static>, ()> {
    let code = u64::try_from(code.ok_or(())?).map_err(|_| ())?;
    date::push_decimal(cell, code, 1);
    Ok(Value::Written)
}

fn structural_message(reason: Reason, max_depth: usize) -> String {
    match reason {
        Reason::BodyNotJson => "the body is not valid JSON".into(),
        Reason::BodyNotObject => "the body is JSON but not an object".into(),
        Reason::NestingTooDeep => {
            format!("the body nests objects or arrays deeper than {max_depth} levels")
        }
        Reason::DuplicateKey => "the body has an object with a duplicate key".into(),
        other => other.code().into(),
    }
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Version => "a string or number",
            _ => "a string",
        }
    }
}
