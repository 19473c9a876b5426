//! The MCP server of one session: tools, resources and resource subscriptions over the handlers.
//!
//! The SDK creates one [`McpHandler`] per session and calls it for each request of the session.
//! Every request carries the HTTP request it came in (the SDK hands its parts over), and with
//! it the [`Caller`] the endpoint worked out from that request's own credentials: a tool call
//! is authorized against the token it was sent with, not the one the session started with.
//!
//! A tool call or a resource read is one operation: counted against the caller's rate limit
//! like a REST request, bounded by the request timeout, and run by the generated dispatch
//! (`edge::dispatch`), which reads and validates the arguments, checks the operation's security
//! and calls the same handler method REST does.
//!
//! Resource subscriptions attach the session to the event hub as one connection, the first
//! time the session follows something; a task forwards the hub's frames as
//! `notifications/resources/updated`. The connection is detached when the session ends.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, Extensions, Implementation,
        InitializeRequestParams, InitializeResult, ListResourceTemplatesResult,
        ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
        ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SubscribeRequestParams,
        UnsubscribeRequestParams,
    },
    service::RequestContext,
};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::{
    resources::{self, Resource},
    tools,
};
use crate::{
    edge::{AccessControl, Caller, RequestId, dispatch::dispatch},
    events::{ConnectionId, Hub, Outbox, OutboxReceiver, Received},
    telemetry::metrics,
};
use petstore_api::{
    ApiError, Ctx, Subscriptions, operations::PetStoreApi, payload::Success, ws::Action,
};

/// The protocol revisions served: those with the `initialize` handshake and sessions, from
/// 2025-06-18 (the first with structured tool output) on. Later revisions without sessions are
/// negotiated down to the newest of these.
const PROTOCOL_VERSIONS: [ProtocolVersion; 2] =
    [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25];

/// What every session of a server shares.
pub struct Shared<H> {
    /// The handlers.
    pub handler: Arc<H>,
    /// Rate limits.
    pub access: Arc<AccessControl>,
    /// The node's event fan-out.
    pub hub: Arc<Hub>,
    /// Longest a tool call or resource read may run (then `TIMEOUT`).
    pub request_timeout: Duration,
    /// Most resources one session may follow.
    pub max_subscriptions: usize,
    /// Notifications waiting for a session before its followed resources are re-announced.
    pub outbox_capacity: usize,
}

impl<H: PetStoreApi> Shared<H> {
    /// Runs the operation `action` with `payload` for `caller`: rate limit, timeout, dispatch.
    async fn run(
        &self,
        action: Action,
        caller: &Caller,
        request_id: String,
        payload: Value,
    ) -> Result<Success, ApiError> {
        self.access.check_rate(caller).await?;
        let ctx = Ctx {
            request_id,
            client_ip: caller.client_ip,
            principal: None,
        };
        let call = dispatch(&*self.handler, &caller.authentication, ctx, action, payload);
        tokio::time::timeout(self.request_timeout, call)
            .await
            .unwrap_or(Err(ApiError::Timeout))
    }
}

/// The MCP server of one session.
pub struct McpHandler<H> {
    shared: Arc<Shared<H>>,
    /// The session's connection to the hub, once it follows a resource.
    follower: Mutex<Option<Follower>>,
}

impl<H> McpHandler<H> {
    /// The server of a new session.
    pub fn new(shared: Arc<Shared<H>>) -> Self {
        Self {
            shared,
            follower: Mutex::new(None),
        }
    }
}

/// The caller and request id of the HTTP request a message came in.
fn caller_of(extensions: &Extensions) -> (Caller, String) {
    let parts = extensions.get::<poem::http::request::Parts>();
    let caller = parts
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .unwrap_or_default();
    let request_id = parts
        .and_then(|parts| parts.extensions.get::<RequestId>())
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    (caller, request_id)
}

impl<H: PetStoreApi + Subscriptions> ServerHandler for McpHandler<H> {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        let mut info = Implementation::new("petstore-ws", env!("CARGO_PKG_VERSION"));
        info.title = Some("Pet Store".to_owned());
        ServerConfig::new(capabilities)
            .with_server_info(info)
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_instructions(
                "The Pet Store API: one tool per operation of its OpenAPI document, with the same \
                 arguments (parameters by name, the request body as `body`) and the same errors \
                 (an isError result carrying the ErrorResponse). Pets and orders are resources \
                 (petstore://pet/{petId}, petstore://order/{orderId}); subscribe to one to be \
                 told when it changes. Operations that need credentials use the bearer token or \
                 api_key sent with the MCP requests.",
            )
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(&PROTOCOL_VERSIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        metrics::mcp().request("initialize");
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        metrics::mcp().request("ping");
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        metrics::mcp().request("tools/list");
        Ok(ListToolsResult::with_all_items(tools::list().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        metrics::mcp().request("tools/call");
        let Some(tool) = tools::find(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let started = Instant::now();
        let (caller, request_id) = caller_of(&context.extensions);
        let arguments = request.arguments.map_or(Value::Null, Value::Object);
        let outcome = self
            .shared
            .run(tool.action, &caller, request_id, arguments)
            .await;
        let (result, error_code) = match &outcome {
            Ok(success) => (tools::success(tool, success), None),
            Err(error) => (tools::failure(error), Some(error.code())),
        };
        metrics::mcp().tool_call(tool.name, error_code, started.elapsed());
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        metrics::mcp().request("resources/list");
        // Pets and orders are addressed through the templates; listing the whole store is
        // what `findPetsByStatus` is for.
        Ok(ListResourcesResult::default())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        metrics::mcp().request("resources/templates/list");
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        metrics::mcp().request("resources/read");
        let resource = Resource::parse(&request.uri)?;
        let (action, payload) = resource.read();
        let (caller, request_id) = caller_of(&context.extensions);
        let success = self
            .shared
            .run(action, &caller, request_id, payload)
            .await
            .map_err(|error| resources::protocol_error(&error))?;
        let text = String::from_utf8_lossy(&success.payload).into_owned();
        let contents = ResourceContents::text(text, request.uri).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    #[allow(
        deprecated,
        reason = "resources/subscribe is what the session revisions served use"
    )]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        metrics::mcp().request("resources/subscribe");
        let topic = Resource::parse(&request.uri)?.topic()?;
        let (caller, request_id) = caller_of(&context.extensions);
        let refused = |error: ApiError| resources::protocol_error(&error);
        self.shared
            .access
            .check_rate(&caller)
            .await
            .map_err(refused)?;
        // The same answer as a WebSocket `subscribe` to the topic: the handlers decide.
        let ctx = Ctx {
            request_id,
            client_ip: caller.client_ip,
            principal: caller.authentication.principal().cloned(),
        };
        self.shared
            .handler
            .authorize_topic(&ctx, &topic)
            .await
            .map_err(|error| refused(error.into()))?;
        let mut follower = self.follower.lock();
        let follower =
            follower.get_or_insert_with(|| Follower::start(&self.shared, context.peer.clone()));
        let topics = self.shared.hub.topics(follower.connection);
        if !topics.contains(&topic) && topics.len() >= self.shared.max_subscriptions {
            return Err(refused(ApiError::BadRequest(format!(
                "a session may follow at most {} resources",
                self.shared.max_subscriptions
            ))));
        }
        self.shared.hub.subscribe(follower.connection, topic);
        Ok(())
    }

    #[allow(
        deprecated,
        reason = "resources/unsubscribe is what the session revisions served use"
    )]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        metrics::mcp().request("resources/unsubscribe");
        let topic = Resource::parse(&request.uri)?.topic()?;
        if let Some(follower) = self.follower.lock().as_ref() {
            self.shared.hub.unsubscribe(follower.connection, &topic);
        }
        Ok(())
    }
}

/// A session's connection to the hub, and the task forwarding its notifications. Dropped with
/// the session: the connection is detached and the task stopped.
struct Follower {
    hub: Arc<Hub>,
    connection: ConnectionId,
    task: JoinHandle<()>,
}

impl Follower {
    fn start<H>(shared: &Shared<H>, peer: Peer<RoleServer>) -> Self {
        let hub = Arc::clone(&shared.hub);
        let connection = hub.next_connection_id();
        let (outbox, notifications) = Outbox::new(shared.outbox_capacity);
        hub.attach(connection, outbox);
        let task = tokio::spawn(forward(
            Arc::clone(&hub),
            connection,
            notifications,
            peer,
            shared.outbox_capacity,
        ));
        Self {
            hub,
            connection,
            task,
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
        self.hub.detach(self.connection);
    }
}

/// Forwards the hub's frames for `connection` to the client as resource-update notifications,
/// until the session or the connection goes.
///
/// A session that does not keep up (its outbox overflows: the client does not read its event
/// stream) gets a fresh outbox with the same subscriptions, and one notification for every
/// resource it follows: an update says only that the resource changed, so one notification
/// stands for any number of lost ones.
async fn forward(
    hub: Arc<Hub>,
    connection: ConnectionId,
    mut notifications: OutboxReceiver,
    peer: Peer<RoleServer>,
    capacity: usize,
) {
    loop {
        let uris: BTreeSet<String> = match notifications.next().await {
            Received::Closed => return,
            Received::Frame(frame) => resources::uri_of_frame(&frame).into_iter().collect(),
            Received::Overflowed => {
                let topics = hub.topics(connection);
                let (outbox, fresh) = Outbox::new(capacity);
                hub.attach(connection, outbox);
                for topic in &topics {
                    hub.subscribe(connection, topic.clone());
                }
                notifications = fresh;
                tracing::debug!(connection, "MCP session fell behind its notifications");
                topics.iter().filter_map(resources::uri_of_topic).collect()
            }
        };
        for uri in uris {
            let sent = peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await;
            if sent.is_err() {
                return;
            }
            metrics::mcp().resource_updated();
        }
    }
}
