//! Process families, under the names Prometheus's own client libraries use so stock dashboards
//! and alerts work: CPU time, resident and virtual memory, open and maximum file descriptors,
//! start time; plus the uptime and the build information of the server.
//!
//! Read from `/proc/self` each time `/metrics` is scraped, nothing on the request path. Where
//! there is no `/proc` (not Linux) the process families are absent and only the uptime (counted
//! from the first use of the metrics) and the build information are exported.

use std::{
    fs,
    time::{SystemTime, UNIX_EPOCH},
};

use opentelemetry::{KeyValue, metrics::Meter};

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux
/// architecture, whatever the kernel's internal tick rate (it is part of the kernel's ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// Registers the process families on `meter`.
pub(super) fn register(meter: &Meter) {
    let started = start_time().unwrap_or_else(now);
    meter
        .f64_observable_counter("process.cpu")
        .with_description("User and system CPU time spent, in seconds.")
        .with_unit("s")
        .with_callback(|observer| {
            if let Some(seconds) = cpu_seconds() {
                observer.observe(seconds, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("process.resident_memory")
        .with_description("Resident memory size, in bytes.")
        .with_unit("By")
        .with_callback(|observer| {
            if let Some(bytes) = status_bytes("VmRSS:") {
                observer.observe(bytes, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("process.virtual_memory")
        .with_description("Virtual memory size, in bytes.")
        .with_unit("By")
        .with_callback(|observer| {
            if let Some(bytes) = status_bytes("VmSize:") {
                observer.observe(bytes, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("process.open_fds")
        .with_description("Open file descriptors (sockets included).")
        .with_unit("{file}")
        .with_callback(|observer| {
            if let Ok(entries) = fs::read_dir("/proc/self/fd") {
                observer.observe(entries.count() as u64, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("process.max_fds")
        .with_description("The limit on open file descriptors.")
        .with_unit("{file}")
        .with_callback(|observer| {
            if let Some(limit) = max_fds() {
                observer.observe(limit, &[]);
            }
        })
        .build();
    meter
        .f64_observable_gauge("process.start_time")
        .with_description("Start time of the process since the Unix epoch, in seconds.")
        .with_unit("s")
        .with_callback(move |observer| observer.observe(started, &[]))
        .build();
    meter
        .f64_observable_gauge("petstore.uptime")
        .with_description("Time since the process started, in seconds.")
        .with_unit("s")
        .with_callback(move |observer| observer.observe((now() - started).max(0.0), &[]))
        .build();
    meter
        .u64_observable_gauge("petstore.build.info")
        .with_description("Always 1; the labels say which build is running.")
        .with_callback(|observer| {
            observer.observe(1, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))]);
        })
        .build();
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The fields of `/proc/self/stat` after the command name, which may itself contain spaces and
/// parentheses: the first one is field 3 (`state`).
fn stat_fields() -> Option<Vec<String>> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// Field `number` (1-based, as in `proc(5)`) of `/proc/self/stat`, as ticks.
fn stat_ticks(fields: &[String], number: usize) -> Option<f64> {
    fields
        .get(number.checked_sub(3)?)?
        .parse::<u64>()
        .ok()
        .map(|ticks| ticks as f64)
}

/// User plus system time (`utime`, `stime`: fields 14 and 15).
fn cpu_seconds() -> Option<f64> {
    let fields = stat_fields()?;
    Some((stat_ticks(&fields, 14)? + stat_ticks(&fields, 15)?) / TICKS_PER_SECOND)
}

/// When the process started: the boot time (`btime` of `/proc/stat`) plus `starttime` (field 22,
/// ticks after boot).
fn start_time() -> Option<f64> {
    let boot = fs::read_to_string("/proc/stat").ok()?;
    let boot: f64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + stat_ticks(&stat_fields()?, 22)? / TICKS_PER_SECOND)
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix(key))?;
    let kilobytes: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{cpu_seconds, max_fds, now, start_time, status_bytes};

    #[test]
    fn proc_readings_are_plausible() {
        assert!(cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
        assert!(status_bytes("VmRSS:").is_some_and(|bytes| bytes > 0));
        assert!(max_fds().is_some_and(|limit| limit > 0));
        let started = start_time().expect("a start time");
        assert!(started > 0.0 && started <= now() + 1.0, "{started}");
    }
}
