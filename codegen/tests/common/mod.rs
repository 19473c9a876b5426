//! Helpers shared by the generator tests: a minimal valid document around a snippet, and
//! assertions on the errors it yields.

#![allow(dead_code)] // Each test crate uses its own subset.

use petstore_codegen::{GenError, GenErrors, ir::Api, parse::parse_spec};

/// A complete OpenAPI document: `paths` and extra `components/schemas` from the snippets
/// (written at any indentation), plus the `ErrorResponse` schema and two error responses
/// every operation can reference: `Error` (any 4xx) and `ServerError` (5XX).
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

/// The intermediate model of a document that must be valid.
pub fn api(paths: &str, schemas: &str) -> Api {
    match parse_spec(&spec(paths, schemas)) {
        Ok(api) => api,
        Err(errors) => panic!("expected a valid spec, got:\n{errors}"),
    }
}

/// The errors of a document that must be rejected.
pub fn errors(paths: &str, schemas: &str) -> Vec<GenError> {
    match parse_spec(&spec(paths, schemas)) {
        Ok(api) => panic!("expected errors, got a model: {api:#?}"),
        Err(GenErrors(errors)) => errors,
    }
}

/// The one error of a document with exactly one problem; asserts its location and that the
/// message names the construct.
pub fn single_error(paths: &str, schemas: &str, location: &str, construct: &str) -> GenError {
    let mut errors = errors(paths, schemas);
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
