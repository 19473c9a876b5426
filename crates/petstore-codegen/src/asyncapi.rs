//! From `asyncapi.yaml` to the WebSocket part of the intermediate model, checked against the REST
//! operations of `openapi.yaml`.
//!
//! The two documents describe one API, so the build fails where they disagree: an operation with
//! no action, an action with no operation (unless it is a control action), a request payload
//! whose parameters or body differ from the operation's, a reply whose success payload is not the
//! operation's 2xx body, a `$ref` that resolves nowhere, an envelope that lost a field.
//!
//! The document is read as plain JSON values: the checks need only a few shapes of it, and the
//! official AsyncAPI JSON Schema (validated in the test suite) covers the rest.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use crate::{
    error::{GenError, GenErrors, pointer},
    ir::{Api, BodyContent, Operation, ResponseContent},
};

/// Where the WebSocket endpoint lives under the REST base path; the channel's `address` must say
/// so (`/api/v3` + `/ws`).
pub const WS_SUFFIX: &str = "/ws";

/// How `asyncapi.yaml` points into `openapi.yaml`.
const OPENAPI_REF_PREFIX: &str = "./openapi.yaml#";

/// The WebSocket API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsApi {
    /// The WebSocket endpoint's path (the channel's `address`).
    pub address: String,
    /// Request actions (client → server), in document order.
    pub actions: Vec<WsAction>,
    /// Events (server → client), in document order.
    pub events: Vec<WsEvent>,
}

/// One action a client can request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsAction {
    /// The action name: an `operationId`, or a control action's name.
    pub name: String,
    /// `summary`.
    pub summary: Option<String>,
    /// `x-priority`.
    pub priority: Priority,
    /// `x-control: true`: handled by the session itself, not by an operation.
    pub control: bool,
    /// For a control action, the size limits its request payload's schema states.
    pub limits: Vec<PayloadLimit>,
}

/// A size limit of a control action's payload field (`subscribe`'s `topics` has `maxItems: 50`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadLimit {
    /// The payload field (`topics`).
    pub field: String,
    /// `minLength`, `maxLength`, `minItems` or `maxItems`.
    pub keyword: &'static str,
    /// The limit.
    pub value: usize,
}

/// One event the server pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsEvent {
    /// The message `name` (`pet.created`).
    pub name: String,
    /// `summary`.
    pub summary: Option<String>,
}

/// The scheduling class of an action (`x-priority`), highest first.
///
/// The one definition of the priority levels: the runtime `Priority` enum of the contract is
/// emitted from [`Priority::ALL`] and these methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// `critical`: session control and authentication.
    Critical,
    /// `high`: writes.
    High,
    /// `normal`: reads.
    Normal,
    /// `low`: bulk work.
    Low,
    /// `background`: anything that may wait.
    Background,
}

impl Priority {
    /// Every level, highest first.
    pub const ALL: [Priority; 5] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
        Priority::Background,
    ];

    fn parse(name: &str) -> Option<Priority> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.name() == name)
    }

    /// The level as `x-priority` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
            Priority::Background => "background",
        }
    }

    /// What the level is for, for the runtime enum's documentation.
    pub fn meaning(self) -> &'static str {
        match self {
            Priority::Critical => {
                "Session control and authentication: served before anything else."
            }
            Priority::High => "Writes.",
            Priority::Normal => "Reads.",
            Priority::Low => "Bulk work; refused first when the queue is full.",
            Priority::Background => {
                "Work that may wait for everything else; refused first when the queue is full."
            }
        }
    }

    /// Whether a full queue refuses this level (`OVERLOADED`) rather than making it wait.
    pub fn is_sheddable(self) -> bool {
        matches!(self, Priority::Low | Priority::Background)
    }

    /// The variant name of the runtime `Priority` enum.
    pub fn variant(self) -> &'static str {
        match self {
            Priority::Critical => "Critical",
            Priority::High => "High",
            Priority::Normal => "Normal",
            Priority::Low => "Low",
            Priority::Background => "Background",
        }
    }
}

/// The envelope schemas and the fields each must have (all required).
const ENVELOPES: [(&str, &str, [&str; 5]); 3] = [
    (
        "RequestEnvelope",
        "request",
        ["type", "correlationId", "timestamp", "action", "payload"],
    ),
    (
        "ResponseEnvelope",
        "response",
        ["type", "correlationId", "timestamp", "status", "payload"],
    ),
    (
        "NotificationEnvelope",
        "notification",
        ["type", "correlationId", "timestamp", "event", "payload"],
    ),
];

/// Fields an envelope may have besides its required ones, when the server writes them: a
/// notification's place in its topics' streams.
const OPTIONAL_ENVELOPE_FIELDS: [(&str, &[&str]); 1] =
    [("NotificationEnvelope", &["epoch", "positions"])];

/// The error payload's fields; `details` is optional.
const ERROR_PAYLOAD: &str = "ErrorPayload";
const ERROR_FIELDS: [&str; 4] = ["code", "message", "status", "details"];

/// The success payload of an operation whose success response carries an image.
const IMAGE_PAYLOAD: &str = "ImagePayload";

/// Parses `asyncapi.yaml` and checks it against `openapi.yaml` (as text, for the schemas it
/// references, and as the lowered model, for the operations).
pub fn parse(asyncapi: &str, openapi: &Value, api: &Api) -> Result<WsApi, GenErrors> {
    let document: Value = serde_saphyr::from_str(asyncapi).map_err(|error| {
        GenErrors(vec![GenError::new(
            "#",
            format!("asyncapi.yaml is not valid YAML: {error}"),
        )])
    })?;
    let mut checker = Checker {
        document: &document,
        openapi,
        api,
        errors: Vec::new(),
    };
    let ws = checker.check();
    if checker.errors.is_empty() {
        Ok(ws)
    } else {
        Err(GenErrors(checker.errors))
    }
}

struct Checker<'a> {
    document: &'a Value,
    openapi: &'a Value,
    api: &'a Api,
    errors: Vec<GenError>,
}

impl<'a> Checker<'a> {
    fn error(&mut self, at: &str, message: impl Into<String>) {
        self.errors.push(GenError::new(at, message));
    }

    fn check(&mut self) -> WsApi {
        if self.document.get("asyncapi").and_then(Value::as_str) != Some("3.0.0") {
            self.error("#/asyncapi", "must be `3.0.0` (AsyncAPI 3.0)");
        }
        let document = self.document;
        self.dangling_refs(document, "#");
        self.channels();
        self.envelopes();
        let (actions, events) = self.operations();
        WsApi {
            address: format!("{}{WS_SUFFIX}", self.api.base_path),
            actions,
            events,
        }
    }

    /// Every `$ref` must resolve: inside this document, or into `openapi.yaml`.
    fn dangling_refs(&mut self, value: &'a Value, at: &str) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_at = pointer(at, key);
                    if key == "$ref" {
                        match child.as_str() {
                            Some(reference) => {
                                if let Err(message) = self.resolve(reference) {
                                    self.error(&child_at, message);
                                }
                            }
                            None => self.error(&child_at, "`$ref` must be a string"),
                        }
                    } else {
                        self.dangling_refs(child, &child_at);
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.dangling_refs(item, &pointer(at, &index.to_string()));
                }
            }
            _ => {}
        }
    }

    /// What `reference` points at.
    fn resolve(&self, reference: &str) -> Result<&'a Value, String> {
        let (document, fragment, name) = if let Some(fragment) = reference.strip_prefix('#') {
            (self.document, fragment, "asyncapi.yaml")
        } else if let Some(fragment) = reference.strip_prefix(OPENAPI_REF_PREFIX) {
            (self.openapi, fragment, "openapi.yaml")
        } else {
            return Err(format!(
                "`$ref: {reference}`: only references inside this document (`#/…`) or into \
                 `{OPENAPI_REF_PREFIX}/…` are supported"
            ));
        };
        document
            .pointer(fragment)
            .ok_or_else(|| format!("`$ref: {reference}` points to nothing in {name}"))
    }

    /// Follows `$ref`s until a value that is not a reference.
    fn follow(&self, value: &'a Value) -> Option<&'a Value> {
        let mut value = value;
        for _ in 0..8 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => value = self.resolve(reference).ok()?,
                None => return Some(value),
            }
        }
        None
    }

    fn channels(&mut self) {
        let Some(channels) = self.document.get("channels").and_then(Value::as_object) else {
            self.error("#/channels", "the WebSocket channel is missing");
            return;
        };
        let expected = format!("{}{WS_SUFFIX}", self.api.base_path);
        for (name, channel) in channels {
            let address = channel.get("address").and_then(Value::as_str);
            if address != Some(expected.as_str()) {
                self.error(
                    &pointer(&pointer("#/channels", name), "address"),
                    format!(
                        "the server has one WebSocket endpoint, under the REST base path of \
                         openapi.yaml; the address must be `{expected}`"
                    ),
                );
            }
        }
    }

    fn envelopes(&mut self) {
        for (schema, kind, fields) in ENVELOPES {
            let at = pointer("#/components/schemas", schema);
            let Some(envelope) = self.component_schema(schema) else {
                self.error(&at, format!("the `{schema}` envelope schema is missing"));
                continue;
            };
            let required = string_set(envelope.get("required"));
            let properties = envelope.get("properties").and_then(Value::as_object);
            for field in fields {
                if !required.contains(field) {
                    self.error(
                        &pointer(&at, "required"),
                        format!("`{field}` must be required"),
                    );
                }
                if !properties.is_some_and(|properties| properties.contains_key(field)) {
                    self.error(
                        &pointer(&at, "properties"),
                        format!("the envelope field `{field}` is missing"),
                    );
                }
            }
            let optional = OPTIONAL_ENVELOPE_FIELDS
                .iter()
                .find(|(name, _)| *name == schema)
                .map_or(&[][..], |(_, optional)| *optional);
            if let Some(properties) = properties {
                for name in properties.keys() {
                    if !fields.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
                        self.error(
                            &pointer(&pointer(&at, "properties"), name),
                            format!(
                                "`{name}` is not an envelope field the server reads or writes \
                                 (fields: {})",
                                fields.join(", ")
                            ),
                        );
                    }
                }
            }
            let constant = properties
                .and_then(|properties| properties.get("type"))
                .and_then(|field| field.get("const"))
                .and_then(Value::as_str);
            if constant != Some(kind) {
                self.error(
                    &pointer(&pointer(&at, "properties"), "type"),
                    format!("must be `const: {kind}`"),
                );
            }
        }
        let at = pointer("#/components/schemas", ERROR_PAYLOAD);
        match self.component_schema(ERROR_PAYLOAD) {
            None => self.error(&at, "the error payload schema is missing"),
            Some(schema) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                for field in ERROR_FIELDS {
                    if !properties.is_some_and(|properties| properties.contains_key(field)) {
                        self.error(
                            &pointer(&at, "properties"),
                            format!("the error payload field `{field}` is missing"),
                        );
                    }
                }
            }
        }
        if self.component_schema(IMAGE_PAYLOAD).is_none()
            && self.api.operations.iter().any(|operation| {
                success(operation).is_some_and(|content| *content == ResponseContent::Image)
            })
        {
            self.error(
                &pointer("#/components/schemas", IMAGE_PAYLOAD),
                "operations answer images; their payload schema is missing",
            );
        }
    }

    fn component_schema(&self, name: &str) -> Option<&'a Value> {
        self.document
            .pointer(&format!("/components/schemas/{name}"))
            .and_then(|schema| self.follow(schema))
    }

    fn operations(&mut self) -> (Vec<WsAction>, Vec<WsEvent>) {
        let document = self.document;
        let mut actions = Vec::new();
        let mut events = Vec::new();
        let Some(operations) = document.get("operations").and_then(Value::as_object) else {
            self.error("#/operations", "the actions and events are missing");
            return (actions, events);
        };
        let mut seen_events = HashSet::new();
        for (name, operation) in operations {
            let at = pointer("#/operations", name);
            match operation.get("action").and_then(Value::as_str) {
                Some("receive") => {
                    if let Some(action) = self.action(name, operation, &at) {
                        actions.push(action);
                    }
                }
                Some("send") => {
                    if let Some(event) = self.event(operation, &at) {
                        if seen_events.insert(event.name.clone()) {
                            events.push(event);
                        } else {
                            self.error(&at, format!("event `{}` is declared twice", event.name));
                        }
                    }
                }
                _ => self.error(&pointer(&at, "action"), "must be `receive` or `send`"),
            }
        }
        let declared: HashSet<&str> = actions.iter().map(|action| action.name.as_str()).collect();
        for operation in &self.api.operations {
            if !declared.contains(operation.id.as_str()) {
                self.errors.push(GenError::new(
                    "#/operations",
                    format!(
                        "`{}` of openapi.yaml has no action: every REST operation must be a \
                         WebSocket action too",
                        operation.id
                    ),
                ));
            }
        }
        (actions, events)
    }

    fn action(&mut self, name: &str, operation: &'a Value, at: &str) -> Option<WsAction> {
        let control = operation.get("x-control").and_then(Value::as_bool) == Some(true);
        let rest = self.api.operations.iter().find(|op| op.id == name);
        if !is_action_name(name) {
            self.error(
                at,
                "action names are lowerCamelCase ASCII letters and digits",
            );
            return None;
        }
        match (rest, control) {
            (None, false) => {
                self.error(
                    at,
                    format!(
                        "action `{name}` is no operationId of openapi.yaml; a session action \
                         must say `x-control: true`"
                    ),
                );
                return None;
            }
            (Some(_), true) => {
                self.error(
                    &pointer(at, "x-control"),
                    format!("`{name}` is a REST operation, so it cannot be a control action"),
                );
                return None;
            }
            _ => {}
        }
        let priority = match operation.get("x-priority").and_then(Value::as_str) {
            Some(text) => match Priority::parse(text) {
                Some(priority) => priority,
                None => {
                    self.error(
                        &pointer(at, "x-priority"),
                        "must be critical, high, normal, low or background",
                    );
                    return None;
                }
            },
            None => {
                self.error(
                    &pointer(at, "x-priority"),
                    "every action needs a priority for the session's request queue",
                );
                return None;
            }
        };
        let request = self.single_message(operation, &pointer(at, "messages"))?;
        let request_at = pointer(at, "messages");
        let payload = self.message_payload(request, "action", name, &request_at)?;
        let reply = operation.get("reply").and_then(|reply| {
            self.single_message(reply, &pointer(&pointer(at, "reply"), "messages"))
        });
        let Some(reply) = reply else {
            self.error(
                &pointer(at, "reply"),
                "every action is answered: the reply is missing",
            );
            return None;
        };
        let reply_at = pointer(&pointer(at, "reply"), "messages");
        let outcomes = self.reply_outcomes(reply, &reply_at);
        if let Some(rest) = rest {
            self.request_matches(rest, payload, &request_at);
            if let Some((success_schema, _)) = outcomes {
                self.success_matches(rest, success_schema, &reply_at);
            }
        }
        let limits = if control {
            self.payload_limits(payload)
        } else {
            Vec::new()
        };
        Some(WsAction {
            name: name.to_owned(),
            summary: operation
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_owned),
            priority,
            control,
            limits,
        })
    }

    /// The size limits of a control payload's fields, in document order.
    fn payload_limits(&self, payload: &'a Value) -> Vec<PayloadLimit> {
        let Some(properties) = self
            .follow(payload)
            .and_then(|schema| schema.get("properties"))
            .and_then(Value::as_object)
        else {
            return Vec::new();
        };
        let mut limits = Vec::new();
        for (field, schema) in properties {
            let Some(schema) = self.follow(schema) else {
                continue;
            };
            for keyword in ["minLength", "maxLength", "minItems", "maxItems"] {
                if let Some(value) = schema.get(keyword).and_then(Value::as_u64) {
                    limits.push(PayloadLimit {
                        field: field.clone(),
                        keyword,
                        value: usize::try_from(value).unwrap_or(usize::MAX),
                    });
                }
            }
        }
        limits
    }

    fn event(&mut self, operation: &'a Value, at: &str) -> Option<WsEvent> {
        let messages_at = pointer(at, "messages");
        let message = self.single_message(operation, &messages_at)?;
        let Some(name) = message.get("name").and_then(Value::as_str) else {
            self.error(&messages_at, "an event message needs its event `name`");
            return None;
        };
        if !is_event_name(name) {
            self.error(
                &messages_at,
                format!("event `{name}`: names are lower-case words joined by dots"),
            );
            return None;
        }
        self.message_payload(message, "event", name, &messages_at)?;
        Some(WsEvent {
            name: name.to_owned(),
            summary: message
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// The one message an operation (or reply) lists, resolved.
    fn single_message(&mut self, holder: &'a Value, at: &str) -> Option<&'a Value> {
        let messages = holder.get("messages").and_then(Value::as_array);
        let Some([message]) = messages.map(Vec::as_slice) else {
            self.error(at, "exactly one message is expected");
            return None;
        };
        let resolved = self.follow(message);
        if resolved.is_none() {
            self.error(at, "the message reference resolves to nothing");
        }
        resolved
    }

    /// The envelope-specific part of a message: `allOf: [envelope, {properties: {<key>: {const:
    /// <name>}, payload: …}}]`; returns the `payload` schema.
    fn message_payload(
        &mut self,
        message: &'a Value,
        key: &str,
        name: &str,
        at: &str,
    ) -> Option<&'a Value> {
        let parts = message
            .get("payload")
            .and_then(|payload| payload.get("allOf"))
            .and_then(Value::as_array);
        let specific = parts.and_then(|parts| parts.get(1));
        let properties = specific
            .and_then(|part| part.get("properties"))
            .and_then(Value::as_object);
        let constant = properties
            .and_then(|properties| properties.get(key))
            .and_then(|field| field.get("const"))
            .and_then(Value::as_str);
        if constant != Some(name) {
            self.error(
                at,
                format!(
                    "the message payload must be `allOf: [<envelope>, {{properties: {{{key}: \
                     {{const: {name}}}, payload: …}}}}]`"
                ),
            );
            return None;
        }
        properties.and_then(|properties| properties.get("payload"))
    }

    /// A reply's `payload: {oneOf: [<success>, ErrorPayload]}`.
    fn reply_outcomes(&mut self, reply: &'a Value, at: &str) -> Option<(&'a Value, &'a Value)> {
        let payload = reply
            .get("payload")
            .and_then(|payload| payload.get("allOf"))
            .and_then(Value::as_array)
            .and_then(|parts| parts.get(1))
            .and_then(|part| part.pointer("/properties/payload/oneOf"))
            .and_then(Value::as_array);
        let error_ref = format!("#/components/schemas/{ERROR_PAYLOAD}");
        match payload.map(Vec::as_slice) {
            Some([success, error])
                if error.get("$ref").and_then(Value::as_str) == Some(error_ref.as_str()) =>
            {
                Some((success, error))
            }
            _ => {
                self.error(
                    at,
                    format!(
                        "a reply's payload must be `allOf: [ResponseEnvelope, {{properties: \
                         {{payload: {{oneOf: [<success>, {{$ref: '{error_ref}'}}]}}}}}}]`"
                    ),
                );
                None
            }
        }
    }

    /// The request payload lists the operation's parameters by name and `body` for its body,
    /// with the same schemas and the same required ones.
    fn request_matches(&mut self, operation: &Operation, payload: &'a Value, at: &str) {
        let payload = self.follow(payload);
        let Some(payload) = payload else {
            return;
        };
        let properties = payload
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let required = string_set(payload.get("required"));
        let mut expected: Vec<(String, bool, Option<Value>)> = Vec::new();
        let source = self.openapi_operation(operation);
        for (index, param) in operation.params.iter().enumerate() {
            let schema = source
                .and_then(|op| op.pointer(&format!("/parameters/{index}")))
                .and_then(|param| self.follow(param))
                .and_then(|param| param.get("schema"))
                .cloned();
            expected.push((param.name.clone(), param.required, schema));
        }
        if let Some(body) = &operation.body {
            let schema = match body.content {
                BodyContent::Json(_) => source
                    .and_then(|op| op.get("requestBody"))
                    .and_then(|body| self.follow(body))
                    .and_then(|body| body.pointer("/content/application~1json/schema"))
                    .cloned(),
                BodyContent::Binary => None,
            };
            let required_body = source
                .and_then(|op| op.get("requestBody"))
                .and_then(|body| self.follow(body))
                .and_then(|body| body.get("required"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            expected.push(("body".to_owned(), required_body, schema));
        }
        let id = &operation.id;
        for (name, is_required, schema) in &expected {
            let field_at = pointer(&pointer(&pointer(at, "payload"), "properties"), name);
            match properties.get(name) {
                None => self.error(
                    at,
                    format!("`{id}` takes `{name}`, but the request payload does not list it"),
                ),
                Some(field) => {
                    if let Some(schema) = schema
                        && !same_schema(field, schema)
                    {
                        self.error(
                            &field_at,
                            format!(
                                "the schema differs from `{name}` of `{id}` in openapi.yaml \
                                 (reference the same component, or repeat the inline schema \
                                 exactly)"
                            ),
                        );
                    }
                    if required.contains(name.as_str()) != *is_required {
                        self.error(
                            at,
                            format!(
                                "`{name}` is {} in openapi.yaml but {} here",
                                if *is_required { "required" } else { "optional" },
                                if *is_required { "optional" } else { "required" }
                            ),
                        );
                    }
                }
            }
        }
        for name in properties.keys() {
            if !expected.iter().any(|(expected, _, _)| expected == name) {
                self.error(
                    at,
                    format!("`{name}` is no parameter or body of `{id}` in openapi.yaml"),
                );
            }
        }
    }

    /// The reply's success payload is what the operation answers with its 2xx status.
    fn success_matches(&mut self, operation: &Operation, success_schema: &Value, at: &str) {
        let id = &operation.id;
        let Some(content) = success(operation) else {
            return;
        };
        let matches = match content {
            ResponseContent::Empty => {
                success_schema.get("type").and_then(Value::as_str) == Some("null")
            }
            ResponseContent::Image => {
                success_schema.get("$ref").and_then(Value::as_str)
                    == Some(&format!("#/components/schemas/{IMAGE_PAYLOAD}"))
            }
            ResponseContent::Json(_) => self
                .openapi_operation(operation)
                .and_then(|op| op.get("responses"))
                .and_then(Value::as_object)
                .and_then(|responses| {
                    responses
                        .iter()
                        .find(|(status, _)| status.starts_with('2'))
                        .map(|(_, response)| response)
                })
                .and_then(|response| self.follow(response))
                .and_then(|response| response.pointer("/content/application~1json/schema"))
                .is_some_and(|schema| same_schema(success_schema, schema)),
            ResponseContent::Error => true,
        };
        if !matches {
            let expected = match content {
                ResponseContent::Empty => "`type: 'null'` (it answers no body)".to_owned(),
                ResponseContent::Image => format!("`$ref: '#/components/schemas/{IMAGE_PAYLOAD}'`"),
                _ => "its 2xx body schema".to_owned(),
            };
            self.error(
                at,
                format!("the success payload must be what `{id}` answers: {expected}"),
            );
        }
    }

    /// The operation object in `openapi.yaml`.
    fn openapi_operation(&self, operation: &Operation) -> Option<&'a Value> {
        self.openapi
            .get("paths")
            .and_then(|paths| paths.get(&operation.path))
            .and_then(|item| item.get(operation.method.as_str()))
    }
}

/// The content of an operation's success response ([`Operation::success`]).
fn success(operation: &Operation) -> Option<&ResponseContent> {
    operation.success().map(|response| &response.content)
}

/// Whether an AsyncAPI schema says the same as an OpenAPI one: references into `openapi.yaml`
/// are compared as the OpenAPI document writes them, descriptions are ignored.
fn same_schema(asyncapi: &Value, openapi: &Value) -> bool {
    normalize(asyncapi, true) == normalize(openapi, false)
}

fn normalize(value: &Value, from_asyncapi: bool) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in map {
                if key == "description" {
                    continue;
                }
                let child = match (key.as_str(), child.as_str()) {
                    ("$ref", Some(reference)) if from_asyncapi => Value::String(
                        reference
                            .strip_prefix(OPENAPI_REF_PREFIX)
                            .map(|fragment| format!("#{fragment}"))
                            .unwrap_or_else(|| format!("asyncapi:{reference}")),
                    ),
                    _ => normalize(child, from_asyncapi),
                };
                out.insert(key.clone(), child);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| normalize(item, from_asyncapi))
                .collect(),
        ),
        // YAML writes `1` and `1.0` alike for the generator's purposes.
        Value::Number(number) => number
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| value.clone()),
        other => other.clone(),
    }
}

fn string_set(value: Option<&Value>) -> BTreeSet<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_action_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_event_name(name: &str) -> bool {
    name.split('.')
        .all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()))
}
