//! The MCP tools: one per operation (unless it says `x-mcp: false`), described in JSON Schema.
//!
//! A tool's input is the operation's input as one object, the shape every transport that
//! carries an operation as a JSON payload uses (the WebSocket's request payload): its
//! parameters by name, and its request body as `body` (base64 text for a binary one). So a tool
//! call is read, checked and answered by the same generated dispatch as a WebSocket request.
//!
//! Its result is the success response: a JSON object as MCP's structured content, described by
//! the tool's `outputSchema`; any other JSON value (an array, a string) wrapped as
//! `{"result": …}`, because structured content is always an object; an image as image
//! content; no body as a line of text. Its annotations come from the method: `GET` is
//! read-only, `DELETE` destructive, `PUT` and `DELETE` idempotent (RFC 9110 §9.2.2).
//!
//! Component schemas become `$defs` entries, in two forms where they differ: as requests carry
//! them (write-only fields such as `password` included, read-only ones left out) and as results
//! carry them (the other way round). Each tool's schema names the definitions it needs, so every
//! schema a client receives is one self-contained document.
//!
//! What cannot become a tool fails the build with the operation's location: a name MCP does not
//! allow, an operation with neither summary nor description (a tool's description is what an
//! agent chooses by), or successes of different shapes (a tool has one result schema).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::{
    error::{GenError, GenErrors, pointer},
    ir::{
        Api, Body, BodyContent, Bound, IntFormat, Kind, Method, Model, Operation, Param,
        Requirement, ResponseContent, Schema, StringFormat, describe_requirement,
    },
};

/// Longest tool name MCP allows.
const MAX_NAME_LENGTH: usize = 128;

/// The member a non-object result is wrapped in.
pub const WRAPPED_RESULT: &str = "result";

/// The tools of the API and the definitions their schemas refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpApi {
    /// Tools in spec order.
    pub tools: Vec<Tool>,
    /// Every definition some tool refers to, in the order of `components/schemas`.
    pub definitions: Vec<Definition>,
}

/// One tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// The tool's name: the `operationId`.
    pub name: String,
    /// A display name: the summary without its closing full stop.
    pub title: Option<String>,
    /// Summary, description and who may call it, as one text.
    pub description: String,
    /// The arguments: parameters by name and `body`.
    pub input: Document,
    /// What a successful call returns.
    pub output: Output,
    /// Behaviour hints for clients.
    pub hints: Hints,
}

/// A JSON Schema document: its root, and the definitions (`#/$defs/…`) it refers to, to be put
/// under `$defs` in the form [`Document::form`] says.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The root schema, without `$defs`.
    pub root: Value,
    /// Names of the definitions it refers to, directly or through each other, sorted.
    pub definitions: Vec<String>,
    /// Which form of each definition applies.
    pub form: Form,
}

/// Which way a value travels, which decides the fields a model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// In a tool call's arguments: write-only fields included, read-only ones left out.
    Input,
    /// In a tool's result: read-only fields included, write-only ones left out.
    Output,
}

/// What a successful call returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// JSON, as structured content described by `schema`; `wrapped` when the success body is not
    /// an object and travels as `{"result": …}`.
    Structured {
        /// The `outputSchema`.
        schema: Document,
        /// Whether the body is wrapped in [`WRAPPED_RESULT`].
        wrapped: bool,
    },
    /// An image, as image content.
    Image,
    /// No body: the response's description, as text.
    Empty {
        /// What the success response says happened.
        message: String,
    },
}

/// Tool annotations: hints about what a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// `readOnlyHint`: the call changes nothing (`GET`).
    pub read_only: bool,
    /// `destructiveHint`: the call may destroy data (`DELETE`).
    pub destructive: bool,
    /// `idempotentHint`: calling again with the same arguments changes nothing more (`PUT`,
    /// `DELETE`).
    pub idempotent: bool,
}

/// A component schema as JSON Schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The schema's name in `components/schemas`, and its key under `$defs`.
    pub name: String,
    /// As tool arguments carry it.
    pub input: Value,
    /// As results carry it, when that differs from `input` (a model with write-only or
    /// read-only fields).
    pub output: Option<Value>,
}

/// The tools of `api`, with every problem found.
///
/// # Errors
/// Every operation that cannot become a tool, with its location.
pub fn tools(api: &Api) -> Result<McpApi, GenErrors> {
    let mut errors = Vec::new();
    let mut tools: Vec<Tool> = Vec::new();
    for operation in api.operations.iter().filter(|operation| operation.mcp) {
        let at = pointer(
            &pointer("#/paths", &operation.path),
            operation.method.as_str(),
        );
        match tool(api, operation, &at) {
            Ok(tool) => {
                if tools.iter().any(|other| other.name == tool.name) {
                    errors.push(GenError::new(
                        pointer(&at, "operationId"),
                        format!("two operations would both be the MCP tool `{}`", tool.name),
                    ));
                }
                tools.push(tool);
            }
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        return Err(GenErrors(errors));
    }
    let used: BTreeSet<&str> = tools
        .iter()
        .flat_map(|tool| {
            let output = match &tool.output {
                Output::Structured { schema, .. } => schema.definitions.as_slice(),
                Output::Image | Output::Empty { .. } => &[],
            };
            tool.input.definitions.iter().chain(output)
        })
        .map(String::as_str)
        .collect();
    let definitions = api
        .models
        .iter()
        .filter(|model| used.contains(model.name()))
        .map(|model| {
            let input = model_schema(model, Form::Input, &mut BTreeSet::new());
            let output = model_schema(model, Form::Output, &mut BTreeSet::new());
            Definition {
                name: model.name().to_owned(),
                output: (output != input).then_some(output),
                input,
            }
        })
        .collect();
    Ok(McpApi { tools, definitions })
}

/// The tool of one operation.
fn tool(api: &Api, operation: &Operation, at: &str) -> Result<Tool, GenError> {
    let name = operation.id.clone();
    if name.len() > MAX_NAME_LENGTH
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(GenError::new(
            pointer(at, "operationId"),
            format!(
                "`{name}` cannot be an MCP tool name (1 to {MAX_NAME_LENGTH} of A-Z, a-z, 0-9, \
                 `_`, `-`, `.`); rename the operation or mark it `x-mcp: false`"
            ),
        ));
    }
    let summary = operation.summary.as_deref().map(str::trim);
    let description = operation.description.as_deref().map(str::trim);
    let text: Vec<&str> = [summary, description]
        .into_iter()
        .flatten()
        .filter(|text| !text.is_empty())
        .collect();
    if text.is_empty() {
        return Err(GenError::new(
            at,
            "an MCP tool needs a description for agents to choose it by: give the operation a \
             `summary` or `description`, or mark it `x-mcp: false`",
        ));
    }
    let mut description = text.join("\n\n");
    description.push_str("\n\n");
    description.push_str(&credentials(&operation.security));
    Ok(Tool {
        title: summary
            .filter(|summary| !summary.is_empty())
            .map(|summary| summary.trim_end_matches('.').to_owned()),
        description,
        input: input(api, operation),
        output: output(api, operation, at)?,
        hints: Hints {
            read_only: operation.method == Method::Get,
            destructive: operation.method == Method::Delete,
            idempotent: matches!(operation.method, Method::Put | Method::Delete),
        },
        name,
    })
}

/// The sentence of a tool's description that says which credentials a call needs.
fn credentials(security: &[Requirement]) -> String {
    if security.is_empty() {
        return "No credentials needed.".to_owned();
    }
    let alternatives: Vec<String> = security
        .iter()
        .map(|requirement| {
            if requirement.is_empty() {
                return "none".to_owned();
            }
            describe_requirement(requirement, "")
        })
        .collect();
    format!("Credentials: {}.", alternatives.join(" or "))
}

/// The arguments' schema: an object of the parameters by name and the body as `body`.
fn input(api: &Api, operation: &Operation) -> Document {
    let mut refs = BTreeSet::new();
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in &operation.params {
        properties.insert(param.name.clone(), param_schema(param, &mut refs));
        if param.required {
            required.push(Value::from(param.name.clone()));
        }
    }
    if let Some(body) = &operation.body {
        properties.insert("body".to_owned(), body_schema(body, &mut refs));
        required.push(Value::from("body"));
    }
    let mut root = Map::new();
    root.insert("type".to_owned(), json!("object"));
    root.insert("properties".to_owned(), Value::Object(properties));
    if !required.is_empty() {
        root.insert("required".to_owned(), Value::Array(required));
    }
    document(api, Value::Object(root), refs, Form::Input)
}

/// One parameter's property: its schema, its description and its example.
fn param_schema(param: &Param, refs: &mut BTreeSet<String>) -> Value {
    let mut schema = schema_json(&param.schema, refs);
    if let Value::Object(object) = &mut schema {
        if let Some(description) = &param.description {
            object.insert("description".to_owned(), json!(description.trim()));
        }
        if let Some(example) = &param.example {
            object.insert("examples".to_owned(), json!([example]));
        }
    }
    schema
}

/// The `body` property.
fn body_schema(body: &Body, refs: &mut BTreeSet<String>) -> Value {
    let (mut schema, note) = match &body.content {
        BodyContent::Json(schema) => (schema_json(schema, refs), None),
        BodyContent::Binary => (
            json!({
                "type": "string",
                "contentEncoding": "base64",
                "contentMediaType": "application/octet-stream",
            }),
            Some("Base64-encoded."),
        ),
    };
    if let Value::Object(object) = &mut schema {
        let description = [body.description.as_deref().map(str::trim), note]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !description.is_empty() {
            object.insert("description".to_owned(), json!(description));
        }
    }
    schema
}

/// What a successful call returns, from the operation's success responses.
fn output(api: &Api, operation: &Operation, at: &str) -> Result<Output, GenError> {
    let mut successes = operation.responses.iter().filter(|response| {
        matches!(response.status, crate::ir::Status::Code(code) if (200..300).contains(&code))
    });
    let Some(success) = successes.next() else {
        return Err(GenError::new(
            pointer(at, "responses"),
            "an MCP tool needs a 2xx response to return",
        ));
    };
    if let Some(other) = successes.find(|other| other.content != success.content) {
        return Err(GenError::new(
            pointer(at, "responses"),
            format!(
                "an MCP tool has one result schema, but the 2xx responses {} and {} differ; \
                 give them the same content or mark the operation `x-mcp: false`",
                status_text(success.status),
                status_text(other.status)
            ),
        ));
    }
    Ok(match &success.content {
        ResponseContent::Empty => Output::Empty {
            message: success.description.trim().to_owned(),
        },
        ResponseContent::Image => Output::Image,
        ResponseContent::Json(schema) => structured(api, schema),
        ResponseContent::Error => {
            return Err(GenError::new(
                pointer(at, "responses"),
                "an MCP tool cannot return an error body as its success",
            ));
        }
    })
}

fn status_text(status: crate::ir::Status) -> String {
    match status {
        crate::ir::Status::Code(code) => code.to_string(),
        crate::ir::Status::ServerErrors => "5XX".to_owned(),
    }
}

/// The output schema of a JSON success: the body's own schema when it is an object, else the
/// body wrapped in an object.
fn structured(api: &Api, schema: &Schema) -> Output {
    let mut refs = BTreeSet::new();
    let (root, wrapped) = match &schema.kind {
        // Inlined rather than referred to: `outputSchema` must say `"type": "object"` itself.
        Kind::Named(name) => match api.models.iter().find(|model| model.name() == name) {
            Some(model @ Model::Object(_)) => (model_schema(model, Form::Output, &mut refs), false),
            _ => (wrap(schema_json(schema, &mut refs)), true),
        },
        Kind::Map(_) => (schema_json(schema, &mut refs), false),
        _ => (wrap(schema_json(schema, &mut refs)), true),
    };
    Output::Structured {
        schema: document(api, root, refs, Form::Output),
        wrapped,
    }
}

/// `{"type": "object", "properties": {"result": schema}, "required": ["result"]}`.
fn wrap(schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": { WRAPPED_RESULT: schema },
        "required": [WRAPPED_RESULT],
    })
}

/// A document of `root`, with the definitions `refs` names and every definition those refer to.
fn document(api: &Api, root: Value, mut refs: BTreeSet<String>, form: Form) -> Document {
    let mut pending: Vec<String> = refs.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        if let Some(model) = api.models.iter().find(|model| model.name() == name) {
            let mut found = BTreeSet::new();
            model_schema(model, form, &mut found);
            for name in found {
                if refs.insert(name.clone()) {
                    pending.push(name);
                }
            }
        }
    }
    Document {
        root,
        definitions: refs.into_iter().collect(),
        form,
    }
}

/// A component schema as JSON Schema, in `form`; the models it refers to are added to `refs`.
pub fn model_schema(model: &Model, form: Form, refs: &mut BTreeSet<String>) -> Value {
    let mut object = Map::new();
    match model {
        Model::Object(model) => {
            object.insert("type".to_owned(), json!("object"));
            if let Some(description) = &model.description {
                object.insert("description".to_owned(), json!(description.trim()));
            }
            let mut properties = Map::new();
            let mut required = Vec::new();
            for field in &model.fields {
                let left_out = match form {
                    Form::Input => field.read_only,
                    Form::Output => field.write_only,
                };
                if left_out {
                    continue;
                }
                let mut schema = schema_json(&field.schema, refs);
                if let Value::Object(schema) = &mut schema {
                    if field.write_only {
                        schema.insert("writeOnly".to_owned(), json!(true));
                    }
                    if field.read_only {
                        schema.insert("readOnly".to_owned(), json!(true));
                    }
                }
                properties.insert(field.name.clone(), schema);
                if field.required {
                    required.push(Value::from(field.name.clone()));
                }
            }
            object.insert("properties".to_owned(), Value::Object(properties));
            if !required.is_empty() {
                object.insert("required".to_owned(), Value::Array(required));
            }
        }
        Model::Enum(model) => {
            object.insert("type".to_owned(), json!("string"));
            if let Some(description) = &model.description {
                object.insert("description".to_owned(), json!(description.trim()));
            }
            object.insert("enum".to_owned(), json!(model.values));
        }
    }
    Value::Object(object)
}

/// A schema as JSON Schema (draft 2020-12, the dialect MCP assumes); models are referred to as
/// `#/$defs/Name` (in whichever form the document holds them) and added to `refs`.
pub fn schema_json(schema: &Schema, refs: &mut BTreeSet<String>) -> Value {
    let c = &schema.constraints;
    let mut object = Map::new();
    match &schema.kind {
        Kind::Integer(format) => {
            object.insert("type".to_owned(), json!("integer"));
            let format = match format {
                IntFormat::I32 => "int32",
                IntFormat::I64 => "int64",
            };
            object.insert("format".to_owned(), json!(format));
        }
        Kind::Number => {
            object.insert("type".to_owned(), json!("number"));
        }
        Kind::Boolean => {
            object.insert("type".to_owned(), json!("boolean"));
        }
        Kind::String(format) => {
            object.insert("type".to_owned(), json!("string"));
            match format {
                StringFormat::Plain => {}
                StringFormat::DateTime => {
                    object.insert("format".to_owned(), json!("date-time"));
                }
                StringFormat::Uuid => {
                    object.insert("format".to_owned(), json!("uuid"));
                }
                StringFormat::Binary => {
                    object.insert("contentEncoding".to_owned(), json!("base64"));
                }
            }
        }
        Kind::Named(name) => {
            refs.insert(name.clone());
            object.insert("$ref".to_owned(), json!(format!("#/$defs/{name}")));
        }
        Kind::Array(item) => {
            object.insert("type".to_owned(), json!("array"));
            object.insert("items".to_owned(), schema_json(item, refs));
        }
        Kind::Map(values) => {
            object.insert("type".to_owned(), json!("object"));
            object.insert("additionalProperties".to_owned(), schema_json(values, refs));
        }
    }
    let mut bound = |minimum: bool, bound: &Option<Bound>| {
        if let Some(Bound { value, exclusive }) = bound {
            let key = match (minimum, exclusive) {
                (true, false) => "minimum",
                (true, true) => "exclusiveMinimum",
                (false, false) => "maximum",
                (false, true) => "exclusiveMaximum",
            };
            object.insert(key.to_owned(), number(*value));
        }
    };
    bound(true, &c.minimum);
    bound(false, &c.maximum);
    for (key, value) in [
        ("minLength", c.min_length),
        ("maxLength", c.max_length),
        ("minItems", c.min_items),
        ("maxItems", c.max_items),
    ] {
        if let Some(value) = value {
            object.insert(key.to_owned(), json!(value));
        }
    }
    if let Some(pattern) = &c.pattern {
        object.insert("pattern".to_owned(), json!(pattern));
    }
    if c.unique_items {
        object.insert("uniqueItems".to_owned(), json!(true));
    }
    if let Some(description) = &schema.description {
        object.insert("description".to_owned(), json!(description.trim()));
    }
    if let Some(example) = &schema.example {
        object.insert("examples".to_owned(), json!([example]));
    }
    Value::Object(object)
}

/// A bound as JSON: an integer when it is one, so `minimum: 1` does not read `1.0`.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}
