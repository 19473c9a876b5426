//! Small documents for the generator tests: a minimal valid OpenAPI document around a snippet,
//! with security schemes or a server when a test needs them, and its intermediate model.
//!
//! Every test crate that includes this module (`errors`, `model`, `emit`) uses all of it; the
//! project's own documents are in `tests/project`.

use petstore_codegen::{ir::Api, parse::parse_spec};

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
/// `TooManyRequests` (429, with `Retry-After`) and `ServerError` (5XX). It names no server, so
/// operations are served at the root.
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
        text = before_paths(&text, &format!("security:\n{}", indent(security, 2)));
    }
    text
}

/// A complete document (from [`spec`] or [`secured_spec`]) with `servers`, one per URL, in
/// order.
pub fn with_servers(text: &str, urls: &[&str]) -> String {
    let servers: Vec<String> = urls.iter().map(|url| format!("  - url: '{url}'")).collect();
    before_paths(text, &format!("servers:\n{}", servers.join("\n")))
}

/// Inserts a top-level `section` before `paths`.
fn before_paths(text: &str, section: &str) -> String {
    assert!(
        text.contains("\npaths:"),
        "not a document from `spec`:\n{text}"
    );
    text.replacen("\npaths:", &format!("\n{section}\npaths:"), 1)
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

/// Re-indents a snippet: strips the indentation common to its lines, then indents by `by`.
fn indent(text: &str, by: usize) -> String {
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
