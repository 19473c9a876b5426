//! Running Node for the tests: the tools checked (with the command that installs them), the
//! npm package prepared once per test binary, and node runs bounded in time.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

/// What installs every tool these tests need.
const SETUP: &str = "scripts/setup";

/// Longest `npm ci` (a fresh machine downloads the packages), and longest type check.
const NPM_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Longest run of one node test file set; each test inside has its own, shorter limits.
const NODE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The npm package of the TypeScript client.
fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/typescript")
}

/// Where failing pages leave their screenshots.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots")
}

/// Fails the test when `program` cannot be run, naming the setup command.
fn require(program: &str, args: &[&str], what: &str) -> String {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => panic!(
            "these tests need {what}, but `{program}` could not be run; install it with `{SETUP}`"
        ),
    }
}

/// The Chromium executable (Debian's `chromium`) by its full path, which Playwright wants, or a
/// failure naming the setup command.
pub fn require_chromium() -> String {
    let version = require("chromium", &["--version"], "Debian's chromium");
    eprintln!("browser tests: {version}");
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromium"))
                .find(|candidate| candidate.is_file())
        })
        .map(|found| found.display().to_string())
        .unwrap_or_else(|| panic!("chromium is not on PATH; install it with `{SETUP}`"))
}

/// The outcome of preparing the package, shared by the tests of this binary.
static PREPARED: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// Checks Node (≥ 20) and npm, installs the pinned packages when the lock file changed, and
/// type-checks the package with `tsc` (which also builds `dist/`). Once per test binary.
pub fn prepare_package() {
    let mut prepared = PREPARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let outcome = prepared.get_or_insert_with(|| {
        let version = require("node", &["--version"], "Node.js 20 or later");
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or(0);
        if major < 20 {
            return Err(format!(
                "these tests need Node.js 20 or later, found {version}; install it with `{SETUP}`"
            ));
        }
        require("npm", &["--version"], "npm");
        install_packages()?;
        run_blocking(
            Command::new("npm").args(["run", "--silent", "check"]),
            "tsc (npm run check)",
            NPM_TIMEOUT,
        )
    });
    if let Err(problem) = outcome {
        panic!("{problem}");
    }
}

/// Runs an npm script of the package (after [`prepare_package`]).
pub fn npm_run(script: &str) -> Result<(), String> {
    run_blocking(
        Command::new("npm").args(["run", "--silent", script]),
        &format!("npm run {script}"),
        NPM_TIMEOUT,
    )
}

/// `npm ci` unless `node_modules` was installed from the same lock file.
fn install_packages() -> Result<(), String> {
    let package = package_dir();
    let lock = fs::read(package.join("package-lock.json"))
        .map_err(|error| format!("cannot read clients/typescript/package-lock.json: {error}"))?;
    let stamp = package.join("node_modules/.installed-from-package-lock.json");
    if fs::read(&stamp).is_ok_and(|installed| installed == lock) {
        return Ok(());
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-cache");
    run_blocking(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .env("npm_config_cache", &cache)
            // The browser tests use the system's Chromium.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
        "npm ci",
        NPM_TIMEOUT,
    )?;
    fs::write(&stamp, lock).map_err(|error| format!("cannot write {}: {error}", stamp.display()))
}

/// Runs `command` in the package directory with its output passed through, killed after
/// `timeout`.
fn run_blocking(command: &mut Command, what: &str, timeout: Duration) -> Result<(), String> {
    let mut child = command
        .current_dir(package_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| format!("could not start {what}: {error}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("{what} failed ({status}); see its output above"));
            }
            Ok(None) if Instant::now() >= deadline => {
                // Best effort: the process may have exited between the two calls.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {} s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(error) => return Err(format!("could not wait for {what}: {error}")),
        }
    }
}

/// Runs node with `args` in the package directory against the server at `base_url`
/// (`PETSTORE_BASE_URL`) with `extra_env`, off the async runtime (the server keeps serving on it
/// meanwhile).
pub async fn run_node_with(
    what: &'static str,
    args: &'static [&'static str],
    base_url: &str,
    extra_env: Vec<(&'static str, String)>,
) -> Result<(), String> {
    let base_url = base_url.to_owned();
    tokio::task::spawn_blocking(move || {
        run_blocking(
            Command::new("node")
                .args(args)
                .env("PETSTORE_BASE_URL", &base_url)
                .envs(extra_env),
            what,
            NODE_TIMEOUT,
        )
    })
    .await
    .map_err(|error| format!("the node runner thread failed: {error}"))?
}
