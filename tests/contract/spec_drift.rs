//! Drift test: the OpenAPI document the REST adapter emits says the same as `openapi.yaml`.
//!
//! The adapter is generated from `openapi.yaml`, and poem-openapi renders its own document from
//! the adapter's Rust types. If the two disagree on a path, method, operationId, parameter,
//! schema or status code, the generator (or a hand-written payload type) has lost something on
//! the way, and clients reading the served docs would be misled.
//!
//! Both documents are reduced to a canonical form before comparing: every `$ref` is inlined,
//! prose (descriptions, summaries, titles) and document metadata are dropped, numbers become
//! floats, and keywords with their default value are dropped. Examples are kept: they are what
//! documentation UIs fill into their requests, so the served document must carry the spec's. The few places where
//! poem-openapi writes the same meaning differently are normalized one by one in
//! [`poem_differences`], each with the behaviour it covers. Everything else must match exactly.

use std::{
    collections::{BTreeMap, BTreeSet},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use petstore_ws::{
    auth::{MemorySessionStore, TokenService, TokenSettings},
    handlers::{AuthServices, HandlerSettings, PetStore},
    limits::{LoginThrottle, RateQuota},
    rest::api_service,
    store::MemoryStore,
};
use serde_json::{Map, Value};

const SPEC: &str = include_str!("../../openapi.yaml");

/// HTTP methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Schema keywords that are prose or metadata, not contract.
const PROSE: [&str; 5] = ["description", "title", "examples", "externalDocs", "xml"];

/// Schema keywords whose value, when it is the default, says nothing.
const FALSE_BY_DEFAULT: [&str; 7] = [
    "nullable",
    "readOnly",
    "writeOnly",
    "deprecated",
    "uniqueItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
];

#[test]
fn emitted_spec_matches_openapi_yaml() {
    let expected = canonical(&spec_yaml());
    let actual = canonical(&emitted_spec());
    let differences = compare(&expected, &actual);
    assert!(
        differences.is_empty(),
        "the document poem-openapi emits drifted from openapi.yaml \
         (expected = openapi.yaml, actual = emitted):\n{}",
        differences.join("\n")
    );
}

#[test]
fn both_documents_have_every_operation_of_the_spec() {
    // Guards the comparison itself: a canonical form that lost the operations would compare
    // equal for any two documents.
    let expected = canonical(&spec_yaml());
    let operations = expected
        .get("operations")
        .and_then(Value::as_object)
        .map(|operations| operations.len());
    assert_eq!(operations, Some(23));
    let emitted = canonical(&emitted_spec());
    assert_eq!(
        emitted
            .get("operations")
            .and_then(Value::as_object)
            .map(Map::len),
        Some(23)
    );
}

#[test]
fn a_changed_max_length_is_reported_where_it_is_used() {
    let mut spec = spec_yaml();
    set(
        &mut spec,
        "/paths/~1pet~1{petId}~1uploadImage/post/parameters/1/schema/maxLength",
        Value::from(999),
    );
    assert_eq!(
        compare(&canonical(&spec), &canonical(&spec_yaml())),
        [
            "POST /pet/{petId}/uploadImage › parameters › query additionalMetadata › schema › \
             maxLength: expected 999.0, actual 1000.0"
        ]
    );
}

#[test]
fn a_dropped_status_is_reported() {
    let mut spec = spec_yaml();
    let removed = spec
        .pointer_mut("/paths/~1pet~1{petId}~1uploadImage/post/responses")
        .and_then(Value::as_object_mut)
        .and_then(|responses| responses.remove("409"));
    assert!(removed.is_some(), "openapi.yaml changed: no 409 to drop");
    let differences = compare(&canonical(&spec), &canonical(&spec_yaml()));
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert!(
        differences[0].starts_with(
            "POST /pet/{petId}/uploadImage › responses › 409: expected (absent), actual {"
        ),
        "{differences:#?}"
    );
}

#[test]
fn a_renamed_parameter_is_reported_as_one_missing_and_one_unexpected() {
    let mut spec = spec_yaml();
    set(
        &mut spec,
        "/paths/~1pet~1{petId}/post/parameters/1/name",
        Value::from("petName"),
    );
    let differences = compare(&canonical(&spec), &canonical(&spec_yaml()));
    assert_eq!(differences.len(), 2, "{differences:#?}");
    assert!(
        differences[0].starts_with(
            "POST /pet/{petId} › parameters › query name: expected (absent), actual {"
        ),
        "{differences:#?}"
    );
    assert!(
        differences[1].starts_with("POST /pet/{petId} › parameters › query petName: expected {")
            && differences[1].ends_with("actual (absent)"),
        "{differences:#?}"
    );
}

#[test]
fn a_changed_component_schema_is_reported_in_every_operation_that_uses_it() {
    // Guards `$ref` inlining: a constraint on a shared model must reach each use.
    let mut spec = spec_yaml();
    set(
        &mut spec,
        "/components/schemas/Order/properties/quantity/maximum",
        Value::from(99),
    );
    let differences = compare(&canonical(&spec), &canonical(&spec_yaml()));
    let quantity = "schema › properties › quantity › maximum: expected 99.0, actual 100.0";
    let body = "requestBody › content › application/json";
    let ok = "responses › 200 › content › application/json";
    assert_eq!(
        differences,
        [
            format!("POST /store/order › {body} › {quantity}"),
            format!("POST /store/order › {ok} › {quantity}"),
            format!("GET /store/order/{{orderId}} › {ok} › {quantity}"),
            format!("PUT /store/order/{{orderId}} › {body} › {quantity}"),
            format!("PUT /store/order/{{orderId}} › {ok} › {quantity}"),
        ]
    );
}

#[test]
fn changed_examples_are_reported_where_documentation_uis_read_them() {
    // A property's example in its schema, a parameter's in the parameter's schema (where the
    // served document carries it).
    let mut spec = spec_yaml();
    set(
        &mut spec,
        "/components/schemas/Order/properties/quantity/example",
        Value::from(3),
    );
    set(
        &mut spec,
        "/paths/~1store~1order~1{orderId}/get/parameters/0/example",
        Value::from(2),
    );
    let differences = compare(&canonical(&spec), &canonical(&spec_yaml()));
    let quantity = "schema › properties › quantity › example: expected 3.0, actual 7.0";
    let ok = "responses › 200 › content › application/json";
    assert!(
        differences.contains(&format!("GET /store/order/{{orderId}} › {ok} › {quantity}")),
        "{differences:#?}"
    );
    assert!(
        differences.contains(
            &"GET /store/order/{orderId} › parameters › path orderId › schema › example: \
              expected 2.0, actual 1.0"
                .to_owned()
        ),
        "{differences:#?}"
    );
}

#[test]
fn a_changed_required_flag_and_operation_id_are_reported() {
    let mut spec = spec_yaml();
    set(
        &mut spec,
        "/paths/~1user~1login/get/parameters/1/required",
        Value::from(false),
    );
    set(
        &mut spec,
        "/paths/~1user~1logout/get/operationId",
        Value::from("logout"),
    );
    assert_eq!(
        compare(&canonical(&spec), &canonical(&spec_yaml())),
        [
            "GET /user/login › parameters › query password › required: expected false, actual true",
            "GET /user/logout › operationId: expected \"logout\", actual \"logoutUser\"",
        ]
    );
}

/// `openapi.yaml` as JSON.
fn spec_yaml() -> Value {
    match serde_saphyr::from_str::<Value>(SPEC) {
        Ok(value) => value,
        Err(error) => panic!("openapi.yaml is not valid YAML: {error}"),
    }
}

/// The document poem-openapi renders for the generated REST adapter.
fn emitted_spec() -> Value {
    let tokens = match TokenService::new(TokenSettings {
        issuer: "spec-drift".to_owned(),
        audience: "spec-drift".to_owned(),
        access_ttl: Duration::from_secs(60),
        private_key_pem: None,
        previous_key_pems: Vec::new(),
    }) {
        Ok(tokens) => tokens,
        Err(error) => panic!("the token service did not start: {error}"),
    };
    let quota = RateQuota::per_minute(NonZeroU32::MIN);
    let handler = PetStore::new(
        Arc::new(MemoryStore::new()),
        AuthServices {
            tokens: Arc::new(tokens),
            sessions: Arc::new(MemorySessionStore::new()),
            login_throttle: Arc::new(LoginThrottle::local(quota, quota)),
        },
        HandlerSettings {
            rate_limit_per_hour: 1000,
            refresh_ttl: Duration::from_secs(60),
            login_burst: 1,
        },
    );
    let spec = api_service(Arc::new(handler)).spec();
    match serde_json::from_str(&spec) {
        Ok(value) => value,
        Err(error) => panic!("poem-openapi emitted invalid JSON: {error}"),
    }
}

/// Replaces the value at a JSON pointer, failing loudly if the spec no longer has it.
fn set(document: &mut Value, pointer: &str, value: Value) {
    match document.pointer_mut(pointer) {
        Some(slot) => *slot = value,
        None => panic!("openapi.yaml changed: nothing at {pointer}"),
    }
}

/// The contract of a document: `servers` and, per `METHOD /path`, the operation with every
/// reference inlined and every prose field dropped.
fn canonical(document: &Value) -> Value {
    let resolver = Resolver { document };
    let mut operations = Map::new();
    if let Some(paths) = document.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    let key = format!("{} {path}", method.to_uppercase());
                    operations.insert(key, resolver.operation(operation));
                }
            }
        }
    }
    let servers: Vec<Value> = document
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|server| server.get("url").cloned())
        .collect();
    let mut canonical = Map::new();
    canonical.insert("servers".to_owned(), Value::Array(servers));
    canonical.insert("operations".to_owned(), Value::Object(operations));
    Value::Object(canonical)
}

/// Inlines references against one document.
struct Resolver<'a> {
    document: &'a Value,
}

impl Resolver<'_> {
    /// Follows `$ref`s (components of any kind) until a definition.
    fn deref<'v>(&'v self, mut value: &'v Value) -> &'v Value {
        let mut seen = BTreeSet::new();
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| self.document.pointer(pointer));
            match target {
                Some(target) if seen.insert(reference) => value = target,
                _ => panic!("unresolvable or circular $ref `{reference}`"),
            }
        }
        value
    }

    fn operation(&self, operation: &Value) -> Value {
        let mut canonical = Map::new();
        copy(operation, &mut canonical, "operationId");
        let tags: Vec<Value> = operation
            .get("tags")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        canonical.insert("tags".to_owned(), Value::Array(tags));
        let security = operation.get("security").cloned().unwrap_or(Value::Null);
        if !security.is_null() {
            canonical.insert("security".to_owned(), security);
        }

        // Parameters are identified by location and name; their order carries no meaning.
        let mut parameters = Map::new();
        for parameter in operation
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let parameter = self.deref(parameter);
            let location = string(parameter, "in");
            let name = string(parameter, "name");
            let (key, canonical) = self.parameter(location, name, parameter);
            parameters.insert(key, canonical);
        }
        if !parameters.is_empty() {
            canonical.insert("parameters".to_owned(), Value::Object(parameters));
        }

        if let Some(body) = operation.get("requestBody") {
            let body = self.deref(body);
            let mut canonical_body = Map::new();
            canonical_body.insert("required".to_owned(), flag(body, "required"));
            canonical_body.insert("content".to_owned(), self.content(body));
            canonical.insert("requestBody".to_owned(), Value::Object(canonical_body));
        }

        let mut responses = Map::new();
        if let Some(documented) = operation.get("responses").and_then(Value::as_object) {
            for (status, response) in documented {
                let response = self.deref(response);
                let mut canonical_response = Map::new();
                canonical_response.insert("content".to_owned(), self.content(response));
                let mut headers = Map::new();
                if let Some(documented) = response.get("headers").and_then(Value::as_object) {
                    for (name, header) in documented {
                        let header = self.deref(header);
                        let mut canonical_header = Map::new();
                        canonical_header.insert("required".to_owned(), flag(header, "required"));
                        canonical_header
                            .insert("deprecated".to_owned(), flag(header, "deprecated"));
                        canonical_header.insert("schema".to_owned(), self.schema_of(header));
                        headers.insert(
                            poem_differences::header_name(name),
                            Value::Object(canonical_header),
                        );
                    }
                }
                canonical_response.insert("headers".to_owned(), Value::Object(headers));
                responses.insert(status.clone(), Value::Object(canonical_response));
            }
        }
        canonical.insert("responses".to_owned(), Value::Object(responses));
        Value::Object(canonical)
    }

    fn parameter(&self, location: &str, name: &str, parameter: &Value) -> (String, Value) {
        let mut canonical = Map::new();
        canonical.insert("required".to_owned(), flag(parameter, "required"));
        canonical.insert("deprecated".to_owned(), flag(parameter, "deprecated"));
        if location == "query" {
            canonical.insert(
                "explode".to_owned(),
                poem_differences::query_explode(parameter),
            );
        }
        let mut schema = self.schema_of(parameter);
        if let (Some(example), Some(keywords)) = (
            poem_differences::parameter_example(parameter, self.deref(&parameter["schema"])),
            schema.as_object_mut(),
        ) {
            keywords.insert("example".to_owned(), number_as_float(example));
        }
        canonical.insert("schema".to_owned(), schema);
        let name = match location {
            "header" => poem_differences::header_name(name),
            _ => name.to_owned(),
        };
        (format!("{location} {name}"), Value::Object(canonical))
    }

    /// `content`: media type → schema.
    fn content(&self, holder: &Value) -> Value {
        let mut content = Map::new();
        if let Some(media_types) = holder.get("content").and_then(Value::as_object) {
            for (media_type, media) in media_types {
                let mut canonical = Map::new();
                canonical.insert("schema".to_owned(), self.schema_of(media));
                content.insert(media_type.clone(), Value::Object(canonical));
            }
        }
        Value::Object(content)
    }

    fn schema_of(&self, holder: &Value) -> Value {
        match holder.get("schema") {
            Some(schema) => self.schema(schema),
            None => Value::Null,
        }
    }

    /// A schema with references inlined, prose and defaults dropped, and numbers as floats.
    fn schema(&self, schema: &Value) -> Value {
        let schema = self.deref(schema);
        let Some(keywords) = schema.as_object() else {
            return number_as_float(schema);
        };
        let mut canonical = Map::new();
        for (keyword, value) in keywords {
            let keyword = keyword.as_str();
            if PROSE.contains(&keyword)
                || (FALSE_BY_DEFAULT.contains(&keyword) && value == &Value::Bool(false))
            {
                continue;
            }
            let value = match keyword {
                "properties" => Value::Object(
                    value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, property)| (name.clone(), self.schema(property)))
                        .collect(),
                ),
                "items" | "not" => self.schema(value),
                "additionalProperties" if value.is_object() => self.schema(value),
                "allOf" | "oneOf" | "anyOf" => Value::Array(
                    value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|schema| self.schema(schema))
                        .collect(),
                ),
                // Which fields are required is a set.
                "required" => {
                    let mut names: Vec<Value> = value.as_array().cloned().unwrap_or_default();
                    names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                    if names.is_empty() {
                        continue;
                    }
                    Value::Array(names)
                }
                _ => number_as_float(value),
            };
            canonical.insert(keyword.to_owned(), value);
        }
        Value::Object(canonical)
    }
}

/// The places where poem-openapi writes the same contract differently from `openapi.yaml`.
/// Each normalization is as narrow as the behaviour it covers; anything not listed here is a
/// real difference.
///
/// Not normalized on purpose: poem-openapi also lists `readOnly` fields in `required` when their
/// Rust type is not an `Option`. `openapi.yaml` has no `readOnly` field today; if one appears and
/// the documents disagree, the test shows it and the choice (spec or generator) is made then.
/// `title` (which poem-openapi adds to every object) and the `openapi` version are dropped with
/// the rest of the prose and metadata in `canonical`.
mod poem_differences {
    use serde_json::Value;

    /// poem-openapi has no parameter-level `example`; the served document carries a parameter's
    /// example in the parameter's schema (which documentation UIs read the same way). A schema
    /// that is a reference to an enum component stays a reference there, and a reference cannot
    /// carry an example: the UI offers the enum's values instead, so the example is dropped.
    pub fn parameter_example<'v>(parameter: &'v Value, schema: &Value) -> Option<&'v Value> {
        let referenced_enum =
            parameter["schema"].get("$ref").is_some() && schema.get("enum").is_some();
        parameter.get("example").filter(|_| !referenced_enum)
    }

    /// poem-openapi's derive macros write every header name in upper case
    /// (`X-Rate-Limit` → `X-RATE-LIMIT`, in `poem-openapi-derive`'s `response.rs` and `api.rs`).
    /// Header names are case-insensitive in HTTP, so both sides are compared in lower case.
    pub fn header_name(name: &str) -> String {
        name.to_ascii_lowercase()
    }

    /// poem-openapi writes `explode: true` on every query parameter; the spec leaves it out for
    /// the default (`style: form` implies `explode: true`, OpenAPI 3.0 §4.7.12.2).
    pub fn query_explode(parameter: &Value) -> Value {
        parameter
            .get("explode")
            .cloned()
            .unwrap_or(Value::Bool(true))
    }
}

fn copy(from: &Value, to: &mut Map<String, Value>, key: &str) {
    if let Some(value) = from.get(key) {
        to.insert(key.to_owned(), value.clone());
    }
}

fn string<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A boolean that defaults to `false` when absent.
fn flag(value: &Value, key: &str) -> Value {
    Value::Bool(value.get(key).and_then(Value::as_bool).unwrap_or(false))
}

/// poem-openapi writes `1.0` where the spec has `1`: compare every number as a float.
fn number_as_float(value: &Value) -> Value {
    match value {
        Value::Number(number) => number
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(number_as_float).collect()),
        Value::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), number_as_float(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every difference between two canonical documents, as `where: expected …, actual …` lines.
fn compare(expected: &Value, actual: &Value) -> Vec<String> {
    let mut differences = Vec::new();
    let (Some(expected), Some(actual)) = (expected.as_object(), actual.as_object()) else {
        return vec![format!("expected {expected}, actual {actual}")];
    };
    if expected.get("servers") != actual.get("servers") {
        differences.push(format!(
            "servers: expected {}, actual {}",
            show(expected.get("servers")),
            show(actual.get("servers"))
        ));
    }
    // Operations first by path then by method reads better than `DELETE …` before `GET …`.
    let by_path = |operations: Option<&Value>| -> BTreeMap<(String, String), Value> {
        operations
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(key, operation)| {
                let (method, path) = key.split_once(' ').unwrap_or((key.as_str(), ""));
                ((path.to_owned(), method.to_owned()), operation.clone())
            })
            .collect()
    };
    let expected_operations = by_path(expected.get("operations"));
    let actual_operations = by_path(actual.get("operations"));
    let keys: BTreeSet<_> = expected_operations
        .keys()
        .chain(actual_operations.keys())
        .collect();
    for key in keys {
        let at = format!("{} {}", key.1, key.0);
        diff(
            &at,
            expected_operations.get(key),
            actual_operations.get(key),
            &mut differences,
        );
    }
    differences
}

fn diff(at: &str, expected: Option<&Value>, actual: Option<&Value>, out: &mut Vec<String>) {
    match (expected, actual) {
        (Some(Value::Object(expected)), Some(Value::Object(actual))) => {
            let keys: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
            for key in keys {
                diff(
                    &format!("{at} › {key}"),
                    expected.get(key),
                    actual.get(key),
                    out,
                );
            }
        }
        (expected, actual) if expected != actual => out.push(format!(
            "{at}: expected {}, actual {}",
            show(expected),
            show(actual)
        )),
        _ => {}
    }
}

fn show(value: Option<&Value>) -> String {
    match value {
        Some(value) => value.to_string(),
        None => "(absent)".to_owned(),
    }
}
