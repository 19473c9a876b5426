//! What documentation UIs send must work: for every operation, the request Swagger UI's "Try it
//! out" builds from `openapi.yaml` — each parameter's example, a body sampled from the schema
//! (examples first, then minimums, first enum values, `"string"`) — sent to a server with the
//! demo data by the demo administrator. None may be refused as malformed or invalid (400, 415,
//! 422): the spec's examples are requests the server accepts, and where an example names a
//! record that is not there (yet, or any more), the answer is the documented 404 or 409.
//!
//! The operations run in spec order, as a user clicking down the page would, with `logoutUser`
//! (which ends the administrator's session) last.

use std::collections::BTreeMap;

use petstore_api::operations::API_BASE;
use petstore_testkit::app::{PNG, TestApp, bearer, body_json, spawn_app};
use reqwest::Method;
use serde_json::{Map, Value, json};

const SPEC: &str = include_str!("../../openapi.yaml");

const METHODS: [&str; 4] = ["get", "put", "post", "delete"];

/// The spec as JSON values.
fn spec() -> Value {
    serde_saphyr::from_str(SPEC).expect("openapi.yaml parses")
}

/// Follows `$ref`s within the document.
fn deref<'v>(document: &'v Value, mut value: &'v Value) -> &'v Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        value = reference
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer))
            .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
    }
    value
}

/// The value Swagger UI fills in for `schema` when nothing more specific is given: its example,
/// else a sample built from its type (objects property by property, leaving read-only ones out;
/// arrays of one item; an enum's first value; a number's minimum; formats' canonical samples;
/// `"string"`).
fn sample(document: &Value, schema: &Value) -> Value {
    let schema = deref(document, schema);
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut object = Map::new();
            for (name, property) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let property_schema = deref(document, property);
                if property_schema.get("readOnly") == Some(&Value::Bool(true)) {
                    continue;
                }
                object.insert(name.clone(), sample(document, property));
            }
            Value::Object(object)
        }
        Some("array") => Value::Array(vec![sample(document, &schema["items"])]),
        Some("integer" | "number") => schema.get("minimum").cloned().unwrap_or(json!(0)),
        Some("boolean") => json!(true),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!(chrono::Utc::now().to_rfc3339()),
            Some("uuid") => json!("3fa85f64-5717-4562-b3fc-2c963f66afa6"),
            Some("email") => json!("user@example.com"),
            _ => json!("string"),
        },
    }
}

/// A parameter's value as it travels in a URL or a header.
fn url_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One operation's "Try it out" request.
struct TryItOut {
    operation_id: String,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    documented: Vec<String>,
}

enum Body {
    Json(Value),
    Binary(&'static [u8]),
}

/// Every operation's request, in spec order.
fn requests(document: &Value, base_url: &str) -> Vec<TryItOut> {
    let mut requests = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let operation_id = operation["operationId"].as_str().expect("operationId");
            let mut url_path = path.clone();
            let mut query = Vec::new();
            let mut headers = Vec::new();
            for parameter in operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let parameter = deref(document, parameter);
                let name = parameter["name"].as_str().expect("a parameter name");
                let value = parameter
                    .get("example")
                    .cloned()
                    .unwrap_or_else(|| sample(document, &parameter["schema"]));
                match parameter["in"].as_str() {
                    Some("path") => {
                        url_path = url_path.replace(&format!("{{{name}}}"), &url_text(&value));
                    }
                    Some("query") => match &value {
                        Value::Array(values) => {
                            query.extend(values.iter().map(|value| (name, url_text(value))));
                        }
                        value => query.push((name, url_text(value))),
                    },
                    Some("header") => headers.push((name.to_owned(), url_text(&value))),
                    other => panic!("{operation_id}: parameters in {other:?} are not sampled here"),
                }
            }
            let mut url =
                reqwest::Url::parse(&format!("{base_url}{API_BASE}{url_path}")).expect("a URL");
            if !query.is_empty() {
                url.query_pairs_mut()
                    .extend_pairs(query.iter().map(|(name, value)| (*name, value.as_str())));
            }
            let content = operation
                .get("requestBody")
                .map(|body| &deref(document, body)["content"]);
            let body = content.map(|content| {
                if let Some(media) = content.get("application/json") {
                    Body::Json(
                        media
                            .get("example")
                            .cloned()
                            .unwrap_or_else(|| sample(document, &media["schema"])),
                    )
                } else {
                    // A file to upload: Swagger UI asks for one; any image will do.
                    Body::Binary(PNG)
                }
            });
            let documented = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .cloned()
                .collect();
            requests.push(TryItOut {
                operation_id: operation_id.to_owned(),
                method: method.to_uppercase().parse().expect("an HTTP method"),
                url: url.to_string(),
                headers,
                body,
                documented,
            });
        }
    }
    // Logging out ends the session whose token the others use.
    requests.sort_by_key(|request| request.operation_id == "logoutUser");
    requests
}

async fn admin_token(app: &TestApp) -> String {
    let response = app
        .anonymous
        .post(app.api("/auth/token"))
        .json(&json!({"username": "admin", "password": "admin-password"}))
        .send()
        .await
        .expect("createToken answers");
    body_json(response).await["accessToken"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

#[tokio::test]
async fn every_request_swagger_ui_fills_in_is_accepted_or_names_a_missing_record() {
    let app = spawn_app(|config| config.no_demo_data = false).await;
    let token = admin_token(&app).await;
    let document = spec();
    let mut answers = BTreeMap::new();
    for request in requests(&document, &app.base_url) {
        let mut builder = bearer(
            app.anonymous.request(request.method.clone(), &request.url),
            &token,
        );
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.body {
            Some(Body::Json(body)) => builder.json(body),
            Some(Body::Binary(bytes)) => builder
                .header("content-type", "application/octet-stream")
                .body(*bytes),
            None => builder,
        };
        let response = builder.send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(
            !matches!(status, 400 | 415 | 422) && status < 500,
            "{} {} answered {status} to what Swagger UI fills in: {text}",
            request.method,
            request.url
        );
        assert!(
            request.documented.contains(&status.to_string()),
            "{}: {status} is not documented",
            request.operation_id
        );
        answers.insert(request.operation_id, status);
    }
    assert_eq!(answers.len(), 23, "every operation was tried: {answers:?}");
    // On a fresh server with the demo data, the examples make a working session: each write
    // succeeds and the reads find what the writes left.
    for (operation_id, expected) in [
        ("addPet", 200),
        ("updatePet", 404), // runs before addPet: pet 10 is not there yet
        ("getPetById", 200),
        ("findPetsByStatus", 200),
        ("findPetsByTags", 200),
        ("updatePetWithForm", 200),
        ("deletePet", 200),
        ("uploadFile", 200),
        ("getPetImage", 404), // the image id is made up
        ("getInventory", 200),
        ("placeOrder", 200),
        ("getOrderById", 200),
        ("updateOrder", 200),
        ("deleteOrder", 200),
        ("createUser", 200),
        ("createUsersWithListInput", 409), // the same user, just created
        ("loginUser", 200),
        ("getUserByName", 200),
        ("updateUser", 200),
        ("deleteUser", 200),
        ("createToken", 200),
        ("refreshToken", 401), // the example token was never issued
        ("logoutUser", 200),
    ] {
        assert_eq!(
            answers.get(operation_id),
            Some(&expected),
            "{operation_id}: {answers:?}"
        );
    }
    app.shutdown().await;
}

#[test]
fn samples_follow_swagger_ui() {
    let document = json!({
        "components": {"schemas": {
            "Tag": {"type": "object", "properties": {
                "id": {"type": "integer", "minimum": 0},
                "name": {"type": "string"},
            }},
            "Pet": {"type": "object", "properties": {
                "id": {"type": "integer", "readOnly": true},
                "status": {"type": "string", "enum": ["available", "sold"]},
                "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                "name": {"type": "string", "example": "doggie"},
                "born": {"type": "string", "format": "uuid"},
            }},
        }}
    });
    assert_eq!(
        sample(&document, &json!({"$ref": "#/components/schemas/Pet"})),
        json!({
            "status": "available",
            "tags": [{"id": 0, "name": "string"}],
            "name": "doggie",
            "born": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        })
    );
}
