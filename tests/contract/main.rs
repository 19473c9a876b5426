//! The specs as the judge: the running server and its generated adapters checked against
//! `openapi.yaml` and `asyncapi.yaml`.
//!
//! - [`spec_drift`]: the OpenAPI document the REST adapter emits says the same as
//!   `openapi.yaml`.
//! - [`asyncapi`]: `asyncapi.yaml` is valid AsyncAPI 3.0.0, served as written, and matches the
//!   actions and events the server was built with.
//! - [`examples`]: what documentation UIs fill into "Try it out" from the spec's examples is
//!   accepted by the server.
//! - [`suite`]: Schemathesis and an OpenAPI Generator client against the running server.
//! - [`typescript_rest`]: create/read/update/delete through a TypeScript client generated from
//!   `openapi.yaml` (openapi-typescript + openapi-fetch).
//! - [`mcp`]: the official MCP Python SDK against the running server's MCP endpoint.

mod asyncapi;
mod examples;
mod mcp;
mod spec_drift;
mod suite;
mod typescript_rest;

/// Node and the TypeScript package, shared with the browser tests.
#[path = "../browser/node.rs"]
#[allow(dead_code)] // this binary uses only the npm part
mod node;
