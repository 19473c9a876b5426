//! The `petstore-ws` binary as an operator runs it: configuration from flags and environment,
//! the "listening" line on stdout, clear start-up errors, and a clean exit on SIGTERM/SIGINT.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_petstore-ws");

/// Starts the binary with `args` and returns it with the base URL from its "listening" line.
fn start(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("PETSTORE_PORT")
        .env_remove("PETSTORE_BIND")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a line on stdout");
    let url = line
        .trim()
        .strip_prefix("petstore-ws listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, url)
}

/// Waits for the process to exit, failing the test (and killing it) after `limit`.
fn wait_for_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(url).expect("the server answers")
}

#[test]
fn serves_on_the_port_it_prints_and_exits_cleanly_on_sigterm() {
    let (mut child, url) = start(&["--bind", "127.0.0.1", "--port", "0"], &[]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(get(&format!("{url}/health")).status(), 200);
    // Demo data is on by default.
    assert_eq!(get(&format!("{url}/api/v3/pet/1")).status(), 200);

    signal(&child, "TERM");
    let status = wait_for_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn exits_cleanly_on_sigint() {
    let (mut child, _) = start(
        &["--bind", "127.0.0.1", "--port", "0", "--no-demo-data"],
        &[],
    );
    signal(&child, "INT");
    let status = wait_for_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn environment_configures_what_flags_do_not() {
    let (mut child, url) = start(
        &["--port", "0"],
        &[
            ("PETSTORE_NO_DEMO_DATA", "true"),
            ("PETSTORE_BIND", "127.0.0.1"),
        ],
    );
    assert_eq!(get(&format!("{url}/api/v3/pet/1")).status(), 404);
    signal(&child, "TERM");
    assert!(wait_for_exit(&mut child, Duration::from_secs(15)).success());
}

/// Runs the binary with settings it must refuse; returns its exit status and stderr.
fn refuse(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let output = Command::new(BINARY)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_malformed_flag_is_refused_with_a_usage_message() {
    let (status, stderr) = refuse(&["--port", "eighty"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn a_missing_jwt_key_file_is_refused_naming_the_file() {
    let (status, stderr) = refuse(
        &["--bind", "127.0.0.1", "--port", "0", "--no-demo-data"],
        &[("PETSTORE_JWT_PRIVATE_KEY", "no/such/key.pem")],
    );
    assert!(!status.success());
    assert!(stderr.contains("no/such/key.pem"), "{stderr}");
}

#[test]
fn an_invalid_log_filter_is_refused() {
    let (status, stderr) = refuse(&["--log", "petstore_ws=[[", "--port", "0"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("invalid log filter"), "{stderr}");
}

#[test]
fn a_port_in_use_is_refused_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let (status, stderr) = refuse(
        &["--bind", "127.0.0.1", "--port", &port, "--no-demo-data"],
        &[],
    );
    assert!(!status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
