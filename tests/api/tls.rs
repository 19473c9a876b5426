//! HTTPS served directly: with a certificate and key the API answers over TLS (and nothing over
//! plain HTTP on that port), and a certificate or key that cannot be used stops the start with
//! an error naming the problem.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use petstore_testkit::app::{ok_json, send, spawn_app};
use petstore_ws::{config::Config, server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// A temporary directory with a self-signed certificate for `localhost` and `127.0.0.1` and its
/// key, removed when dropped.
struct Pki {
    dir: PathBuf,
    cert_pem: String,
}

impl Pki {
    fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "petstore-ws-tls-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {error}", dir.display());
        }
        let (cert_pem, key_pem) = self_signed();
        let pki = Self { dir, cert_pem };
        pki.write("cert.pem", &pki.cert_pem);
        pki.write("key.pem", &key_pem);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Err(error) = std::fs::write(&path, contents) {
            panic!("cannot write {}: {error}", path.display());
        }
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh self-signed certificate and its key, both PEM.
fn self_signed() -> (String, String) {
    match rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]) {
        Ok(certified) => (certified.cert.pem(), certified.signing_key.serialize_pem()),
        Err(error) => panic!("cannot generate a certificate: {error}"),
    }
}

/// A client that trusts only `cert_pem`, with whatever `tweak` adds.
fn https_client(
    cert_pem: &str,
    tweak: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    let root = match reqwest::Certificate::from_pem(cert_pem.as_bytes()) {
        Ok(root) => root,
        Err(error) => panic!("the test certificate does not parse: {error}"),
    };
    let builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root);
    match tweak(builder).build() {
        Ok(client) => client,
        Err(error) => panic!("cannot build the HTTPS client: {error}"),
    }
}

/// What `spawn_app` starts from, with the TLS files set: for start-ups that must fail.
fn config_with_tls(cert: PathBuf, key: PathBuf) -> Config {
    let mut config = Config::defaults();
    config.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.port = 0;
    config.no_demo_data = true;
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    config
}

/// Starts a server that must refuse to start; returns its error message.
async fn refused(config: Config) -> String {
    match server::spawn(config).await {
        Ok(server) => {
            let url = server.base_url();
            server.shutdown().await;
            panic!("the server started at {url}");
        }
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn health_and_get_pet_by_id_are_served_over_https() {
    let pki = Pki::new();
    let app = spawn_app(|config| {
        config.tls_cert = Some(pki.path("cert.pem"));
        config.tls_key = Some(pki.path("key.pem"));
        config.no_demo_data = false;
    })
    .await;
    assert!(
        app.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        app.base_url
    );
    let client = https_client(&pki.cert_pem, |builder| builder);

    let health = send(client.get(app.url("/health"))).await;
    assert_eq!(health.status(), 200);
    let pet = ok_json(send(client.get(app.api("/pet/1"))).await).await;
    assert_eq!(pet["id"], 1, "{pet}");

    // The certificate also names `localhost`.
    let by_name = format!("https://localhost:{}/health", app.addr.port());
    let client = https_client(&pki.cert_pem, |builder| {
        builder.resolve("localhost", app.addr)
    });
    assert_eq!(send(client.get(by_name)).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_response() {
    let pki = Pki::new();
    let app = spawn_app(|config| {
        config.tls_cert = Some(pki.path("cert.pem"));
        config.tls_key = Some(pki.path("key.pem"));
    })
    .await;

    let mut stream = match TcpStream::connect(app.addr).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot connect: {error}"),
    };
    if let Err(error) = stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
    {
        panic!("cannot send: {error}");
    }
    let mut received = Vec::new();
    // The server ends the failed handshake (at most a TLS alert) and closes; a reset counts too.
    if timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .is_err()
    {
        panic!("the connection is still open after 10 s");
    }
    assert!(
        !received.starts_with(b"HTTP/"),
        "an HTTP response over plain TCP: {:?}",
        String::from_utf8_lossy(&received)
    );

    let plain = app.url("/health").replacen("https://", "http://", 1);
    assert!(
        reqwest::Client::new().get(&plain).send().await.is_err(),
        "{plain} answered over plain HTTP"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_missing_certificate_file_is_refused_naming_it() {
    let pki = Pki::new();
    let missing = pki.path("no-such-cert.pem");
    let message = refused(config_with_tls(missing.clone(), pki.path("key.pem"))).await;
    assert!(message.contains("certificate"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_key_file_is_refused_naming_it() {
    let pki = Pki::new();
    let missing = pki.path("no-such-key.pem");
    let message = refused(config_with_tls(pki.path("cert.pem"), missing.clone())).await;
    assert!(message.contains("private key"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_key_that_does_not_belong_to_the_certificate_is_refused() {
    let pki = Pki::new();
    let (_, other_key) = self_signed();
    let other_key = pki.write("other-key.pem", &other_key);
    let message = refused(config_with_tls(pki.path("cert.pem"), other_key.clone())).await;
    assert!(message.contains("does not belong"), "{message}");
    assert!(
        message.contains(&other_key.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_certificate_file_that_is_not_pem_is_refused_naming_it() {
    let pki = Pki::new();
    let garbage = pki.write("garbage-cert.pem", "this is not a certificate\n");
    let message = refused(config_with_tls(garbage.clone(), pki.path("key.pem"))).await;
    assert!(message.contains("no PEM certificate"), "{message}");
    assert!(
        message.contains(&garbage.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_key_file_that_is_not_pem_is_refused_naming_it() {
    let pki = Pki::new();
    let garbage = pki.write(
        "garbage-key.pem",
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n",
    );
    let message = refused(config_with_tls(pki.path("cert.pem"), garbage.clone())).await;
    assert!(message.contains("no PEM private key"), "{message}");
    assert!(
        message.contains(&garbage.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_certificate_given_as_the_key_is_refused() {
    let pki = Pki::new();
    let message = refused(config_with_tls(pki.path("cert.pem"), pki.path("cert.pem"))).await;
    assert!(message.contains("no PEM private key"), "{message}");
}

#[test]
fn a_tls_certificate_without_a_key_is_a_usage_error() {
    for (args, env) in [
        (&["--tls-cert", "cert.pem"][..], &[][..]),
        (&[][..], &[("PETSTORE_TLS_KEY", "key.pem")][..]),
    ] {
        let mut child = match Command::new(env!("CARGO_BIN_EXE_petstore-ws"))
            .args(args)
            .args(["--bind", "127.0.0.1", "--port", "0", "--no-demo-data"])
            .env_remove("PETSTORE_TLS_CERT")
            .env_remove("PETSTORE_TLS_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(error) => panic!("the binary does not run: {error}"),
        };
        // A binary that wrongly starts would serve forever: stop it rather than hang.
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    panic!("{args:?} {env:?}: the server started");
                }
                Err(error) => panic!("cannot wait for the binary: {error}"),
            }
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        assert!(!status.success(), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--tls-"), "{args:?} {env:?}: {stderr}");
    }
}
