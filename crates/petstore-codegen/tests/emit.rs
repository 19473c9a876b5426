//! What the emitters write, on small documents: the contract's models (serde types, size-limit
//! constants, validation nodes), its operations (requests, closed success and error enums, the
//! handler trait, security as data), its WebSocket items, and the server's REST adapter and
//! dispatch over them.
//!
//! Checked on the generated text with whitespace and trailing commas ignored, so a change in
//! prettyplease's line breaking does not break these tests. Every file generated here must
//! also parse as Rust.

mod common;

use common::{SCHEMES, api, secured_spec, spec, valid, with_servers};
use petstore_codegen::{
    Specs, Target,
    asyncapi::{PayloadLimit, Priority, WsAction, WsApi},
    ir::Api,
};

/// `POST /pet` secured by either scheme, a public `GET /pet/{petId}`, and a logout that accepts
/// anonymous callers.
const PATHS: &str = "
/pet:
  post:
    operationId: addPet
    security:
      - bearerAuth: [pets:write]
      - api_key: [pets:write, orders:read]
    responses:
      '200': {description: ok}
      '401': {$ref: '#/components/responses/Unauthorized'}
      '403': {$ref: '#/components/responses/Error'}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
/pet/{petId}:
  get:
    operationId: getPetById
    parameters:
      - {name: petId, in: path, required: true, schema: {type: integer}}
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
/user/logout:
  get:
    operationId: logoutUser
    security:
      - bearerAuth: []
      - {}
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// A public `GET /pet`.
const FIND_PETS: &str = "
/pet:
  get:
    operationId: findPets
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// A `Pet` with every kind of field the models emitter treats differently, and the schemas it
/// references.
const PET: &str = "
Pet:
  type: object
  required: [name, photoUrls, bornAt]
  properties:
    id: {type: integer, format: int64, readOnly: true}
    name: {$ref: '#/components/schemas/PetName'}
    photoUrls:
      type: array
      minItems: 1
      maxItems: 20
      uniqueItems: true
      items: {type: string, maxLength: 2048}
    status: {$ref: '#/components/schemas/PetStatus'}
    type: {type: string}
    bornAt: {type: string, format: date-time}
    seenAt: {type: string, format: date-time}
    secret: {type: string, writeOnly: true}
PetName:
  description: A pet's name.
  type: string
  minLength: 1
  maxLength: 100
PetStatus:
  type: string
  enum: [available, pending, sold]
EntityId: {type: integer, format: int64, minimum: 1}";

/// Operations with parameters of every location, JSON and binary bodies, and success
/// responses with a body, headers, an image or nothing.
const STORE: &str = "
/pet:
  post:
    operationId: addPet
    security:
      - bearerAuth: [pets:write]
    requestBody:
      description: The pet.
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/Pet'}
    responses:
      '200':
        description: The stored pet.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Pet'}
      '400': {$ref: '#/components/responses/Error'}
      '401': {$ref: '#/components/responses/Unauthorized'}
      '403': {$ref: '#/components/responses/Error'}
      '408': {$ref: '#/components/responses/Error'}
      '409': {$ref: '#/components/responses/Error'}
      '413': {$ref: '#/components/responses/Error'}
      '415': {$ref: '#/components/responses/Error'}
      '422': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
/pet/{petId}:
  post:
    operationId: updatePetWithForm
    summary: Updates a pet.
    parameters:
      - {name: api_key, in: header, schema: {type: string, maxLength: 256}}
      - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
      - {name: name, in: query, description: New name., schema: {$ref: '#/components/schemas/PetName'}}
      - {name: status, in: query, required: true, schema: {$ref: '#/components/schemas/PetStatus'}}
      - name: tags
        in: query
        schema: {type: array, maxItems: 3, items: {$ref: '#/components/schemas/PetStatus'}}
      - {name: since, in: query, schema: {type: string, format: date-time}}
    responses:
      '204': {description: Updated.}
      '400': {$ref: '#/components/responses/Error'}
      '404':
        description: No such pet.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ErrorResponse'}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
/pet/{petId}/image:
  get:
    operationId: getPetImage
    parameters:
      - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
    responses:
      '200':
        description: The image.
        content:
          image/*:
            schema: {type: string, format: binary}
      '404':
        description: No such image.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ErrorResponse'}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
  post:
    operationId: uploadFile
    parameters:
      - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
    requestBody:
      required: true
      content:
        application/octet-stream:
          schema: {type: string, format: binary}
    responses:
      '201': {description: Stored.}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
/user/login:
  get:
    operationId: loginUser
    responses:
      '200':
        description: The token.
        headers:
          X-Rate-Limit:
            description: Calls per hour.
            required: true
            schema: {type: integer, format: int32}
          X-Expires-After:
            required: true
            schema: {type: string, format: date-time}
        content:
          application/json:
            schema: {type: string}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}
/user/createWithList:
  post:
    operationId: createUsersWithListInput
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: array
            minItems: 1
            maxItems: 100
            items: {$ref: '#/components/schemas/Pet'}
    responses:
      '200':
        description: The stored pets.
        content:
          application/json:
            schema:
              type: array
              items: {$ref: '#/components/schemas/Pet'}
      '400': {$ref: '#/components/responses/Error'}
      '408': {$ref: '#/components/responses/Error'}
      '413': {$ref: '#/components/responses/Error'}
      '415': {$ref: '#/components/responses/Error'}
      '422': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// Every file both targets generate, by name.
struct Generated {
    models: String,
    operations: String,
    ws: String,
    rest: String,
    dispatch: String,
    /// Only checked to parse.
    _mcp: String,
}

/// Both targets' files for `api` and `ws`; each must parse as Rust.
fn generate_with(api: Api, ws: WsApi) -> Generated {
    // Most snippets here leave out what a tool needs (a summary); the MCP pass's own rules and
    // output are tested in `mcp.rs`, and this only checks that `mcp.rs` parses.
    let mcp = petstore_codegen::mcp::tools(&api).unwrap_or_default();
    let specs = Specs { api, ws, mcp };
    let mut files: Vec<(&str, String)> = specs.sources(Target::Contract);
    files.extend(specs.sources(Target::Server));
    for (name, source) in &files {
        // The emitters fall back to `compile_error!` when their tokens do not form a file.
        assert!(
            !source.contains("compile_error!"),
            "{name} is not valid Rust:\n{source}"
        );
        if let Err(error) = syn::parse_file(source) {
            panic!("{name} does not parse: {error}\n{source}");
        }
    }
    let mut file = |wanted: &str| match files.iter().position(|(name, _)| *name == wanted) {
        Some(index) => files.remove(index).1,
        None => panic!("no {wanted} generated"),
    };
    Generated {
        models: file("models.rs"),
        operations: file("operations.rs"),
        ws: file("ws.rs"),
        rest: file("rest.rs"),
        dispatch: file("dispatch.rs"),
        _mcp: file("mcp.rs"),
    }
}

/// A WebSocket API with no actions or events, for tests about the REST side.
fn no_actions() -> WsApi {
    WsApi {
        address: "/ws".to_owned(),
        actions: Vec::new(),
        events: Vec::new(),
    }
}

fn generate_api(api: Api) -> Generated {
    generate_with(api, no_actions())
}

fn generate(text: &str) -> Generated {
    generate_api(valid(text))
}

fn secured() -> Generated {
    generate(&secured_spec(PATHS, SCHEMES, None))
}

/// [`STORE`] with [`PET`] and the bearer scheme `addPet` requires.
fn store() -> Generated {
    let mut text = spec(STORE, PET);
    text.push_str("  securitySchemes:\n    bearerAuth: {type: http, scheme: bearer}\n");
    generate(&text)
}

/// Rust text without whitespace and trailing commas, for comparisons that ignore formatting.
fn normalized(text: &str) -> String {
    let compact: String = text.split_whitespace().collect();
    let compact = [">", ")", "]", "}"].iter().fold(compact, |text, close| {
        text.replace(&format!(",{close}"), close)
    });
    compact.trim_end_matches(',').to_owned()
}

#[track_caller]
fn assert_contains(source: &str, expected: &str) {
    assert!(
        normalized(source).contains(&normalized(expected)),
        "expected\n{expected}\nin:\n{source}"
    );
}

#[track_caller]
fn assert_lacks(source: &str, unexpected: &str) {
    assert!(
        !normalized(source).contains(&normalized(unexpected)),
        "did not expect\n{unexpected}\nin:\n{source}"
    );
}

/// How often `expected` occurs in `source`, formatting ignored.
fn occurrences(source: &str, expected: &str) -> usize {
    normalized(source).matches(&normalized(expected)).count()
}

// ---- security (operations.rs) ----

#[test]
fn scopes_become_a_sorted_enum_with_names_and_lookup() {
    let operations = secured().operations;
    assert_contains(
        &operations,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
         pub enum Scope {
             /// `orders:read`
             OrdersRead,
             /// `pets:write`
             PetsWrite,
         }",
    );
    assert_contains(
        &operations,
        "pub const ALL: [Scope; 2] = [Scope::OrdersRead, Scope::PetsWrite];",
    );
    assert_contains(
        &operations,
        "match self {
             Scope::OrdersRead => \"orders:read\",
             Scope::PetsWrite => \"pets:write\",
         }",
    );
    assert_contains(&operations, "pub fn from_name(name: &str) -> Option<Scope>");
    assert_contains(&operations, "impl std::fmt::Display for Scope");
}

#[test]
fn a_spec_without_scopes_still_has_an_empty_scope_enum() {
    let operations = generate(&spec(FIND_PETS, "")).operations;
    assert_contains(&operations, "pub enum Scope {}");
    assert_contains(&operations, "pub const ALL: [Scope; 0] = [];");
    assert_contains(
        &operations,
        "pub static SECURITY_SCHEMES: [&SecurityScheme; 0] = [];",
    );
    assert_contains(
        &operations,
        "pub static FIND_PETS: &[SecurityRequirement] = &[];",
    );
}

#[test]
fn each_scheme_is_a_static_listed_in_spec_order() {
    let operations = secured().operations;
    assert_contains(
        &operations,
        "pub static BEARER_AUTH: SecurityScheme = SecurityScheme {
             name: \"bearerAuth\",
             kind: SchemeKind::HttpBearer { bearer_format: Some(\"JWT\") },
             description: Some(\"An access token.\"),
         };",
    );
    assert_contains(
        &operations,
        "pub static API_KEY: SecurityScheme = SecurityScheme {
             name: \"api_key\",
             kind: SchemeKind::ApiKeyHeader { header: \"X-API-Key\" },
             description: None,
         };",
    );
    assert_contains(
        &operations,
        "pub static SECURITY_SCHEMES: [&SecurityScheme; 2] = [&BEARER_AUTH, &API_KEY];",
    );
}

#[test]
fn each_operation_has_its_requirements_as_data_with_a_doc_line() {
    let operations = secured().operations;
    assert_contains(
        &operations,
        "/// Who may call `addPet`: `bearerAuth` with `pets:write`, or `api_key` with `pets:write` and `orders:read`.
         pub static ADD_PET: &[SecurityRequirement] = &[
             SecurityRequirement(&[SchemeScopes {
                 scheme: &super::BEARER_AUTH,
                 scopes: &[super::Scope::PetsWrite],
             }]),
             SecurityRequirement(&[SchemeScopes {
                 scheme: &super::API_KEY,
                 scopes: &[super::Scope::PetsWrite, super::Scope::OrdersRead],
             }]),
         ];",
    );
    assert_contains(
        &operations,
        "/// `getPetById` is public: anyone may call it.
         pub static GET_PET_BY_ID: &[SecurityRequirement] = &[];",
    );
    assert_contains(
        &operations,
        "/// Who may call `logoutUser`: `bearerAuth` (no scope needed), or anonymous callers.
         pub static LOGOUT_USER: &[SecurityRequirement] = &[
             SecurityRequirement(&[SchemeScopes { scheme: &super::BEARER_AUTH, scopes: &[] }]),
             SecurityRequirement(&[]),
         ];",
    );
    assert_contains(
        &operations,
        "OperationInfo { id: \"addPet\", method: \"POST\", path: \"/pet\", security: security::ADD_PET }",
    );
}

// ---- the server's base path (operations.rs) ----

#[test]
fn api_base_is_the_server_path_the_operation_paths_are_relative_to() {
    let operations = generate(&with_servers(&spec(FIND_PETS, ""), &["/api/v3/"])).operations;
    assert_contains(&operations, "pub const API_BASE: &str = \"/api/v3\";");
    assert_contains(
        &operations,
        "OperationInfo { id: \"findPets\", method: \"GET\", path: \"/pet\", security: security::FIND_PETS }",
    );
}

#[test]
fn without_a_server_the_api_base_is_the_root() {
    let operations = generate(&spec(FIND_PETS, "")).operations;
    assert_contains(&operations, "pub const API_BASE: &str = \"\";");
}

// ---- models.rs ----

#[test]
fn models_are_serde_types_renamed_only_where_the_wire_name_differs() {
    let models = store().models;
    assert_contains(
        &models,
        "/// The `Pet` schema.
         #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
         pub struct Pet {
             /// `id`.
             ///
             /// Read-only: sent, never accepted.
             #[serde(default, skip_serializing_if = \"Option::is_none\")]
             pub id: Option<i64>,
             /// A pet's name.
             pub name: String,
             /// `photoUrls`.
             #[serde(rename = \"photoUrls\")]
             pub photo_urls: Vec<String>,
             /// `status`.
             #[serde(default, skip_serializing_if = \"Option::is_none\")]
             pub status: Option<PetStatus>,
             /// `type`.
             #[serde(default, skip_serializing_if = \"Option::is_none\")]
             pub r#type: Option<String>,
             /// `bornAt`.
             #[serde(rename = \"bornAt\", with = \"crate::wire::date_time\")]
             pub born_at: DateTime<Utc>,
             /// `seenAt`.
             #[serde(
                 rename = \"seenAt\",
                 default,
                 skip_serializing_if = \"Option::is_none\",
                 with = \"crate::wire::date_time::option\"
             )]
             pub seen_at: Option<DateTime<Utc>>,
             /// `secret`.
             ///
             /// Write-only: accepted, never sent (stores keep it `None`).
             #[serde(default, skip_serializing_if = \"Option::is_none\")]
             pub secret: Option<String>,
         }",
    );
    assert_contains(
        &models,
        "use chrono::{DateTime, Utc};
         use serde::{Deserialize, Serialize};",
    );
}

#[test]
fn models_carry_no_poem_openapi_attributes() {
    let models = store().models;
    assert_lacks(&models, "#[oai(");
    assert_lacks(&models, "poem_openapi");
    assert_lacks(&models, "derive(Debug, Clone, Object)");
}

#[test]
fn enum_models_are_serde_enums_with_their_wire_values() {
    let models = store().models;
    assert_contains(
        &models,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
         pub enum PetStatus {
             /// `available`
             #[serde(rename = \"available\")]
             Available,
             /// `pending`
             #[serde(rename = \"pending\")]
             Pending,
             /// `sold`
             #[serde(rename = \"sold\")]
             Sold,
         }",
    );
    assert_contains(
        &models,
        "pub const ALL: [Self; 3] = [Self::Available, Self::Pending, Self::Sold];",
    );
    assert_contains(
        &models,
        "pub fn as_str(self) -> &'static str {
             match self {
                 Self::Available => \"available\",
                 Self::Pending => \"pending\",
                 Self::Sold => \"sold\",
             }
         }",
    );
    assert_contains(&models, "impl std::fmt::Display for PetStatus");
}

#[test]
fn the_size_limits_of_a_model_are_constants_on_it() {
    let models = store().models;
    assert_contains(
        &models,
        "impl Pet {
             /// `Pet.name`: `minLength: 1`.
             pub const NAME_MIN_LENGTH: usize = 1;
             /// `Pet.name`: `maxLength: 100`.
             pub const NAME_MAX_LENGTH: usize = 100;
             /// `Pet.photoUrls`: `minItems: 1`.
             pub const PHOTO_URLS_MIN_ITEMS: usize = 1;
             /// `Pet.photoUrls`: `maxItems: 20`.
             pub const PHOTO_URLS_MAX_ITEMS: usize = 20;
         }",
    );
    // A model without size limits gets no `impl` block.
    assert_lacks(&models, "impl ErrorResponse");
}

#[test]
fn every_model_has_a_validation_node() {
    let models = store().models;
    assert_contains(
        &models,
        "pub mod schemas {
             use crate::validation::{Node, Property, StringFormat};",
    );
    assert_contains(
        &models,
        "/// Checks a `Pet`.
         pub static PET: Node = Node::Object {
             name: \"Pet\",
             properties: &[
                 Property {
                     name: \"id\",
                     required: false,
                     read_only: true,
                     node: &Node::Integer { bits: 64, minimum: None, maximum: None },
                 },
                 Property {
                     name: \"name\",
                     required: true,
                     read_only: false,
                     node: &Node::String {
                         format: StringFormat::Plain,
                         min_length: Some(1),
                         max_length: Some(100),
                         pattern: None,
                     },
                 },
                 Property {
                     name: \"photoUrls\",
                     required: true,
                     read_only: false,
                     node: &Node::Array {
                         items: &Node::String {
                             format: StringFormat::Plain,
                             min_length: None,
                             max_length: Some(2048),
                             pattern: None,
                         },
                         min_items: Some(1),
                         max_items: Some(20),
                         unique: true,
                     },
                 },
                 Property {
                     name: \"status\",
                     required: false,
                     read_only: false,
                     node: &crate::models::schemas::PET_STATUS,
                 },",
    );
    assert_contains(
        &models,
        "Property {
             name: \"bornAt\",
             required: true,
             read_only: false,
             node: &Node::String {
                 format: StringFormat::DateTime,
                 min_length: None,
                 max_length: None,
                 pattern: None,
             },
         }",
    );
    assert_contains(
        &models,
        "/// Checks a `PetStatus`.
         pub static PET_STATUS: Node = Node::Enum {
             name: \"PetStatus\",
             values: &[\"available\", \"pending\", \"sold\"],
         };",
    );
}

// ---- requests, outcomes and the trait (operations.rs) ----

#[test]
fn requests_are_the_json_payloads_with_parameters_by_wire_name() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "/// Request of `updatePetWithForm` (POST /pet/{petId}): Updates a pet.
         ///
         /// Its serialized form is the operation's JSON payload: the parameters by name and the body as `body`.
         #[derive(Debug, Clone, PartialEq, Serialize)]
         pub struct UpdatePetWithFormRequest {
             /// Header parameter `api_key`.
             #[serde(skip_serializing_if = \"Option::is_none\")]
             pub api_key: Option<String>,
             /// Path parameter `petId`.
             #[serde(rename = \"petId\")]
             pub pet_id: i64,
             /// Query parameter `name`. New name.
             #[serde(skip_serializing_if = \"Option::is_none\")]
             pub name: Option<String>,
             /// Query parameter `status`.
             pub status: PetStatus,
             /// Query parameter `tags`.
             pub tags: Vec<PetStatus>,
             /// Query parameter `since`.
             #[serde(
                 skip_serializing_if = \"Option::is_none\",
                 with = \"crate::wire::date_time::option\"
             )]
             pub since: Option<DateTime<Utc>>,
         }",
    );
}

#[test]
fn a_request_body_is_the_body_field_and_bytes_travel_as_base64() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "pub struct AddPetRequest {
             /// Request body. The pet.
             pub body: Pet,
         }",
    );
    assert_contains(
        &operations,
        "pub struct UploadFileRequest {
             /// Path parameter `petId`.
             #[serde(rename = \"petId\")]
             pub pet_id: i64,
             /// Request body.
             #[serde(with = \"crate::wire::base64_bytes\")]
             pub body: Bytes,
         }",
    );
    assert_contains(
        &operations,
        "pub struct CreateUsersWithListInputRequest {
             /// Request body.
             pub body: Vec<Pet>,
         }",
    );
}

#[test]
fn success_enums_hold_only_the_2xx_outcomes() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "/// What `addPet` answers when it succeeds: one variant per documented 2xx status.
         #[derive(Debug, Clone, PartialEq)]
         pub enum AddPetResponse {
             /// 200: The stored pet.
             Ok(Serialized<Pet>),
         }",
    );
    assert_contains(
        &operations,
        "pub enum UpdatePetWithFormResponse {
             /// 204: Updated.
             NoContent,
         }",
    );
    assert_contains(
        &operations,
        "pub enum GetPetImageResponse {
             /// 200: The image.
             Ok(Image),
         }",
    );
    assert_contains(
        &operations,
        "pub enum UploadFileResponse {
             /// 201: Stored.
             Created,
         }",
    );
    assert_contains(
        &operations,
        "pub enum LoginUserResponse {
             /// 200: The token.
             Ok {
                 /// The body.
                 body: Serialized<String>,
                 /// Header `X-Rate-Limit`. Calls per hour.
                 x_rate_limit: i32,
                 /// Header `X-Expires-After`.
                 x_expires_after: DateTime<Utc>,
             },
         }",
    );
    assert_contains(
        &operations,
        "pub enum CreateUsersWithListInputResponse {
             /// 200: The stored pets.
             Ok(Serialized<Vec<Pet>>),
         }",
    );
}

#[test]
fn error_enums_are_closed_with_the_error_kind_of_each_documented_status() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "/// What `addPet` answers when it fails: one variant per documented error status, holding that status's error kind.
         #[derive(Debug, Clone, PartialEq)]
         pub enum AddPetError {
             /// 400: A client error.
             BadRequest(BadRequest),
             /// 401: No valid credentials.
             Unauthorized(Unauthorized),
             /// 403: A client error.
             Forbidden(Forbidden),
             /// 408: A client error.
             RequestTimeout(RequestTimeout),
             /// 409: A client error.
             Conflict(Conflict),
             /// 413: A client error.
             PayloadTooLarge(PayloadTooLarge),
             /// 415: A client error.
             UnsupportedMediaType(UnsupportedMediaType),
             /// 422: A client error.
             UnprocessableEntity(Invalid),
             /// 429: Too many requests.
             TooManyRequests(RateLimited),
             /// 5XX: A server error.
             ServerError(ServerError),
         }",
    );
    assert_contains(
        &operations,
        "pub enum UpdatePetWithFormError {
             /// 400: A client error.
             BadRequest(BadRequest),
             /// 404: No such pet.
             NotFound(NotFound),
             /// 408: A client error.
             RequestTimeout(RequestTimeout),
             /// 429: Too many requests.
             TooManyRequests(RateLimited),
             /// 5XX: A server error.
             ServerError(ServerError),
         }",
    );
    // Exactly the kinds the operations document are imported.
    assert_contains(
        &operations,
        "use crate::error::{
             Denied, BadRequest, Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge,
             RateLimited, RequestTimeout, ServerError, Unauthorized, UnsupportedMediaType,
         };",
    );
}

#[test]
fn every_error_enum_gets_its_conversions_from_operation_errors() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "crate::error::operation_errors!(
             AddPetError {
                 BadRequest(BadRequest), Unauthorized(Unauthorized), Forbidden(Forbidden),
                 RequestTimeout(RequestTimeout), Conflict(Conflict),
                 PayloadTooLarge(PayloadTooLarge), UnsupportedMediaType(UnsupportedMediaType),
                 UnprocessableEntity(Invalid), TooManyRequests(RateLimited), ServerError(ServerError)
             }
         );",
    );
    assert_contains(
        &operations,
        "crate::error::operation_errors!(
             UploadFileError {
                 RequestTimeout(RequestTimeout), TooManyRequests(RateLimited), ServerError(ServerError)
             }
         );",
    );
    // One invocation per operation.
    assert_eq!(
        occurrences(&operations, "crate::error::operation_errors!("),
        6
    );
}

#[test]
fn only_operations_that_require_credentials_convert_from_denied() {
    let operations = secured().operations;
    assert_contains(
        &operations,
        "impl From<Denied> for AddPetError {
             fn from(denied: Denied) -> Self {
                 match denied {
                     Denied::Unauthorized(error) => Self::Unauthorized(error),
                     Denied::Forbidden(error) => Self::Forbidden(error),
                 }
             }
         }",
    );
    // `getPetById` is public and `logoutUser` accepts anonymous callers: nothing refuses them.
    assert_eq!(occurrences(&operations, "impl From<Denied> for"), 1);
    assert_contains(
        &operations,
        "use crate::error::{Denied, Forbidden, RateLimited, RequestTimeout, ServerError, Unauthorized};",
    );

    let public = generate(&spec(FIND_PETS, "")).operations;
    assert_lacks(&public, "Denied");
    assert_contains(
        &public,
        "use crate::error::{RateLimited, RequestTimeout, ServerError};",
    );
}

#[test]
fn trait_methods_return_a_future_of_success_or_error() {
    let operations = secured().operations;
    assert_contains(
        &operations,
        "pub trait PetStoreApi: Send + Sync + 'static {",
    );
    for (method, ty) in [
        ("add_pet", "AddPet"),
        ("get_pet_by_id", "GetPetById"),
        ("logout_user", "LogoutUser"),
    ] {
        assert_contains(
            &operations,
            &format!(
                "fn {method}(
                     &self,
                     ctx: &Ctx,
                     request: {ty}Request,
                 ) -> impl Future<Output = Result<{ty}Response, {ty}Error>> + Send;"
            ),
        );
    }
}

#[test]
fn parameters_and_bodies_have_validation_nodes() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "pub mod body_schemas {
             use crate::validation::Node;
             /// Checks the request body of `addPet`.
             pub static ADD_PET: &Node = &crate::models::schemas::PET;
             /// Checks the request body of `createUsersWithListInput`.
             pub static CREATE_USERS_WITH_LIST_INPUT: &Node = &Node::Array {
                 items: &crate::models::schemas::PET,
                 min_items: Some(1),
                 max_items: Some(100),
                 unique: false,
             };
         }",
    );
    assert_contains(
        &operations,
        "/// Checks parameter `petId` of `updatePetWithForm`.
         pub static UPDATE_PET_WITH_FORM_PET_ID: &Node = &Node::Integer {
             bits: 64,
             minimum: Some(Limit { value: 1.0, exclusive: false }),
             maximum: None,
         };",
    );
    assert_contains(
        &operations,
        "/// Checks parameter `tags` of `updatePetWithForm`.
         pub static UPDATE_PET_WITH_FORM_TAGS: &Node = &Node::Array {
             items: &crate::models::schemas::PET_STATUS,
             min_items: None,
             max_items: Some(3),
             unique: false,
         };",
    );
}

// ---- rest.rs: documentation types ----

#[test]
fn the_rest_adapter_documents_the_models_with_their_validators() {
    let rest = store().rest;
    assert_contains(
        &rest,
        "pub mod schemas {
             use chrono::{DateTime, Utc};
             use poem_openapi::{Enum, Object};",
    );
    assert_contains(
        &rest,
        "/// The `Pet` schema.
         #[derive(Debug, Clone, Object)]
         pub struct Pet {
             #[oai(rename = \"id\", read_only)]
             pub id: Option<i64>,
             /// A pet's name.
             #[oai(rename = \"name\", validator(min_length = 1, max_length = 100))]
             pub name: String,
             #[oai(
                 rename = \"photoUrls\",
                 validator(min_items = 1, max_items = 20, unique_items = true, max_length = 2048)
             )]
             pub photo_urls: Vec<String>,
             #[oai(rename = \"status\")]
             pub status: Option<PetStatus>,
             #[oai(rename = \"type\")]
             pub r#type: Option<String>,
             #[oai(rename = \"bornAt\")]
             pub born_at: DateTime<Utc>,
             #[oai(rename = \"seenAt\")]
             pub seen_at: Option<DateTime<Utc>>,
             #[oai(rename = \"secret\", write_only)]
             pub secret: Option<String>,
         }",
    );
    assert_contains(
        &rest,
        "#[derive(Debug, Clone, Copy, Enum)]
         pub enum PetStatus {
             /// `available`
             #[oai(rename = \"available\")]
             Available,
             /// `pending`
             #[oai(rename = \"pending\")]
             Pending,
             /// `sold`
             #[oai(rename = \"sold\")]
             Sold,
         }
         impl From<PetStatus> for petstore_api::models::PetStatus {
             fn from(value: PetStatus) -> Self {
                 match value {
                     PetStatus::Available => Self::Available,
                     PetStatus::Pending => Self::Pending,
                     PetStatus::Sold => Self::Sold,
                 }
             }
         }",
    );
}

#[test]
fn a_list_body_with_constraints_is_documented_with_them() {
    let rest = store().rest;
    assert_contains(
        &rest,
        "pub struct CreateUsersWithListInputBody;
         impl Type for CreateUsersWithListInputBody {",
    );
    assert_contains(
        &rest,
        "let mut schema_ref = <Vec<schemas::Pet> as Type>::schema_ref();
         if let MetaSchemaRef::Inline(schema) = &mut schema_ref {
             schema.min_items = Some(1usize);
             schema.max_items = Some(100usize);
         }",
    );
    assert_contains(&rest, "body: JsonBody<CreateUsersWithListInputBody>");
    // A body without constraints of its own is documented as its type.
    assert_contains(&rest, "body: JsonBody<schemas::Pet>");
}

// ---- rest.rs: the direct lane ----

#[test]
fn the_direct_lane_takes_gets_named_by_their_path_alone() {
    let rest = secured().rest;
    // `getPetById`: a GET whose one parameter is an integer in the path.
    assert_contains(
        &rest,
        "if let [\"pet\", pet_id] = segments
             && let Ok(pet_id) = pet_id.parse::<i64>()
         {
             return Some(Self::GetPetById { pet_id });
         }",
    );
    assert_contains(
        &rest,
        "DirectRoute::GetPetById { pet_id } => {
             let pet_id = Path(pet_id);
             let answer: Answer<GetPetByIdResponse, GetPetByIdError> = {
                 let ctx = caller_context(calling, security::GET_PET_BY_ID);
                 let request = GetPetByIdRequest { pet_id: pet_id.0 };
                 Answer(self.handler.get_pet_by_id(&ctx, request).await)
             };
             poem::IntoResponse::into_response(answer)
         }",
    );
    // A POST is the router's; so is `/user/logout`, which `/user/{username}` could also match
    // in a spec that has both (here it has not: the lane takes it).
    assert_lacks(&rest, "Self::AddPet");
    assert_contains(&rest, "if let [\"user\", \"logout\"] = segments {");
}

#[test]
fn bounds_of_a_direct_parameter_are_checked_as_poem_openapi_checks_them() {
    let paths = PATHS.replace(
        "schema: {type: integer}",
        "schema: {type: integer, minimum: 1, maximum: 10, exclusiveMaximum: true}",
    );
    let rest = generate(&secured_spec(&paths, SCHEMES, None)).rest;
    assert_contains(
        &rest,
        "&& let Ok(pet_id) = pet_id.parse::<i64>() && (pet_id as f64) >= 1f64
         && (pet_id as f64) < 10f64",
    );
}

#[test]
fn a_route_another_template_could_also_match_is_left_to_the_router() {
    // `/pet/7` is static and wins over `/pet/{petId}` in the router: a direct `getPetById`
    // would take `GET /pet/7` from it.
    let overlapping = format!(
        "{PATHS}
/pet/7:
  get:
    operationId: getLuckyPet
    responses:
      '200': {{description: ok}}
      '408': {{$ref: '#/components/responses/Error'}}
      '429': {{$ref: '#/components/responses/TooManyRequests'}}
      5XX: {{$ref: '#/components/responses/ServerError'}}"
    );
    let rest = generate(&secured_spec(&overlapping, SCHEMES, None)).rest;
    assert_lacks(&rest, "Self::GetPetById");
    assert_contains(&rest, "return Some(Self::GetLuckyPet);");
    // A non-integer static segment cannot be an id: no overlap.
    let rest = generate(&secured_spec(
        &overlapping.replace("/pet/7:", "/pet/lucky:"),
        SCHEMES,
        None,
    ))
    .rest;
    assert_contains(&rest, "return Some(Self::GetPetById { pet_id });");
}

// ---- rest.rs: responses ----

#[test]
fn shared_error_responses_are_functions_written_once() {
    let rest = secured().rest;
    assert_contains(
        &rest,
        "mod responses {
             use poem_openapi::registry::MetaResponse;
             use super::schemas::ErrorResponse;
             use crate::rest::runtime::{error_response, header, json_content};",
    );
    assert_contains(
        &rest,
        "/// No valid credentials.
         pub(super) fn unauthorized() -> MetaResponse {
             error_response(
                 Some(401u16),
                 None,
                 \"No valid credentials.\",
                 json_content::<ErrorResponse>(),
                 vec![header::<String>(\"WWW-Authenticate\", Some(\"The challenge.\"))],
             )
         }",
    );
    assert_contains(
        &rest,
        "/// Too many requests.
         pub(super) fn too_many_requests() -> MetaResponse {
             error_response(
                 Some(429u16),
                 None,
                 \"Too many requests.\",
                 json_content::<ErrorResponse>(),
                 vec![header::<i64>(\"Retry-After\", Some(\"Seconds to wait.\"))],
             )
         }",
    );
    assert_contains(
        &rest,
        "/// A server error.
         pub(super) fn server_error() -> MetaResponse {
             error_response(
                 None,
                 Some(\"5XX\"),
                 \"A server error.\",
                 json_content::<ErrorResponse>(),
                 vec![],
             )
         }",
    );
    // The three operations document 408, 429 and 5XX: each is written once, used thrice.
    for function in ["request_timeout", "too_many_requests", "server_error"] {
        assert_eq!(
            occurrences(&rest, &format!("fn {function}()")),
            1,
            "{function}"
        );
        assert_eq!(
            occurrences(&rest, &format!("responses::{function}()")),
            3,
            "{function}"
        );
    }
    assert_eq!(occurrences(&rest, "pub(super) fn"), 5);
}

#[test]
fn distinct_responses_of_one_status_get_numbered_functions() {
    let rest = store().rest;
    assert_contains(
        &rest,
        "/// No such pet.
         pub(super) fn not_found() -> MetaResponse {
             error_response(Some(404u16), None, \"No such pet.\", json_content::<ErrorResponse>(), vec![])
         }",
    );
    assert_contains(
        &rest,
        "/// No such image.
         pub(super) fn not_found_2() -> MetaResponse {
             error_response(Some(404u16), None, \"No such image.\", json_content::<ErrorResponse>(), vec![])
         }",
    );
    assert_contains(
        &rest,
        "impl Documented for UpdatePetWithFormError {
             fn responses() -> Vec<MetaResponse> {
                 vec![
                     responses::bad_request(), responses::not_found(), responses::request_timeout(),
                     responses::too_many_requests(), responses::server_error()
                 ]
             }",
    );
    assert_contains(
        &rest,
        "impl Documented for GetPetImageError {
             fn responses() -> Vec<MetaResponse> {
                 vec![
                     responses::not_found_2(), responses::request_timeout(),
                     responses::too_many_requests(), responses::server_error()
                 ]
             }",
    );
}

#[test]
fn error_responses_without_headers_import_no_header_builder() {
    let rest = generate(&spec(
        "
/pet:
  get:
    operationId: findPets
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/Error'}
      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
    ))
    .rest;
    assert_contains(
        &rest,
        "use crate::rest::runtime::{error_response, json_content};",
    );
}

#[test]
fn a_5xx_with_headers_documents_the_range_and_its_headers() {
    let text = spec(
        "
/pet:
  get:
    operationId: findPets
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX:
        description: Failed.
        headers:
          Retry-After:
            required: true
            schema: {type: integer, format: int32}
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ErrorResponse'}",
        "",
    );
    let rest = generate(&text).rest;
    assert_contains(
        &rest,
        "pub(super) fn server_error() -> MetaResponse {
             error_response(
                 None,
                 Some(\"5XX\"),
                 \"Failed.\",
                 json_content::<ErrorResponse>(),
                 vec![header::<i32>(\"Retry-After\", None)],
             )
         }",
    );
}

#[test]
fn each_operation_documents_and_renders_its_outcomes() {
    let rest = secured().rest;
    assert_contains(
        &rest,
        "impl Documented for AddPetResponse {
             fn responses() -> Vec<MetaResponse> {
                 vec![success_response(Some(200u16), \"ok\", Vec::new(), vec![])]
             }
         }
         impl Render for AddPetResponse {
             fn render(self) -> Response {
                 match self {
                     Self::Ok => render_empty(StatusCode::OK),
                 }
             }
         }
         impl Documented for AddPetError {
             fn responses() -> Vec<MetaResponse> {
                 vec![
                     responses::unauthorized(), responses::forbidden(), responses::request_timeout(),
                     responses::too_many_requests(), responses::server_error()
                 ]
             }
             fn register(registry: &mut Registry) {
                 <schemas::ErrorResponse as Type>::register(registry);
             }
         }",
    );
}

#[test]
fn success_bodies_and_headers_are_documented_and_rendered() {
    let rest = store().rest;
    assert_contains(
        &rest,
        "impl Documented for AddPetResponse {
             fn responses() -> Vec<MetaResponse> {
                 vec![success_response(Some(200u16), \"The stored pet.\", json_content::<schemas::Pet>(), vec![])]
             }
             fn register(registry: &mut Registry) {
                 <schemas::Pet as Type>::register(registry);
             }
         }",
    );
    assert_contains(
        &rest,
        "vec![
             success_response(
                 Some(200u16),
                 \"The token.\",
                 json_content::<String>(),
                 vec![header::<i32>(\"X-Rate-Limit\", Some(\"Calls per hour.\")), header::<DateTime<Utc>>(\"X-Expires-After\", None)]
             )
         ]",
    );
    assert_contains(
        &rest,
        "Self::Ok { body, x_rate_limit, x_expires_after } => {
             let mut response = render_json(StatusCode::OK, body);
             set_header(&mut response, \"X-Rate-Limit\", &x_rate_limit);
             set_header(&mut response, \"X-Expires-After\", &x_expires_after);
             response
         }",
    );
    assert_contains(
        &rest,
        "Self::Ok(body) => render_image(StatusCode::OK, body),",
    );
    assert_contains(
        &rest,
        "vec![success_response(Some(200u16), \"The image.\", image_content(), vec![])]",
    );
    assert_contains(&rest, "Self::Created => render_empty(StatusCode::CREATED),");
    assert_contains(
        &rest,
        "Self::NoContent => render_empty(StatusCode::NO_CONTENT),",
    );
}

// ---- rest.rs: the operation methods ----

#[test]
fn every_rest_method_answers_the_operation_outcome() {
    let rest = secured().rest;
    for (method, ty) in [
        ("add_pet", "AddPet"),
        ("get_pet_by_id", "GetPetById"),
        ("logout_user", "LogoutUser"),
    ] {
        assert_contains(&rest, &format!("-> Answer<{ty}Response, {ty}Error> {{"));
        assert_contains(&rest, &format!("async fn {method}("));
    }
}

#[test]
fn only_operations_that_require_credentials_are_refused_before_the_handler() {
    let rest = secured().rest;
    assert_contains(
        &rest,
        "let outcome: Result<AddPetResponse, AddPetError> = async {
             let ctx = request_context(calling, security::ADD_PET)?;
             let request = AddPetRequest {};
             self.handler.add_pet(&ctx, request).await
         }
         .await;
         Answer(outcome)",
    );
    assert_contains(
        &rest,
        "let ctx = caller_context(calling, security::GET_PET_BY_ID);
         let request = GetPetByIdRequest { pet_id: pet_id.0 };
         Answer(self.handler.get_pet_by_id(&ctx, request).await)",
    );
    assert_contains(
        &rest,
        "let ctx = caller_context(calling, security::LOGOUT_USER);
         let request = LogoutUserRequest {};
         Answer(self.handler.logout_user(&ctx, request).await)",
    );
    assert_eq!(occurrences(&rest, "request_context("), 1);
}

#[test]
fn a_json_body_is_read_with_the_contracts_validation() {
    let rest = store().rest;
    assert_contains(
        &rest,
        "async fn add_pet(
             &self,
             http: &Request,
             /// The pet.
             body: JsonBody<schemas::Pet>,
         ) -> Answer<AddPetResponse, AddPetError> {
             let calling = &Calling::attached(http);
             let outcome: Result<AddPetResponse, AddPetError> = async {
                 let ctx = request_context(calling, security::ADD_PET)?;
                 let request = AddPetRequest {
                     body: parse_body(body.0, body_schemas::ADD_PET)?,
                 };
                 self.handler.add_pet(&ctx, request).await
             }
             .await;
             Answer(outcome)
         }",
    );
    // A public operation with a JSON body ends early on an invalid body too.
    assert_contains(
        &rest,
        "let outcome: Result<CreateUsersWithListInputResponse, CreateUsersWithListInputError> = async {
             let ctx = caller_context(calling, security::CREATE_USERS_WITH_LIST_INPUT);
             let request = CreateUsersWithListInputRequest {
                 body: parse_body(body.0, body_schemas::CREATE_USERS_WITH_LIST_INPUT)?,
             };",
    );
    assert_contains(&rest, "body: OctetStream");
    assert_contains(
        &rest,
        "let request = UploadFileRequest { pet_id: pet_id.0, body: body.0 };",
    );
}

#[test]
fn parameters_are_declared_as_the_spec_has_them_and_converted_for_the_request() {
    let rest = store().rest;
    assert_contains(
        &rest,
        "#[oai(path = \"/pet/:petId\", method = \"post\", operation_id = \"updatePetWithForm\")]
         async fn update_pet_with_form(
             &self,
             http: &Request,
             #[oai(name = \"api_key\", validator(max_length = 256))]
             api_key: Header<Option<String>>,
             #[oai(name = \"petId\", validator(minimum(value = \"1\")))]
             pet_id: Path<i64>,
             /// New name.
             #[oai(name = \"name\", validator(min_length = 1, max_length = 100))]
             name: Query<Option<String>>,
             #[oai(name = \"status\")]
             status: Query<schemas::PetStatus>,
             #[oai(name = \"tags\", validator(max_items = 3))]
             tags: Query<Option<Vec<schemas::PetStatus>>>,
             #[oai(name = \"since\")]
             since: Query<Option<DateTime<Utc>>>,
         ) -> Answer<UpdatePetWithFormResponse, UpdatePetWithFormError> {
             let calling = &Calling::attached(http);
             let ctx = caller_context(calling, security::UPDATE_PET_WITH_FORM);
             let request = UpdatePetWithFormRequest {
                 api_key: api_key.0,
                 pet_id: pet_id.0,
                 name: name.0,
                 status: status.0.into(),
                 tags: tags.0.unwrap_or_default().into_iter().map(Into::into).collect(),
                 since: since.0,
             };",
    );
}

// ---- dispatch.rs ----

#[test]
fn dispatch_checks_credentials_where_rest_does_and_imports_only_what_it_uses() {
    let dispatch = secured().dispatch;
    assert_contains(
        &dispatch,
        "Action::AddPet => {
             Payload::new(payload)?;
             let ctx = Ctx {
                 principal: authorize(authentication, security::ADD_PET)?,
                 ..ctx
             };
             let request = AddPetRequest {};
             Ok(handler.add_pet(&ctx, request).await?.into())
         }",
    );
    assert_contains(
        &dispatch,
        "let pet_id = payload.required(\"petId\", param_schemas::GET_PET_BY_ID_PET_ID)?;
         let ctx = Ctx {
             principal: identify(authentication, security::GET_PET_BY_ID),
             ..ctx
         };",
    );
    assert_contains(
        &dispatch,
        "use crate::auth::{Authentication, authorize, identify};",
    );
    assert_lacks(&dispatch, "parse_body");

    let public = generate(&spec(FIND_PETS, "")).dispatch;
    assert_contains(&public, "use crate::auth::{Authentication, identify};");
    assert_lacks(&public, "authorize");
}

#[test]
fn dispatch_checks_a_json_body_after_the_credentials() {
    let dispatch = store().dispatch;
    assert_contains(
        &dispatch,
        "Action::AddPet => {
             let mut payload = Payload::new(payload)?;
             let body = payload.json_body()?;
             let ctx = Ctx {
                 principal: authorize(authentication, security::ADD_PET)?,
                 ..ctx
             };
             let body = parse_body(body, body_schemas::ADD_PET)?;
             let request = AddPetRequest { body };
             Ok(handler.add_pet(&ctx, request).await?.into())
         }",
    );
    assert_contains(&dispatch, "use petstore_api::validation::parse_body;");
}

#[test]
fn every_success_becomes_a_payload_with_its_status_and_without_its_headers() {
    let operations = store().operations;
    assert_contains(
        &operations,
        "use crate::{Image, Serialized, Ctx, payload::Success};",
    );
    assert_contains(
        &operations,
        "impl From<LoginUserResponse> for Success {
             fn from(response: LoginUserResponse) -> Self {
                 match response {
                     LoginUserResponse::Ok { body, .. } => Success::json(200, body.into_bytes()),
                 }
             }
         }",
    );
    assert_contains(
        &operations,
        "GetPetImageResponse::Ok(image) => Success::image(200, &image),",
    );
    assert_contains(
        &operations,
        "UploadFileResponse::Created => Success::empty(201),",
    );
}

// ---- ws.rs ----

/// A control action with the given payload limits.
fn control(name: &str, limits: &[(&str, &'static str, usize)]) -> WsAction {
    WsAction {
        name: name.to_owned(),
        summary: Some(format!("The {name} action.")),
        priority: Priority::Critical,
        control: true,
        limits: limits
            .iter()
            .map(|(field, keyword, value)| PayloadLimit {
                field: (*field).to_owned(),
                keyword,
                value: *value,
            })
            .collect(),
    }
}

#[test]
fn ws_rs_has_the_address_and_the_control_payload_limits() {
    let ws = generate_with(
        api(FIND_PETS, ""),
        WsApi {
            address: "/api/v3/ws".to_owned(),
            actions: vec![
                control(
                    "subscribe",
                    &[("topics", "minItems", 1), ("topics", "maxItems", 50)],
                ),
                control(
                    "refresh",
                    &[
                        ("refreshToken", "minLength", 1),
                        ("refreshToken", "maxLength", 512),
                    ],
                ),
                control("ping", &[]),
            ],
            events: Vec::new(),
        },
    )
    .ws;
    assert_contains(&ws, "pub const WS_PATH: &str = \"/api/v3/ws\";");
    assert_contains(
        &ws,
        "/// The limits the control actions' payload schemas state.
         pub mod limits {
             /// `subscribe`: `topics` has `minItems: 1`.
             pub const SUBSCRIBE_TOPICS_MIN_ITEMS: usize = 1;
             /// `subscribe`: `topics` has `maxItems: 50`.
             pub const SUBSCRIBE_TOPICS_MAX_ITEMS: usize = 50;
             /// `refresh`: `refreshToken` has `minLength: 1`.
             pub const REFRESH_REFRESH_TOKEN_MIN_LENGTH: usize = 1;
             /// `refresh`: `refreshToken` has `maxLength: 512`.
             pub const REFRESH_REFRESH_TOKEN_MAX_LENGTH: usize = 512;
         }",
    );
    assert_contains(
        &ws,
        "pub enum ControlAction {
             /// The subscribe action.
             Subscribe,
             /// The refresh action.
             Refresh,
             /// The ping action.
             Ping,
         }",
    );
}

#[test]
fn ws_rs_without_limits_has_no_limits_module() {
    let ws = generate_with(
        api(FIND_PETS, ""),
        WsApi {
            address: "/ws".to_owned(),
            actions: vec![control("ping", &[])],
            events: Vec::new(),
        },
    )
    .ws;
    assert_lacks(&ws, "mod limits");
    assert_contains(&ws, "pub const WS_PATH: &str = \"/ws\";");
}

#[test]
fn ws_rs_is_the_contract_and_holds_no_dispatch() {
    let generated = secured();
    assert_lacks(&generated.ws, "dispatch");
    assert_lacks(&generated.ws, "PetStoreApi");
    assert_contains(
        &generated.dispatch,
        "pub async fn dispatch<H: PetStoreApi>(",
    );
}

#[test]
fn the_priority_enum_is_emitted_from_the_generators_table() {
    let ws = generate_api(api(FIND_PETS, "")).ws;
    assert_eq!(Priority::ALL.len(), 5);
    let variants: Vec<String> = Priority::ALL
        .iter()
        .map(|level| format!("/// {}\n{},", level.meaning(), level.variant()))
        .collect();
    assert_contains(
        &ws,
        &format!(
            "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
             pub enum Priority {{ {} }}",
            variants.join("\n")
        ),
    );
    assert_contains(
        &ws,
        "pub const ALL: [Priority; 5] = [
             Priority::Critical,
             Priority::High,
             Priority::Normal,
             Priority::Low,
             Priority::Background,
         ];",
    );
    assert_contains(
        &ws,
        "pub fn is_sheddable(self) -> bool {
             matches!(self, Priority::Low | Priority::Background)
         }",
    );
    assert_contains(
        &ws,
        "match self {
             Priority::Critical => \"critical\",
             Priority::High => \"high\",
             Priority::Normal => \"normal\",
             Priority::Low => \"low\",
             Priority::Background => \"background\",
         }",
    );
}
