//! The WebSocket endpoint, black box, through the typed client (`petstore-client`) and, for
//! frames a well-behaved client would never send, raw sockets.
//!
//! - [`session`]: the session lifecycle and its deadlines, malformed frames, size and rate
//!   limits, backpressure, slow consumers, shutdown.
//! - [`events`]: writes over either transport reach the connections that follow them.
//! - [`parity`]: every operation answers alike over REST and over WebSocket.
//! - [`typed_client`]: every typed call of the client against the real server.

mod events;
mod idempotency;
mod parity;
mod session;
mod typed_client;
