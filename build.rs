//! Generates the API contract from `openapi.yaml` and `asyncapi.yaml` (see the
//! `petstore-codegen` crate).
//!
//! A document the generator cannot handle, or two documents that disagree, fail the build with
//! the document, the location in it and the reason.

use std::{env, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    println!("cargo::rerun-if-changed=openapi.yaml");
    println!("cargo::rerun-if-changed=asyncapi.yaml");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    match petstore_codegen::generate(
        &manifest_dir.join("openapi.yaml"),
        &manifest_dir.join("asyncapi.yaml"),
        &out_dir,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for line in failure.error.to_string().lines() {
                println!("cargo::error={} {line}", failure.document);
            }
            ExitCode::FAILURE
        }
    }
}
