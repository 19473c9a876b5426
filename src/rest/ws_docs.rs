//! The WebSocket API's documentation page, `/api/v3/ws/docs/`: `asyncapi.yaml` rendered by the
//! AsyncAPI React component's standalone bundle.
//!
//! The bundle is vendored (`assets/asyncapi-react/`, pinned, with its licence, version and
//! SHA-256 sums; `scripts/vendor-asyncapi-react` re-fetches it from npm) and embedded in the
//! binary like Swagger UI, so the page fetches nothing from elsewhere at run time and builds
//! need no network.
//!
//! The page reads `asyncapi.json`: `asyncapi.yaml` with the `openapi.yaml` schemas it
//! references copied into its own `components/schemas` and the references pointed at them, built
//! once at start-up ([`bundle`]). A browser could not follow the relative file references
//! (`./openapi.yaml#/…`) by itself.

use bytes::Bytes;
use poem::{
    Endpoint, EndpointExt, Request, Response, Route, get, handler, http::StatusCode, web::Data,
};
use serde_json::{Map, Value};

/// The standalone bundle (React and the AsyncAPI parser included).
pub const BUNDLE_JS: &[u8] = include_bytes!("../../assets/asyncapi-react/asyncapi-standalone.js");
/// The component's default style sheet.
pub const BUNDLE_CSS: &[u8] = include_bytes!("../../assets/asyncapi-react/default.min.css");
/// The SHA-256 sums recorded when the bundle was vendored (`sha256sum` format).
pub const BUNDLE_SHA256SUMS: &str = include_str!("../../assets/asyncapi-react/SHA256SUMS");
/// The page that loads the bundle and renders `asyncapi.json`.
const INDEX_HTML: &str = include_str!("../../assets/ws-docs.html");

/// How `asyncapi.yaml` points into `openapi.yaml`.
const OPENAPI_REF_PREFIX: &str = "./openapi.yaml#";

/// The page's routes, to nest under `/api/v3/ws/docs`; `document` is [`bundle`]'s output.
pub fn endpoint(document: Bytes) -> impl Endpoint + 'static {
    Route::new()
        .at("/", get(index))
        .at("/index.html", get(index))
        .at("/asyncapi-standalone.js", get(bundle_js))
        .at("/default.min.css", get(bundle_css))
        .at(
            "/asyncapi.json",
            get(asyncapi_json.data(Document(document))),
        )
}

/// `asyncapi.json`'s bytes, as the endpoint's data.
#[derive(Clone)]
struct Document(Bytes);

/// The page; without its trailing slash, a redirect to it, so the page's relative links resolve
/// below it.
#[handler]
fn index(request: &Request) -> Response {
    let path = request.original_uri().path();
    if !path.ends_with('/') && !path.ends_with(".html") {
        return Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header("location", format!("{path}/"))
            .finish();
    }
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

#[handler]
fn bundle_js() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header("cache-control", "public, max-age=3600")
        .body(BUNDLE_JS)
}

#[handler]
fn bundle_css() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header("cache-control", "public, max-age=3600")
        .body(BUNDLE_CSS)
}

#[handler]
fn asyncapi_json(Data(document): Data<&Document>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(document.0.clone())
}

/// `asyncapi` made self-contained: every schema of `openapi`'s `components/schemas` copied into
/// its own (the documents share no schema name; a clash is an error), and every
/// `./openapi.yaml#/…` reference rewritten to `#/…`.
///
/// # Errors
/// A document without `components/schemas`, or a schema name both documents define.
pub fn bundle(asyncapi: &Value, openapi: &Value) -> Result<Value, String> {
    let mut document = asyncapi.clone();
    rewrite_refs(&mut document);
    let imported = openapi
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or("openapi.yaml has no components/schemas")?;
    let schemas = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .ok_or("asyncapi.yaml has no components/schemas")?;
    for (name, schema) in imported {
        if schemas.contains_key(name) {
            return Err(format!(
                "schema {name} is defined in both asyncapi.yaml and openapi.yaml"
            ));
        }
        schemas.insert(name.clone(), schema.clone());
    }
    Ok(document)
}

/// Points every `$ref` into `openapi.yaml` at the same path in the bundled document.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            rewrite_ref(map);
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn rewrite_ref(map: &mut Map<String, Value>) {
    if let Some(Value::String(reference)) = map.get_mut("$ref")
        && let Some(pointer) = reference.strip_prefix(OPENAPI_REF_PREFIX)
    {
        *reference = format!("#{pointer}");
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest::{SHA256, digest};
    use serde_json::json;

    use super::{BUNDLE_CSS, BUNDLE_JS, BUNDLE_SHA256SUMS, bundle};

    fn hex(bytes: &[u8]) -> String {
        digest(&SHA256, bytes)
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    #[test]
    fn the_embedded_bundle_is_the_vendored_one_byte_for_byte() {
        for (name, bytes) in [
            ("asyncapi-standalone.js", BUNDLE_JS),
            ("default.min.css", BUNDLE_CSS),
        ] {
            let recorded = BUNDLE_SHA256SUMS
                .lines()
                .find_map(|line| line.strip_suffix(name)?.split_whitespace().next())
                .unwrap_or_else(|| panic!("assets/asyncapi-react/SHA256SUMS lists no {name}"));
            assert_eq!(
                hex(bytes),
                recorded,
                "assets/asyncapi-react/{name} differs from the vendored release; \
                 re-fetch it with scripts/vendor-asyncapi-react"
            );
        }
    }

    #[test]
    fn bundling_copies_the_openapi_schemas_and_points_references_at_them() {
        let asyncapi = json!({
            "components": {
                "messages": {"m": {"payload": {"$ref": "./openapi.yaml#/components/schemas/Pet"}}},
                "schemas": {"Local": {"$ref": "#/components/schemas/Pet"}}
            }
        });
        let openapi = json!({"components": {"schemas": {"Pet": {"type": "object"}}}});
        let bundled = bundle(&asyncapi, &openapi).expect("bundles");
        assert_eq!(
            bundled.pointer("/components/messages/m/payload/$ref"),
            Some(&json!("#/components/schemas/Pet"))
        );
        assert_eq!(
            bundled.pointer("/components/schemas/Pet"),
            Some(&json!({"type": "object"}))
        );
    }

    #[test]
    fn a_schema_name_in_both_documents_is_refused() {
        let asyncapi = json!({"components": {"schemas": {"Pet": {}}}});
        let openapi = json!({"components": {"schemas": {"Pet": {}}}});
        let error = bundle(&asyncapi, &openapi).expect_err("clash");
        assert!(error.contains("Pet"), "{error}");
    }
}
