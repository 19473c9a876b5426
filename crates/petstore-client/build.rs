//! Generates the typed operation calls from `openapi.yaml` and `asyncapi.yaml` at the workspace
//! root (see the `petstore-codegen` crate): `client.rs` in `OUT_DIR`, one `WsClient` method per
//! operation.
//!
//! A document the generator cannot handle fails the build with the document, the location in
//! it and the reason.

use std::{env, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.join("../..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    petstore_codegen::build_script(&root, &out_dir, petstore_codegen::Target::Client)
}
