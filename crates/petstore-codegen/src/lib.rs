//! Generates the petstore-ws contract and its adapters from `openapi.yaml` and `asyncapi.yaml`.
//!
//! Three build scripts call [`build_script`]: the contract crate's (`petstore-api`, target
//! [`Target::Contract`]), the server's ([`Target::Server`]) and the typed client's
//! (`petstore-client`, [`Target::Client`]). The work is split into small
//! passes that can each be tested:
//!
//! 1. [`parse`]: YAML (serde-saphyr, once per document) → `openapiv3::OpenAPI` → the
//!    intermediate model in [`ir`], resolving `$ref`s and rejecting what the generator does not
//!    support, with the spec location in every error ([`error`]); then [`examples`]: the
//!    project's documents give every example a documentation UI needs.
//! 2. [`asyncapi`]: the WebSocket actions and events, checked against the operations (every
//!    operation is an action with the same parameters and results; every `$ref` resolves).
//! 3. [`mcp`]: the MCP tools, one per operation (unless `x-mcp: false`), with the JSON Schemas
//!    of their arguments and results, refusing what cannot be a tool.
//! 4. [`emit`]: the intermediate model → Rust files, built with `quote!` and formatted with
//!    prettyplease: for the contract `models.rs`, `operations.rs` and `ws.rs`; for the server
//!    `rest.rs` (the poem-openapi adapter), `dispatch.rs` (operations carried as JSON
//!    payloads) and `mcp.rs` (the MCP tool list); for the client `client.rs` (one typed
//!    WebSocket call per operation); and, for the TypeScript client, `generated.ts`
//!    ([`typescript`], committed and checked by a test).

pub mod asyncapi;
pub mod emit;
pub mod error;
pub mod examples;
pub mod ir;
pub mod mcp;
pub mod names;
pub mod parse;

use std::{fs, path::Path, process::ExitCode};

pub use error::{GenError, GenErrors};

/// Both documents, parsed once and checked against each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Specs {
    /// The REST operations and schemas of `openapi.yaml`.
    pub api: ir::Api,
    /// The WebSocket actions and events of `asyncapi.yaml`.
    pub ws: asyncapi::WsApi,
    /// The MCP tools of `openapi.yaml`'s operations.
    pub mcp: mcp::McpApi,
}

/// Which document an error is about.
#[derive(Debug)]
pub struct DocumentError {
    /// `openapi.yaml` or `asyncapi.yaml`.
    pub document: &'static str,
    /// What is wrong.
    pub error: Box<dyn std::error::Error>,
}

/// Parses and checks both documents' texts.
///
/// # Errors
/// Everything wrong with either document, with its location.
pub fn load(openapi: &str, asyncapi: &str) -> Result<Specs, DocumentError> {
    let (document, api, mcp) = parse::parse_document(openapi)
        .and_then(|(document, api)| examples::check(&api).map(|()| (document, api)))
        .and_then(|(document, api)| mcp::tools(&api).map(|mcp| (document, api, mcp)))
        .map_err(|error| DocumentError {
            document: "openapi.yaml",
            error: error.into(),
        })?;
    let ws = asyncapi::parse(asyncapi, &document, &api).map_err(|error| DocumentError {
        document: "asyncapi.yaml",
        error: error.into(),
    })?;
    Ok(Specs { api, ws, mcp })
}

/// The TypeScript client's generated file (see [`emit::typescript`]), from both documents
/// texts, checked against each other first as for the Rust targets.
///
/// # Errors
/// Everything wrong with either document, or a shape the TypeScript emitter does not know.
pub fn typescript(openapi: &str, asyncapi: &str) -> Result<String, DocumentError> {
    load(openapi, asyncapi)?;
    let parse = |document: &'static str, text: &str| {
        serde_saphyr::from_str::<serde_json::Value>(text).map_err(|error| DocumentError {
            document,
            error: error.to_string().into(),
        })
    };
    let openapi = parse("openapi.yaml", openapi)?;
    let asyncapi = parse("asyncapi.yaml", asyncapi)?;
    emit::typescript::emit(&openapi, &asyncapi).map_err(|error| DocumentError {
        document: "asyncapi.yaml",
        error: error.into(),
    })
}

/// What a build script generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `petstore-api`: `models.rs`, `operations.rs`, `ws.rs`.
    Contract,
    /// The server: `rest.rs`, `dispatch.rs`, `mcp.rs`.
    Server,
    /// `petstore-client`: `client.rs`.
    Client,
}

impl Specs {
    /// The generated files of `target`, by file name.
    pub fn sources(&self, target: Target) -> Vec<(&'static str, String)> {
        match target {
            Target::Contract => vec![
                ("models.rs", emit::models::emit(&self.api)),
                ("operations.rs", emit::operations::emit(&self.api)),
                ("ws.rs", emit::ws::emit(&self.api, &self.ws)),
            ],
            Target::Server => vec![
                ("rest.rs", emit::rest::emit(&self.api)),
                ("dispatch.rs", emit::dispatch::emit(&self.api, &self.ws)),
                ("mcp.rs", emit::mcp::emit(&self.mcp)),
            ],
            Target::Client => vec![("client.rs", emit::client::emit(&self.api))],
        }
    }
}

/// Reads both documents from `spec_dir`, writes `target`'s files into `out_dir`.
///
/// # Errors
/// A document that cannot be read, parsed or generated, or a file that cannot be written.
pub fn generate(spec_dir: &Path, out_dir: &Path, target: Target) -> Result<(), DocumentError> {
    let read = |name: &'static str| {
        let path = spec_dir.join(name);
        fs::read_to_string(&path).map_err(|error| DocumentError {
            document: name,
            error: format!("cannot read {}: {error}", path.display()).into(),
        })
    };
    let specs = load(&read("openapi.yaml")?, &read("asyncapi.yaml")?)?;
    for (name, source) in specs.sources(target) {
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

/// The whole of a build script: tells cargo when to run again, generates, and reports a
/// failure as `cargo::error` lines naming the document, the location and the reason.
pub fn build_script(spec_dir: &Path, out_dir: &Path, target: Target) -> ExitCode {
    for name in ["openapi.yaml", "asyncapi.yaml"] {
        println!("cargo::rerun-if-changed={}", spec_dir.join(name).display());
    }
    match generate(spec_dir, out_dir, target) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for line in failure.error.to_string().lines() {
                println!("cargo::error={} {line}", failure.document);
            }
            ExitCode::FAILURE
        }
    }
}
