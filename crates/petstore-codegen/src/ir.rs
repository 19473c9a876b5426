//! The intermediate model: what the emitters need to know about the spec, already resolved
//! (`$ref`s followed, primitive aliases inlined, unsupported constructs rejected).

/// The whole API.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// The path operations are served under (`servers[0].url`, `/api/v3`).
    pub base_path: String,
    /// Tags in spec order, with their descriptions.
    pub tags: Vec<TagInfo>,
    /// Object and enum schemas from `components/schemas`.
    pub models: Vec<Model>,
    /// Operations in spec order.
    pub operations: Vec<Operation>,
    /// `components/securitySchemes`, in spec order.
    pub security_schemes: Vec<SecuritySchemeInfo>,
    /// Every scope a security requirement of the spec names, sorted and unique.
    pub scopes: Vec<String>,
}

/// A scheme from `components/securitySchemes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySchemeInfo {
    /// Its name in the spec (`bearerAuth`).
    pub name: String,
    /// How credentials travel.
    pub kind: SchemeKind,
    /// `description`.
    pub description: Option<String>,
}

/// The scheme types the generator supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeKind {
    /// `type: http, scheme: bearer`.
    HttpBearer {
        /// `bearerFormat`, a documentation hint (`JWT`).
        bearer_format: Option<String>,
    },
    /// `type: apiKey, in: header`.
    ApiKeyHeader {
        /// The header carrying the key (`name`).
        header: String,
    },
}

/// One alternative of an operation's `security`: every scheme named must hold, each with the
/// scopes listed (scheme name, scopes). Empty is the anonymous alternative (`{}`).
pub type Requirement = Vec<(String, Vec<String>)>;

/// A requirement in words, for generated documentation: its schemes joined by "together with",
/// each with its scopes (`` `petstore_auth` with `write:pets` ``) or, without scopes, followed by
/// `unscoped` (e.g. `" (no scope needed)"`, or nothing). An empty requirement (anonymous access)
/// is the caller's to word.
pub fn describe_requirement(requirement: &Requirement, unscoped: &str) -> String {
    requirement
        .iter()
        .map(|(scheme, scopes)| {
            if scopes.is_empty() {
                format!("`{scheme}`{unscoped}")
            } else {
                let scopes: Vec<String> = scopes.iter().map(|scope| format!("`{scope}`")).collect();
                format!("`{scheme}` with {}", scopes.join(" and "))
            }
        })
        .collect::<Vec<_>>()
        .join(" together with ")
}

/// A spec tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInfo {
    /// Tag name as in the spec.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
}

/// A named schema that becomes a Rust type.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// `type: object` with properties.
    Object(ObjectModel),
    /// `type: string` with `enum`.
    Enum(EnumModel),
}

impl Model {
    /// The schema name.
    pub fn name(&self) -> &str {
        match self {
            Model::Object(model) => &model.name,
            Model::Enum(model) => &model.name,
        }
    }
}

/// An object schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectModel {
    /// Schema name (and Rust type name).
    pub name: String,
    /// Schema description.
    pub description: Option<String>,
    /// Properties in spec order.
    pub fields: Vec<Field>,
}

/// One property of an object schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Name on the wire.
    pub name: String,
    /// Whether it is in `required`.
    pub required: bool,
    /// `writeOnly`: accepted in requests, never sent.
    pub write_only: bool,
    /// `readOnly`: sent, never accepted.
    pub read_only: bool,
    /// Its schema.
    pub schema: Schema,
}

/// A string enum schema.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumModel {
    /// Schema name (and Rust type name).
    pub name: String,
    /// Schema description.
    pub description: Option<String>,
    /// The allowed values, in spec order.
    pub values: Vec<String>,
}

/// A resolved schema: its shape plus the constraints that apply to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The shape.
    pub kind: Kind,
    /// Validation constraints from the schema (and from any primitive alias it references).
    pub constraints: Constraints,
    /// Description, if any.
    pub description: Option<String>,
    /// `example`, as written in the spec (checked against the schema by the tests, not here).
    /// Boxed: most schemas have none, and the model's enums hold schemas inline.
    pub example: Option<Box<serde_json::Value>>,
}

/// The shapes the generator supports.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `integer` with `int32` / `int64` (default) format.
    Integer(IntFormat),
    /// `number` (`double`).
    Number,
    /// `boolean`.
    Boolean,
    /// `string` with a format the generator knows.
    String(StringFormat),
    /// A reference to an object or enum model.
    Named(String),
    /// `array` of the item schema.
    Array(Box<Schema>),
    /// `object` with only `additionalProperties`: a map from string keys.
    Map(Box<Schema>),
}

/// Integer widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntFormat {
    /// `int32`.
    I32,
    /// `int64`.
    I64,
}

/// String formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    /// No format.
    Plain,
    /// `date-time` (RFC 3339).
    DateTime,
    /// `uuid`.
    Uuid,
    /// `binary`: raw bytes of a request or response body.
    Binary,
}

/// An inclusive or exclusive numeric bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The bound.
    pub value: f64,
    /// Whether the bound itself is excluded.
    pub exclusive: bool,
}

/// Validation keywords the generator turns into validators.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// `minimum` / `exclusiveMinimum`.
    pub minimum: Option<Bound>,
    /// `maximum` / `exclusiveMaximum`.
    pub maximum: Option<Bound>,
    /// `minLength`.
    pub min_length: Option<usize>,
    /// `maxLength`.
    pub max_length: Option<usize>,
    /// `pattern`.
    pub pattern: Option<String>,
    /// `minItems`.
    pub min_items: Option<usize>,
    /// `maxItems`.
    pub max_items: Option<usize>,
    /// `uniqueItems`.
    pub unique_items: bool,
}

/// HTTP methods the generator emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
}

impl Method {
    /// Lower-case name, as poem-openapi's `method` attribute wants it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Delete => "delete",
            Method::Patch => "patch",
        }
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `operationId`.
    pub id: String,
    /// HTTP method.
    pub method: Method,
    /// Path template as in the spec, relative to the server URL (`/pet/{petId}`).
    pub path: String,
    /// First tag, if any.
    pub tag: Option<String>,
    /// `summary`.
    pub summary: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// Parameters in spec order: what the handler's request holds.
    pub params: Vec<Param>,
    /// Parameters the server's edge reads before any handler runs (`x-handled-by: edge`, the
    /// `Idempotency-Key` header): documented on the operation, never part of its request.
    pub edge_params: Vec<Param>,
    /// Request body, if the operation takes one.
    pub body: Option<Body>,
    /// Responses in spec order.
    pub responses: Vec<Response>,
    /// The effective `security` (the operation's own, else the document's): alternatives, any
    /// one of which suffices. Empty means public.
    pub security: Vec<Requirement>,
    /// Whether the operation is offered as an MCP tool: `true` unless the operation says
    /// `x-mcp: false`.
    pub mcp: bool,
}

impl Operation {
    /// Whether the operation can only be called with credentials: it has requirements and none
    /// of them is the anonymous alternative.
    pub fn requires_credentials(&self) -> bool {
        requires_credentials(&self.security)
    }

    /// The success response: the first 2xx in spec order. A transport that answers without a
    /// status (a WebSocket success payload) carries this one's body; `asyncapi.yaml` is checked
    /// against it, and the typed client reads it.
    pub fn success(&self) -> Option<&Response> {
        self.responses.iter().find(
            |response| matches!(response.status, Status::Code(code) if (200..300).contains(&code)),
        )
    }
}

/// Whether `security` can only be met with credentials (see [`Operation::requires_credentials`]).
pub fn requires_credentials(security: &[Requirement]) -> bool {
    !security.is_empty() && security.iter().all(|requirement| !requirement.is_empty())
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    /// Path segment.
    Path,
    /// Query string.
    Query,
    /// Header.
    Header,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name on the wire.
    pub name: String,
    /// Where it travels.
    pub location: ParamLocation,
    /// `required`.
    pub required: bool,
    /// `description`.
    pub description: Option<String>,
    /// Its schema.
    pub schema: Schema,
    /// What documentation UIs fill in for it: the parameter's `example`, else its schema's
    /// (required of the project's documents by [`crate::examples::check`]).
    pub example: Option<serde_json::Value>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// `description`.
    pub description: Option<String>,
    /// What it is.
    pub content: BodyContent,
}

/// Supported request body media types.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyContent {
    /// `application/json` with this schema.
    Json(Schema),
    /// `application/octet-stream` raw bytes.
    Binary,
}

/// Which statuses a response covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// One status code.
    Code(u16),
    /// `5XX`: every server error.
    ServerErrors,
}

/// One documented response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status it covers.
    pub status: Status,
    /// `description`.
    pub description: String,
    /// What the body is.
    pub content: ResponseContent,
    /// Response headers, in spec order.
    pub headers: Vec<Header>,
}

/// Supported response bodies.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseContent {
    /// No body.
    Empty,
    /// `application/json` with this schema.
    Json(Schema),
    /// `image/*` binary.
    Image,
    /// `application/json` with the error schema: the outcome is an error.
    Error,
}

/// A response header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Name on the wire.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// Its schema.
    pub schema: Schema,
}
