//! Helpers shared by the generator tests: a minimal valid document around a snippet,
//! assertions on the errors it yields, and what the project's own `openapi.yaml` declares.

#![allow(dead_code)] // Each test crate uses its own subset.

use petstore_codegen::{GenError, GenErrors, ir::Api, parse::parse_spec};

/// The operationIds of `openapi.yaml`, in spec order (Petstore v3 plus `getPetImage` and the
/// token endpoints).
pub const OPERATION_IDS: [&str; 23] = [
    "updatePet",
    "addPet",
    "findPetsByStatus",
    "findPetsByTags",
    "getPetById",
    "updatePetWithForm",
    "deletePet",
    "uploadFile",
    "getPetImage",
    "getInventory",
    "placeOrder",
    "getOrderById",
    "updateOrder",
    "deleteOrder",
    "createUser",
    "createUsersWithListInput",
    "loginUser",
    "logoutUser",
    "getUserByName",
    "updateUser",
    "deleteUser",
    "createToken",
    "refreshToken",
];

/// The two security schemes [`secured_spec`] declares unless told otherwise.
pub const SCHEMES: &str = "
bearerAuth:
  type: http
  scheme: bearer
  bearerFormat: JWT
  description: An access token.
api_key:
  type: apiKey
  in: header
  name: X-API-Key";

/// A complete OpenAPI document: `paths` and extra `components/schemas` from the snippets
/// (written at any indentation), plus the `ErrorResponse` schema and the error responses every
/// operation can reference: `Error` (any 4xx), `Unauthorized` (401, with `WWW-Authenticate`),
/// `TooManyRequests` (429, with `Retry-After`) and `ServerError` (5XX).
pub fn spec(paths: &str, schemas: &str) -> String {
    let paths = if paths.trim().is_empty() {
        " {}".to_owned()
    } else {
        format!("\n{}", indent(paths, 2))
    };
    format!(
        "openapi: 3.0.3
info:
  title: test
  version: '1'
paths:{paths}
components:
  schemas:
    ErrorResponse:
      type: object
      required: [code, type, message]
      properties:
        code: {{type: integer, format: int32}}
        type: {{type: string}}
        message: {{type: string}}
{schemas}
  responses:
    Error:
      description: A client error.
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/ErrorResponse'
    Unauthorized:
      description: No valid credentials.
      headers:
        WWW-Authenticate:
          description: The challenge.
          required: true
          schema: {{type: string}}
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/ErrorResponse'
    TooManyRequests:
      description: Too many requests.
      headers:
        Retry-After:
          description: Seconds to wait.
          required: true
          schema: {{type: integer, format: int64}}
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/ErrorResponse'
    ServerError:
      description: A server error.
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/ErrorResponse'
",
        schemas = indent(schemas, 4),
    )
}

/// [`spec`] with `components/securitySchemes` from `schemes` and, if given, the document's
/// `security` (both YAML snippets at any indentation).
pub fn secured_spec(paths: &str, schemes: &str, root_security: Option<&str>) -> String {
    let mut text = spec(paths, "");
    text.push_str(&format!("  securitySchemes:\n{}\n", indent(schemes, 4)));
    if let Some(security) = root_security {
        text = text.replacen(
            "\npaths:",
            &format!("\nsecurity:\n{}\npaths:", indent(security, 2)),
            1,
        );
    }
    text
}

/// The intermediate model of a document that must be valid.
pub fn api(paths: &str, schemas: &str) -> Api {
    valid(&spec(paths, schemas))
}

/// The intermediate model of a complete document that must be valid.
pub fn valid(text: &str) -> Api {
    match parse_spec(text) {
        Ok(api) => api,
        Err(errors) => panic!("expected a valid spec, got:\n{errors}\n{text}"),
    }
}

/// The errors of a complete document that must be rejected.
pub fn rejected(text: &str) -> Vec<GenError> {
    match parse_spec(text) {
        Ok(api) => panic!("expected errors, got a model: {api:#?}"),
        Err(GenErrors(errors)) => errors,
    }
}

/// The errors of a document that must be rejected.
pub fn errors(paths: &str, schemas: &str) -> Vec<GenError> {
    rejected(&spec(paths, schemas))
}

/// The one error of a document with exactly one problem; asserts its location and that the
/// message names the construct.
pub fn single_error(paths: &str, schemas: &str, location: &str, construct: &str) -> GenError {
    single_error_in(&spec(paths, schemas), location, construct)
}

/// [`single_error`] for a complete document.
pub fn single_error_in(text: &str, location: &str, construct: &str) -> GenError {
    let mut errors = rejected(text);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        list(&errors)
    );
    assert_error(&errors, location, construct);
    errors.remove(0)
}

/// Asserts that one of `errors` is at `location` and mentions `construct`.
pub fn assert_error(errors: &[GenError], location: &str, construct: &str) {
    assert!(
        errors
            .iter()
            .any(|error| error.location == location && error.message.contains(construct)),
        "no error at `{location}` mentioning `{construct}` among:\n{}",
        list(errors)
    );
}

fn list(errors: &[GenError]) -> String {
    errors
        .iter()
        .map(|error| format!("  {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Re-indents a snippet: strips the indentation common to its lines, then indents by `by`.
pub fn indent(text: &str, by: usize) -> String {
    let common = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| format!("{}{}", " ".repeat(by), &line[common..]))
        .collect::<Vec<_>>()
        .join("\n")
}
