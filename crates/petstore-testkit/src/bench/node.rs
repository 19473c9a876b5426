//! What the benches of a Redis-backed or several-node set-up share: the environment that makes
//! a child server a node of a cluster, one signing key for all nodes, and Redis's own CPU time.
//!
//! A child is configured the way an operator configures a node, through the `PETSTORE_*`
//! environment variables (`Config::defaults()` reads them), so the parent passes the Redis URL,
//! the key prefix, the node id and the signing key's file, and the child adds only the
//! bench's own overrides (limits a single load generator would trip).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use petstore_ws::auth::tokens::generate_ephemeral_key_pem;

/// The Redis URL of a node (`Config.redis_url`).
pub const REDIS_URL_ENV: &str = "PETSTORE_REDIS_URL";
/// The key prefix of a node's data in Redis (`Config.redis_prefix`).
pub const REDIS_PREFIX_ENV: &str = "PETSTORE_REDIS_PREFIX";
/// A node's id (`Config.node_id`).
pub const NODE_ID_ENV: &str = "PETSTORE_NODE_ID";
/// The PEM file of the key that signs access tokens (`Config.jwt_private_key`).
pub const JWT_KEY_ENV: &str = "PETSTORE_JWT_PRIVATE_KEY";

/// A key prefix no earlier run has used, so every run starts from an empty store.
pub fn fresh_prefix(name: &str) -> String {
    format!("bench-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// An RSA signing key in a PEM file, shared by all nodes so that a token issued by one is
/// accepted by every other; the file is removed on drop.
pub struct SigningKey {
    path: PathBuf,
}

impl SigningKey {
    /// Generates a key (RSA-2048, as a node without a configured key does) and writes it to a
    /// file of its own, readable by the owner only.
    pub fn generate() -> Result<Self, String> {
        let pem = generate_ephemeral_key_pem()
            .map_err(|error| format!("cannot generate a signing key: {error}"))?;
        let path = std::env::temp_dir().join(format!(
            "petstore-bench-key-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .and_then(|mut file| file.write_all(pem.as_bytes()))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as an environment value.
    pub fn env_value(&self) -> Result<&str, String> {
        self.path
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", self.path.display()))
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// CPU time (user + system) the Redis server on `port` has used so far, from `INFO cpu`.
/// Blocking, but a loopback round trip: cheap enough at the edges of a measured window.
pub fn redis_cpu_time(port: u16) -> Option<Duration> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO cpu\r\n").ok()?;
    let mut reader = BufReader::new(stream);
    // A bulk string: `$LEN\r\n` then LEN bytes and `\r\n`.
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let length: usize = header.trim().strip_prefix('$')?.parse().ok()?;
    let mut info = vec![0; length];
    reader.read_exact(&mut info).ok()?;
    let info = String::from_utf8(info).ok()?;
    let seconds = |field: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(field))?
            .trim()
            .parse()
            .ok()
    };
    let total = seconds("used_cpu_user:")? + seconds("used_cpu_sys:")?;
    Duration::try_from_secs_f64(total).ok()
}

/// How many keys the Redis server on `port` holds (`DBSIZE`): a private server holds only what
/// the bench's nodes wrote, so zero after writes means they did not write to Redis.
pub fn redis_key_count(port: u16) -> Option<u64> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"DBSIZE\r\n").ok()?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).ok()?;
    reply.trim().strip_prefix(':')?.parse().ok()
}
