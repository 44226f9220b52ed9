//! Sorting PostgreSQL errors by what they are made of, never by their text: the server's
//! SQLSTATE, else the types in the client error's source chain (`std::io::Error` and its kind,
//! `rustls::Error`).

use std::borrow::Cow;

use rustls::CertificateError;
use tokio_postgres::error::SqlState;

use super::error::{Cause, Inner, PgKind, PostgresError, ServerError};
use crate::cause::find_cause;

/// Sorts an error of the client into refuse (isolate the row), transient (retry) or fatal
/// (stop).
pub(crate) fn classify(e: tokio_postgres::Error) -> PostgresError {
    match e.as_db_error() {
        Some(db) => classify_server(ServerError {
            sqlstate: db.code().clone(),
            table: db.table().map(str::to_owned),
            column: db.column().map(str::to_owned),
            constraint: db.constraint().map(str::to_owned),
            message: Some(db.message().to_owned()),
        }),
        None => {
            let closed = e.is_closed();
            classify_client(Box::new(e), closed)
        }
    }
}

fn classify_server(mut server: ServerError) -> PostgresError {
    let code = &server.sqlstate;
    let kind = if matches!(&code.code()[..2], "22" | "23") {
        server.message = None; // it can quote the value
        PgKind::Refused
    } else if is_transient(code) {
        PgKind::Transient
    } else {
        PgKind::Fatal
    };
    PostgresError(Box::new(Inner {
        kind,
        context: Cow::Borrowed(""),
        server: Some(server),
        cause: None,
    }))
}

/// No server answer: the cause's types decide. TLS trouble (a certificate, a protocol problem)
/// is a setting to fix; any I/O trouble (refused, reset, even in the middle of a TLS handshake
/// during a failover; closed; timed out; a name that does not resolve yet) may heal; what is
/// left (authentication settings, a bad connection string, a server that does not offer TLS
/// or does not speak PostgreSQL) is a setting too.
fn classify_client(e: Cause, closed: bool) -> PostgresError {
    // tokio-rustls reports TLS failures as I/O errors that carry the rustls error.
    if let Some(tls) = find_cause::<rustls::Error>(e.as_ref()) {
        return PostgresError::fatal(tls_hint(tls)).because(e);
    }
    if closed || find_cause::<std::io::Error>(e.as_ref()).is_some() {
        return PostgresError::transient("").because(e);
    }
    PostgresError::fatal(
        "check the connection string (host, port, user, password, database), and sslmode: a \
         server that does not offer TLS needs sslmode=prefer or disable",
    )
    .because(e)
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

#[cfg(test)]
mod tests {
    use std::error::Error as StdError;
    use std::fmt;
    use std::io::{Error as IoError, ErrorKind};

    use super::*;

    fn server(code: &str, column: Option<&str>, message: &str) -> PostgresError {
        classify_server(ServerError {
            sqlstate: SqlState::from_code(code),
            table: Some("user_logins".into()),
            column: column.map(str::to_owned),
            constraint: None,
            message: Some(message.into()),
        })
    }

    #[test]
    fn sqlstates_sort_by_what_they_mean() {
        use PgKind::*;
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
            let e = server(code, None, "m");
            assert_eq!(e.kind(), expected, "SQLSTATE {code}: {e:?}");
            assert_eq!(e.sqlstate().map(SqlState::code), Some(code), "kept as a typed field");
        }
    }

    #[test]
    fn client_errors_sort_by_the_types_in_their_chain() {
        let io = |kind: ErrorKind| IoError::new(kind, "io");
        let tls_io = |e: rustls::Error| IoError::new(ErrorKind::InvalidData, e);
        let cases: Vec<(Cause, bool, PgKind)> = vec![
            (Box::new(io(ErrorKind::ConnectionRefused)), false, PgKind::Transient),
            // A failover resets the connection in the middle of the TLS handshake.
            (Box::new(io(ErrorKind::ConnectionReset)), false, PgKind::Transient),
            (Box::new(io(ErrorKind::UnexpectedEof)), false, PgKind::Transient),
            (Box::new(io(ErrorKind::TimedOut)), false, PgKind::Transient),
            (Box::new(io(ErrorKind::Other)), false, PgKind::Transient), // a name not resolving yet
            (
                Box::new(tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ))),
                false,
                PgKind::Fatal,
            ),
            (
                Box::new(tls_io(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ))),
                false,
                PgKind::Fatal,
            ),
            (Box::new(rustls::Error::NoCertificatesPresented), false, PgKind::Fatal),
        ];
        for (error, closed, expected) in cases {
            let shown = format!("{error:?}");
            let e = classify_client(error, closed);
            assert_eq!(e.kind(), expected, "{shown}: {e:?}");
            assert!(e.source().is_some(), "the cause is kept: {e:?}");
        }
        #[derive(Debug)]
        struct Opaque;
        impl fmt::Display for Opaque {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("server does not support TLS")
            }
        }
        impl StdError for Opaque {}
        // No I/O, TLS or server error in the chain: a closed connection heals, the rest is a setting.
        assert_eq!(classify_client(Box::new(Opaque), true).kind(), PgKind::Transient, "closed");
        assert_eq!(classify_client(Box::new(Opaque), false).kind(), PgKind::Fatal, "a setting");
        let hint = classify_client(
            Box::new(tls_io(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))),
            false,
        );
        assert!(hint.to_string().contains("does not name this host"), "{hint}");
    }

    #[test]
    fn data_errors_are_refusals_that_keep_their_names_and_never_the_value() {
        let secret = "value too long for type character varying(32): 10.1.2.3";
        let e = server("22001", Some("locale"), secret);
        assert_eq!(e.kind(), PgKind::Refused);
        let column = e.server().and_then(|s| s.column.as_deref());
        assert_eq!(column, Some("locale"), "a typed field");
        assert_eq!(
            e.to_string(),
            "PostgreSQL refused the data: SQLSTATE 22001: value too long for the column (column `locale`)"
        );
        for code in ["23514", "23502", "22P02"] {
            let e = server(code, None, secret);
            let shown = format!("{e} {e:?} {}", crate::cause::report(&e));
            assert!(!shown.contains("10.1.2.3"), "{shown}");
        }
        // Not about data: the server's message helps, and is kept.
        let missing = server("42P01", None, "relation \"user_logins\" does not exist");
        assert!(missing.to_string().contains("does not exist"), "{missing}");
    }
}
