//! Test and bench tooling for petstore-ws, kept out of the server that ships: the server takes
//! this crate as a dev-dependency only.
//!
//! The major components are:
//!
//! - [`redis`]: [`LocalRedis`](redis::LocalRedis), a private `redis-server` on a free loopback
//!   port that dies with its owner, for the Redis-backed unit tests, the cluster suites and the
//!   benches.
//! - [`sentinel`]: [`LocalSentinelSet`](sentinel::LocalSentinelSet), a primary, a replica and
//!   three `redis-sentinel` processes that fail over by themselves, for the failover tests.
//! - [`redis_cluster`]: [`LocalRedisCluster`](redis_cluster::LocalRedisCluster), a Redis Cluster
//!   of three primaries, for the store and cluster suites on sharded Redis.
//! - [`app`]: [`spawn_app`](app::spawn_app), the server on `127.0.0.1:0` in the test's own
//!   process with an empty store and an admin service key, and the HTTP helpers the black-box
//!   suites talk to it with (requests, the documented error body, fixtures).
//! - [`ws`]: the WebSocket side of a [`TestApp`](app::TestApp): the typed client
//!   (`petstore-client`) and assertions on its answers, raw sockets driven frame by frame, the
//!   session count of `/health`.
//! - [`mcp`]: a small MCP client over Streamable HTTP (sessions, JSON-RPC calls answered as
//!   JSON or server-sent events, the session's event stream) for the MCP endpoint's suites.
//! - [`cluster`]: a cluster in real processes: Redis with an append-only file, N nodes started
//!   from the binary under test, HAProxy running the deployment's own configuration.
//! - [`proxy`]: [`SilenceProxy`](proxy::SilenceProxy), a loopback TCP proxy that can make the
//!   connections through it go silent without closing them (half-open connections).
//! - [`child`]: servers in child processes that announce their address and die with their
//!   owner, shared by the cluster suites and the benches.
//! - [`bench`](mod@bench): what the benches share: load generators, figures, cluster nodes, WebSocket
//!   servers and raw sockets.
//!
//! Everything here panics with a message instead of returning errors: in a test the failure is
//! the thing to report, there is nothing to recover.
//!
//! # The dependency on the server
//!
//! [`app`] and [`cluster`] need the server (`Config`, `server::spawn`, the API key hashing), so
//! this crate depends on `petstore-ws`, and the server's own unit tests, which use
//! [`redis::LocalRedis`], see it through a second copy of the server library (the one this
//! crate was built against, not the one under test). That is sound only for items that take
//! and return no server type: [`redis`], [`proxy`], [`sentinel`] and [`redis_cluster`] expose
//! plain data (ports, URLs, directories, replies) and must stay that way.

pub mod app;
pub mod bench;
pub mod child;
pub mod cluster;
pub mod mcp;
pub mod proxy;
pub mod redis;
pub mod redis_cluster;
pub mod sentinel;
pub mod ws;
