//! A Redis Cluster of three primaries on free loopback ports (`redis-server --cluster-enabled
//! yes` three times, joined with `redis-cli --cluster create`), each in its own directory, gone
//! with its owner like [`LocalRedis`].

use std::{
    io,
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::redis::{LocalRedis, Persistence, command, free_port};

/// How long the cluster gets to form: a hang guard.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// Three primaries sharing the 16,384 hash slots, no replicas.
#[derive(Debug)]
pub struct LocalRedisCluster {
    nodes: Vec<LocalRedis>,
}

impl LocalRedisCluster {
    /// Starts three cluster-enabled servers, assigns the slots and waits until every node
    /// reports `cluster_state:ok`.
    ///
    /// # Errors
    /// When `redis-server` or `redis-cli` is missing, or the cluster does not form in time.
    pub fn start() -> io::Result<Self> {
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            // The cluster bus gets a free port of its own: the default (port + 10000) may be
            // taken, or past 65535.
            let bus_port = free_port()?.to_string();
            // Each server keeps its cluster state file in its own data directory.
            nodes.push(LocalRedis::start_with(
                Persistence::None,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                    "--cluster-port",
                    &bus_port,
                ],
            )?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| {
                if error.kind() == io::ErrorKind::NotFound {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "redis-cli is not installed (Debian/Ubuntu: apt-get install redis-tools)",
                    )
                } else {
                    error
                }
            })?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let cluster = Self { nodes };
        cluster.wait_formed()?;
        Ok(cluster)
    }

    /// One cluster for the whole process, started on first use from a thread that lives as
    /// long as the process (as [`LocalRedis::shared`]); tests share it under prefixes of their
    /// own.
    ///
    /// # Panics
    /// When the cluster cannot be started.
    pub fn shared() -> &'static LocalRedisCluster {
        static SHARED: OnceLock<LocalRedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = sender.send(LocalRedisCluster::start());
                loop {
                    std::thread::park();
                }
            });
            match receiver.recv() {
                Ok(Ok(cluster)) => cluster,
                Ok(Err(error)) => panic!("cannot start a private Redis Cluster: {error}"),
                Err(_) => panic!("the Redis Cluster starter thread died"),
            }
        })
    }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// The nodes' ports.
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(LocalRedis::port).collect()
    }

    /// Waits until every node says `cluster_state:ok` and knows all three primaries.
    fn wait_formed(&self) -> io::Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let formed = self.nodes.iter().all(|node| {
                command(node.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
                    let text = info.text();
                    text.contains("cluster_state:ok") && text.contains("cluster_known_nodes:3")
                })
            });
            if formed {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the cluster did not form within {FORM_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
