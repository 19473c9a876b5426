//! What the emitters write for security: the `Scope` enum, one static per scheme, the requirements
//! of each operation as data, and the REST adapter checking them before it calls a handler.
//!
//! Checked on the generated text with whitespace and trailing commas ignored, so a change in
//! prettyplease's line breaking does not break these tests.

mod common;

use common::{SCHEMES, secured_spec, spec};
use petstore_codegen::{emit::Generated, generate_sources};

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

fn generate(text: &str) -> Generated {
    match generate_sources(text) {
        Ok(generated) => generated,
        Err(errors) => panic!("expected a valid spec, got:\n{errors}"),
    }
}

fn secured() -> Generated {
    generate(&secured_spec(PATHS, SCHEMES, None))
}

/// Rust text without whitespace and trailing commas, for comparisons that ignore formatting.
fn normalized(text: &str) -> String {
    let compact: String = text.split_whitespace().collect();
    compact
        .replace(",]", "]")
        .replace(",}", "}")
        .replace(",)", ")")
}

#[track_caller]
fn assert_contains(source: &str, expected: &str) {
    assert!(
        normalized(source).contains(&normalized(expected)),
        "expected\n{expected}\nin:\n{source}"
    );
}

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
    let operations = generate(&spec(
        "
/pet:
  get:
    operationId: findPets
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
    ))
    .operations;
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
    if let Err(error) = syn::parse_file(&operations) {
        panic!("operations.rs does not parse: {error}\n{operations}");
    }
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

#[test]
fn an_error_variant_with_headers_keeps_only_the_error() {
    let operations = secured().operations;
    assert_contains(
        &operations,
        "/// 401: No valid credentials.
         ///
         /// Sent with `WWW-Authenticate`, valued from the error ([`ApiError::header`]).
         Unauthorized(ApiError),",
    );
}

#[test]
fn every_rest_method_builds_its_context_through_the_security_check() {
    let rest = secured().rest;
    assert_contains(&rest, "use crate::api::operations::security;");
    for (operation, request, response, method) in [
        ("ADD_PET", "AddPetRequest", "AddPetResponse", "add_pet"),
        (
            "GET_PET_BY_ID",
            "GetPetByIdRequest",
            "GetPetByIdResponse",
            "get_pet_by_id",
        ),
        (
            "LOGOUT_USER",
            "LogoutUserRequest",
            "LogoutUserResponse",
            "logout_user",
        ),
    ] {
        assert_contains(
            &rest,
            &format!(
                "let outcome: Result<{response}, crate::error::ApiError> = async {{
                     let ctx = request_context(http_request, security::{operation})?;
                     let request = {request}"
            ),
        );
        assert_contains(
            &rest,
            &format!("self.handler.{method}(&ctx, request).await }}.await;"),
        );
    }
}

#[test]
fn error_headers_are_declared_and_valued_from_the_error() {
    let rest = secured().rest;
    assert_contains(
        &rest,
        "#[oai(status = 401u16)]
         Unauthorized(
             ErrorBody,
             /// The challenge.
             #[oai(header = \"WWW-Authenticate\")]
             ErrorHeader<String>,
         ),",
    );
    assert_contains(
        &rest,
        "TooManyRequests(
             ErrorBody,
             /// Seconds to wait.
             #[oai(header = \"Retry-After\")]
             ErrorHeader<i64>,
         ),",
    );
    assert_contains(
        &rest,
        "AddPetResponse::Unauthorized(error) => {
             let www_authenticate = ErrorHeader::of(&error, \"WWW-Authenticate\");
             AddPetHttpResponse::Unauthorized(ErrorBody(error), www_authenticate)
         }",
    );
    assert_contains(
        &rest,
        "AddPetResponse::TooManyRequests(error) => {
             let retry_after = ErrorHeader::of(&error, \"Retry-After\");
             AddPetHttpResponse::TooManyRequests(ErrorBody(error), retry_after)
         }",
    );
}

#[test]
fn a_5xx_with_headers_keeps_the_status_first() {
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
        "ServerError(poem::http::StatusCode, ErrorBody, #[oai(header = \"Retry-After\")] ErrorHeader<i32>)",
    );
    assert_contains(
        &rest,
        "FindPetsResponse::ServerError(error) => {
             let retry_after = ErrorHeader::of(&error, \"Retry-After\");
             FindPetsHttpResponse::ServerError(error_status(&error), ErrorBody(error), retry_after)
         }",
    );
}
