//! The server on a loopback port of its own ([`spawn_app`]) and the HTTP helpers the black-box
//! suites talk to it with.
//!
//! Every test starts its own server on `127.0.0.1:0`, so tests run in parallel without sharing
//! state or ports, and talks to it over real HTTP with reqwest: the suites see exactly what a
//! client sees, nothing of the crate's internals but `Config` and `server::spawn`.
//!
//! Requests that fail at the transport level (connection refused, reset) panic with the URL: in a
//! test that is the failure to report, there is nothing to recover.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    path::{Path, PathBuf},
    time::Duration,
};

use petstore_ws::{
    auth::{ApiKeySpec, ApiKeys, tokens::generate_ephemeral_key_pem},
    config::Config,
    server::{self, RunningServer},
};
use reqwest::{RequestBuilder, Response, header};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Path prefix of the API, as in the spec's `servers`.
pub const API_BASE: &str = "/api/v3";

/// A 1×1 PNG, complete with valid chunk CRCs.
pub const PNG: &[u8] = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90\x77\x53\xde\x00\x00\x00\x0c\x49\x44\x41\x54\x78\x9c\x63\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";
/// The start of a JFIF JPEG: SOI, an APP0 `JFIF` segment, then EOI.
pub const JPEG: &[u8] =
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9";
/// A 1×1 GIF89a.
pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
/// A 1×1 lossless WebP.
pub const WEBP: &[u8] = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00";

/// A server of its own and a client to talk to it.
///
/// Shut it down with [`TestApp::shutdown`] at the end of a test. A test that panics before
/// that still stops its server: dropping the app sends the shutdown from a background task.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// A client that keeps its connections to this server alive between requests, and sends
    /// the admin service key ([`ADMIN_API_KEY`]) with each.
    pub client: reqwest::Client,
    /// A client that sends no credentials unless a test adds them.
    pub anonymous: reqwest::Client,
    /// The server's address, for raw TCP requests.
    pub addr: SocketAddr,
    server: Option<RunningServer>,
}

/// The service key of every test server, with role `admin`: [`TestApp::client`] sends it, so
/// suites about business rules act with every permission; the security suites use
/// [`TestApp::anonymous`] and explicit credentials.
pub const ADMIN_API_KEY: &str = "test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz";

/// Its name (the owner of what it creates).
pub const ADMIN_API_KEY_NAME: &str = "test-admin";

/// Starts a server on `127.0.0.1:0` with the defaults, an **empty store** (tests build the data
/// they assert on), the admin service key [`ADMIN_API_KEY`], rate and login limits high enough
/// never to trigger (the limit suites set their own), and whatever `tweak` changes on top.
pub async fn spawn_app(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::defaults();
    config.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.port = 0;
    config.no_demo_data = true;
    let spec = format!(
        "{ADMIN_API_KEY_NAME}:admin:{}",
        ApiKeys::hash_hex(ADMIN_API_KEY)
    );
    config.api_keys = vec![match spec.parse::<ApiKeySpec>() {
        Ok(spec) => spec,
        Err(error) => panic!("the test API key does not parse: {error}"),
    }];
    let unlimited = NonZeroU32::MAX;
    config.rate_limit_per_minute = unlimited;
    config.rate_limit_burst = unlimited;
    config.login_attempts_per_minute = unlimited;
    config.login_attempts_per_ip_per_minute = unlimited;
    tweak(&mut config);
    let server = match server::spawn(config).await {
        Ok(server) => server,
        Err(error) => panic!("the server did not start: {error}"),
    };
    let mut admin_headers = header::HeaderMap::new();
    admin_headers.insert("api_key", header::HeaderValue::from_static(ADMIN_API_KEY));
    TestApp {
        base_url: server.base_url(),
        addr: server.local_addr(),
        client: http_client(admin_headers),
        anonymous: http_client(header::HeaderMap::new()),
        server: Some(server),
    }
}

fn http_client(default_headers: header::HeaderMap) -> reqwest::Client {
    match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(default_headers)
        .build()
    {
        Ok(client) => client,
        Err(error) => panic!("cannot build the HTTP client: {error}"),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(server.shutdown());
        }
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) {
        let server = self.server.take();
        // Dropping the client closes its idle keep-alive connections, so the graceful shutdown
        // has nothing to wait for.
        drop(self);
        if let Some(server) = server {
            server.shutdown().await;
        }
    }

    /// An absolute URL for a path outside the API (`/health`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// An absolute URL for an API path (`/pet/1` → `http://…/api/v3/pet/1`).
    pub fn api(&self, path: &str) -> String {
        format!("{}{API_BASE}{path}", self.base_url)
    }

    /// `GET` an API path.
    pub async fn get(&self, path: &str) -> Response {
        send(self.client.get(self.api(path))).await
    }

    /// `DELETE` an API path.
    pub async fn delete(&self, path: &str) -> Response {
        send(self.client.delete(self.api(path))).await
    }

    /// `POST` a JSON document to an API path.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        send(self.client.post(self.api(path)).json(body)).await
    }

    /// `PUT` a JSON document to an API path.
    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        send(self.client.put(self.api(path)).json(body)).await
    }

    /// Sends raw bytes with the given content type (none when `None`) to an API path.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.request(method, self.api(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        send(request).await
    }

    /// Uploads `bytes` as an image of pet `pet_id`.
    pub async fn upload(&self, pet_id: i64, bytes: impl Into<reqwest::Body>) -> Response {
        self.send_raw(
            reqwest::Method::POST,
            &format!("/pet/{pet_id}/uploadImage"),
            Some("application/octet-stream"),
            bytes,
        )
        .await
    }

    /// Sends `body` to an API path in HTTP/1.1 chunked encoding, so the request has no
    /// `Content-Length` and a size limit can only be enforced while reading. Returns the status
    /// and the response body (the server answers with a `Content-Length`).
    ///
    /// The whole request goes out in one write and is small, so the server has read all of it
    /// before it answers and closes: no unread bytes that would turn the close into a reset.
    pub async fn post_chunked(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let mut request = format!(
            "POST {API_BASE}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
             api_key: {ADMIN_API_KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .into_bytes();
        for chunk in body.chunks(100) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");

        let mut stream = match tokio::net::TcpStream::connect(self.addr).await {
            Ok(stream) => stream,
            Err(error) => panic!("cannot connect to {}: {error}", self.addr),
        };
        if let Err(error) = stream.write_all(&request).await {
            panic!("cannot send the chunked request: {error}");
        }
        let mut response = Vec::new();
        if let Err(error) = stream.read_to_end(&mut response).await
            && response.is_empty()
        {
            panic!("no response to the chunked request: {error}");
        }
        let text = String::from_utf8_lossy(&response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            panic!("not an HTTP response: {text:?}");
        };
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        match serde_json::from_str(body) {
            Ok(body) => (status, body),
            Err(error) => panic!("the {status} body is not JSON ({error}): {body:?}"),
        }
    }

    /// Adds a pet and returns it as stored; the request must succeed.
    pub async fn add_pet(&self, body: Value) -> Value {
        let response = self.post_json("/pet", &body).await;
        ok_json(response).await
    }

    /// Adds a pet called `name` with the given tag names; returns its id.
    pub async fn add_tagged_pet(&self, name: &str, tags: &[&str]) -> i64 {
        let tags: Vec<Value> = tags.iter().map(|tag| json!({ "name": tag })).collect();
        let pet = self
            .add_pet(json!({ "name": name, "photoUrls": [], "tags": tags }))
            .await;
        id_of(&pet)
    }

    /// Adds an available pet called `name`; returns its id.
    pub async fn add_available_pet(&self, name: &str) -> i64 {
        id_of(&self.add_pet(new_pet(name)).await)
    }

    /// The pet with this id; it must exist.
    pub async fn pet(&self, id: i64) -> Value {
        ok_json(self.get(&format!("/pet/{id}")).await).await
    }

    /// Places an order and returns it as stored; the request must succeed.
    pub async fn place_order(&self, body: Value) -> Value {
        ok_json(self.post_json("/store/order", &body).await).await
    }

    /// The inventory, as `(available, pending, sold)`.
    pub async fn inventory(&self) -> (i64, i64, i64) {
        let inventory = ok_json(self.get("/store/inventory").await).await;
        let count = |status: &str| match inventory.get(status).and_then(Value::as_i64) {
            Some(count) => count,
            None => panic!("inventory has no count for {status}: {inventory}"),
        };
        (count("available"), count("pending"), count("sold"))
    }

    /// Creates a user with this name and password; the request must succeed.
    pub async fn create_user(&self, username: &str, password: &str) -> Value {
        let body = json!({
            "username": username,
            "password": password,
            "firstName": "Test",
            "lastName": "User",
            "email": format!("{username}@example.com"),
            "phone": "555-0100",
            "userStatus": 1
        });
        ok_json(self.post_json("/user", &body).await).await
    }

    /// `POST /auth/token` with these credentials and no others.
    pub async fn request_token(&self, username: &str, password: &str) -> Response {
        let body = json!({ "username": username, "password": password });
        send(self.anonymous.post(self.api("/auth/token")).json(&body)).await
    }

    /// Starts a session with `createToken`, which must succeed; returns the access token and
    /// the refresh token.
    pub async fn create_token(&self, username: &str, password: &str) -> (String, String) {
        let tokens = ok_json(self.request_token(username, password).await).await;
        let text = |member: &str| match tokens[member].as_str() {
            Some(text) => text.to_owned(),
            None => panic!("no {member} in {tokens}"),
        };
        (text("accessToken"), text("refreshToken"))
    }

    /// `POST /auth/refresh` with this refresh token and no other credentials.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        let body = json!({ "refreshToken": refresh_token });
        send(self.anonymous.post(self.api("/auth/refresh")).json(&body)).await
    }

    /// `GET /user/login` with these credentials.
    pub async fn login(&self, username: &str, password: &str) -> Response {
        let request = self
            .client
            .get(self.api("/user/login"))
            .query(&[("username", username), ("password", password)]);
        send(request).await
    }
}

/// Sends a request; a transport failure fails the test.
pub async fn send(request: RequestBuilder) -> Response {
    let described = format!("{request:?}");
    match request.send().await {
        Ok(response) => response,
        Err(error) => panic!("request failed at the transport level: {error} ({described})"),
    }
}

/// Adds `Authorization: Bearer <token>` to a request.
pub fn bearer(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.header(header::AUTHORIZATION, format!("Bearer {token}"))
}

/// A service-key entry for `Config::api_keys`: `key` with this name and role (`admin` or
/// `customer`), configured by its SHA-256 as in production.
pub fn api_key_spec(name: &str, role: &str, key: &str) -> ApiKeySpec {
    let spec = format!("{name}:{role}:{}", ApiKeys::hash_hex(key));
    match spec.parse::<ApiKeySpec>() {
        Ok(spec) => spec,
        Err(error) => panic!("the API key spec {name}:{role} does not parse: {error}"),
    }
}

/// Asserts a 401 `UNAUTHORIZED` error whose `WWW-Authenticate` is a Bearer challenge naming
/// the realm; returns the challenge.
pub async fn expect_unauthorized(response: Response) -> String {
    let url = response.url().clone();
    let challenge = header_text(&response, header::WWW_AUTHENTICATE.as_str());
    expect_error(response, 401, "UNAUTHORIZED").await;
    match challenge {
        Some(challenge) if challenge.starts_with("Bearer realm=") => challenge,
        other => panic!("the 401 of {url} has no Bearer challenge: {other:?}"),
    }
}

/// Asserts a 401 whose challenge says the presented token is not valid
/// (`error="invalid_token"`, RFC 6750 §3.1).
pub async fn expect_invalid_token(response: Response) {
    let challenge = expect_unauthorized(response).await;
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "not an invalid_token challenge: {challenge}"
    );
}

/// The body as JSON; a body that is not JSON fails the test.
pub async fn body_json(response: Response) -> Value {
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => panic!("cannot read the {status} response body: {error}"),
    };
    match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(error) => panic!("the {status} response body is not JSON ({error}): {text:?}"),
    }
}

/// Asserts the response is a 200 with a JSON body (by content type and by content) and returns
/// the body.
pub async fn ok_json(response: Response) -> Value {
    expect_json(response, 200).await
}

/// Asserts `status` and an `application/json` body; returns the body.
pub async fn expect_json(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let content_type = content_type(&response);
    let url = response.url().clone();
    let body = body_json(response).await;
    assert_eq!(actual, status, "status of {url}; body: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "content type of {url} is {content_type:?}, not JSON"
    );
    body
}

/// Asserts a 200 and returns the body as text (for operations answering 200 without content).
pub async fn ok_text(response: Response) -> String {
    let status = response.status().as_u16();
    let url = response.url().clone();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => panic!("cannot read the body of {url}: {error}"),
    };
    assert_eq!(status, 200, "status of {url}; body: {text}");
    text
}

/// The response's `Content-Type`, or `""`.
pub fn content_type(response: &Response) -> String {
    header_text(response, header::CONTENT_TYPE.as_str()).unwrap_or_default()
}

/// A response header as text, if present and readable.
pub fn header_text(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Asserts that the response is the documented error: HTTP `status`, and an `ErrorResponse`
/// body `{code, type, message[, errors]}` whose `code` is the status, whose `type` is
/// `error_type`, whose `message` is not empty, with `errors` (each `{path, message}`) present
/// exactly for validation errors and no other member. Returns the body.
pub async fn expect_error(response: Response, status: u16, error_type: &str) -> Value {
    let body = expect_json(response, status).await;
    assert_error_body(&body, status, error_type);
    body
}

/// The checks of [`expect_error`] on a body already read.
pub fn assert_error_body(body: &Value, status: u16, error_type: &str) {
    let Some(object) = body.as_object() else {
        panic!("error body is not an object: {body}");
    };
    for key in object.keys() {
        assert!(
            ["code", "type", "message", "errors"].contains(&key.as_str()),
            "unexpected member {key:?} in error body {body}"
        );
    }
    assert_eq!(body["code"], json!(status), "code in {body}");
    assert_eq!(body["type"], json!(error_type), "type in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    if error_type == "VALIDATION_ERROR" {
        let Some(errors) = body["errors"].as_array() else {
            panic!("a validation error without `errors`: {body}");
        };
        assert!(!errors.is_empty(), "empty `errors` in {body}");
        for error in errors {
            assert!(
                error["path"].is_string(),
                "field error without path: {body}"
            );
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "field error without message: {body}"
            );
        }
    } else {
        assert!(
            body.get("errors").is_none(),
            "`errors` on a non-validation error: {body}"
        );
    }
}

/// Asserts a 422 `VALIDATION_ERROR` and returns the `errors[].path` list, in order.
pub async fn validation_paths(response: Response) -> Vec<String> {
    let body = expect_error(response, 422, "VALIDATION_ERROR").await;
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|error| error["path"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A minimal valid pet body.
pub fn new_pet(name: &str) -> Value {
    json!({ "name": name, "photoUrls": [] })
}

/// The `id` of a stored entity.
pub fn id_of(entity: &Value) -> i64 {
    match entity["id"].as_i64() {
        Some(id) => id,
        None => panic!("no integer id in {entity}"),
    }
}

/// The ids of a JSON array of entities, in order.
pub fn ids_of(list: &Value) -> Vec<i64> {
    match list.as_array() {
        Some(items) => items.iter().map(id_of).collect(),
        None => panic!("not an array: {list}"),
    }
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body) from a raw connection, leaving
/// the connection open, and returns everything read as text. For the suites that talk raw TCP
/// because reqwest cannot send what they need (a body that never arrives, trickled headers).
///
/// Panics if the connection closes or fails before the whole response, or if no bytes arrive
/// for `read_within` (a hang guard, not a timing assertion).
pub async fn read_http_response(stream: &mut TcpStream, read_within: Duration) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        match tokio::time::timeout(read_within, stream.read(&mut buffer)).await {
            Ok(Ok(0)) => panic!("the connection closed before a whole response: {text:?}"),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Ok(Err(error)) => panic!("reading the response failed: {error} after {text:?}"),
            Err(_) => panic!("no whole response within {read_within:?}: {text:?}"),
        }
    }
}

/// A fresh signing key written to `dir` as `jwt-signing-key.pem`, for `--jwt-private-key`:
/// servers on Redis must all sign with the same key, so a token issued by one verifies on the
/// others.
pub fn signing_key_in(dir: &Path) -> PathBuf {
    let path = dir.join("jwt-signing-key.pem");
    let pem = generate_ephemeral_key_pem()
        .unwrap_or_else(|error| panic!("cannot generate a signing key: {error}"));
    fs::write(&path, pem)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}
