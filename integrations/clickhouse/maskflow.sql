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

-- The module holds the key file to the host's own rules (transform/ABI.md, `key_file`; README.md,
-- "The key file"): maskflow_check says which line breaks which rule, never any of the key. The
-- file's mode it cannot see: filesystem() gives it here, and a key file that group or others may
-- read is refused as the maskflow CLI refuses it.
INSERT INTO maskflow_config (config, refused)
SELECT
    config,
    multiIf(
        type != 'regular', concat('key file ', name, ' is not a regular file'),
        others_may_read, concat('key file ', name, ' has mode ', mode, ': group or others can read the key; chmod 600 ', name),
        maskflow_check(config)) AS refused
FROM
(
    SELECT
        name,
        type,
        concat('{"key_file":', toJSONString(ifNull(content, '')), ',"cache_size":4096}') AS config,
        group_read OR group_write OR group_exec OR others_read OR others_write OR others_exec AS others_may_read,
        -- `ls`'s octal digits (644), without leading zeros, as the host prints the mode.
        replaceRegexpOne(concat(toString(owner_read * 4 + owner_write * 2 + owner_exec),
                                toString(group_read * 4 + group_write * 2 + group_exec),
                                toString(others_read * 4 + others_write * 2 + others_exec)), '^0+(.)', '\\1') AS mode
    FROM filesystem('maskflow.key')
    WHERE depth = 0
);

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
