//! Servers in child processes, shared by every bench: the bench binary re-executes itself with a
//! role in an environment variable, the child announces its address on stdout and serves until
//! its stdin closes, which the parent does when it is done with it (or dies).
//!
//! A process of its own gives each server its own runtime, and its own CPU time and resident
//! memory to read from `/proc`, so the load generator's cost is not mixed into the server's.
//!
//! Each bench compiles this file on its own and uses a different part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// What a child prints on stdout once it listens, followed by its address.
pub const LISTENING: &str = "listening on ";

/// How long the parent waits for a child's "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Tells the parent where the child listens.
pub fn announce(addr: SocketAddr) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING}{addr}")
        .and_then(|()| stdout.flush())
        .map_err(|error| error.to_string())
}

/// A server in a child process; dropping it stops the child: its stdin is closed, and it is
/// killed if it has not exited within the `stop_wait` it was started with.
pub struct ChildServer {
    pub role: String,
    pub addr: SocketAddr,
    child: Child,
    stop_wait: Duration,
}

impl ChildServer {
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
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().map_err(|error| error.to_string())?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no stdout pipe".to_owned());
        };
        // From here on, dropping `server` stops the child.
        let mut server = ChildServer {
            role: role.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            stop_wait,
        };
        server.addr = wait_for_address(stdout, START_TIMEOUT)?;
        Ok(server)
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
        drop(self.child.stdin.take());
        let deadline = Instant::now() + self.stop_wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    line.trim()
        .strip_prefix(LISTENING)
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("unexpected start-up line {:?}", line.trim()))
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
