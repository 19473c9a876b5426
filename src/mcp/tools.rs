//! The tool list, generated from `openapi.yaml`, and what a tool call answers.
//!
//! [`generated`] holds one [`ToolSpec`] per operation (see the generator's `mcp` pass): the
//! schemas as JSON text, the action a call is dispatched as, the annotations. This module turns
//! them into the protocol's tool descriptions once ([`list`]), and turns the outcome of a
//! dispatched call into a tool result: a success as structured content (plus its JSON as text,
//! for clients that read only text), an image as image content; an error as a result with
//! `isError: true` carrying the `ErrorResponse` REST would have sent, so an agent reads the same
//! code, message and field errors whichever transport it came through.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use base64::Engine;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value};

use petstore_api::{ApiError, payload::Success, ws::Action};

/// The generated tool list.
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/mcp.rs"));
}

/// One tool, as the generator describes it.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// The tool's name: the operation's `operationId`.
    pub name: &'static str,
    /// The action its calls are dispatched as.
    pub action: Action,
    /// A display name.
    pub title: Option<&'static str>,
    /// What the tool does, and the credentials it needs.
    pub description: &'static str,
    /// The arguments: parameters by name and `body`.
    pub input: Schema,
    /// What a successful call returns.
    pub output: Output,
    /// Annotations.
    pub hints: Hints,
}

/// A JSON Schema document, as JSON text: the root, and the definitions it refers to
/// (`#/$defs/Name`), each by name.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The root schema.
    pub root: &'static str,
    /// `(name, schema)` of every definition the root needs.
    pub definitions: &'static [(&'static str, &'static str)],
}

/// What a successful call returns.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// JSON, as structured content described by `schema`; a body that is not an object
    /// (`wrapped`) travels as `{"result": …}`.
    Structured {
        /// The `outputSchema`.
        schema: Schema,
        /// Whether the body is wrapped.
        wrapped: bool,
    },
    /// An image, as image content.
    Image,
    /// No body: this text says what happened.
    Empty {
        /// The success response's description.
        message: &'static str,
    },
}

/// Annotations: hints for clients about what a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// Changes nothing.
    pub read_only: bool,
    /// May destroy data.
    pub destructive: bool,
    /// Repeating it changes nothing more.
    pub idempotent: bool,
}

/// The member a wrapped result is carried in.
const WRAPPED: &str = "result";

/// The tools as the protocol describes them, built once.
pub fn list() -> &'static [Tool] {
    static TOOLS: LazyLock<Vec<Tool>> =
        LazyLock::new(|| generated::TOOLS.iter().map(describe).collect());
    &TOOLS
}

/// The tool named `name`.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    static BY_NAME: LazyLock<HashMap<&'static str, &'static ToolSpec>> = LazyLock::new(|| {
        generated::TOOLS
            .iter()
            .map(|tool| (tool.name, tool))
            .collect()
    });
    BY_NAME.get(name).copied()
}

/// The protocol's description of a tool.
fn describe(spec: &ToolSpec) -> Tool {
    let annotations = if spec.hints.read_only {
        ToolAnnotations::new().read_only(true)
    } else {
        ToolAnnotations::new()
            .read_only(false)
            .destructive(spec.hints.destructive)
            .idempotent(spec.hints.idempotent)
    }
    // The tools act on this store only.
    .open_world(false);
    let mut tool =
        Tool::new(spec.name, spec.description, document(&spec.input)).with_annotations(annotations);
    if let Some(title) = spec.title {
        tool = tool.with_title(title);
    }
    if let Output::Structured { schema, .. } = spec.output {
        tool = tool.with_raw_output_schema(document(&schema));
    }
    tool
}

/// A schema document: the root with its definitions under `$defs`.
fn document(schema: &Schema) -> Arc<JsonObject> {
    let mut root = parse_object(schema.root);
    if !schema.definitions.is_empty() {
        let definitions: Map<String, Value> = schema
            .definitions
            .iter()
            .map(|(name, definition)| ((*name).to_owned(), Value::Object(parse_object(definition))))
            .collect();
        root.insert("$defs".to_owned(), Value::Object(definitions));
    }
    Arc::new(root)
}

/// Generated JSON text as an object. The generator writes it from `serde_json` values, so it
/// always is one (a test parses every schema); an empty schema, which accepts anything, stands
/// in rather than a panic.
fn parse_object(text: &str) -> JsonObject {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        _ => {
            tracing::error!(schema = text, "a generated MCP schema is not a JSON object");
            JsonObject::new()
        }
    }
}

/// The result of a successful call of `spec`.
pub fn success(spec: &ToolSpec, success: &Success) -> CallToolResult {
    let text = String::from_utf8_lossy(&success.payload);
    match spec.output {
        Output::Structured { wrapped, .. } => {
            let body: Value = match serde_json::from_slice(&success.payload) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(tool = spec.name, %error, "a success payload is not JSON");
                    return failure(&ApiError::Internal);
                }
            };
            let structured = if wrapped {
                Value::Object(Map::from_iter([(WRAPPED.to_owned(), body)]))
            } else {
                body
            };
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = Some(structured);
            result
        }
        Output::Image => match image(&success.payload) {
            Some((data, mime_type)) => {
                CallToolResult::success(vec![ContentBlock::image(data, mime_type)])
            }
            None => {
                tracing::error!(
                    tool = spec.name,
                    "an image payload without content type or data"
                );
                failure(&ApiError::Internal)
            }
        },
        Output::Empty { message } => CallToolResult::success(vec![ContentBlock::text(message)]),
    }
}

/// The base64 data and content type of an image success (`{"contentType": …, "data": …}`).
fn image(payload: &[u8]) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Image {
        content_type: String,
        data: String,
    }
    let image: Image = serde_json::from_slice(payload).ok()?;
    // The dispatch encoded it; checking it decodes costs little and keeps a broken payload from
    // reaching a client as an image.
    base64::engine::general_purpose::STANDARD
        .decode(&image.data)
        .ok()?;
    Some((image.data, image.content_type))
}

/// The result of a failed call: `isError`, with the `ErrorResponse` REST would have answered
/// as its text.
pub fn failure(error: &ApiError) -> CallToolResult {
    let body = serde_json::to_string(&error.to_body()).unwrap_or_else(|_| {
        r#"{"code":500,"type":"INTERNAL","message":"internal error"}"#.to_owned()
    });
    CallToolResult::error(vec![ContentBlock::text(body)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_schema_is_a_json_object() {
        let schemas = generated::TOOLS.iter().flat_map(|tool| {
            let output = match tool.output {
                Output::Structured { schema, .. } => Some(schema),
                Output::Image | Output::Empty { .. } => None,
            };
            std::iter::once(tool.input).chain(output)
        });
        for schema in schemas {
            assert!(
                matches!(serde_json::from_str(schema.root), Ok(Value::Object(_))),
                "{}",
                schema.root
            );
            for (name, definition) in schema.definitions {
                assert!(
                    matches!(serde_json::from_str(definition), Ok(Value::Object(_))),
                    "{name}: {definition}"
                );
            }
        }
    }

    /// The full schema documents of a tool, as clients receive them.
    fn documents(tool: &Tool) -> Vec<Value> {
        let mut documents = vec![Value::Object((*tool.input_schema).clone())];
        documents.extend(
            tool.output_schema
                .as_ref()
                .map(|output| Value::Object((**output).clone())),
        );
        documents
    }

    #[test]
    fn every_schema_is_valid_json_schema_2020_12_whose_references_resolve() {
        for tool in list() {
            for document in documents(tool) {
                if let Err(error) = jsonschema::draft202012::meta::validate(&document) {
                    panic!("{}: not a valid schema: {error}\n{document:#}", tool.name);
                }
                if let Err(error) = jsonschema::draft202012::new(&document) {
                    panic!("{}: the schema does not compile: {error}", tool.name);
                }
                assert_eq!(document["type"], "object", "{}", tool.name);
            }
        }
    }

    #[test]
    fn arguments_are_checked_by_the_schema_as_the_dispatch_checks_them() {
        let input = |name: &str| {
            let Some(tool) = list().iter().find(|tool| tool.name == name) else {
                panic!("no tool {name}");
            };
            match jsonschema::draft202012::new(&Value::Object((*tool.input_schema).clone())) {
                Ok(validator) => validator,
                Err(error) => panic!("{error}"),
            }
        };
        let get_pet = input("getPetById");
        assert!(get_pet.is_valid(&serde_json::json!({ "petId": 1 })));
        assert!(!get_pet.is_valid(&serde_json::json!({ "petId": 0 })));
        assert!(!get_pet.is_valid(&serde_json::json!({})));
        let add_pet = input("addPet");
        assert!(
            add_pet.is_valid(&serde_json::json!({ "body": { "name": "rex", "photoUrls": [] } }))
        );
        assert!(
            !add_pet.is_valid(&serde_json::json!({ "body": { "name": "" , "photoUrls": [] } }))
        );
        assert!(!add_pet.is_valid(&serde_json::json!({ "body": { "name": "rex" } })));
        let create_user = input("createUser");
        // The password is write-only: an argument, never a result.
        assert!(create_user.is_valid(&serde_json::json!({
            "body": { "username": "carol", "password": "correct-horse" }
        })));
    }

    #[test]
    fn every_tool_is_found_by_its_name_and_dispatches_its_operation() {
        assert_eq!(list().len(), generated::TOOLS.len());
        for tool in &generated::TOOLS {
            let found = find(tool.name).map(|found| found.action);
            assert_eq!(found, Some(tool.action));
            assert_eq!(
                tool.action.operation().map(|operation| operation.id),
                Some(tool.name)
            );
        }
        assert!(find("noSuchTool").is_none());
    }

    #[test]
    fn a_non_object_success_is_wrapped_and_an_error_carries_the_error_body() {
        let Some(find_by_status) = find("findPetsByStatus") else {
            panic!("no findPetsByStatus tool");
        };
        let result = success(
            find_by_status,
            &Success::json(200, bytes::Bytes::from_static(b"[]")),
        );
        assert_eq!(
            result.structured_content,
            Some(serde_json::json!({ "result": [] }))
        );
        assert_eq!(result.is_error, Some(false));
        let result = failure(&ApiError::NotFound("no pet 9".to_owned()));
        assert_eq!(result.is_error, Some(true));
        let text = serde_json::to_value(&result.content).unwrap_or_default();
        assert!(text.to_string().contains("NOT_FOUND"), "{text}");
    }
}
