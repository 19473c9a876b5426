//! Generates the API contract from `openapi.yaml` (see the `petstore-codegen` crate).
//!
//! A spec the generator cannot handle fails the build with the spec location and the reason.

use std::{env, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    println!("cargo::rerun-if-changed=openapi.yaml");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    match petstore_codegen::generate(&manifest_dir.join("openapi.yaml"), &out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            for line in error.to_string().lines() {
                println!("cargo::error=openapi.yaml {line}");
            }
            ExitCode::FAILURE
        }
    }
}
