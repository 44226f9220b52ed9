//! PostgreSQL settings the libpq way: `--database-url` (a URL or a `key=value` string), else
//! the PG* variables; TLS from `sslmode`, `sslrootcert`, `sslcert`, `sslkey` in the URL, else
//! PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY; the password from `~/.pgpass` (or
//! PGPASSFILE) when none is given.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::sink::{ClientCert, PostgresConfig, RootCerts, SslMode, Timeouts, TlsConfig};

use super::pgpass;

const SSL_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PostgresArgs {
    /// PostgreSQL connection: a libpq URL (`postgres://user@host/db?sslmode=verify-full&sslrootcert=ca.pem`)
    /// or `key=value` string. Without it, the PG* variables (PGHOST, PGPORT, PGUSER,
    /// PGPASSWORD, PGDATABASE, PGSSLMODE, ...) are used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub(crate) database_url: Option<String>,
    /// Target table; `user_logins` is created with its fixed DDL if missing.
    #[arg(long, env = "MASKFLOW_TABLE", default_value = "user_logins", global = true)]
    pub(crate) table: String,
    /// Schema of the target table and of maskflow's own tables (created if missing); default:
    /// the connection's search_path (usually `public`).
    #[arg(long, env = "MASKFLOW_SCHEMA", global = true)]
    pub(crate) schema: Option<String>,
    /// Budget for opening a connection: TCP, TLS and authentication together (libpq's
    /// `connect_timeout`, which the URL may also set). A server that accepts the connection and
    /// never answers counts as down after this.
    #[arg(long, env = "MASKFLOW_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, global = true)]
    pub(crate) connect_timeout: Option<std::time::Duration>,
    /// Budget of one commit: the server stops its statements after this (`statement_timeout`),
    /// aborts the transaction if the host goes silent in it, and the host gives up waiting for
    /// an answer (then the commit is retried; the ledger keeps it exactly once).
    #[arg(long, env = "MASKFLOW_COMMIT_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration, global = true)]
    pub(crate) commit_timeout: std::time::Duration,
}

/// libpq has no default connect timeout (it waits for the kernel's); a host must not hang.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl PostgresArgs {
    pub(crate) fn into_config(self) -> Result<PostgresConfig> {
        let (text, mut ssl) = match &self.database_url {
            Some(url) => split_ssl_params(url)?,
            None => (from_pg_variables(), Vec::new()),
        };
        // The PGSSL* variables are defaults, as for libpq: the URL's own settings win.
        for (key, var) in
            SSL_KEYS.iter().zip(["PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"])
        {
            if !ssl.iter().any(|(k, _)| k == key) {
                if let Some(value) = env(var) {
                    ssl.push((key.to_string(), value));
                }
            }
        }
        let get = |key: &str| ssl.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let tls = tls_config(get("sslmode"), get("sslrootcert"), get("sslcert"), get("sslkey"))?;

        let mut client: tokio_postgres::Config = text
            .parse()
            .map_err(|e| Error::usage(format!("invalid --database-url / DATABASE_URL: {e}")))?;
        client.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if client.get_hosts().is_empty() {
            client.host("localhost");
        }
        if client.get_user().is_none() {
            client.user(env("USER").unwrap_or_else(|| "postgres".into()));
        }
        // As libpq: PGPASSWORD fills in a URL without a password, then ~/.pgpass.
        if client.get_password().is_none() {
            if let Some(password) = env("PGPASSWORD") {
                client.password(password);
            }
        }
        if client.get_password().is_none() {
            let file = env("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")));
            if let Some(password) = file.and_then(|f| pgpass::lookup(&f, &client)) {
                client.password(password);
            }
        }
        if let Some(schema) = &self.schema {
            if !is_identifier(schema) {
                return Err(Error::usage(format!(
                    "--schema `{schema}`: use lower-case letters, digits and _"
                )));
            }
        }
        let connect = self
            .connect_timeout
            .or_else(|| client.get_connect_timeout().copied())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect.is_zero() || self.commit_timeout.is_zero() {
            return Err(Error::usage("--connect-timeout and --commit-timeout must be more than 0"));
        }
        let timeouts = Timeouts { connect, commit: self.commit_timeout };
        Ok(PostgresConfig { client, tls, table: self.table, schema: self.schema, timeouts })
    }
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn tls_config(
    mode: Option<String>,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
) -> Result<TlsConfig> {
    let mode = match mode.as_deref().unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(Error::usage(format!(
                "sslmode `{other}`: use disable, allow, prefer, require, verify-ca or verify-full"
            )))
        }
    };
    let root_certs =
        root.map(|r| if r == "system" { RootCerts::System } else { RootCerts::File(r.into()) });
    let client_cert = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientCert { cert: cert.into(), key: key.into() }),
        _ => return Err(Error::usage("sslcert and sslkey go together: give both or neither")),
    };
    Ok(TlsConfig { mode, root_certs, client_cert })
}

/// `key='value'` pairs from the PG* variables, for `tokio_postgres::Config`'s parser.
fn from_pg_variables() -> String {
    ["host", "port", "user", "password", "dbname"]
        .iter()
        .zip(["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"])
        .filter_map(|(key, var)| env(var).map(|v| format!("{key}={}", quote(&v))))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Takes the TLS settings out of a URL's query or a `key=value` string (the `postgres` crate
/// knows only `sslmode` disable/prefer/require); returns the rest and the TLS settings.
fn split_ssl_params(text: &str) -> Result<(String, Vec<(String, String)>)> {
    let is_ssl = |key: &str| SSL_KEYS.contains(&key);
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let Some((base, query)) = text.split_once('?') else {
            return Ok((text.to_owned(), Vec::new()));
        };
        let mut rest = Vec::new();
        let mut ssl = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded =
                percent_encoding::percent_decode_str(value).decode_utf8().map_err(|_| {
                    Error::usage(format!("--database-url: parameter `{key}` is not UTF-8"))
                })?;
            if is_ssl(key) {
                ssl.push((key.to_owned(), decoded.into_owned()));
            } else {
                rest.push(pair);
            }
        }
        let text =
            if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
        return Ok((text, ssl));
    }
    let pairs = parse_key_values(text)?;
    let (ssl, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| is_ssl(k));
    let text = rest.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect::<Vec<_>>().join(" ");
    Ok((text, ssl))
}

/// libpq's `key = value` syntax: values bare or single-quoted with `\'` and `\\` escapes.
fn parse_key_values(text: &str) -> Result<Vec<(String, String)>> {
    let bad = |why: &str| Error::usage(format!("invalid --database-url / DATABASE_URL: {why}"));
    let mut chars = text.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=')).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(&format!("`{key}` has no `=`")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(bad("unterminated quote")),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_leave_urls_and_key_value_strings_for_the_postgres_parser() {
        let (text, ssl) = split_ssl_params(
            "postgres://u:p@db.example.com:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Frds.pem",
        )
        .unwrap();
        assert_eq!(text, "postgres://u:p@db.example.com:5432/app?application_name=x");
        assert_eq!(
            ssl,
            [
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/etc/rds.pem".into())
            ]
        );

        let (text, ssl) =
            split_ssl_params(r"host=db port=5432 password='it\'s' sslmode = require dbname=app")
                .unwrap();
        assert!(text.contains("host='db'") && text.contains("dbname='app'"), "{text}");
        assert_eq!(ssl, [("sslmode".to_owned(), "require".to_owned())]);
    }

    #[test]
    fn quoted_values_keep_spaces_and_escapes() {
        let pairs = parse_key_values(r"password='a b\'c\\d' host=x").unwrap();
        assert_eq!(pairs, [("password".into(), r"a b'c\d".into()), ("host".into(), "x".into())]);
        assert!(parse_key_values("host").is_err());
        assert!(parse_key_values("password='open").is_err());
    }

    #[test]
    fn sslmode_values_are_libpqs() {
        assert_eq!(tls_config(None, None, None, None).unwrap().mode, SslMode::Prefer);
        assert_eq!(
            tls_config(Some("verify-ca".into()), None, None, None).unwrap().mode,
            SslMode::VerifyCa
        );
        assert!(tls_config(Some("verify_full".into()), None, None, None).is_err());
        assert!(
            tls_config(None, None, Some("c.pem".into()), None).is_err(),
            "a certificate without its key"
        );
    }
}
