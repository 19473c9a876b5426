//! Generates the typed petstore-ws server interface from `openapi.yaml`.
//!
//! `build.rs` calls [`generate`]; the work is split into small passes that can each be tested:
//!
//! 1. [`parse`]: YAML (serde-saphyr) → `openapiv3::OpenAPI` → the intermediate model in [`ir`],
//!    resolving `$ref`s and rejecting what the generator does not support, with the spec location
//!    in every error ([`error`]).
//! 2. [`emit`]: the intermediate model → three Rust files (models, operations with the
//!    `PetStoreApi` trait, the poem-openapi REST adapter), built with `quote!` and formatted with
//!    prettyplease.

pub mod emit;
pub mod error;
pub mod ir;
pub mod names;
pub mod parse;

use std::{fs, path::Path};

pub use error::{GenError, GenErrors};

/// Generates `models.rs`, `operations.rs` and `rest.rs` for the spec text.
pub fn generate_sources(spec: &str) -> Result<emit::Generated, GenErrors> {
    let api = parse::parse_spec(spec)?;
    Ok(emit::Generated {
        models: emit::models::emit(&api),
        operations: emit::operations::emit(&api),
        rest: emit::rest::emit(&api),
    })
}

/// Reads the spec at `spec_path` and writes the generated files into `out_dir`.
pub fn generate(spec_path: &Path, out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let spec = fs::read_to_string(spec_path)
        .map_err(|error| format!("cannot read {}: {error}", spec_path.display()))?;
    let generated = generate_sources(&spec)?;
    for (name, source) in [
        ("models.rs", &generated.models),
        ("operations.rs", &generated.operations),
        ("rest.rs", &generated.rest),
    ] {
        let path = out_dir.join(name);
        // Rewriting identical output would make cargo rebuild the crate for nothing.
        if fs::read_to_string(&path).ok().as_deref() != Some(source.as_str()) {
            fs::write(&path, source)?;
        }
    }
    Ok(())
}
