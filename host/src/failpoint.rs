//! Fail points: abort, panic or stall at a named point of the pipeline, for the tests that
//! prove exactly-once under crashes (`after-commit`: committed, not deleted, the worst moment)
//! and that a stuck or panicking worker stops the host. They exist only in builds with the
//! `failpoints` feature (fail-rs, configured by the `FAILPOINTS` variable, e.g.
//! `FAILPOINTS=after-commit=return(abort)`, `before-commit=panic`, `before-commit=pause`);
//! every shipped build (`cargo install`, the Docker image, `scripts/quickstart`) has none, and
//! `scripts/test-install` checks the installed binary for the variable's name.
//!
//! Points: `before-commit`, `after-commit`.

/// `fail_point!("name")`: nothing at all without the `failpoints` feature.
macro_rules! fail_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |action: Option<String>| $crate::failpoint::fire($name, action));
    };
}
pub(crate) use fail_point;

/// `return(abort)` (or a bare `return`): the process aborts, as a `kill -9` would end it.
#[cfg(feature = "failpoints")]
pub(crate) fn fire(name: &str, action: Option<String>) -> ! {
    crate::events::event!(
        warn,
        crate::events::Event::Failpoint,
        point = name,
        action = action.as_deref().unwrap_or("abort"),
        "fail point fired"
    );
    match action.as_deref() {
        None | Some("abort") => std::process::abort(),
        Some(other) => {
            panic!("fail point {name}: unknown action return({other}); use return(abort)")
        }
    }
}
