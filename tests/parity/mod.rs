//! The parity table: every operation of `openapi.yaml` with valid and invalid inputs, run over
//! REST and over another transport that carries operations as JSON payloads (WebSocket, MCP),
//! whose answers must match REST's. Included by each transport's parity test
//! (`tests/ws/parity.rs`, `tests/mcp/parity.rs`), which says how to run a case over its
//! transport ([`Transport`]).
//!
//! One table lists cases for every operation (valid input, and invalid input of each kind: wrong
//! types, broken constraints, a missing body, unknown ids, a caller without the permission or
//! not owning the resource). Each case runs on two servers prepared identically, over REST on
//! one and over the other transport on the other, so server-assigned ids line up, and the
//! results must match:
//!
//! - the status: REST's HTTP status; over the other transport the operation's 2xx for a
//!   success, the status its error carries otherwise;
//! - the error code (REST's `type`) and, for validation errors, the field errors (REST's
//!   `errors`);
//! - a success's body: the JSON REST answers is the other transport's success payload (`null`
//!   when REST answers no body; `{contentType, data}` for an image), after masking what is random
//!   per server (tokens, token expiry times, image ids).
//!
//! REST parameters travel in the payload by name (a repeated query parameter as an array), the
//! JSON body as `body`, a binary body base64-encoded as `body`. Each case also says what status
//! it expects, so that a case both transports get wrong in the same way (a typo in an id, say)
//! does not pass as parity.
//!
//! Differences the table turned up are kept in cases of their own
//! ([`missing_body_without_credentials`], [`upload_without_a_file`]), so that while one stands it
//! does not hide a regression elsewhere in the table.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    sync::LazyLock,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use petstore_api::ws::Action;
use petstore_testkit::app::*;
use petstore_ws::{
    auth::tokens::generate_ephemeral_key_pem,
    config::{Config, Secret},
};
use regex::Regex;
use reqwest::{Method, Url, header};
use serde_json::{Value, json};

/// The administrator account of every test server.
const ADMIN_USER: &str = "parity-admin";
const ADMIN_PASSWORD: &str = "parity-admin-password";

/// The password of the customers `alice` and `bob`.
const PASSWORD: &str = "correct-horse-battery";

/// Hang guard for one step (a connect, a call); it measures nothing.
const HANG_GUARD: Duration = Duration::from_secs(20);

pub(crate) async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("hung: {what}"),
    }
}

// ---- callers ----

/// Who sends a case's request: the same principal on every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// No credentials.
    Anonymous,
    /// The administrator user, with a bearer token (REST and MCP `Authorization`, WebSocket upgrade
    /// `Authorization`).
    Admin,
    /// The admin service key (the `api_key` header of REST and MCP requests and of the WebSocket
    /// upgrade).
    AdminKey,
    /// The customer `alice`, with a bearer token.
    Alice,
}

use Caller::{Admin, AdminKey, Alice, Anonymous};

// ---- the prepared world ----

/// What two identically prepared servers have in common (ids), and what differs between them
/// (tokens, image ids), which the cases read their inputs from.
#[derive(Debug)]
pub(crate) struct Fixture {
    pub(crate) admin_token: String,
    pub(crate) alice_token: String,
    alice_refresh: String,
    /// Available, category Dogs, tag `friendly`, one uploaded PNG.
    rex: i64,
    /// Pending, tag `lazy`.
    tom: i64,
    /// Sold.
    kit: i64,
    /// Reserved by alice's order.
    bo: i64,
    /// Reserved by bob's order.
    max: i64,
    /// Available, for placing orders.
    zed: i64,
    alice_order: i64,
    bob_order: i64,
    /// The id of rex's image.
    image: String,
}

impl Fixture {
    /// The ids, which must be the same on both servers.
    fn ids(&self) -> [i64; 8] {
        [
            self.rex,
            self.tom,
            self.kit,
            self.bo,
            self.max,
            self.zed,
            self.alice_order,
            self.bob_order,
        ]
    }
}

/// The signing key of every test server: generating an RSA key per server would cost more than
/// the rest of a case.
static SIGNING_KEY: LazyLock<String> = LazyLock::new(|| match generate_ephemeral_key_pem() {
    Ok(pem) => pem,
    Err(error) => panic!("cannot generate the signing key: {error}"),
});

/// A server with the administrator account [`ADMIN_USER`], signing with [`SIGNING_KEY`] (read
/// from a file of its own at start-up, removed right after).
async fn spawn_parity_app() -> TestApp {
    let key_file =
        std::env::temp_dir().join(format!("petstore-ws-parity-{}.pem", uuid::Uuid::new_v4()));
    if let Err(error) = std::fs::write(&key_file, SIGNING_KEY.as_bytes()) {
        panic!("cannot write {}: {error}", key_file.display());
    }
    let configured = key_file.clone();
    let app = spawn_app(move |config| {
        config.jwt_private_key = Some(configured);
        admin_config(config);
    })
    .await;
    if let Err(error) = std::fs::remove_file(&key_file) {
        panic!("cannot remove {}: {error}", key_file.display());
    }
    app
}

fn admin_config(config: &mut Config) {
    config.admin_user = Some(ADMIN_USER.to_owned());
    config.admin_password = Some(match ADMIN_PASSWORD.parse::<Secret>() {
        Ok(secret) => secret,
        Err(never) => match never {},
    });
    config.ws_messages_per_minute = std::num::NonZeroU32::MAX;
    config.ws_message_burst = std::num::NonZeroU32::MAX;
}

/// Builds the same world on `app` through REST: two customers, six pets, an image, an order of
/// each customer, and a session for the administrator and each customer.
async fn prepare(app: &TestApp) -> Fixture {
    app.create_user("alice", PASSWORD).await;
    app.create_user("bob", PASSWORD).await;
    let (admin_token, _) = app.create_token(ADMIN_USER, ADMIN_PASSWORD).await;
    let (alice_token, alice_refresh) = app.create_token("alice", PASSWORD).await;
    let (bob_token, _) = app.create_token("bob", PASSWORD).await;
    let rex = id_of(
        &app.add_pet(json!({
            "name": "rex",
            "category": { "id": 1, "name": "Dogs" },
            "photoUrls": [],
            "tags": [{ "id": 1, "name": "friendly" }],
            "status": "available"
        }))
        .await,
    );
    let tom = id_of(
        &app.add_pet(json!({
            "name": "tom", "photoUrls": ["https://example.com/tom.png"],
            "tags": [{ "id": 2, "name": "lazy" }], "status": "pending"
        }))
        .await,
    );
    let kit = id_of(
        &app.add_pet(json!({ "name": "kit", "photoUrls": [], "status": "sold" }))
            .await,
    );
    let bo = app.add_available_pet("bo").await;
    let max = app.add_available_pet("max").await;
    let zed = app.add_available_pet("zed").await;
    let uploaded = ok_json(app.upload(rex, PNG).await).await;
    let image = match uploaded["message"]
        .as_str()
        .and_then(|url| url.rsplit_once("/image/"))
    {
        Some((_, image)) => image.to_owned(),
        None => panic!("uploadFile answered no image URL: {uploaded}"),
    };
    let order_of = |token: &str, pet: i64| {
        let request = bearer(app.anonymous.post(app.api("/store/order")), token)
            .json(&json!({ "petId": pet, "quantity": 1 }));
        async move { id_of(&ok_json(send(request).await).await) }
    };
    let alice_order = order_of(&alice_token, bo).await;
    let bob_order = order_of(&bob_token, max).await;
    Fixture {
        admin_token,
        alice_token,
        alice_refresh,
        rex,
        tom,
        kit,
        bo,
        max,
        zed,
        alice_order,
        bob_order,
        image,
    }
}

// ---- inputs ----

/// One parameter: its value in a payload, and its REST text (one per repetition for arrays).
#[derive(Debug, Clone)]
pub(crate) struct Param {
    name: &'static str,
    ws: Value,
    rest: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) enum Body {
    /// No body: REST sends an empty body under the operation's content type (without one, the
    /// content type is what REST would refuse); the payload has no `body`.
    #[default]
    Missing,
    Json(Value),
    Binary(Vec<u8>),
}

/// The input of a case, transport-neutral.
#[derive(Debug, Clone, Default)]
pub(crate) struct Input {
    params: Vec<Param>,
    body: Body,
}

/// The REST text of a parameter value.
fn rest_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Input {
    fn new() -> Self {
        Self::default()
    }

    /// A parameter with the same value on both transports (an array is a repeated query
    /// parameter over REST).
    fn param(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        let ws = value.into();
        let rest = match &ws {
            Value::Array(items) => items.iter().map(rest_text).collect(),
            single => vec![rest_text(single)],
        };
        self.params.push(Param { name, ws, rest });
        self
    }

    /// A parameter whose REST text is given (for values JSON writes differently).
    fn param_as(mut self, name: &'static str, ws: Value, rest: &str) -> Self {
        self.params.push(Param {
            name,
            ws,
            rest: vec![rest.to_owned()],
        });
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    fn binary(mut self, bytes: &[u8]) -> Self {
        self.body = Body::Binary(bytes.to_vec());
        self
    }

    /// The request payload (a WebSocket request's, an MCP tool call's arguments).
    pub(crate) fn payload(&self) -> Value {
        let mut payload = serde_json::Map::new();
        for param in &self.params {
            payload.insert(param.name.to_owned(), param.ws.clone());
        }
        match &self.body {
            Body::Missing => {}
            Body::Json(body) => {
                payload.insert("body".to_owned(), body.clone());
            }
            Body::Binary(bytes) => {
                payload.insert("body".to_owned(), json!(BASE64.encode(bytes)));
            }
        }
        Value::Object(payload)
    }
}

// ---- the table ----

pub(crate) struct Case {
    pub(crate) operation: &'static str,
    pub(crate) what: &'static str,
    pub(crate) caller: Caller,
    /// The status both transports must answer with; `None` where only parity is asserted.
    expect: Option<u16>,
    input: fn(&Fixture) -> Input,
}

const fn case(
    operation: &'static str,
    what: &'static str,
    caller: Caller,
    expect: u16,
    input: fn(&Fixture) -> Input,
) -> Case {
    Case {
        operation,
        what,
        caller,
        expect: Some(expect),
        input,
    }
}

/// A case of which only parity is asserted, not a particular status.
const fn parity_case(
    operation: &'static str,
    what: &'static str,
    caller: Caller,
    input: fn(&Fixture) -> Input,
) -> Case {
    Case {
        operation,
        what,
        caller,
        expect: None,
        input,
    }
}

/// A valid pet body.
fn pet(name: &str) -> Value {
    json!({ "name": name, "photoUrls": [] })
}

/// A valid user body.
fn user(username: &str) -> Value {
    json!({
        "username": username,
        "password": PASSWORD,
        "firstName": "Carol",
        "email": format!("{username}@example.com"),
        "phone": "555-0100",
        "userStatus": 1
    })
}

/// Every case, by operation.
fn cases() -> Vec<Case> {
    vec![
        // ---- updatePet ----
        case("updatePet", "an existing pet", Admin, 200, |f| {
            Input::new().json(json!({
                "id": f.rex, "name": "rex the second", "photoUrls": ["https://example.com/r.png"],
                "tags": [{ "name": "calm" }], "status": "sold"
            }))
        }),
        case("updatePet", "as the service key", AdminKey, 200, |f| {
            Input::new().json(json!({ "id": f.tom, "name": "tom", "photoUrls": [] }))
        }),
        case("updatePet", "an unknown id", Admin, 404, |_| {
            Input::new().json(json!({ "id": 999, "name": "ghost", "photoUrls": [] }))
        }),
        case("updatePet", "no id", Admin, 422, |_| {
            Input::new().json(pet("anon"))
        }),
        case("updatePet", "an empty name", Admin, 422, |f| {
            Input::new().json(json!({ "id": f.rex, "name": "", "photoUrls": [] }))
        }),
        case("updatePet", "a name of the wrong type", Admin, 422, |f| {
            Input::new().json(json!({ "id": f.rex, "name": 5, "photoUrls": [] }))
        }),
        case("updatePet", "an unknown status", Admin, 422, |f| {
            Input::new()
                .json(json!({ "id": f.rex, "name": "rex", "photoUrls": [], "status": "lost" }))
        }),
        case("updatePet", "no body", Admin, 400, |_| Input::new()),
        case("updatePet", "a customer", Alice, 403, |f| {
            Input::new().json(json!({ "id": f.rex, "name": "mine", "photoUrls": [] }))
        }),
        case("updatePet", "no credentials", Anonymous, 401, |f| {
            Input::new().json(json!({ "id": f.rex, "name": "mine", "photoUrls": [] }))
        }),
        // ---- addPet ----
        case("addPet", "a new pet", Admin, 200, |_| {
            Input::new().json(json!({
                "name": "fido", "category": { "id": 1, "name": "Dogs" },
                "photoUrls": ["https://example.com/fido.jpg"], "tags": [{ "id": 3, "name": "young" }]
            }))
        }),
        case("addPet", "as the service key", AdminKey, 200, |_| {
            Input::new().json(json!({ "name": "keyed", "photoUrls": [], "status": "pending" }))
        }),
        case("addPet", "an explicit id", Admin, 200, |_| {
            Input::new().json(json!({ "id": 500, "name": "fixed", "photoUrls": [] }))
        }),
        case("addPet", "a taken id", Admin, 409, |f| {
            Input::new().json(json!({ "id": f.rex, "name": "again", "photoUrls": [] }))
        }),
        case("addPet", "no photoUrls", Admin, 422, |_| {
            Input::new().json(json!({ "name": "bare" }))
        }),
        case("addPet", "a name too long", Admin, 422, |_| {
            Input::new().json(json!({ "name": "n".repeat(101), "photoUrls": [] }))
        }),
        case("addPet", "too many tags and a bad tag", Admin, 422, |_| {
            let tags: Vec<Value> = (0..21)
                .map(|i| json!({ "name": format!("t{i}") }))
                .collect();
            Input::new().json(json!({ "name": "tagged", "photoUrls": [], "tags": tags, "category": { "name": "" } }))
        }),
        case("addPet", "an id of the wrong type", Admin, 422, |_| {
            Input::new().json(json!({ "id": "seven", "name": "x", "photoUrls": [] }))
        }),
        case("addPet", "a body that is an array", Admin, 422, |_| {
            Input::new().json(json!([pet("a")]))
        }),
        case("addPet", "no body", Admin, 400, |_| Input::new()),
        case("addPet", "a customer", Alice, 403, |_| {
            Input::new().json(pet("mine"))
        }),
        case(
            "addPet",
            "a customer with an invalid body",
            Alice,
            403,
            |_| Input::new().json(json!({ "name": "" })),
        ),
        case("addPet", "no credentials", Anonymous, 401, |_| {
            Input::new().json(pet("mine"))
        }),
        // ---- findPetsByStatus ----
        case(
            "findPetsByStatus",
            "no status (available)",
            Anonymous,
            200,
            |_| Input::new(),
        ),
        case("findPetsByStatus", "two statuses", Anonymous, 200, |_| {
            Input::new().param("status", json!(["pending", "sold"]))
        }),
        case(
            "findPetsByStatus",
            "one status, not as an array",
            Admin,
            200,
            |_| Input::new().param("status", "available"),
        ),
        case(
            "findPetsByStatus",
            "an unknown status",
            Anonymous,
            400,
            |_| Input::new().param("status", json!(["lost"])),
        ),
        case(
            "findPetsByStatus",
            "too many statuses",
            Anonymous,
            400,
            |_| Input::new().param("status", json!(["available", "pending", "sold", "sold"])),
        ),
        case("findPetsByStatus", "a number", Anonymous, 400, |_| {
            Input::new().param("status", json!([1]))
        }),
        // ---- findPetsByTags ----
        case("findPetsByTags", "one tag", Anonymous, 200, |_| {
            Input::new().param("tags", json!(["friendly"]))
        }),
        case("findPetsByTags", "two tags", Alice, 200, |_| {
            Input::new().param("tags", json!(["friendly", "lazy", "none"]))
        }),
        case("findPetsByTags", "no tags", Anonymous, 200, |_| {
            Input::new()
        }),
        case("findPetsByTags", "too many tags", Anonymous, 400, |_| {
            let tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
            Input::new().param("tags", json!(tags))
        }),
        // ---- getPetById ----
        case("getPetById", "an existing pet", Anonymous, 200, |f| {
            Input::new().param("petId", f.rex)
        }),
        case(
            "getPetById",
            "an existing pet, authenticated",
            Alice,
            200,
            |f| Input::new().param("petId", f.tom),
        ),
        case("getPetById", "an unknown pet", Anonymous, 404, |_| {
            Input::new().param("petId", 999)
        }),
        case("getPetById", "id 0", Anonymous, 400, |_| {
            Input::new().param("petId", 0)
        }),
        case("getPetById", "a negative id", Anonymous, 400, |_| {
            Input::new().param("petId", -3)
        }),
        case("getPetById", "a word", Anonymous, 400, |_| {
            Input::new().param("petId", "abc")
        }),
        case("getPetById", "a fraction", Anonymous, 400, |_| {
            Input::new().param("petId", 1.5)
        }),
        case("getPetById", "past 64 bits", Anonymous, 400, |_| {
            Input::new().param_as("petId", json!(1e20), "100000000000000000000")
        }),
        // ---- updatePetWithForm ----
        case("updatePetWithForm", "name and status", Admin, 200, |f| {
            Input::new()
                .param("petId", f.rex)
                .param("name", "rexie")
                .param("status", "pending")
        }),
        case("updatePetWithForm", "the name only", AdminKey, 200, |f| {
            Input::new().param("petId", f.kit).param("name", "kitty")
        }),
        case("updatePetWithForm", "nothing to change", Admin, 200, |f| {
            Input::new().param("petId", f.tom)
        }),
        case("updatePetWithForm", "an unknown pet", Admin, 404, |_| {
            Input::new().param("petId", 999).param("name", "x")
        }),
        case("updatePetWithForm", "an unknown status", Admin, 400, |f| {
            Input::new().param("petId", f.rex).param("status", "lost")
        }),
        case("updatePetWithForm", "an empty name", Admin, 400, |f| {
            Input::new().param("petId", f.rex).param("name", "")
        }),
        case("updatePetWithForm", "a name too long", Admin, 400, |f| {
            Input::new()
                .param("petId", f.rex)
                .param("name", "n".repeat(101))
        }),
        case("updatePetWithForm", "a customer", Alice, 403, |f| {
            Input::new().param("petId", f.rex).param("name", "mine")
        }),
        case("updatePetWithForm", "no credentials", Anonymous, 401, |f| {
            Input::new().param("petId", f.rex).param("name", "mine")
        }),
        case(
            "updatePetWithForm",
            "no credentials and a bad status",
            Anonymous,
            400,
            |f| Input::new().param("petId", f.rex).param("status", "lost"),
        ),
        // ---- deletePet ----
        case("deletePet", "an existing pet", Admin, 200, |f| {
            Input::new().param("petId", f.kit)
        }),
        case(
            "deletePet",
            "a pet with an image, as the service key",
            AdminKey,
            200,
            |f| Input::new().param("petId", f.rex),
        ),
        case("deletePet", "an unknown pet", Admin, 404, |_| {
            Input::new().param("petId", 999)
        }),
        case("deletePet", "a word", Admin, 400, |_| {
            Input::new().param("petId", "x")
        }),
        case("deletePet", "a customer", Alice, 403, |f| {
            Input::new().param("petId", f.kit)
        }),
        case("deletePet", "no credentials", Anonymous, 401, |f| {
            Input::new().param("petId", f.kit)
        }),
        case(
            "deletePet",
            "no credentials and a bad id",
            Anonymous,
            400,
            |_| Input::new().param("petId", 0),
        ),
        // ---- uploadFile ----
        case("uploadFile", "a PNG with metadata", Admin, 200, |f| {
            Input::new()
                .param("petId", f.tom)
                .param("additionalMetadata", "front view")
                .binary(PNG)
        }),
        case("uploadFile", "a JPEG", AdminKey, 200, |f| {
            Input::new().param("petId", f.zed).binary(JPEG)
        }),
        case("uploadFile", "a GIF", Admin, 200, |f| {
            Input::new().param("petId", f.zed).binary(GIF)
        }),
        case("uploadFile", "an unknown pet", Admin, 404, |_| {
            Input::new().param("petId", 999).binary(PNG)
        }),
        case("uploadFile", "not an image", Admin, 415, |f| {
            Input::new().param("petId", f.tom).binary(b"hello, world")
        }),
        case("uploadFile", "an empty file", Admin, 415, |f| {
            Input::new().param("petId", f.tom).binary(b"")
        }),
        case("uploadFile", "metadata too long", Admin, 400, |f| {
            Input::new()
                .param("petId", f.tom)
                .param("additionalMetadata", "m".repeat(1001))
                .binary(PNG)
        }),
        case("uploadFile", "a customer", Alice, 403, |f| {
            Input::new().param("petId", f.tom).binary(PNG)
        }),
        case("uploadFile", "no credentials", Anonymous, 401, |f| {
            Input::new().param("petId", f.tom).binary(WEBP)
        }),
        // ---- getPetImage ----
        case("getPetImage", "the uploaded image", Anonymous, 200, |f| {
            Input::new()
                .param("petId", f.rex)
                .param("imageId", f.image.clone())
        }),
        case(
            "getPetImage",
            "the image under another pet",
            Anonymous,
            404,
            |f| {
                Input::new()
                    .param("petId", f.tom)
                    .param("imageId", f.image.clone())
            },
        ),
        case("getPetImage", "an unknown image", Admin, 404, |f| {
            Input::new()
                .param("petId", f.rex)
                .param("imageId", "00000000-0000-4000-8000-000000000000")
        }),
        case(
            "getPetImage",
            "an image id that is no UUID",
            Anonymous,
            400,
            |f| {
                Input::new()
                    .param("petId", f.rex)
                    .param("imageId", "front.png")
            },
        ),
        case("getPetImage", "a bad pet id", Anonymous, 400, |f| {
            Input::new()
                .param("petId", 0)
                .param("imageId", f.image.clone())
        }),
        // ---- getInventory ----
        case("getInventory", "the administrator", Admin, 200, |_| {
            Input::new()
        }),
        case("getInventory", "the service key", AdminKey, 200, |_| {
            Input::new()
        }),
        case("getInventory", "a customer", Alice, 403, |_| Input::new()),
        case("getInventory", "no credentials", Anonymous, 401, |_| {
            Input::new()
        }),
        // ---- placeOrder ----
        case("placeOrder", "an available pet", Admin, 200, |f| {
            Input::new()
                .json(json!({ "petId": f.zed, "quantity": 2, "shipDate": "2030-01-02T03:04:05Z" }))
        }),
        case("placeOrder", "a customer's order", Alice, 200, |f| {
            Input::new().json(json!({ "petId": f.zed, "quantity": 1 }))
        }),
        case("placeOrder", "delivered at once", AdminKey, 200, |f| {
            Input::new().json(json!({ "petId": f.zed, "status": "delivered", "complete": true }))
        }),
        case(
            "placeOrder",
            "a pet that is not available",
            Alice,
            409,
            |f| Input::new().json(json!({ "petId": f.tom, "quantity": 1 })),
        ),
        case("placeOrder", "an unknown pet", Admin, 404, |_| {
            Input::new().json(json!({ "petId": 999, "quantity": 1 }))
        }),
        case("placeOrder", "quantity 0", Admin, 422, |f| {
            Input::new().json(json!({ "petId": f.zed, "quantity": 0 }))
        }),
        case("placeOrder", "no petId", Alice, 422, |_| {
            Input::new().json(json!({ "quantity": 1 }))
        }),
        case(
            "placeOrder",
            "an unknown status and a bad date",
            Admin,
            422,
            |f| {
                Input::new()
                    .json(json!({ "petId": f.zed, "status": "lost", "shipDate": "tomorrow" }))
            },
        ),
        case("placeOrder", "no body", Admin, 400, |_| Input::new()),
        case("placeOrder", "no credentials", Anonymous, 401, |f| {
            Input::new().json(json!({ "petId": f.zed }))
        }),
        // ---- getOrderById ----
        case(
            "getOrderById",
            "any order, as the administrator",
            Admin,
            200,
            |f| Input::new().param("orderId", f.bob_order),
        ),
        case(
            "getOrderById",
            "any order, as the service key",
            AdminKey,
            200,
            |f| Input::new().param("orderId", f.alice_order),
        ),
        case(
            "getOrderById",
            "the customer's own order",
            Alice,
            200,
            |f| Input::new().param("orderId", f.alice_order),
        ),
        case("getOrderById", "someone else's order", Alice, 403, |f| {
            Input::new().param("orderId", f.bob_order)
        }),
        case("getOrderById", "an unknown order", Admin, 404, |_| {
            Input::new().param("orderId", 999)
        }),
        case("getOrderById", "a word", Alice, 400, |_| {
            Input::new().param("orderId", "first")
        }),
        case("getOrderById", "no credentials", Anonymous, 401, |f| {
            Input::new().param("orderId", f.alice_order)
        }),
        // ---- updateOrder ----
        case("updateOrder", "approve", Admin, 200, |f| {
            Input::new()
                .param("orderId", f.alice_order)
                .json(json!({ "petId": f.bo, "status": "approved" }))
        }),
        case("updateOrder", "deliver", AdminKey, 200, |f| {
            Input::new()
                .param("orderId", f.bob_order)
                .json(json!({ "id": f.bob_order, "petId": f.max, "status": "delivered", "shipDate": "2030-01-02T03:04:05Z" }))
        }),
        case(
            "updateOrder",
            "an id that differs from the path",
            Admin,
            422,
            |f| {
                Input::new()
                    .param("orderId", f.alice_order)
                    .json(json!({ "id": f.bob_order, "petId": f.bo, "status": "approved" }))
            },
        ),
        case("updateOrder", "an unknown order", Admin, 404, |f| {
            Input::new()
                .param("orderId", 999)
                .json(json!({ "petId": f.bo, "status": "approved" }))
        }),
        case("updateOrder", "an unknown status", Admin, 422, |f| {
            Input::new()
                .param("orderId", f.alice_order)
                .json(json!({ "petId": f.bo, "status": "shipped" }))
        }),
        case("updateOrder", "no body", Admin, 400, |f| {
            Input::new().param("orderId", f.alice_order)
        }),
        case("updateOrder", "a bad order id", Admin, 400, |f| {
            Input::new()
                .param("orderId", "x")
                .json(json!({ "petId": f.bo, "status": "approved" }))
        }),
        case("updateOrder", "a customer, own order", Alice, 403, |f| {
            Input::new()
                .param("orderId", f.alice_order)
                .json(json!({ "petId": f.bo, "status": "approved" }))
        }),
        case("updateOrder", "no credentials", Anonymous, 401, |f| {
            Input::new()
                .param("orderId", f.alice_order)
                .json(json!({ "petId": f.bo, "status": "approved" }))
        }),
        // ---- deleteOrder ----
        case(
            "deleteOrder",
            "any order, as the administrator",
            Admin,
            200,
            |f| Input::new().param("orderId", f.bob_order),
        ),
        case("deleteOrder", "the customer's own order", Alice, 200, |f| {
            Input::new().param("orderId", f.alice_order)
        }),
        case("deleteOrder", "someone else's order", Alice, 403, |f| {
            Input::new().param("orderId", f.bob_order)
        }),
        case("deleteOrder", "an unknown order", AdminKey, 404, |_| {
            Input::new().param("orderId", 999)
        }),
        case("deleteOrder", "a bad order id", Admin, 400, |_| {
            Input::new().param("orderId", -1)
        }),
        case("deleteOrder", "no credentials", Anonymous, 401, |f| {
            Input::new().param("orderId", f.alice_order)
        }),
        // ---- createUser ----
        case("createUser", "a new user", Anonymous, 200, |_| {
            Input::new().json(user("carol"))
        }),
        case(
            "createUser",
            "a new user, by the administrator",
            Admin,
            200,
            |_| Input::new().json(json!({ "username": "dave", "password": PASSWORD })),
        ),
        case("createUser", "a taken name", Anonymous, 409, |_| {
            Input::new().json(user("alice"))
        }),
        case("createUser", "no password", Anonymous, 422, |_| {
            Input::new().json(json!({ "username": "erin" }))
        }),
        case(
            "createUser",
            "a bad name, e-mail and phone",
            Anonymous,
            422,
            |_| {
                Input::new().json(json!({
                "username": "e", "password": PASSWORD, "email": "not-an-address", "phone": "call me"
            }))
            },
        ),
        case("createUser", "a password too short", Anonymous, 422, |_| {
            Input::new().json(json!({ "username": "frank", "password": "short" }))
        }),
        case("createUser", "no body", Anonymous, 400, |_| Input::new()),
        // ---- createUsersWithListInput ----
        case("createUsersWithListInput", "two users", Admin, 200, |_| {
            Input::new().json(json!([user("gina"), user("hank")]))
        }),
        case(
            "createUsersWithListInput",
            "an empty list",
            Admin,
            422,
            |_| Input::new().json(json!([])),
        ),
        case(
            "createUsersWithListInput",
            "a taken name in the list",
            AdminKey,
            409,
            |_| Input::new().json(json!([user("ivan"), user("bob")])),
        ),
        case(
            "createUsersWithListInput",
            "one invalid user",
            Admin,
            422,
            |_| Input::new().json(json!([user("judy"), { "username": "k" }])),
        ),
        case(
            "createUsersWithListInput",
            "an object, not a list",
            Admin,
            422,
            |_| Input::new().json(user("lena")),
        ),
        case("createUsersWithListInput", "no body", Admin, 400, |_| {
            Input::new()
        }),
        case("createUsersWithListInput", "a customer", Alice, 403, |_| {
            Input::new().json(json!([user("mike")]))
        }),
        case(
            "createUsersWithListInput",
            "no credentials",
            Anonymous,
            401,
            |_| Input::new().json(json!([user("nina")])),
        ),
        // ---- loginUser ----
        case("loginUser", "good credentials", Anonymous, 200, |_| {
            Input::new()
                .param("username", "alice")
                .param("password", PASSWORD)
        }),
        case("loginUser", "a wrong password", Anonymous, 400, |_| {
            Input::new()
                .param("username", "alice")
                .param("password", "wrong-password")
        }),
        case("loginUser", "an unknown user", Anonymous, 400, |_| {
            Input::new()
                .param("username", "nobody")
                .param("password", PASSWORD)
        }),
        case("loginUser", "no password", Anonymous, 400, |_| {
            Input::new().param("username", "alice")
        }),
        case(
            "loginUser",
            "a name breaking the pattern",
            Anonymous,
            400,
            |_| {
                Input::new()
                    .param("username", "a!")
                    .param("password", PASSWORD)
            },
        ),
        // ---- logoutUser ----
        case("logoutUser", "a signed-in customer", Alice, 200, |_| {
            Input::new()
        }),
        case("logoutUser", "the administrator", Admin, 200, |_| {
            Input::new()
        }),
        case("logoutUser", "no credentials", Anonymous, 200, |_| {
            Input::new()
        }),
        // ---- getUserByName ----
        case(
            "getUserByName",
            "any user, as the administrator",
            Admin,
            200,
            |_| Input::new().param("username", "bob"),
        ),
        case("getUserByName", "oneself", Alice, 200, |_| {
            Input::new().param("username", "alice")
        }),
        case("getUserByName", "someone else", Alice, 403, |_| {
            Input::new().param("username", "bob")
        }),
        case("getUserByName", "an unknown user", AdminKey, 404, |_| {
            Input::new().param("username", "nobody")
        }),
        case(
            "getUserByName",
            "a name breaking the pattern",
            Admin,
            400,
            |_| Input::new().param("username", "x"),
        ),
        case("getUserByName", "no credentials", Anonymous, 401, |_| {
            Input::new().param("username", "alice")
        }),
        // ---- updateUser ----
        case(
            "updateUser",
            "any user, as the administrator",
            Admin,
            200,
            |_| {
                Input::new().param("username", "bob").json(
                    json!({ "username": "bob", "firstName": "Robert", "email": "bob@example.org" }),
                )
            },
        ),
        case("updateUser", "oneself", Alice, 200, |_| {
            Input::new()
                .param("username", "alice")
                .json(json!({ "username": "alice", "lastName": "Liddell" }))
        }),
        case("updateUser", "someone else", Alice, 403, |_| {
            Input::new()
                .param("username", "bob")
                .json(json!({ "username": "bob", "lastName": "Builder" }))
        }),
        case("updateUser", "an unknown user", Admin, 404, |_| {
            Input::new()
                .param("username", "nobody")
                .json(json!({ "username": "nobody" }))
        }),
        case("updateUser", "a rename to a taken name", Admin, 409, |_| {
            Input::new()
                .param("username", "alice")
                .json(json!({ "username": "bob" }))
        }),
        case("updateUser", "a bad e-mail", Alice, 422, |_| {
            Input::new()
                .param("username", "alice")
                .json(json!({ "username": "alice", "email": "nowhere" }))
        }),
        case("updateUser", "no body", Admin, 400, |_| {
            Input::new().param("username", "alice")
        }),
        case("updateUser", "no credentials", Anonymous, 401, |_| {
            Input::new()
                .param("username", "alice")
                .json(json!({ "username": "alice" }))
        }),
        // ---- deleteUser ----
        case(
            "deleteUser",
            "any user, as the administrator",
            Admin,
            200,
            |_| Input::new().param("username", "bob"),
        ),
        case("deleteUser", "oneself", Alice, 200, |_| {
            Input::new().param("username", "alice")
        }),
        case("deleteUser", "someone else", Alice, 403, |_| {
            Input::new().param("username", "bob")
        }),
        case("deleteUser", "an unknown user", AdminKey, 404, |_| {
            Input::new().param("username", "nobody")
        }),
        case(
            "deleteUser",
            "a name breaking the pattern",
            Admin,
            400,
            |_| Input::new().param("username", "no spaces"),
        ),
        case("deleteUser", "no credentials", Anonymous, 401, |_| {
            Input::new().param("username", "alice")
        }),
        // ---- createToken ----
        case("createToken", "good credentials", Anonymous, 200, |_| {
            Input::new().json(json!({ "username": "bob", "password": PASSWORD }))
        }),
        case("createToken", "a wrong password", Anonymous, 401, |_| {
            Input::new().json(json!({ "username": "bob", "password": "wrong-password" }))
        }),
        case("createToken", "an unknown user", Anonymous, 401, |_| {
            Input::new().json(json!({ "username": "nobody", "password": PASSWORD }))
        }),
        case("createToken", "no password", Anonymous, 422, |_| {
            Input::new().json(json!({ "username": "bob" }))
        }),
        case("createToken", "no body", Anonymous, 400, |_| Input::new()),
        // ---- refreshToken ----
        case(
            "refreshToken",
            "the session's refresh token",
            Anonymous,
            200,
            |f| Input::new().json(json!({ "refreshToken": f.alice_refresh })),
        ),
        case(
            "refreshToken",
            "a token that is not one",
            Anonymous,
            401,
            |_| Input::new().json(json!({ "refreshToken": "not-a-refresh-token" })),
        ),
        case("refreshToken", "an empty token", Anonymous, 422, |_| {
            Input::new().json(json!({ "refreshToken": "" }))
        }),
        case("refreshToken", "no body", Anonymous, 400, |_| Input::new()),
    ]
}

// ---- running a case ----

/// What a transport answered, in terms every transport shares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Success {
        status: u16,
        body: Value,
    },
    Error {
        status: u16,
        code: String,
        /// The field errors of a validation error.
        field_errors: Option<Value>,
    },
}

/// What `openapi.yaml` says of an operation that the comparison needs.
pub(crate) struct OperationSpec {
    /// The documented 2xx status.
    pub(crate) success: u16,
    /// The media type of the request body, if it takes one.
    body: Option<String>,
}

/// [`OperationSpec`]s by operationId.
pub(crate) static SPEC: LazyLock<BTreeMap<String, OperationSpec>> = LazyLock::new(|| {
    let spec: Value = match serde_saphyr::from_str(include_str!("../../openapi.yaml")) {
        Ok(spec) => spec,
        Err(error) => panic!("openapi.yaml is not YAML: {error}"),
    };
    let mut statuses = BTreeMap::new();
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in item.as_object().into_iter().flat_map(|i| i.values()) {
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let success = operation["responses"]
                .as_object()
                .into_iter()
                .flat_map(|responses| responses.keys())
                .filter_map(|status| status.parse::<u16>().ok())
                .find(|status| (200..300).contains(status));
            let Some(success) = success else {
                panic!("{id} documents no 2xx");
            };
            let body = operation["requestBody"]["content"]
                .as_object()
                .and_then(|content| content.keys().next().cloned());
            statuses.insert(id.to_owned(), OperationSpec { success, body });
        }
    }
    statuses
});

static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
        .unwrap_or_else(|e| panic!("{e}"))
});
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        .unwrap_or_else(|e| panic!("{e}"))
});

/// Masks what differs between two servers however alike their data: signed tokens, refresh
/// tokens, token expiry times and (random) image ids.
pub(crate) fn normalize(value: &mut Value) {
    match value {
        Value::String(text) => {
            let masked = JWT.replace_all(text, "<jwt>");
            let masked = UUID.replace_all(&masked, "<uuid>");
            *text = masked.into_owned();
        }
        Value::Object(object) => {
            for (key, member) in object.iter_mut() {
                match key.as_str() {
                    "refreshToken" | "expiresAt" | "refreshExpiresAt" if member.is_string() => {
                        *member = json!(format!("<{key}>"));
                    }
                    _ => normalize(member),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Runs the case over REST.
async fn run_rest(app: &TestApp, fixture: &Fixture, case: &Case, input: &Input) -> Outcome {
    let Some(info) = operation_info(case.operation) else {
        panic!("no operation {}", case.operation);
    };
    let mut url = match Url::parse(&app.api("")) {
        Ok(url) => url,
        Err(error) => panic!("bad base URL: {error}"),
    };
    let mut query = Vec::new();
    {
        let Ok(mut segments) = url.path_segments_mut() else {
            panic!("the base URL cannot have a path");
        };
        segments.pop_if_empty();
        for segment in info.path.split('/').filter(|s| !s.is_empty()) {
            match segment
                .strip_prefix('{')
                .and_then(|name| name.strip_suffix('}'))
            {
                Some(name) => {
                    let Some(param) = input.params.iter().find(|param| param.name == name) else {
                        panic!("{}: path parameter {name} missing", case.what);
                    };
                    segments.push(&param.rest[0]);
                }
                None => {
                    segments.push(segment);
                }
            }
        }
    }
    for param in &input.params {
        if !info.path.contains(&format!("{{{}}}", param.name)) {
            for text in &param.rest {
                query.push((param.name, text.clone()));
            }
        }
    }
    let method = match Method::from_bytes(info.method.as_bytes()) {
        Ok(method) => method,
        Err(error) => panic!("bad method {}: {error}", info.method),
    };
    let mut request = app.anonymous.request(method, url).query(&query);
    request = match case.caller {
        Anonymous => request,
        Admin => bearer(request, &fixture.admin_token),
        Alice => bearer(request, &fixture.alice_token),
        AdminKey => request.header("api_key", ADMIN_API_KEY),
    };
    request = match &input.body {
        Body::Missing => match &SPEC[case.operation].body {
            Some(media_type) => request.header(header::CONTENT_TYPE, media_type.as_str()),
            None => request,
        },
        Body::Json(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string()),
        Body::Binary(bytes) => request
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.clone()),
    };
    let response = guarded("a REST request", send(request)).await;
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => panic!("cannot read a REST body: {error}"),
    };
    let as_json = |bytes: &[u8]| -> Value {
        match serde_json::from_slice(bytes) {
            Ok(value) => value,
            Err(error) => panic!(
                "{} {}: REST body is not JSON ({error}): {:?}",
                case.operation,
                case.what,
                String::from_utf8_lossy(bytes)
            ),
        }
    };
    if (200..300).contains(&status) {
        let mut body = if content_type.starts_with("image/") {
            json!({ "contentType": content_type, "data": BASE64.encode(&bytes) })
        } else if bytes.is_empty() {
            Value::Null
        } else {
            as_json(&bytes)
        };
        normalize(&mut body);
        Outcome::Success { status, body }
    } else {
        let body = as_json(&bytes);
        assert_error_body(&body, status, body["type"].as_str().unwrap_or("?"));
        Outcome::Error {
            status,
            code: body["type"].as_str().unwrap_or_default().to_owned(),
            field_errors: body.get("errors").cloned(),
        }
    }
}

fn operation_info(id: &str) -> Option<&'static petstore_api::operations::OperationInfo> {
    Action::from_name(id).and_then(Action::operation)
}

/// A transport whose answers are compared with REST's.
pub(crate) trait Transport {
    /// Its name in the reports.
    const NAME: &'static str;

    /// Runs `case` with `input` on `app` (prepared as `fixture`), as the case's caller.
    fn run(
        app: &TestApp,
        fixture: &Fixture,
        case: &Case,
        input: &Input,
    ) -> impl Future<Output = Outcome>;
}

/// Runs `case` over REST on one fresh server and over `T` on another prepared the same way;
/// returns a description of every way the results differ from each other or from the expected
/// status.
async fn run_case<T: Transport>(case: &Case) -> Vec<String> {
    let (rest_app, other_app) = tokio::join!(spawn_parity_app(), spawn_parity_app());
    let (rest_fixture, other_fixture) = tokio::join!(prepare(&rest_app), prepare(&other_app));
    assert_eq!(
        rest_fixture.ids(),
        other_fixture.ids(),
        "two servers prepared alike assigned different ids"
    );
    let rest_input = (case.input)(&rest_fixture);
    let other_input = (case.input)(&other_fixture);
    let rest = run_rest(&rest_app, &rest_fixture, case, &rest_input).await;
    let other = T::run(&other_app, &other_fixture, case, &other_input).await;
    rest_app.shutdown().await;
    other_app.shutdown().await;

    let label = format!("{} / {} ({:?})", case.operation, case.what, case.caller);
    let mut problems = Vec::new();
    if rest != other {
        problems.push(format!(
            "{label}: the transports differ\n    REST:      {rest:?}\n    {}: {other:?}",
            T::NAME
        ));
    }
    for (transport, outcome) in [("REST", &rest), (T::NAME, &other)] {
        let status = match outcome {
            Outcome::Success { status, .. } | Outcome::Error { status, .. } => *status,
        };
        if let Some(expected) = case.expect
            && status != expected
        {
            problems.push(format!(
                "{label}: {transport} answered {status}, expected {expected}: {outcome:?}"
            ));
        }
    }
    problems
}

/// Runs every case of these operations over REST and `T`, and fails with all the differences
/// found.
pub(crate) async fn check_parity<T: Transport>(operations: &[&str]) {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|case| operations.contains(&case.operation))
        .collect();
    assert!(!cases.is_empty(), "no case for {operations:?}");
    check_cases::<T>(&cases).await;
}

/// Runs `cases` over REST and `T`, and fails with every difference found.
pub(crate) async fn check_cases<T: Transport>(cases: &[Case]) {
    let mut problems = Vec::new();
    for case in cases {
        problems.extend(run_case::<T>(case).await);
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} cases:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

// ---- differences the table found ----

/// REST reads a JSON body before it authorizes the caller (the body is extracted before the
/// handler runs), so a request without credentials and without a body is a 400 there; the
/// payload dispatch authorized first and answered 401. The same input must get the same answer.
pub(crate) fn missing_body_without_credentials() -> [Case; 3] {
    [
        parity_case("addPet", "no credentials and no body", Anonymous, |_| {
            Input::new()
        }),
        parity_case(
            "placeOrder",
            "no credentials and no body",
            Anonymous,
            |_| Input::new(),
        ),
        parity_case(
            "updateUser",
            "no credentials and no body",
            Anonymous,
            |_| Input::new().param("username", "alice"),
        ),
    ]
}

/// A payload's `uploadFile` without `body` was a 400 (`body` is required); REST cannot tell a
/// missing file from an empty one and answers 415 (not an image) for both.
pub(crate) fn upload_without_a_file() -> [Case; 1] {
    [parity_case("uploadFile", "no file", Admin, |f| {
        Input::new().param("petId", f.tom)
    })]
}

// ---- the table's own tests ----

/// Every operation of `openapi.yaml` has cases, and every operation that can fail has both a
/// success case and a failure case.
#[test]
fn every_operation_has_cases() {
    let cases = cases();
    let operations: BTreeSet<&str> = Action::ALL
        .iter()
        .filter_map(|action| action.operation().map(|info| info.id))
        .collect();
    assert_eq!(operations.len(), 23);
    for operation in &operations {
        let of_operation: Vec<&Case> = cases
            .iter()
            .filter(|case| case.operation == *operation)
            .collect();
        assert!(!of_operation.is_empty(), "no parity case for {operation}");
        assert!(
            of_operation
                .iter()
                .any(|case| case.expect.is_some_and(|status| status < 300)),
            "no success case for {operation}"
        );
        // Logging out cannot fail: without a valid token there is nothing to end.
        if *operation != "logoutUser" {
            assert!(
                of_operation
                    .iter()
                    .any(|case| case.expect.is_some_and(|status| status >= 400)),
                "no failure case for {operation}"
            );
        }
    }
    for case in &cases {
        assert!(
            operations.contains(case.operation),
            "case for an unknown operation {}",
            case.operation
        );
    }
    let groups: BTreeSet<&str> = GROUPS
        .iter()
        .flat_map(|group| group.iter().copied())
        .collect();
    assert_eq!(
        groups, operations,
        "every operation runs in one of the groups"
    );
}

/// The operations each parity test runs (tests run in parallel; cases within one in sequence).
pub(crate) const GROUPS: [&[&str]; 6] = [
    &["updatePet", "addPet", "findPetsByStatus", "findPetsByTags"],
    &["getPetById", "updatePetWithForm", "deletePet"],
    &["uploadFile", "getPetImage", "getInventory"],
    &["placeOrder", "getOrderById", "updateOrder", "deleteOrder"],
    &[
        "createUser",
        "createUsersWithListInput",
        "loginUser",
        "logoutUser",
    ],
    &[
        "getUserByName",
        "updateUser",
        "deleteUser",
        "createToken",
        "refreshToken",
    ],
];

/// The comparison itself tells outcomes apart: a parity test whose comparison could not fail
/// would prove nothing.
#[test]
fn outcomes_that_differ_are_told_apart() {
    let success = |body: Value| Outcome::Success { status: 200, body };
    assert_ne!(success(json!({ "id": 1 })), success(json!({ "id": 2 })));
    assert_ne!(success(Value::Null), success(json!({})));
    let error = |status: u16, code: &str| Outcome::Error {
        status,
        code: code.to_owned(),
        field_errors: None,
    };
    assert_ne!(error(404, "NOT_FOUND"), error(403, "FORBIDDEN"));
    assert_ne!(error(400, "BAD_REQUEST"), error(400, "VALIDATION_ERROR"));
    let mut token = json!({ "accessToken": "eyJa.b.c", "refreshToken": "r1", "expiresIn": 900 });
    let mut other = json!({ "accessToken": "eyJx.y.z", "refreshToken": "r2", "expiresIn": 60 });
    normalize(&mut token);
    normalize(&mut other);
    assert_ne!(token, other, "the token lifetime still counts");
    other["expiresIn"] = json!(900);
    assert_eq!(token, other);
}
