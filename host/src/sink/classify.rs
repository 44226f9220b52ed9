//! Sorting PostgreSQL errors into [`SinkError`]s: refused data, unavailable, fatal.

use postgres::error::SqlState;

use super::SinkError;

/// Sorts an error into isolate, retry or stop. The text never includes PostgreSQL's message
/// for data errors, which can quote the offending value.
pub fn classify(e: postgres::Error) -> SinkError {
    match e.as_db_error() {
        // No server answer: connection refused, reset or closed, a timeout.
        None => SinkError::Unavailable(e.to_string()),
        Some(db) => classify_server(db.code(), db.column(), db.message()),
    }
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
