//! Sorting PostgreSQL errors into [`SinkError`]s: refused data, unavailable, fatal.

use postgres::error::SqlState;

use super::SinkError;

/// Sorts an error into isolate, retry or stop. The text never includes PostgreSQL's message
/// for data errors, which can quote the offending value.
pub fn classify(e: postgres::Error) -> SinkError {
    match e.as_db_error() {
        Some(db) => classify_server(db.code(), db.column(), db.message()),
        None => classify_client(&e),
    }
}

/// No server answer. A TLS failure is a setting to fix; anything else (connection refused,
/// reset or closed, a timeout) may heal.
fn classify_client(e: &postgres::Error) -> SinkError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    // Only a failed handshake is a TLS setting to fix: a connection that drops later (an
    // outage) also mentions TLS in its causes ("closed without close_notify").
    if e.to_string().contains("TLS handshake") {
        let hint = if text.contains("NotValidForName") {
            "the server's certificate does not name this host: connect by the name in the certificate, or use sslmode=verify-ca"
        } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
            "the server's certificate is not signed by a CA in sslrootcert: give the right CA file"
        } else if text.contains("does not support TLS") {
            "the server does not offer TLS: enable ssl on the server, or lower sslmode"
        } else {
            "check sslmode, sslrootcert, sslcert and sslkey"
        };
        return SinkError::Fatal(format!("{text}; {hint}"));
    }
    if text.contains("invalid configuration") {
        return SinkError::Fatal(text);
    }
    SinkError::Unavailable(text)
}

fn classify_server(code: &SqlState, column: Option<&str>, message: &str) -> SinkError {
    match &code.code()[..2] {
        "22" | "23" => {
            let column = column.map(|c| format!(" (column `{c}`)")).unwrap_or_default();
            SinkError::Refused(format!(
                "SQLSTATE {}: {}{column}",
                code.code(),
                describe_data_error(code)
            ))
        }
        // Connection exceptions, transaction rollbacks (serialization), insufficient
        // resources, operator intervention (shutdown, restart), system errors.
        "08" | "40" | "53" | "57" | "58" => {
            SinkError::Unavailable(format!("SQLSTATE {}: {message}", code.code()))
        }
        _ => SinkError::Fatal(format!("SQLSTATE {}: {message}", code.code())),
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
    use super::*;

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

    #[test]
    fn outages_are_unavailable_and_the_rest_fatal() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
        ] {
            assert!(
                matches!(classify_server(&code, None, "m"), SinkError::Unavailable(_)),
                "{}",
                code.code()
            );
        }
        for code in [
            SqlState::UNDEFINED_TABLE,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::INVALID_PASSWORD,
            SqlState::UNDEFINED_COLUMN,
        ] {
            assert!(
                matches!(classify_server(&code, None, "m"), SinkError::Fatal(_)),
                "{}",
                code.code()
            );
        }
    }
}
