//! What the benches (`benches/`) share. Each bench binary re-executes itself in a child process
//! for every server it measures (see [`crate::child`]), so these modules hold both sides: the
//! parent's load generators and figures, and the children's server roles.
//!
//! - [`stats`]: medians, nearest-rank percentiles, milliseconds and ratios for the tables.
//! - [`http_load`]: an in-process keep-alive HTTP/1.1 load generator with checked answers.
//! - [`node`]: the environment that makes a child server a node of a Redis-backed cluster, a
//!   shared signing key, Redis's own CPU time.
//! - [`ws`]: the WebSocket benches' servers (ours and a bare tungstenite one) and raw client
//!   sockets.

pub mod http_load;
pub mod node;
pub mod stats;
pub mod ws;
