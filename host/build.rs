//! Empty on purpose: a build script makes `[build-dependencies]` in host/Cargo.toml count, and
//! those pin features of the crates that build scripts and proc macros use ("Feature pins").
fn main() {}
