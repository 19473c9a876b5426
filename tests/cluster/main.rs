//! Scaling out, with real processes: nodes started from the binary under test on one private
//! Redis, HAProxy in front running the deployment's configuration (`petstore_testkit::cluster`).
//!
//! - [`scale_out`]: balancing strategies, data and notifications across nodes, draining.
//! - [`faults`]: Redis killed under load and brought back, a node killed.
//! - [`admin_nodes`]: `GET /admin/nodes`.
//! - [`idempotency`]: one `Idempotency-Key` sent to two nodes at once.
//! - [`redis_outage`]: a killed Redis fails requests fast, and every node heals once it is back.
//! - [`failover`]: a primary with a replica under Sentinel, the primary killed under load.
//! - [`sharded`]: nodes on a Redis Cluster of three primaries.

mod admin_nodes;
mod failover;
mod faults;
mod idempotency;
mod recovery;
mod redis_outage;
mod scale_out;
mod sharded;
mod write_load;

/// The server binary under test: cargo names it only to the server's own integration tests.
const BINARY: &str = env!("CARGO_BIN_EXE_petstore-ws");
