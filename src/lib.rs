//! petstore-ws: the Pet Store API (Swagger Petstore v3 compatible) over REST, WebSocket and MCP,
//! spec-first, in Rust.
//!
//! `openapi.yaml` (REST, and the MCP tools) and `asyncapi.yaml` (WebSocket) are the sources of
//! truth. The `petstore-api` crate is the contract generated from them (models and validators,
//! per-operation requests and closed error sets, the `PetStoreApi` trait, `ApiError`, `Ctx`,
//! topics, actions, events, spec constants); this crate is the server built on it. Data flows one
//! way:
//!
//! ```text
//! HTTP ─► edge::HttpEdge ─► rest::adapter (generated, poem-openapi) ───┐
//! WS ───► edge::HttpEdge ─► ws session ─► edge::dispatch (generated) ──┤
//! MCP ──► edge::HttpEdge ─► mcp session ─► edge::dispatch (generated) ─┴─► handlers ─► store
//!                                                                              │ events
//! ws and mcp sessions ◄─ events::Hub (outboxes) ◄─ event bus (local | Redis) ◄─┘
//! ```
//!
//! The modules stand on floors: a module imports only from its own floor or a lower one, and
//! nothing imports in a circle. Floors 0 and 1 are the other crates: the generator
//! (`petstore-codegen`) and the contract (`petstore-api`).
//!
//! - Floor 2, the building blocks. Each knows the contract, none knows a transport. Within the
//!   floor, `store`, `auth`, `limits`, `events`, `cluster` and `idempotency` may use
//!   `telemetry`, `redis` and `rules`, never each other.
//!   - [`telemetry`]: logs and metrics; the lowest, it knows only the contract.
//!   - [`redis`]: the shared backend of a cluster, the connection pool behind its circuit
//!     breaker, on one server, a Sentinel-watched primary or a Redis Cluster, with writes
//!     optionally confirmed by replicas (may record metrics).
//!   - [`rules`]: the pure business rules both stores decide with; imports nothing of the server.
//!   - [`store`]: the storage trait and its memory and Redis implementations, plus the demo data.
//!   - [`auth`]: credentials and what they grant: RS256 access tokens, refresh-token sessions,
//!     revocation, service keys, password hashing, the check against an operation's security.
//!   - [`limits`]: abuse limits: request rates, login throttling, client addresses behind
//!     proxies, concurrent connections, allowed origins.
//!   - [`events`]: domain events, the bus that carries them between nodes and the hub that fans
//!     them out to sessions.
//!   - [`cluster`]: the node registry: which nodes are alive and what each carries.
//!   - [`idempotency`]: the records of requests sent with an idempotency key, so a repeat is
//!     answered from the first instead of running again (in memory or in Redis).
//! - Floor 3, [`handlers`]: the one implementation of `PetStoreApi` and of topic authorization
//!   (`Subscriptions`): business rules, ownership, events after each write. Knows no transport.
//! - Floor 4, [`edge`]: what every transport shares: the HTTP edge every request passes (request
//!   ids, origin checks, the caller and its rate limit, timeouts, error rendering, metrics), body
//!   limits, the URL map, session counts, and the generated dispatch of operations carried as
//!   JSON payloads.
//! - Floor 5, the transports, which may use the edge but not each other:
//!   - [`rest`]: the generated poem-openapi adapter and the operational endpoints (docs,
//!     documents, keys, health, readiness, liveness, metrics, admin).
//!   - [`ws`]: the WebSocket endpoint (`/api/v3/ws`): upgrade, one task per session, control
//!     actions, envelopes, the priority queue. (Its typed client is the `petstore-client`
//!     crate, beside this one.)
//!   - [`mcp`]: the MCP endpoint (`/mcp`) for agents: the official SDK's Streamable HTTP
//!     service, the tool list generated from the operations, pets and orders as resources
//!     followed through the event hub, sessions bounded per client.
//! - Floor 6, the wiring:
//!   - [`config`]: the one typed configuration (defaults, then `PETSTORE_*`, then flags), read
//!     only by the server.
//!   - [`server`]: builds everything from the configuration (each module's own settings, the
//!     backend: in process or Redis), assembles the routes, binds the listener and runs the
//!     HTTP(S) serve loop until shut down.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod edge;
pub mod events;
pub mod handlers;
pub mod idempotency;
pub mod limits;
pub mod mcp;
pub mod redis;
pub mod rest;
pub mod rules;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ws;
