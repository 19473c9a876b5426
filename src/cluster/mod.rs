//! The cluster: which nodes are alive and what each is carrying.
//!
//! - [`NodeRegistry`]: every node announces itself in Redis with a record that expires unless
//!   renewed (`{prefix}:node:{id}`, renewed every heartbeat, gone after three missed ones) and
//!   lists the live ones for `GET /admin/nodes`. Without Redis it knows only its own node.

mod registry;

pub use registry::{NodeInfo, NodeLoad, NodeRecord, NodeRegistry};
