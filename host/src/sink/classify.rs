//! Sorting PostgreSQL errors into [`SinkError`]s by what they are made of, never by their
//! text: the server's SQLSTATE, else the types in the error's source chain (`std::io::Error`
//! and its kind, `rustls::Error`).

use std::error::Error as StdError;

use rustls::CertificateError;
use tokio_postgres::error::SqlState;

use super::SinkError;
use crate::error::find_cause;

/// Sorts an error into refuse (isolate the row), transient (retry) or fatal (stop). The text
/// never includes PostgreSQL's message for data errors, which can quote the offending value.
pub fn classify(e: tokio_postgres::Error) -> SinkError {
    match e.as_db_error() {
        Some(db) => classify_server(db.code(), db.column(), db.message()),
        None => classify_client(&e, e.is_closed()),
    }
}

/// No server answer: the cause's types decide. TLS trouble (a certificate, a protocol problem)
/// is a setting to fix; any I/O trouble (refused, reset, even in the middle of a TLS handshake
/// during a failover; closed; timed out; a name that does not resolve yet) may heal; what is
/// left (authentication settings, a bad connection string, a server that does not offer TLS
/// or does not speak PostgreSQL) is a setting too.
fn classify_client(e: &(dyn StdError + 'static), closed: bool) -> SinkError {
    let text = chain_text(e);
    // tokio-rustls reports TLS failures as I/O errors that carry the rustls error.
    if let Some(tls) = find_cause::<rustls::Error>(e) {
        return SinkError::Fatal(format!("{text}; {}", tls_hint(tls)));
    }
    if closed || find_cause::<std::io::Error>(e).is_some() {
        return SinkError::Transient(text);
    }
    SinkError::Fatal(format!(
        "{text}; check the connection string (host, port, user, password, database), and \
         sslmode: a server that does not offer TLS needs sslmode=prefer or disable"
    ))
}

fn tls_hint(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the server's certificate does not name this host: connect by the name in the certificate, or use sslmode=verify-ca",
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "the server's certificate is not signed by a CA in sslrootcert: give the right CA file",
        rustls::Error::InvalidCertificate(_) => {
            "the server's certificate is not acceptable (expired, revoked or malformed)"
        }
        _ => "TLS failed: check sslmode, sslrootcert, sslcert and sslkey",
    }
}

/// `error: cause: cause...`, for messages.
fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

fn classify_server(code: &SqlState, column: Option<&str>, message: &str) -> SinkError {
    let sqlstate = code.code();
    if matches!(&sqlstate[..2], "22" | "23") {
        let column = column.map(|c| format!(" (column `{c}`)")).unwrap_or_default();
        return SinkError::Refused(format!(
            "SQLSTATE {sqlstate}: {}{column}",
            describe_data_error(code)
        ));
    }
    let text = format!("SQLSTATE {sqlstate}: {message}");
    if is_transient(code) {
        SinkError::Transient(text)
    } else {
        SinkError::Fatal(text)
    }
}

/// SQLSTATEs that heal by themselves: the same commit may succeed later.
fn is_transient(code: &SqlState) -> bool {
    match &code.code()[..2] {
        // Connection exceptions, transaction rollbacks (serialization failure 40001, deadlock
        // 40P01), insufficient resources (disk full, too many connections), system errors.
        "08" | "40" | "53" | "58" => true,
        // Operator intervention: shutdowns and restarts, a cancelled statement (57014:
        // statement_timeout, pg_cancel_backend), an idle session closed; but a dropped
        // database (57P04) is not coming back.
        "57" => *code != SqlState::DATABASE_DROPPED,
        _ => matches!(
            *code,
            // A lock held by another session beyond lock_timeout; the session ends or commits.
            SqlState::LOCK_NOT_AVAILABLE
            // A read-only node: a standby reached through a stale DNS entry after a failover.
            | SqlState::READ_ONLY_SQL_TRANSACTION
        ),
    }
}

fn describe_data_error(code: &SqlState) -> &'static str {
    match *code {
        SqlState::STRING_DATA_RIGHT_TRUNCATION => "value too long for the column",
        SqlState::INVALID_TEXT_REPRESENTATION => "value not valid for the column's type",
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE => "number out of range",
        SqlState::DATETIME_FIELD_OVERFLOW => "date out of range",
        SqlState::CHARACTER_NOT_IN_REPERTOIRE | SqlState::UNTRANSLATABLE_CHARACTER => {
            "character not allowed"
        }
        SqlState::NOT_NULL_VIOLATION => "NULL in a NOT NULL column",
        SqlState::CHECK_VIOLATION => "check constraint violated",
        SqlState::UNIQUE_VIOLATION => "unique constraint violated",
        _ => "data refused",
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error as IoError, ErrorKind};

    use super::*;

    #[derive(Debug, PartialEq)]
    enum Kind {
        Refused,
        Transient,
        Fatal,
    }

    fn kind(e: &SinkError) -> Kind {
        match e {
            SinkError::Refused(_) => Kind::Refused,
            SinkError::Transient(_) => Kind::Transient,
            SinkError::Fatal(_) => Kind::Fatal,
        }
    }

    #[test]
    fn sqlstates_sort_by_what_they_mean() {
        use Kind::*;
        let table = [
            ("22001", Refused),   // value too long
            ("22P02", Refused),   // invalid text representation
            ("23502", Refused),   // not null
            ("23514", Refused),   // check
            ("23505", Refused),   // unique
            ("08006", Transient), // connection failure
            ("08001", Transient), // cannot establish
            ("40001", Transient), // serialization failure
            ("40P01", Transient), // deadlock
            ("53100", Transient), // disk full
            ("53300", Transient), // too many connections
            ("55P03", Transient), // lock timeout
            ("25006", Transient), // read-only transaction (failover to a standby)
            ("57014", Transient), // statement timeout / cancelled
            ("57P01", Transient), // admin shutdown
            ("57P02", Transient), // crash shutdown
            ("57P03", Transient), // cannot connect now (starting up)
            ("57P05", Transient), // idle session timeout
            ("58030", Transient), // I/O error
            ("57P04", Fatal),     // database dropped
            ("3D000", Fatal),     // no such database
            ("28P01", Fatal),     // wrong password
            ("28000", Fatal),     // no pg_hba entry
            ("42501", Fatal),     // insufficient privilege
            ("42P01", Fatal),     // no such table
            ("42703", Fatal),     // no such column
            ("0A000", Fatal),     // feature not supported
            ("26000", Fatal),     // prepared statement missing (PgBouncer transaction mode)
        ];
        for (code, expected) in table {
            let e = classify_server(&SqlState::from_code(code), None, "m");
            assert_eq!(kind(&e), expected, "SQLSTATE {code}: {e:?}");
        }
    }

    #[test]
    fn client_errors_sort_by_the_types_in_their_chain() {
        let io = |kind: ErrorKind| IoError::new(kind, "io");
        let tls_io = |e: rustls::Error| IoError::new(ErrorKind::InvalidData, e);
        let cases: Vec<(Box<dyn StdError + 'static>, bool, Kind)> = vec![
            (Box::new(io(ErrorKind::ConnectionRefused)), false, Kind::Transient),
            // A failover resets the connection in the middle of the TLS handshake.
            (Box::new(io(ErrorKind::ConnectionReset)), false, Kind::Transient),
            (Box::new(io(ErrorKind::UnexpectedEof)), false, Kind::Transient),
            (Box::new(io(ErrorKind::TimedOut)), false, Kind::Transient),
            (Box::new(io(ErrorKind::Other)), false, Kind::Transient), // e.g. a name not resolving yet
            (
                Box::new(tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ))),
                false,
                Kind::Fatal,
            ),
            (
                Box::new(tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ))),
                false,
                Kind::Fatal,
            ),
            (Box::new(rustls::Error::NoCertificatesPresented), false, Kind::Fatal),
        ];
        for (error, closed, expected) in cases {
            let e = classify_client(error.as_ref(), closed);
            assert_eq!(kind(&e), expected, "{error:?}: {e:?}");
        }
        #[derive(Debug)]
        struct Opaque;
        impl std::fmt::Display for Opaque {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("server does not support TLS")
            }
        }
        impl StdError for Opaque {}
        // No I/O, TLS or server error in the chain: a closed connection heals, the rest is a setting.
        assert_eq!(kind(&classify_client(&Opaque, true)), Kind::Transient, "closed");
        assert_eq!(kind(&classify_client(&Opaque, false)), Kind::Fatal, "a setting");
        let hint = classify_client(
            &tls_io(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)),
            false,
        );
        assert!(format!("{hint}").contains("does not name this host"), "{hint}");
    }

    #[test]
    fn data_errors_are_refusals_that_never_quote_the_value() {
        let secret = "value too long for type character varying(32): 10.1.2.3";
        let e = classify_server(&SqlState::STRING_DATA_RIGHT_TRUNCATION, Some("locale"), secret);
        assert_eq!(
            e,
            SinkError::Refused(
                "SQLSTATE 22001: value too long for the column (column `locale`)".into()
            )
        );
        for code in [
            SqlState::CHECK_VIOLATION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::INVALID_TEXT_REPRESENTATION,
        ] {
            let e = classify_server(&code, None, secret);
            assert!(matches!(&e, SinkError::Refused(m) if !m.contains("10.1.2.3")), "{e:?}");
        }
    }
}
