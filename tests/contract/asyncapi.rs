//! `asyncapi.yaml` is a valid AsyncAPI 3.0.0 document, is served as written, points only at
//! schemas that exist, and describes exactly the actions and events the server was built with.
//!
//! The document is validated against the official AsyncAPI 3.0.0 JSON Schema, vendored in
//! `tests/schemas/` (see its README for the source). Each check is paired with a broken copy of
//! the document that it must reject, so none of them passes vacuously.

use std::{collections::BTreeSet, fs, path::Path, sync::LazyLock};

use jsonschema::Validator;
use petstore_api::ws::{Action, Event};
use petstore_testkit::app::*;
use serde_json::{Value, json};

/// A file of the repository.
fn repo_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!("cannot read {}: {error}", path.display()),
    }
}

/// A YAML (or JSON) document as a JSON value.
fn yaml(text: &str, name: &str) -> Value {
    match serde_saphyr::from_str(text) {
        Ok(value) => value,
        Err(error) => panic!("{name} is not valid YAML: {error}"),
    }
}

static ASYNCAPI_TEXT: LazyLock<String> = LazyLock::new(|| repo_file("asyncapi.yaml"));
static ASYNCAPI: LazyLock<Value> = LazyLock::new(|| yaml(&ASYNCAPI_TEXT, "asyncapi.yaml"));
static OPENAPI: LazyLock<Value> =
    LazyLock::new(|| yaml(&repo_file("openapi.yaml"), "openapi.yaml"));

/// The official AsyncAPI 3.0.0 schema, compiled once.
static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    let schema: Value = match serde_json::from_str(&repo_file("tests/schemas/asyncapi-3.0.0.json"))
    {
        Ok(schema) => schema,
        Err(error) => panic!("the vendored AsyncAPI schema is not JSON: {error}"),
    };
    match jsonschema::validator_for(&schema) {
        Ok(validator) => validator,
        Err(error) => panic!("the vendored AsyncAPI schema does not compile: {error}"),
    }
});

/// Every violation of the AsyncAPI 3.0.0 schema, as `instance path: message`.
fn schema_violations(document: &Value) -> Vec<String> {
    VALIDATOR
        .iter_errors(document)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

/// The value at a JSON pointer, which must exist.
fn at<'a>(document: &'a mut Value, pointer: &str) -> &'a mut Value {
    match document.pointer_mut(pointer) {
        Some(value) => value,
        None => panic!("nothing at {pointer}"),
    }
}

/// Removes the member `key` of the object at `pointer`; it must exist.
fn remove(document: &mut Value, pointer: &str, key: &str) {
    let removed = at(document, pointer)
        .as_object_mut()
        .and_then(|object| object.remove(key));
    assert!(removed.is_some(), "no member {key:?} at {pointer}");
}

// ---- the official schema ----

#[test]
fn asyncapi_yaml_is_a_valid_asyncapi_3_document() {
    assert_eq!(ASYNCAPI["asyncapi"], "3.0.0");
    let violations = schema_violations(&ASYNCAPI);
    assert!(
        violations.is_empty(),
        "asyncapi.yaml breaks the AsyncAPI 3.0.0 schema:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_schema_rejects_an_operation_without_its_action() {
    let mut document = ASYNCAPI.clone();
    remove(&mut document, "/operations/getPetById", "action");
    let violations = schema_violations(&document);
    assert!(
        violations
            .iter()
            .any(|violation| violation.starts_with("/operations/getPetById")),
        "not rejected at the operation: {violations:?}"
    );
}

#[test]
fn the_schema_rejects_an_unknown_action_kind_and_a_malformed_channel() {
    let mut document = ASYNCAPI.clone();
    *at(&mut document, "/operations/notifyPetCreated/action") = json!("publish");
    *at(&mut document, "/channels/petstore/address") = json!(42);
    let violations = schema_violations(&document);
    for place in ["/operations/notifyPetCreated", "/channels/petstore"] {
        assert!(
            violations
                .iter()
                .any(|violation| violation.starts_with(place)),
            "nothing reported at {place}: {violations:?}"
        );
    }
}

#[test]
fn the_schema_rejects_an_unknown_top_level_member() {
    let mut document = ASYNCAPI.clone();
    at(&mut document, "")
        .as_object_mut()
        .map(|object| object.insert("operation".to_owned(), json!({})));
    assert!(!schema_violations(&document).is_empty());
}

// ---- the served document ----

#[tokio::test]
async fn the_served_document_is_the_file() {
    let app = spawn_app(|_| {}).await;
    let response = send(app.anonymous.get(app.api("/asyncapi.yaml"))).await;
    assert_eq!(response.status(), 200);
    let content_type = content_type(&response);
    assert!(
        content_type.starts_with("application/yaml"),
        "content type {content_type:?}"
    );
    let served = match response.text().await {
        Ok(text) => text,
        Err(error) => panic!("cannot read the served document: {error}"),
    };
    assert!(
        served == *ASYNCAPI_TEXT,
        "the served document differs from asyncapi.yaml"
    );
    app.shutdown().await;
}

// ---- references ----

/// Every `$ref` of `document` with its JSON pointer.
fn references(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let child_at = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (key.as_str(), child.as_str()) {
                    ("$ref", Some(reference)) => found.push((child_at, reference.to_owned())),
                    _ => references(child, &child_at, found),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                references(item, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// The references of `document` into `openapi.yaml` (`./openapi.yaml#/components/schemas/X`)
/// whose schema `openapi.yaml` does not have, and how many such references there are.
fn dangling_openapi_schemas(document: &Value) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    references(document, "#", &mut found);
    let into_openapi: Vec<(String, String)> = found
        .into_iter()
        .filter(|(_, reference)| reference.starts_with("./openapi.yaml#"))
        .collect();
    let dangling = into_openapi
        .iter()
        .filter(|(_, reference)| {
            let name = reference.strip_prefix("./openapi.yaml#/components/schemas/");
            !name.is_some_and(|name| {
                !name.contains('/') && OPENAPI["components"]["schemas"].get(name).is_some()
            })
        })
        .map(|(at, reference)| format!("{at}: {reference}"))
        .collect();
    (dangling, into_openapi.len())
}

#[test]
fn every_reference_into_openapi_yaml_names_an_existing_schema() {
    let (dangling, count) = dangling_openapi_schemas(&ASYNCAPI);
    assert!(count >= 20, "only {count} references into openapi.yaml");
    assert!(dangling.is_empty(), "dangling: {dangling:?}");
}

#[test]
fn a_reference_to_a_missing_openapi_schema_is_found() {
    let mut document = ASYNCAPI.clone();
    let payload = "/components/messages/petCreated/payload/allOf/1/properties/payload";
    *at(&mut document, payload) = json!({ "$ref": "./openapi.yaml#/components/schemas/Animal" });
    let (dangling, _) = dangling_openapi_schemas(&document);
    assert_eq!(
        dangling,
        [format!(
            "#{}/$ref: ./openapi.yaml#/components/schemas/Animal",
            payload
        )]
    );
}

#[test]
fn every_local_reference_resolves() {
    let mut found = Vec::new();
    references(&ASYNCAPI, "#", &mut found);
    let local: Vec<&(String, String)> = found
        .iter()
        .filter(|(_, reference)| reference.starts_with('#'))
        .collect();
    assert!(local.len() > 100, "only {} local references", local.len());
    for (at, reference) in local {
        assert!(
            ASYNCAPI.pointer(&reference[1..]).is_some(),
            "{at}: {reference} resolves to nothing"
        );
    }
}

// ---- the document and the server agree ----

/// The names of the operations of `openapi.yaml`.
fn openapi_operation_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for item in OPENAPI["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in item.as_object().into_iter().flat_map(|i| i.values()) {
            if let Some(id) = operation["operationId"].as_str() {
                ids.insert(id.to_owned());
            }
        }
    }
    ids
}

/// The `receive` operations (actions) of an AsyncAPI document.
fn actions(document: &Value) -> BTreeSet<String> {
    document["operations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, operation)| operation["action"] == "receive")
        .map(|(name, _)| name.clone())
        .collect()
}

/// The operationIds of `openapi.yaml` that `document` has no action for.
fn operations_without_action(document: &Value) -> Vec<String> {
    let actions = actions(document);
    openapi_operation_ids()
        .into_iter()
        .filter(|id| !actions.contains(id))
        .collect()
}

#[test]
fn every_rest_operation_is_an_action() {
    assert_eq!(openapi_operation_ids().len(), 23);
    assert_eq!(operations_without_action(&ASYNCAPI), Vec::<String>::new());
}

/// Removing an operation leaves a valid AsyncAPI document, which is why the schema alone is not
/// enough: the cross-check against `openapi.yaml` (here, and in the generator at build time)
/// catches it.
#[test]
fn a_document_missing_an_operation_is_rejected_by_the_cross_check() {
    let mut document = ASYNCAPI.clone();
    remove(&mut document, "/operations", "placeOrder");
    assert_eq!(schema_violations(&document), Vec::<String>::new());
    assert_eq!(operations_without_action(&document), ["placeOrder"]);
}

#[test]
fn the_server_was_built_with_the_actions_of_the_document() {
    let built: BTreeSet<String> = Action::ALL
        .iter()
        .map(|action| action.as_str().to_owned())
        .collect();
    assert_eq!(built, actions(&ASYNCAPI));
    for action in Action::ALL {
        let declared = &ASYNCAPI["operations"][action.as_str()];
        let control = declared["x-control"] == true;
        assert_eq!(
            action.operation().is_none(),
            control,
            "{action}: control action in the document and in the build"
        );
        assert_eq!(
            declared["x-priority"].as_str(),
            Some(action.priority().as_str()),
            "{action}: priority"
        );
    }
}

#[test]
fn the_server_was_built_with_the_events_of_the_document() {
    let documented: BTreeSet<String> = ASYNCAPI["operations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, operation)| operation["action"] == "send")
        .map(|(_, operation)| {
            let reference = operation["messages"][0]["$ref"]
                .as_str()
                .unwrap_or_default();
            let message = reference
                .strip_prefix('#')
                .and_then(|pointer| ASYNCAPI.pointer(pointer))
                .and_then(|message| message.get("$ref"))
                .and_then(Value::as_str)
                .and_then(|pointer| pointer.strip_prefix('#'))
                .and_then(|pointer| ASYNCAPI.pointer(pointer));
            match message.and_then(|message| message["name"].as_str()) {
                Some(name) => name.to_owned(),
                None => panic!("event message {reference} has no name"),
            }
        })
        .collect();
    let built: BTreeSet<String> = Event::ALL
        .iter()
        .map(|event| event.as_str().to_owned())
        .collect();
    assert_eq!(built.len(), Event::ALL.len(), "an event is built twice");
    assert_eq!(built, documented);
}
