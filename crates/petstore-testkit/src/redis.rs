//! A private `redis-server` on a free loopback port, for tests, benchmarks and local
//! experiments: never the machine's shared instance, and gone when its owner is.

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// How the private server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk: the fastest, for tests that never restart Redis.
    None,
    /// An append-only file, fsynced every second (the production setting): a restart on the
    /// same directory keeps every acknowledged write.
    AppendOnly,
}

/// A `redis-server` child process on `127.0.0.1` and a port nobody else uses.
///
/// Killed when dropped, and, on Linux, when the thread that started it ends (so a test run that
/// is interrupted leaves no server behind). Its data directory is removed on drop.
#[derive(Debug)]
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
    /// More `redis-server` arguments (a replica's `--replicaof`, a cluster node's settings).
    extra: Vec<String>,
}

/// How long a starting server gets to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl LocalRedis {
    /// Starts a server with its own new data directory.
    ///
    /// # Errors
    /// When `redis-server` is not installed or does not come up.
    pub fn start(persistence: Persistence) -> io::Result<Self> {
        Self::start_with(persistence, &[])
    }

    /// Starts a replica of the server on `primary_port` (`--replicaof 127.0.0.1 PORT`), and
    /// waits until it has synchronized with it.
    ///
    /// # Errors
    /// As [`LocalRedis::start`], and when the replica does not finish its first sync in time.
    pub fn start_replica(persistence: Persistence, primary_port: u16) -> io::Result<Self> {
        let primary = primary_port.to_string();
        let replica = Self::start_with(persistence, &["--replicaof", "127.0.0.1", &primary])?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let info = replica.command(&["INFO", "replication"])?;
            if info.text().contains("master_link_status:up") {
                return Ok(replica);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the replica did not synchronize with its primary",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a server with `extra` arguments added to the usual ones (later ones win).
    ///
    /// # Errors
    /// As [`LocalRedis::start`].
    pub fn start_with(persistence: Persistence, extra: &[&str]) -> io::Result<Self> {
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let dir = std::env::temp_dir().join(format!(
            "petstore-redis-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut last_error = None;
        // A port found free can be taken by someone else before Redis binds it; try a few.
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(port, &dir, persistence, &extra) {
                Ok(child) => {
                    let mut server = Self {
                        child: Some(child),
                        port,
                        dir: dir.clone(),
                        persistence,
                        extra: extra.clone(),
                    };
                    match server.wait_ready() {
                        Ok(()) => return Ok(server),
                        Err(error) => {
                            server.kill();
                            last_error = Some(error);
                        }
                    }
                }
                Err(error) => return Err(not_installed(error)),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// One server for the whole process (the lib's unit tests share it; each test works under
    /// its own key prefix). Started on first use from a thread that lives as long as the
    /// process, so the server outlives every test and dies with the run.
    ///
    /// # Panics
    /// When the server cannot be started: the tests that need it cannot run.
    pub fn shared() -> &'static LocalRedis {
        static SHARED: OnceLock<LocalRedis> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = sender.send(LocalRedis::start(Persistence::None));
                // The server's death signal is tied to this thread: keep it alive.
                loop {
                    std::thread::park();
                }
            });
            match receiver.recv() {
                Ok(Ok(server)) => server,
                Ok(Err(error)) => panic!("cannot start a private redis-server: {error}"),
                Err(_) => panic!("the redis-server starter thread died"),
            }
        })
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The data directory (holds the append-only file).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server at once (`SIGKILL`: no shutdown save), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server again on the same port and data directory, after [`kill`](Self::kill):
    /// with [`Persistence::AppendOnly`] it reloads every acknowledged write.
    ///
    /// # Errors
    /// When it does not come up (the port was taken meanwhile, for one).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.child = Some(spawn(self.port, &self.dir, self.persistence, &self.extra)?);
        self.wait_ready()
    }

    /// Sends one command and reads its reply (a test's own look at the data, beside the
    /// server's client).
    ///
    /// # Errors
    /// When the server cannot be reached or answers something unreadable.
    pub fn command(&self, args: &[&str]) -> io::Result<Reply> {
        command(self.port, args)
    }

    /// `GET key`, as text.
    ///
    /// # Panics
    /// When the server does not answer: the test cannot go on.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<String> {
        match self.command(&["GET", key]) {
            Ok(Reply::Nil) => None,
            Ok(Reply::Bulk(value)) => Some(value),
            Ok(other) => panic!("GET {key} answered {other:?}"),
            Err(error) => panic!("GET {key} on port {}: {error}", self.port),
        }
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server exited with {status} (port {} taken?)",
                    self.port
                )));
            }
            if ping(self.port).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer PING",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn spawn(port: u16, dir: &Path, persistence: Persistence, extra: &[String]) -> io::Result<Child> {
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
        .args(["--loglevel", "warning", "--logfile", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match persistence {
        Persistence::None => command.args(["--appendonly", "no"]),
        Persistence::AppendOnly => {
            command.args(["--appendonly", "yes", "--appendfsync", "everysec"])
        }
    };
    command.args(extra);
    die_with_owner(&mut command);
    command.spawn()
}

/// Makes the child of `command` die (SIGKILL) when the thread that spawns it ends, on Linux, so
/// an interrupted test run leaves no server behind.
pub(crate) fn die_with_owner(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: `prctl` is async-signal-safe and only changes the child's own settings.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

fn not_installed(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::NotFound {
        io::Error::new(
            io::ErrorKind::NotFound,
            "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)",
        )
    } else {
        error
    }
}

/// A reply of Redis, as far as the tests read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings.
    Status(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// A bulk string.
    Bulk(String),
    /// A nil bulk string or array.
    Nil,
    /// An array (also what a RESP2 map looks like).
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a status, error or bulk string; empty for anything else.
    #[must_use]
    pub fn text(&self) -> &str {
        match self {
            Self::Status(text) | Self::Error(text) | Self::Bulk(text) => text,
            _ => "",
        }
    }

    /// The elements of an array; empty for anything else.
    #[must_use]
    pub fn items(&self) -> &[Reply] {
        match self {
            Self::Array(items) => items,
            _ => &[],
        }
    }

    /// An array of alternating names and values (`SENTINEL replicas`, `ROLE`-like answers) as
    /// pairs of text.
    #[must_use]
    pub fn fields(&self) -> Vec<(String, String)> {
        self.items()
            .chunks(2)
            .filter_map(|pair| match pair {
                [name, value] => Some((name.text().to_owned(), value.text().to_owned())),
                _ => None,
            })
            .collect()
    }
}

/// Sends one command to the server on `127.0.0.1:port` and reads its reply.
///
/// # Errors
/// When the server cannot be reached in time or the reply cannot be read.
pub fn command(port: u16, args: &[&str]) -> io::Result<Reply> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&request)?;
    read_reply(&mut io::BufReader::new(stream))
}

fn read_reply(reader: &mut impl io::BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, format!("RESP: {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(malformed)?;
    let number = || rest.parse::<i64>().map_err(|_| malformed());
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Nil,
            Ok(length) => {
                let mut bytes = vec![0; length + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(length);
                Reply::Bulk(String::from_utf8_lossy(&bytes).into_owned())
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Nil,
            Ok(count) => Reply::Array(
                (0..count)
                    .map(|_| read_reply(reader))
                    .collect::<io::Result<_>>()?,
            ),
        },
        _ => return Err(malformed()),
    })
}

/// Sends `PING` and expects `+PONG`.
fn ping(port: u16) -> io::Result<()> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    if &reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(io::Error::other("unexpected PING reply (still loading?)"))
    }
}
