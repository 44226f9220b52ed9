//! Embeds the transform module in the binary. It is built from ../transform by
//! scripts/build-wasm (which picks the toolchain route available on this machine), or taken
//! from MASKFLOW_MODULE if that names a prebuilt module.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MASKFLOW_MODULE");
    let module = match std::env::var("MASKFLOW_MODULE") {
        Ok(path) => path,
        Err(_) => build_module(),
    };
    println!("cargo:rustc-env=MASKFLOW_MODULE_PATH={module}");
    println!("cargo:rerun-if-changed={module}");
}

fn build_module() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    for input in ["transform/src", "transform/Cargo.toml", "scripts/build-wasm", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let output = Command::new("bash")
        .arg(root.join("scripts/build-wasm"))
        .output()
        .expect("cannot run bash scripts/build-wasm");
    if !output.status.success() {
        panic!(
            "building the wasm transform module failed; run scripts/build-wasm to see why, \
             or set MASKFLOW_MODULE=/path/to/module.wasm\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).expect("utf-8 path").trim().to_owned()
}
