-- maskflow inside ClickHouse (26.9, or chDB 26.9): the shipped module as WebAssembly UDFs, and a
-- pipeline that masks raw login events into `user_logins` and `user_logins_rejected`.
-- Needs the server setting allow_experimental_webassembly_udf (README.md: "A ClickHouse server";
-- chDB: a session argument). Paths are relative to the server's user_files_path (chDB: the
-- working directory); the tests substitute absolute ones. Statements end with a `;` at the end of
-- a line: split the file there to run it statement by statement (chDB's `query` takes one).
--
-- The functions run without fuel metering (webassembly_udf_enable_fuel = 0): the module's work is
-- bounded by its input, metering cost 12% of the pipeline's time, and the default fuel bound
-- stopped a block after a few thousand events.

-- 1. The module (host/module/maskflow_transform.wasm) and its functions (transform/ABI.md).
INSERT INTO system.webassembly_modules (name, code)
SELECT 'maskflow', raw_blob FROM file('maskflow_transform.wasm', 'RawBlob');

-- The outcome as typed values: the columns of `user_logins`, then the rejection's fields (NULL
-- for a row; every column NULL for a rejection). What the pipeline below reads.
CREATE OR REPLACE FUNCTION maskflow_typed LANGUAGE WASM ABI BUFFERED_V1 FROM 'maskflow'
ARGUMENTS (body String, sent_ms Int64, config String)
RETURNS Tuple(
    user_id Nullable(String),
    device_type Nullable(String),
    masked_ip Nullable(String),
    masked_device_id Nullable(String),
    locale Nullable(String),
    app_version Nullable(Int32),
    create_date Nullable(Date32),
    reason Nullable(String),
    message Nullable(String),
    encrypted_body Nullable(String))
SETTINGS serialization_format = 'RowBinary', webassembly_udf_enable_fuel = 0;

-- The same for an array of events per call: what the pipeline below calls. ClickHouse spends about
-- 2 us on each row a UDF is called with, whatever the function does: an array pays it once.
CREATE OR REPLACE FUNCTION maskflow_batch LANGUAGE WASM ABI BUFFERED_V1 FROM 'maskflow'
ARGUMENTS (events Array(Tuple(body String, sent_ms Int64)), config String)
RETURNS Array(Tuple(
    user_id Nullable(String),
    device_type Nullable(String),
    masked_ip Nullable(String),
    masked_device_id Nullable(String),
    locale Nullable(String),
    app_version Nullable(Int32),
    create_date Nullable(Date32),
    reason Nullable(String),
    message Nullable(String),
    encrypted_body Nullable(String)))
SETTINGS serialization_format = 'RowBinary', webassembly_udf_enable_fuel = 0;

-- The same outcome as JSON (the golden vectors' shape), for ad hoc queries.
CREATE OR REPLACE FUNCTION maskflow LANGUAGE WASM ABI BUFFERED_V1 FROM 'maskflow'
ARGUMENTS (body String, sent_ms Int64, config String) RETURNS String
SETTINGS serialization_format = 'RowBinary', webassembly_udf_enable_fuel = 0;

-- '' for a usable config, else why it is refused (never any key material).
CREATE OR REPLACE FUNCTION maskflow_check LANGUAGE WASM ABI BUFFERED_V1 FROM 'maskflow'
ARGUMENTS (config String) RETURNS String
SETTINGS serialization_format = 'RowBinary', webassembly_udf_enable_fuel = 0;

-- 2. The key, never in a query's text: the key file read into a one-row table that only the
-- pipeline's owner may read (README.md: "Where the key lives"). A config that is refused is
-- never stored: the insert fails with the reason (the constraint shows `refused`, never `config`).
CREATE TABLE IF NOT EXISTS maskflow_config
(
    config String,
    refused String,
    CONSTRAINT config_usable CHECK refused = ''
)
ENGINE = MergeTree ORDER BY tuple();

TRUNCATE TABLE maskflow_config;

-- The key file's rules are the host's (README.md, "The key file"; transform/src/keyfile.rs), in
-- its words: only its owner may read the file; one `id:base64` line per key (a bare base64 line
-- is `k1`), blank lines and `#` lines skipped, the first key masks. The first line that breaks a
-- rule refuses the file. filesystem() gives the file's mode beside its content.
INSERT INTO maskflow_config (config, refused)
WITH
    -- Unicode White_Space (what Rust's `char::is_whitespace` and `str::trim` take), as UTF-8.
    ['\t', '\n', '\x0B', '\x0C', '\r', ' ', '\xC2\x85', '\xC2\xA0', '\xE1\x9A\x80', '\xE2\x80\x80',
     '\xE2\x80\x81', '\xE2\x80\x82', '\xE2\x80\x83', '\xE2\x80\x84', '\xE2\x80\x85', '\xE2\x80\x86',
     '\xE2\x80\x87', '\xE2\x80\x88', '\xE2\x80\x89', '\xE2\x80\x8A', '\xE2\x80\xA8', '\xE2\x80\xA9',
     '\xE2\x80\xAF', '\xE2\x81\x9F', '\xE3\x80\x80'] AS white_space,
    -- The format, as the host repeats it in its errors.
    'a key line is `id:base64` (id: 1-16 characters of a-z and 0-9; base64 of 64 bytes, 88 characters), nothing else on the line' AS format
SELECT
    key_lines.config AS config,
    multiIf(
        key_file.type != 'regular', concat('key file ', key_file.name, ' is not a regular file'),
        key_file.others_may_read, concat('key file ', key_file.name, ' has mode ', key_file.mode,
                                         ': group or others can read the key; chmod 600 ', key_file.name),
        key_lines.fault != '', key_lines.fault,
        key_lines.lines = 0, concat('key file ', key_file.name, ' holds no key line (`id:base64`)'),
        maskflow_check(key_lines.config)) AS refused
FROM
(
    SELECT
        name,
        type,
        group_read OR group_write OR group_exec OR others_read OR others_write OR others_exec AS others_may_read,
        -- `ls`'s octal digits (644), without leading zeros, as the host prints the mode.
        replaceRegexpOne(concat(toString(owner_read * 4 + owner_write * 2 + owner_exec),
                                toString(group_read * 4 + group_write * 2 + group_exec),
                                toString(others_read * 4 + others_write * 2 + others_exec)), '^0+(.)', '\\1') AS mode
    FROM filesystem('maskflow.key')
    WHERE depth = 0
) AS key_file
CROSS JOIN
(
    SELECT
        concat('{"keys":[', arrayStringConcat(arrayMap(l -> concat('{"id":"', l.2, '","key":"', l.3, '"}'),
            arraySort(l -> l.1, groupArray((n, id, b64)))), ','), '],"cache_size":4096}') AS config,
        if(countIf(fault != '') > 0,
           concat('key file line ', toString(argMinIf(n, n, fault != '')), ': ', argMinIf(fault, n, fault != '')),
           '') AS fault,
        count() AS lines
    FROM
    (
        SELECT
            n, id, b64,
            multiIf(
                position(line, '\r') > 0, 'carriage return (CRLF line endings): save the key file with LF line endings',
                arrayExists(c -> has(white_space, c), ngrams(line, 1)), concat('spaces or tabs on the line; ', format),
                position(line, '#') > 0, '`#` after the key: a comment goes on a line of its own, starting with `#`',
                position(b64, ':') > 0, concat('more than one `:`; ', format),
                NOT match(id, '^[a-z0-9]{1,16}$'),
                    if(match(b64, '^[a-z0-9]{1,16}$') AND length(id) > 16,
                       'reversed: the id comes first, then `:`, then the key (`k1:<base64>`)',
                       'the key id (before `:`) must be 1-16 characters of a-z and 0-9'),
                first_with_id < n, concat('its key id is already used on line ', toString(first_with_id)),
                -- Canonical padded standard base64, as Rust's base64 STANDARD engine decodes it.
                NOT match(b64, '^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?$'),
                    concat('the key is not standard base64 (A-Z a-z 0-9 + / and `=` padding; ', toString(length(b64)),
                           ' characters): truncated or mangled?'),
                length(base64Decode(b64)) != 64,
                    concat('the key is ', toString(length(base64Decode(b64))),
                           ' bytes; an AES-256-SIV key is 64 bytes (88 base64 characters): truncated?'),
                '') AS fault
        FROM
        (
            SELECT
                n, line,
                position(line, ':') AS colon,
                if(colon > 0, substring(line, 1, colon - 1), 'k1') AS id,
                if(colon > 0, substring(line, colon + 1), line) AS b64,
                min(n) OVER (PARTITION BY id) AS first_with_id
            FROM
            (
                SELECT arrayJoin(arrayZip(arrayEnumerate(lines), lines)) AS numbered, numbered.1 AS n, numbered.2 AS line
                FROM (SELECT splitByChar('\n', assumeNotNull(content)) AS lines FROM filesystem('maskflow.key')
                      WHERE depth = 0 AND type = 'regular')
            )
            WHERE NOT (startsWith(line, '#') OR arrayAll(c -> has(white_space, c), ngrams(line, 1)))
        )
    )
) AS key_lines;

-- 3. The pipeline: raw events in; one UDF call per event; rows and rejections out.
CREATE TABLE IF NOT EXISTS login_events_raw (body String, sent_ms Int64) ENGINE = Null;

CREATE TABLE IF NOT EXISTS maskflow_outcomes
(
    outcome Tuple(
        user_id Nullable(String),
        device_type Nullable(String),
        masked_ip Nullable(String),
        masked_device_id Nullable(String),
        locale Nullable(String),
        app_version Nullable(Int32),
        create_date Nullable(Date32),
        reason Nullable(String),
        message Nullable(String),
        encrypted_body Nullable(String)),
    sent_ms Int64
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS user_logins
(
    user_id String,
    device_type Nullable(String),
    masked_ip Nullable(String),
    masked_device_id Nullable(String),
    locale Nullable(String),
    app_version Nullable(Int32),
    create_date Date32
)
ENGINE = MergeTree ORDER BY (create_date, user_id);

CREATE TABLE IF NOT EXISTS user_logins_rejected
(
    reason LowCardinality(String),
    message String,
    encrypted_body String,
    sent_ms Int64
)
ENGINE = MergeTree ORDER BY (reason, sent_ms);

-- One UDF call per 8,192 events (an array each, in order); a body over 2 KiB gets a call of its
-- own, so a call's arrays stay under about 50 MB of the module's 128 MB
-- (webassembly_udf_max_memory) whatever the bodies. The config side is an aggregate, so always one
-- row: an event is never dropped by a join with an empty table, and an insert fails unless the
-- table holds exactly one config (two would be ambiguous).
CREATE MATERIALIZED VIEW IF NOT EXISTS maskflow_mask TO maskflow_outcomes AS
SELECT outcome, event.sent_ms AS sent_ms
FROM
(
    SELECT groupArray(CAST((e.body, e.sent_ms), 'Tuple(body String, sent_ms Int64)')) AS events,
           maskflow_batch(events, any(c.config)) AS outcomes
    FROM login_events_raw AS e
    CROSS JOIN (SELECT any(config) AS config, count() AS configs FROM maskflow_config) AS c
    WHERE NOT throwIf(c.configs != 1, 'maskflow_config must hold exactly one row: load the key file (maskflow.sql, step 2)')
    GROUP BY if(length(e.body) > 2048, -1 - toInt64(rowNumberInAllBlocks()), intDiv(toInt64(rowNumberInAllBlocks()), 8192))
)
ARRAY JOIN events AS event, outcomes AS outcome;

CREATE MATERIALIZED VIEW IF NOT EXISTS maskflow_rows TO user_logins AS
SELECT
    assumeNotNull(outcome.user_id) AS user_id,
    outcome.device_type AS device_type,
    outcome.masked_ip AS masked_ip,
    outcome.masked_device_id AS masked_device_id,
    outcome.locale AS locale,
    outcome.app_version AS app_version,
    assumeNotNull(outcome.create_date) AS create_date
FROM maskflow_outcomes
WHERE outcome.reason IS NULL;

CREATE MATERIALIZED VIEW IF NOT EXISTS maskflow_rejections TO user_logins_rejected AS
SELECT
    assumeNotNull(outcome.reason) AS reason,
    assumeNotNull(outcome.message) AS message,
    assumeNotNull(outcome.encrypted_body) AS encrypted_body,
    sent_ms
FROM maskflow_outcomes
WHERE outcome.reason IS NOT NULL;
