//! petstore-ws: the Pet Store API (Swagger Petstore v3 compatible), spec-first, in Rust.
//!
//! `openapi.yaml` is the source of truth. `build.rs` turns it into typed Rust, and the rest of the
//! crate is built around that generated contract. Data flows one way:
//!
//! ```text
//! HTTP ─► http (edge: request ids, caller, limits, errors, docs) ─► http::rest (generated
//!         adapter: checks each operation's spec security via auth::guard) ─────────┐
//! WS ───► ws (session: lifecycle, queue, limits) ─► api::ws::dispatch (generated) ──┤
//!                                                                                   ▼
//!                       api::operations::PetStoreApi (generated trait) ◄── handlers (business rules,
//!                                                                            ownership)
//!                                                                                   │
//!          ws sessions ◄── events (hub, bus) ◄── published after each write ─────────┤
//!                                                                                   ▼
//!                                                                          store (trait: memory, …)
//! ```
//!
//! The major components are:
//!
//! - [`api`]: the generated contract (models with validators, per-operation requests and closed
//!   response enums, the `PetStoreApi` trait) and the runtime types it is written against.
//! - [`handlers`]: the one implementation of `PetStoreApi`; knows no transport.
//! - [`store`]: the storage trait, its in-memory implementation and the demo data.
//! - [`auth`]: who the caller is and what they may do: RS256 access tokens, refresh-token
//!   sessions, service keys, roles and scopes, the authorization check, password hashing.
//! - [`http`]: the REST transport and the operational endpoints.
//! - [`ws`]: the WebSocket transport (`/api/v3/ws`) and a typed client.
//! - [`events`]: domain events published by the handlers and fanned out to WebSocket sessions.
//! - [`limits`]: abuse limits shared by the transports: rates, login throttling, client
//!   addresses behind proxies, concurrent connections, allowed origins.
//! - [`redis`]: the shared backend of a cluster: the connection pool behind its circuit breaker.
//! - [`cluster`]: the node registry: which nodes are alive and what each carries.
//! - [`error`]: the one error type, mapped once per transport.
//! - [`config`], [`telemetry`], [`server`]: configuration, logging, wiring.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod edge;
pub mod events;
pub mod handlers;
pub mod limits;
pub mod redis;
pub mod rest;
pub mod rules;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ws;
