//! A small MCP client over Streamable HTTP for the server's tests: JSON-RPC requests on `POST
//! /mcp` (answers as JSON or as server-sent events), the session header, and the event stream
//! of `GET /mcp`.
//!
//! Written for tests that need to see the wire (status codes, headers, raw JSON-RPC errors) and
//! to send what a well-behaved client would not. The contract suite drives the server with the
//! official Python SDK as well (`contract-tests/mcp_client.py`).

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The protocol revision the client asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// The path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// Hang guard for one exchange; it measures nothing.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// How a client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing.
    None,
    /// `Authorization: Bearer …`.
    Bearer(String),
    /// The `api_key` header.
    ApiKey(String),
}

/// A JSON-RPC answer: the `result`, or the `error` object.
pub type Answer = Result<Value, Value>;

/// An MCP session.
pub struct McpClient {
    http: Client,
    url: String,
    credentials: Credentials,
    /// The session's id, from the `initialize` answer.
    pub session: Option<String>,
    /// The `initialize` result.
    pub initialized: Value,
    /// The protocol revision sent in `MCP-Protocol-Version` ([`PROTOCOL_VERSION`] unless
    /// changed).
    pub protocol_version: String,
    next_id: u64,
}

impl McpClient {
    /// Opens a session on the server at `base_url` (`http://127.0.0.1:PORT`): `initialize`, then
    /// `notifications/initialized`.
    ///
    /// # Panics
    /// When the server does not answer the handshake with a session.
    pub async fn connect(base_url: &str, credentials: Credentials) -> Self {
        let mut client = Self::unconnected(base_url, credentials);
        let response = client
            .post(&json!({
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": { "name": "petstore-testkit", "version": "0" }
                }
            }))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "initialize answered {}",
            response.status()
        );
        client.session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        assert!(client.session.is_some(), "initialize opened no session");
        client.initialized = match answer_of(response, 0).await {
            Ok(result) => result,
            Err(error) => panic!("initialize failed: {error}"),
        };
        let accepted = client
            .post(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        client
    }

    /// A client with no session, for requests a session would not send.
    pub fn unconnected(base_url: &str, credentials: Credentials) -> Self {
        let http = match Client::builder().build() {
            Ok(http) => http,
            Err(error) => panic!("cannot build the HTTP client: {error}"),
        };
        Self {
            http,
            url: format!("{base_url}{MCP_PATH}"),
            credentials,
            session: None,
            initialized: Value::Null,
            protocol_version: PROTOCOL_VERSION.to_owned(),
            next_id: 1,
        }
    }

    /// Changes the credentials later requests carry (a session keeps its owner).
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }

    /// A request to the endpoint with the client's headers.
    pub fn request(&self, method: reqwest::Method) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.protocol_version);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        match &self.credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::ApiKey(key) => request.header("api_key", key),
        }
    }

    /// `POST`s one JSON-RPC message and returns the HTTP response.
    pub async fn post(&self, message: &Value) -> Response {
        let request = self
            .request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .body(message.to_string());
        guarded("an MCP POST", request.send())
            .await
            .unwrap_or_else(|error| panic!("the MCP POST failed: {error}"))
    }

    /// Sends a JSON-RPC request and returns its answer.
    ///
    /// # Panics
    /// When the HTTP status is not 200 or no answer comes.
    pub async fn call(&mut self, method: &str, params: Value) -> Answer {
        let id = self.next_id;
        self.next_id += 1;
        let response = self
            .post(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{method} answered HTTP {}",
            response.status()
        );
        answer_of(response, id).await
    }

    /// `tools/call`: the tool result (success or `isError`).
    ///
    /// # Panics
    /// When the call is a protocol error.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        match self
            .call(
                "tools/call",
                json!({ "name": name, "arguments": arguments }),
            )
            .await
        {
            Ok(result) => result,
            Err(error) => panic!("tools/call {name} failed with a protocol error: {error}"),
        }
    }

    /// Opens the session's event stream (`GET /mcp`) and forwards every JSON-RPC message on it.
    ///
    /// # Panics
    /// When the stream does not open.
    pub async fn events(&self) -> mpsc::UnboundedReceiver<Value> {
        let request = self
            .request(reqwest::Method::GET)
            .header("accept", "text/event-stream");
        let mut response = guarded("the MCP event stream", request.send())
            .await
            .unwrap_or_else(|error| panic!("the MCP event stream failed: {error}"));
        assert_eq!(response.status(), StatusCode::OK, "GET /mcp");
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    for message in messages(&event) {
                        if sender.send(message).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        receiver
    }

    /// Ends the session (`DELETE /mcp`); returns the HTTP status.
    pub async fn close(&self) -> StatusCode {
        guarded(
            "an MCP DELETE",
            self.request(reqwest::Method::DELETE).send(),
        )
        .await
        .map_or(StatusCode::INTERNAL_SERVER_ERROR, |response| {
            response.status()
        })
    }
}

/// The JSON-RPC answer with `id` in a response: its JSON body, or the `data:` lines of its
/// server-sent events.
///
/// # Panics
/// When the response holds no answer with that id.
pub async fn answer_of(response: Response, id: u64) -> Answer {
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let text = guarded("an MCP answer", response.text())
        .await
        .unwrap_or_else(|error| panic!("cannot read the MCP answer: {error}"));
    let candidates = if is_json {
        serde_json::from_str(&text).into_iter().collect()
    } else {
        messages(&text)
    };
    let Some(message) = candidates
        .into_iter()
        .find(|message: &Value| message["id"] == json!(id))
    else {
        panic!("no answer with id {id} in: {text}");
    };
    match message.get("error") {
        Some(error) => Err(error.clone()),
        None => Ok(message["result"].clone()),
    }
}

/// The JSON messages in the `data:` lines of server-sent events (priming events carry none).
pub fn messages(events: &str) -> Vec<Value> {
    events
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}

/// The `ErrorResponse` a failed tool call carries as its text.
///
/// # Panics
/// When the result is not an error result with an `ErrorResponse`.
pub fn error_body(result: &Value) -> Value {
    assert_eq!(
        result["isError"],
        json!(true),
        "not an error result: {result}"
    );
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    match serde_json::from_str(text) {
        Ok(body) => body,
        Err(error) => panic!("the error result's text is not JSON ({error}): {result}"),
    }
}

async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("hung: {what}"),
    }
}
