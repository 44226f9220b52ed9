-- The tables the Vector pipeline writes: the host's DDL (host/src/sink/schema.rs). The VRL twin
-- leaves sent_at NULL: `maskflow replay` dates its rejections by rejected_at.
-- Vector's postgres sink creates no tables. psql "$DATABASE_URL" -f integrations/vector/tables.sql
CREATE TABLE IF NOT EXISTS user_logins(
    user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
    masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date);
CREATE TABLE IF NOT EXISTS user_logins_rejected(
    message_id text PRIMARY KEY, reason text NOT NULL, message text NOT NULL,
    encrypted_body text NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz);
