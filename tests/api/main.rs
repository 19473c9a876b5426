//! The REST API, black box: every test starts its own server on `127.0.0.1:0`
//! (`petstore_testkit::app::spawn_app`) and talks HTTP(S) to it.
//!
//! - [`pets`], [`store`], [`users`]: each operation's happy path and every error status the spec
//!   documents for it.
//! - [`tokens`]: access and refresh tokens, the signing key, how sessions end.
//! - [`security`]: the authorization matrix of README.md, service keys, ownership.
//! - [`errors`]: the edge: unknown routes and methods, request ids, operational endpoints.
//! - [`direct`]: the reads answered before the router answer as the router does, on both stores.
//! - [`idempotency`]: `Idempotency-Key`: replays, reused keys, racing repeats, expiry.
//! - [`limits`]: rate limits, proxies, the login throttle, CORS, the request timeout.
//! - [`slow_clients`]: trickled headers and idle connections are closed.
//! - [`tls`]: HTTPS served directly, and unusable certificates refused at start-up.

mod direct;
mod errors;
mod idempotency;
mod limits;
mod pets;
mod security;
mod slow_clients;
mod store;
mod tls;
mod tokens;
mod users;
