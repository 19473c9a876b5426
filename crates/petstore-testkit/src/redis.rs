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
}

/// How long a starting server gets to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl LocalRedis {
    /// Starts a server with its own new data directory.
    ///
    /// # Errors
    /// When `redis-server` is not installed or does not come up.
    pub fn start(persistence: Persistence) -> io::Result<Self> {
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
            match spawn(port, &dir, persistence) {
                Ok(child) => {
                    let mut server = Self {
                        child: Some(child),
                        port,
                        dir: dir.clone(),
                        persistence,
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
        self.child = Some(spawn(self.port, &self.dir, self.persistence)?);
        self.wait_ready()
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

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn spawn(port: u16, dir: &Path, persistence: Persistence) -> io::Result<Child> {
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
    command.spawn()
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
