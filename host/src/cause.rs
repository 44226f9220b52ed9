//! Walking an error's cause chain: how errors are sorted by the types they are made of
//! ([`find_cause`]), and how they are shown on one line ([`report`]).

use std::fmt::Write;

/// `error: cause: cause...` for any error. A cause whose text its parent already shows
/// (libraries that print their cause in their own message) is not repeated.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let shown = inner.to_string();
        if !shown.is_empty() && !text.contains(&shown) {
            let _ = write!(text, ": {shown}");
        }
        cause = inner.source();
    }
    text
}

/// The first error of type `T` in `error`'s source chain, looking inside `std::io::Error`s
/// too (whose `source()` skips the error they wrap): how errors are sorted by what they are.
pub(crate) fn find_cause<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(found) = wrapped.and_then(|inner| find_cause::<T>(inner)) {
            return Some(found);
        }
        cause = e.source();
    }
    None
}
