//! Sets `cfg(vector_on_path)` when a `vector` binary can be found (`MASKFLOW_VECTOR_BIN`, else
//! `PATH`), so that the live pipeline test runs there and is reported as *ignored* (not as
//! passed) everywhere else. Rebuilt when PATH, MASKFLOW_VECTOR_BIN or the binary changes.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vector_on_path)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=MASKFLOW_VECTOR_BIN");
    println!("cargo::rerun-if-changed=build.rs");
    if let Some(bin) = find_vector() {
        println!("cargo::rerun-if-changed={}", bin.display());
        println!("cargo::rustc-cfg=vector_on_path");
        println!("cargo::rustc-env=MASKFLOW_VECTOR_FOUND={}", bin.display());
    }
}

fn find_vector() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("MASKFLOW_VECTOR_BIN") {
        return Some(PathBuf::from(bin)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("vector"))
        .find(|p| p.is_file())
}
