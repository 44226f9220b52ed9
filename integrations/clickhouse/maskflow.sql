-- maskflow inside ClickHouse (26.x, or chDB 26.9): the shipped module as a WebAssembly UDF, and a
-- pipeline that masks raw login events into `user_logins` and `user_logins_rejected`.
-- Needs `allow_experimental_webassembly_udf = 1` and, for blocks of thousands of events,
-- `webassembly_udf_max_fuel = 0` (the default, 100k x 1024 instructions per call, is a few
-- thousand events; or a larger bound): settings of the profile the pipeline runs under in
-- ClickHouse, connection arguments in chDB. Paths are relative to the server's user_files_path; the tests substitute
-- absolute ones. Statements are separated by a `;` at the end of a line.

-- 1. The module (host/module/maskflow_transform.wasm) and its two functions (transform/ABI.md).
INSERT INTO system.webassembly_modules (name, code)
SELECT 'maskflow', raw_blob FROM file('maskflow_transform.wasm', 'RawBlob');

CREATE OR REPLACE FUNCTION maskflow LANGUAGE WASM ABI BUFFERED_V1 FROM 'maskflow'
ARGUMENTS (body String, sent_ms Int64, config String) RETURNS String
SETTINGS serialization_format = 'RowBinary';

CREATE OR REPLACE FUNCTION maskflow_check LANGUAGE WASM ABI BUFFERED_V1 FROM 'maskflow'
ARGUMENTS (config String) RETURNS String
SETTINGS serialization_format = 'RowBinary';

-- 2. The key, never in a query's text: read from the key file (`id:base64` lines, `#` comments,
-- the first key masks) into a one-row table that only the pipeline's owner may read
-- (README.md: "Where the key lives").
CREATE TABLE IF NOT EXISTS maskflow_config (config String) ENGINE = MergeTree ORDER BY tuple();

TRUNCATE TABLE maskflow_config;

INSERT INTO maskflow_config
SELECT concat('{"keys":[', arrayStringConcat(arrayMap(x -> x.2, arraySort(groupArray((n, entry)))), ','), '],"cache_size":4096}')
FROM
(
    SELECT
        rowNumberInAllBlocks() AS n,
        trimBoth(line) AS l,
        position(l, ':') AS colon,
        concat('{"id":"', if(colon > 0, trimBoth(substring(l, 1, colon - 1)), 'k1'),
               '","key":"', trimBoth(if(colon > 0, substring(l, colon + 1), l)), '"}') AS entry
    FROM file('maskflow.key', 'LineAsString')
    WHERE l != '' AND NOT startsWith(l, '#')
);

-- 3. The pipeline: raw events in; one UDF call per event; rows and rejections out.
CREATE TABLE IF NOT EXISTS login_events_raw (body String, sent_ms Int64) ENGINE = Null;

CREATE TABLE IF NOT EXISTS maskflow_outcomes (outcome String, sent_ms Int64) ENGINE = Null;

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

-- The config table must hold exactly one row: a cross join with two would double every event.
CREATE MATERIALIZED VIEW IF NOT EXISTS maskflow_mask TO maskflow_outcomes AS
SELECT maskflow(e.body, e.sent_ms, c.config) AS outcome, e.sent_ms AS sent_ms
FROM login_events_raw AS e CROSS JOIN maskflow_config AS c;

CREATE MATERIALIZED VIEW IF NOT EXISTS maskflow_rows TO user_logins AS
SELECT
    JSONExtractString(outcome, 'row', 'user_id') AS user_id,
    JSONExtract(outcome, 'row', 'device_type', 'Nullable(String)') AS device_type,
    JSONExtract(outcome, 'row', 'masked_ip', 'Nullable(String)') AS masked_ip,
    JSONExtract(outcome, 'row', 'masked_device_id', 'Nullable(String)') AS masked_device_id,
    JSONExtract(outcome, 'row', 'locale', 'Nullable(String)') AS locale,
    toInt32OrNull(JSONExtract(outcome, 'row', 'app_version', 'Nullable(String)')) AS app_version,
    toDate32(JSONExtractString(outcome, 'row', 'create_date')) AS create_date
FROM maskflow_outcomes
WHERE JSONHas(outcome, 'row');

CREATE MATERIALIZED VIEW IF NOT EXISTS maskflow_rejections TO user_logins_rejected AS
SELECT
    JSONExtractString(outcome, 'rejection', 'reason') AS reason,
    JSONExtractString(outcome, 'rejection', 'message') AS message,
    JSONExtractString(outcome, 'rejection', 'encrypted_body') AS encrypted_body,
    sent_ms
FROM maskflow_outcomes
WHERE JSONHas(outcome, 'rejection');
