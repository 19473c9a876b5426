//! Servers in child processes, shared by every bench and by the cluster tests: a bench binary
//! re-executes itself with a role in an environment variable, the child announces its address on
//! stdout and serves until its stdin closes, which the parent does when it is done with it (or
//! dies). The cluster tests start other programs the same way (the `petstore-ws` binary, stopped
//! with SIGTERM, and HAProxy, told its address instead of announcing it).
//!
//! A process of its own gives each server its own runtime, and its own CPU time and resident
//! memory to read from `/proc`, so the load generator's cost is not mixed into the server's.

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// What a child prints on stdout once it listens, followed by its address.
pub const LISTENING: &str = "listening on ";

/// The address of a child that has not announced one yet.
const UNKNOWN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// How long the parent waits for a child's "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Tells the parent where the child listens.
pub fn announce(addr: SocketAddr) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING}{addr}")
        .and_then(|()| stdout.flush())
        .map_err(|error| error.to_string())
}

/// How a child is asked to stop when its owner is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Close its stdin (the bench children serve until then).
    CloseStdin,
    /// Send SIGTERM, as an orchestrator would.
    Terminate,
}

/// A server in a child process; dropping it stops the child as its [`Stop`] says, and kills it
/// if it has not exited within the `stop_wait` it was started with. Children started with
/// [`launch`](Self::launch) or [`launch_at`](Self::launch_at) are, on Linux, also killed when the
/// thread that started them ends, so a failed test leaves nothing behind.
pub struct ChildServer {
    pub role: String,
    pub addr: SocketAddr,
    child: Child,
    stop: Stop,
    stop_wait: Duration,
}

impl ChildServer {
    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://ADDR/api/v3/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, petstore_api::ws::WS_PATH)
    }

    /// Re-executes this bench binary with `role` in `role_env` and `env` added, and waits for
    /// its address. The error is the reason alone; callers say which server it was.
    pub fn spawn(
        role_env: &str,
        role: &str,
        env: &[(&str, &str)],
        stop_wait: Duration,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|error| error.to_string())?;
        let mut command = Command::new(exe);
        command
            .env(role_env, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut server =
            Self::spawn_child(command, role, UNKNOWN_ADDR, Stop::CloseStdin, stop_wait)?;
        server.read_address()?;
        Ok(server)
    }

    /// Starts `command`, a program whose first line on stdout ends with
    /// `listening on ADDR` (optionally `http://ADDR`), and waits for that address. Its stderr
    /// is whatever `command` says.
    pub fn launch(
        mut command: Command,
        role: &str,
        stop: Stop,
        stop_wait: Duration,
    ) -> Result<Self, String> {
        command.stdout(Stdio::piped());
        die_with_this_thread(&mut command);
        let mut server = Self::spawn_child(command, role, UNKNOWN_ADDR, stop, stop_wait)?;
        server.read_address()?;
        Ok(server)
    }

    /// Starts `command`, a program told to listen on `addr` (it announces nothing); the caller
    /// finds out itself when it is ready. Its stdout and stderr are whatever `command` says.
    pub fn launch_at(
        mut command: Command,
        role: &str,
        addr: SocketAddr,
        stop: Stop,
        stop_wait: Duration,
    ) -> Result<Self, String> {
        die_with_this_thread(&mut command);
        Self::spawn_child(command, role, addr, stop, stop_wait)
    }

    fn spawn_child(
        mut command: Command,
        role: &str,
        addr: SocketAddr,
        stop: Stop,
        stop_wait: Duration,
    ) -> Result<Self, String> {
        command.stdin(Stdio::piped());
        let child = command.spawn().map_err(|error| error.to_string())?;
        Ok(ChildServer {
            role: role.to_owned(),
            addr,
            child,
            stop,
            stop_wait,
        })
    }

    /// Reads the address the child announces; on failure, dropping `self` stops the child.
    fn read_address(&mut self) -> Result<(), String> {
        let Some(stdout) = self.child.stdout.take() else {
            return Err("no stdout pipe".to_owned());
        };
        self.addr = wait_for_address(stdout, START_TIMEOUT)?;
        Ok(())
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the child, unless it has exited (its pid may
    /// belong to another process by then).
    pub fn signal(&mut self, signal: libc::c_int) -> Result<(), String> {
        if let Some(status) = self.try_wait() {
            return Err(format!("it has already exited ({status})"));
        }
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|error| error.to_string())?;
        // SAFETY: `kill` only sends a signal; the pid is our own child's, not reaped yet.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }

    /// Kills the child at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the child to exit; `None` if it is still running.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user + system, all threads) the child has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        process_cpu_time(self.child.id())
    }

    /// The child's resident memory, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        process_rss_kib(self.child.id())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        match self.stop {
            Stop::CloseStdin => drop(self.child.stdin.take()),
            Stop::Terminate => {
                let _ = self.signal(libc::SIGTERM);
            }
        }
        if self.wait_for_exit(self.stop_wait).is_none() {
            self.kill();
        }
    }
}

/// On Linux, has the kernel kill the child when the thread that started it ends (a test thread
/// that panics, a bench interrupted), so no server outlives its owner.
fn die_with_this_thread(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: `prctl` is async-signal-safe and only changes the child's own settings.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Reads the child's "listening on ADDR" line, giving up after `timeout`.
fn wait_for_address(stdout: ChildStdout, timeout: Duration) -> Result<SocketAddr, String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
            .map_err(|error| error.to_string());
        let _ = sender.send(result);
    });
    let line = receiver
        .recv_timeout(timeout)
        .map_err(|_| format!("did not report its address within {timeout:?}"))??;
    // The bench children print `listening on ADDR`, the server binary
    // `petstore-ws listening on http://ADDR`.
    let line = line.trim();
    line.split_once(LISTENING)
        .map(|(_, addr)| addr)
        .map(|addr| {
            addr.strip_prefix("http://")
                .or_else(|| addr.strip_prefix("https://"))
                .unwrap_or(addr)
        })
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("unexpected start-up line {line:?}"))
}

/// User + system CPU time of a whole process, from `/proc/PID/stat`.
#[cfg(target_os = "linux")]
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    // USER_HZ, the unit of these fields, is 100 on every architecture Linux exports it for.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are
    // fields 14 and 15.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

#[cfg(not(target_os = "linux"))]
pub fn process_cpu_time(_pid: u32) -> Option<Duration> {
    None
}

/// `VmRSS` of a process, from `/proc/PID/status`, in KiB.
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}
