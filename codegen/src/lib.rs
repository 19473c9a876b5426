//! Generates the typed petstore-ws server interface from `openapi.yaml` and `asyncapi.yaml`.
//!
//! `build.rs` calls [`generate`]; the work is split into small passes that can each be tested:
//!
//! 1. [`parse`]: YAML (serde-saphyr) → `openapiv3::OpenAPI` → the intermediate model in [`ir`],
//!    resolving `$ref`s and rejecting what the generator does not support, with the spec location
//!    in every error ([`error`]).
//! 2. [`asyncapi`]: the WebSocket actions and events, checked against the operations (every
//!    operation is an action with the same parameters and results; every `$ref` resolves).
//! 3. [`emit`]: the intermediate model → four Rust files (models, operations with the
//!    `PetStoreApi` trait, the poem-openapi REST adapter, the WebSocket actions and dispatch),
//!    built with `quote!` and formatted with prettyplease.

pub mod asyncapi;
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

/// Generates `ws.rs` from the AsyncAPI document, checked against the OpenAPI one.
pub fn generate_ws_source(openapi: &str, asyncapi: &str) -> Result<emit::GeneratedWs, GenErrors> {
    let api = parse::parse_spec(openapi)?;
    let ws = asyncapi::parse(asyncapi, openapi, &api)?;
    Ok(emit::GeneratedWs {
        ws: emit::ws::emit(&api, &ws),
    })
}

/// Which document an error is about.
#[derive(Debug)]
pub struct DocumentError {
    /// `openapi.yaml` or `asyncapi.yaml`.
    pub document: &'static str,
    /// What is wrong.
    pub error: Box<dyn std::error::Error>,
}

/// Reads both documents and writes the generated files into `out_dir`.
pub fn generate(
    spec_path: &Path,
    asyncapi_path: &Path,
    out_dir: &Path,
) -> Result<(), DocumentError> {
    let read = |path: &Path, document: &'static str| {
        fs::read_to_string(path).map_err(|error| DocumentError {
            document,
            error: format!("cannot read {}: {error}", path.display()).into(),
        })
    };
    let spec = read(spec_path, "openapi.yaml")?;
    let asyncapi_text = read(asyncapi_path, "asyncapi.yaml")?;
    let generated = generate_sources(&spec).map_err(|error| DocumentError {
        document: "openapi.yaml",
        error: error.into(),
    })?;
    let ws = generate_ws_source(&spec, &asyncapi_text).map_err(|error| DocumentError {
        document: "asyncapi.yaml",
        error: error.into(),
    })?;
    for (name, source) in [
        ("models.rs", &generated.models),
        ("operations.rs", &generated.operations),
        ("rest.rs", &generated.rest),
        ("ws.rs", &ws.ws),
    ] {
        let path = out_dir.join(name);
        // Rewriting identical output would make cargo rebuild the crate for nothing.
        if fs::read_to_string(&path).ok().as_deref() != Some(source.as_str()) {
            fs::write(&path, source).map_err(|error| DocumentError {
                document: "output",
                error: format!("cannot write {}: {error}", path.display()).into(),
            })?;
        }
    }
    Ok(())
}
