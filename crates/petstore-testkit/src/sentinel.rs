//! A primary, a replica and three `redis-sentinel` processes on free loopback ports: the
//! smallest deployment that fails over by itself, for the failover tests and benches.
//!
//! The sentinels watch the primary under [`SERVICE`] with a quorum of two and short timings
//! ([`SentinelTimings`]), so a killed primary is replaced within a few seconds. Every process
//! dies with the thread that started it and with the set; the directories go with the set.

use std::{
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::redis::{LocalRedis, Persistence, Reply, command, die_with_owner, free_port};

/// The name the sentinels monitor the primary under (`sentinelServiceName`).
pub const SERVICE: &str = "petstore-primary";

/// How quickly the sentinels act.
#[derive(Debug, Clone, Copy)]
pub struct SentinelTimings {
    /// `down-after-milliseconds`: silence after which a sentinel counts the primary as down.
    pub down_after: Duration,
    /// `failover-timeout`: also the pause before a failed election is tried again (twice this).
    pub failover_timeout: Duration,
}

impl Default for SentinelTimings {
    /// Short, for tests: the primary counts as down after 1 s of silence.
    fn default() -> Self {
        Self {
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(3000),
        }
    }
}

/// How long the set gets to start and settle, or to finish a failover: a hang guard, not a
/// measurement.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A primary, one replica and three sentinels.
#[derive(Debug)]
pub struct LocalSentinelSet {
    /// The servers, the primary first as started; which one is the primary *now* is
    /// [`LocalSentinelSet::primary_port`].
    servers: Vec<LocalRedis>,
    sentinels: Vec<Sentinel>,
    dir: PathBuf,
}

#[derive(Debug)]
struct Sentinel {
    child: Option<Child>,
    port: u16,
}

impl LocalSentinelSet {
    /// Starts the primary, its replica (synchronized) and three sentinels, and waits until
    /// every sentinel knows the replica as healthy and the other two sentinels: before that a
    /// failover could not elect a leader or would find no replica to promote.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] when `redis-server` or `redis-sentinel` is not installed
    /// (the caller may skip, saying so); others when the set does not come up.
    pub fn start(timings: SentinelTimings) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "petstore-sentinel-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let primary = LocalRedis::start(Persistence::None)?;
        let replica = LocalRedis::start_replica(Persistence::None, primary.port())?;
        let primary_port = primary.port();
        let mut set = Self {
            servers: vec![primary, replica],
            sentinels: Vec::new(),
            dir,
        };
        for number in 1..=3 {
            let sentinel = Sentinel::start(&set.dir, number, primary_port, timings)?;
            set.sentinels.push(sentinel);
        }
        set.wait_settled()?;
        Ok(set)
    }

    /// `redis-sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/0?sentinelServiceName=…`: the
    /// URL the nodes are given.
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!(
            "redis-sentinel://{}/0?sentinelServiceName={SERVICE}",
            hosts.join(",")
        )
    }

    /// The port of the server the sentinels name as primary now.
    ///
    /// # Errors
    /// When no sentinel answers with an address.
    pub fn primary_port(&self) -> io::Result<u16> {
        let mut last = None;
        for sentinel in &self.sentinels {
            match command(
                sentinel.port,
                &["SENTINEL", "get-master-addr-by-name", SERVICE],
            ) {
                Ok(reply) => match reply.items() {
                    [_, port] => {
                        return port
                            .text()
                            .parse()
                            .map_err(|_| io::Error::other(format!("port in {reply:?}")));
                    }
                    _ => last = Some(io::Error::other(format!("{reply:?}"))),
                },
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no sentinel")))
    }

    /// The server the sentinels name as primary now.
    ///
    /// # Panics
    /// When no sentinel answers, or it names a server not in the set.
    #[must_use]
    pub fn primary(&self) -> &LocalRedis {
        let port = match self.primary_port() {
            Ok(port) => port,
            Err(error) => panic!("no sentinel names the primary: {error}"),
        };
        match self.servers.iter().find(|server| server.port() == port) {
            Some(server) => server,
            None => panic!("the sentinels name port {port}, not a server of this set"),
        }
    }

    /// Kills the current primary (SIGKILL, no shutdown save), as a crash would; returns its
    /// port. It stays down: the sentinels promote the replica.
    ///
    /// # Panics
    /// When the primary cannot be found.
    pub fn kill_primary(&mut self) -> u16 {
        let port = match self.primary_port() {
            Ok(port) => port,
            Err(error) => panic!("no sentinel names the primary: {error}"),
        };
        match self.servers.iter_mut().find(|server| server.port() == port) {
            Some(server) => server.kill(),
            None => panic!("the sentinels name port {port}, not a server of this set"),
        }
        port
    }

    /// Starts the killed server on `port` again (same port, empty: no persistence here), as an
    /// operator bringing the failed machine back; the sentinels then turn it into a replica of
    /// the current primary ([`LocalSentinelSet::is_synced_replica`] tells when it is one).
    ///
    /// # Errors
    /// When it does not start.
    pub fn restart(&mut self, port: u16) -> io::Result<()> {
        match self.servers.iter_mut().find(|server| server.port() == port) {
            Some(server) => server.restart(),
            None => Err(io::Error::other(format!(
                "no server of this set on port {port}"
            ))),
        }
    }

    /// Whether the server on `port` is a replica whose link to its primary is up.
    #[must_use]
    pub fn is_synced_replica(&self, port: u16) -> bool {
        command(port, &["INFO", "replication"]).is_ok_and(|info| {
            info.text().contains("role:slave") && info.text().contains("master_link_status:up")
        })
    }

    /// Waits until every sentinel sees two other sentinels and a replica whose link to the
    /// primary is up, as of an `INFO` taken since that link came up.
    fn wait_settled(&self) -> io::Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let settled = self.sentinels.iter().all(|sentinel| {
                let replicas = command(sentinel.port, &["SENTINEL", "replicas", SERVICE]);
                let others = command(sentinel.port, &["SENTINEL", "sentinels", SERVICE]);
                let replica_ok = replicas.is_ok_and(|reply| {
                    reply.items().iter().any(|replica| {
                        replica
                            .fields()
                            .iter()
                            .any(|(name, value)| name == "master-link-status" && value == "ok")
                    })
                });
                replica_ok && others.is_ok_and(|reply| reply.items().len() == 2)
            });
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the sentinels did not settle within {SETTLE_TIMEOUT:?}\n{}",
                        self.logs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The sentinels' logs, for a failure message.
    #[must_use]
    pub fn logs(&self) -> String {
        (1..=self.sentinels.len())
            .map(|number| {
                let log = log_path(&self.dir, number);
                format!(
                    "---- sentinel {number} ----\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for LocalSentinelSet {
    fn drop(&mut self) {
        for sentinel in &mut self.sentinels {
            if let Some(mut child) = sentinel.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sentinel {
    fn start(
        dir: &Path,
        number: usize,
        primary_port: u16,
        timings: SentinelTimings,
    ) -> io::Result<Self> {
        let own_dir = dir.join(format!("sentinel{number}"));
        std::fs::create_dir_all(&own_dir)?;
        let mut last_error = None;
        // A port found free can be taken before the sentinel binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            // The sentinel rewrites its configuration file: it must be its own, and writable.
            let config = own_dir.join("sentinel.conf");
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds {SERVICE} {down_after}\n\
                     sentinel failover-timeout {SERVICE} {failover_timeout}\n\
                     sentinel parallel-syncs {SERVICE} 1\n",
                    dir = own_dir.display(),
                    log = log_path(dir, number).display(),
                    down_after = timings.down_after.as_millis(),
                    failover_timeout = timings.failover_timeout.as_millis(),
                ),
            )?;
            let mut command = Command::new("redis-sentinel");
            command
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_owner(&mut command);
            let child = match command.spawn() {
                Ok(child) => child,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "redis-sentinel is not installed (Debian/Ubuntu: apt-get install redis-sentinel)",
                    ));
                }
                Err(error) => return Err(error),
            };
            let mut sentinel = Self {
                child: Some(child),
                port,
            };
            match sentinel.tune() {
                Ok(()) => return Ok(sentinel),
                Err(error) => {
                    if let Some(mut child) = sentinel.child.take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-sentinel did not start")))
    }

    /// Waits for the sentinel to answer, then shortens its own timers for a test.
    ///
    /// - `info-period` 1 s (default 10 s): the sentinel re-reads the replica's `INFO` often, so
    ///   it does not judge the replica by a stale one (taken before its first sync finished)
    ///   and refuse to promote it ("no good slave").
    /// - `tilt-trigger` 30 s (default 2 s): on a loaded test machine the sentinel's timer can
    ///   fire late by more than 2 s; Sentinel then enters TILT mode and does nothing for 30 s.
    fn tune(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-sentinel exited with {status} (port {} taken?)",
                    self.port
                )));
            }
            if command(self.port, &["PING"]).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-sentinel did not answer PING",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (name, value) in [("info-period", "1000"), ("tilt-trigger", "30000")] {
            let reply = command(self.port, &["SENTINEL", "DEBUG", name, value])?;
            if let Reply::Error(error) = reply {
                return Err(io::Error::other(format!("SENTINEL DEBUG {name}: {error}")));
            }
        }
        Ok(())
    }
}

fn log_path(dir: &Path, number: usize) -> PathBuf {
    dir.join(format!("sentinel{number}.log"))
}
