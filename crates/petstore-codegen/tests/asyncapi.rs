//! The cross-check of `asyncapi.yaml` against `openapi.yaml`: the project's own documents pass,
//! and each way the two can disagree is reported with its location; and what the WebSocket side
//! generates from them (the contract's `ws.rs`, the server's `dispatch.rs`).
//!
//! Every failing case starts from the real documents and breaks one thing in a copy of
//! `asyncapi.yaml` (edited as a JSON value and handed over as JSON text, which is YAML too) or
//! moves the server of `openapi.yaml`, so each error shown here is one the build would report
//! for a plausible edit of the real files.

mod project;

use std::sync::LazyLock;

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use petstore_codegen::{
    GenError, Target,
    asyncapi::{self, PayloadLimit, Priority, WS_SUFFIX, WsApi},
    ir::Api,
    parse::parse_document,
};
use project::{ASYNCAPI, OPENAPI, OPERATION_IDS, load_or_panic, specs};
use serde_json::{Value, json};

/// `openapi.yaml` parsed once: the document as JSON (what `$ref`s resolve against) and its
/// intermediate model (what the actions are checked against).
static OPENAPI_DOCUMENT: LazyLock<(Value, Api)> = LazyLock::new(|| parse_openapi(OPENAPI));

fn parse_openapi(text: &str) -> (Value, Api) {
    match parse_document(text) {
        Ok(parsed) => parsed,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    }
}

/// The session's own actions.
const CONTROL_ACTIONS: [&str; 5] = [
    "authenticate",
    "refresh",
    "subscribe",
    "unsubscribe",
    "ping",
];

/// Every event, in document order.
const EVENTS: [&str; 12] = [
    "pet.created",
    "pet.updated",
    "pet.deleted",
    "order.placed",
    "order.updated",
    "order.deleted",
    "inventory.changed",
    "user.updated",
    "user.deleted",
    "session.expiring",
    "session.expired",
    "backpressure",
];

/// `asyncapi.yaml` as a JSON value, to be edited.
fn document() -> Value {
    match serde_saphyr::from_str(ASYNCAPI) {
        Ok(document) => document,
        Err(error) => panic!("asyncapi.yaml is not YAML: {error}"),
    }
}

/// The cross-check of `document` (as JSON text) against the real `openapi.yaml`.
fn check(document: &Value) -> Result<WsApi, Vec<GenError>> {
    check_against(document, &OPENAPI_DOCUMENT)
}

/// The cross-check of `document` (as JSON text) against a parsed OpenAPI document.
fn check_against(document: &Value, (openapi, api): &(Value, Api)) -> Result<WsApi, Vec<GenError>> {
    let text = match serde_json::to_string_pretty(document) {
        Ok(text) => text,
        Err(error) => panic!("cannot serialize the document: {error}"),
    };
    asyncapi::parse(&text, openapi, api).map_err(|errors| errors.0)
}

/// The errors of a document that must be rejected.
fn errors_of(document: &Value) -> Vec<GenError> {
    match check(document) {
        Ok(_) => panic!("the edited document was accepted"),
        Err(errors) => errors,
    }
}

/// Asserts that `document` is rejected with exactly the errors `expected` lists, each as
/// `(location, a fragment of its message)`, in any order.
fn assert_errors(document: &Value, expected: &[(&str, &str)]) {
    assert_listed(errors_of(document), expected);
}

/// Asserts that `errors` are exactly those `expected` lists (see [`assert_errors`]).
fn assert_listed(errors: Vec<GenError>, expected: &[(&str, &str)]) {
    let listing = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        errors.len(),
        expected.len(),
        "expected {} error(s), got:\n{listing}",
        expected.len()
    );
    for (location, fragment) in expected {
        assert!(
            errors
                .iter()
                .any(|error| error.location == *location && error.message.contains(fragment)),
            "no error at {location} mentioning {fragment:?}; got:\n{listing}"
        );
    }
}

/// The value at a JSON pointer of `document`, which must exist.
fn at<'a>(document: &'a mut Value, pointer: &str) -> &'a mut Value {
    match document.pointer_mut(pointer) {
        Some(value) => value,
        None => panic!("the document has nothing at {pointer}"),
    }
}

/// Removes the member `key` of the object at `pointer`; it must exist.
fn remove(document: &mut Value, pointer: &str, key: &str) -> Value {
    match at(document, pointer)
        .as_object_mut()
        .map(|map| map.remove(key))
    {
        Some(Some(removed)) => removed,
        _ => panic!("no member {key:?} at {pointer}"),
    }
}

/// Sets the member `key` of the object at `pointer`.
fn set(document: &mut Value, pointer: &str, key: &str, value: Value) {
    match at(document, pointer).as_object_mut() {
        Some(map) => {
            map.insert(key.to_owned(), value);
        }
        None => panic!("{pointer} is not an object"),
    }
}

/// The request payload schema (parameters by name and `body`) of an action's message.
fn request_payload(action: &str) -> String {
    format!("/components/messages/{action}Request/payload/allOf/1/properties/payload")
}

/// The success alternative of an action's reply.
fn success_payload(action: &str) -> String {
    format!("/components/messages/{action}Response/payload/allOf/1/properties/payload/oneOf/0")
}

// ---- the real documents ----

#[test]
fn the_project_documents_agree() {
    let (openapi, api) = &*OPENAPI_DOCUMENT;
    let ws = match asyncapi::parse(ASYNCAPI, openapi, api) {
        Ok(ws) => ws,
        Err(errors) => panic!("asyncapi.yaml is rejected:\n{errors}"),
    };
    assert_eq!(ws.actions.len(), 28, "23 operations and 5 control actions");
    let operations: Vec<&str> = ws
        .actions
        .iter()
        .filter(|action| !action.control)
        .map(|action| action.name.as_str())
        .collect();
    let mut sorted_operations = operations.clone();
    sorted_operations.sort_unstable();
    let mut expected_operations = OPERATION_IDS.to_vec();
    expected_operations.sort_unstable();
    assert_eq!(sorted_operations, expected_operations);
    let controls: Vec<&str> = ws
        .actions
        .iter()
        .filter(|action| action.control)
        .map(|action| action.name.as_str())
        .collect();
    assert_eq!(controls, CONTROL_ACTIONS);
    let events: Vec<&str> = ws.events.iter().map(|event| event.name.as_str()).collect();
    assert_eq!(events, EVENTS);
}

#[test]
fn the_project_priorities_follow_the_scheduling_classes() {
    let ws = check(&document()).unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    let priority = |name: &str| match ws.actions.iter().find(|action| action.name == name) {
        Some(action) => action.priority,
        None => panic!("no action {name}"),
    };
    for control in CONTROL_ACTIONS {
        assert_eq!(priority(control), Priority::Critical, "{control}");
    }
    for write in [
        "addPet",
        "updatePet",
        "deletePet",
        "placeOrder",
        "updateUser",
    ] {
        assert_eq!(priority(write), Priority::High, "{write}");
    }
    for read in [
        "getPetById",
        "findPetsByStatus",
        "getOrderById",
        "getInventory",
    ] {
        assert_eq!(priority(read), Priority::Normal, "{read}");
    }
    assert_eq!(priority("createUsersWithListInput"), Priority::Low);
}

/// The JSON re-serialization the other tests rely on changes nothing by itself.
#[test]
fn the_document_as_json_text_passes_too() {
    let ws = check(&document()).unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    assert_eq!(ws.actions.len(), 28);
    assert_eq!(ws.events.len(), 12);
}

/// A generated file of the project, [`compact`].
fn generated(target: Target, name: &str) -> String {
    let Some((_, source)) = specs()
        .sources(target)
        .into_iter()
        .find(|(file, _)| *file == name)
    else {
        panic!("{target:?} has no {name}");
    };
    if let Err(error) = syn::parse_file(&source) {
        panic!("{name} is not Rust: {error}\n{source}");
    }
    compact(&source)
}

/// `text` without whitespace and trailing commas, so prettyplease's line breaking does not
/// matter to the checks.
fn compact(text: &str) -> String {
    let text: String = text.split_whitespace().collect();
    [">", ")", "]", "}"].iter().fold(text, |text, close| {
        text.replace(&format!(",{close}"), close)
    })
}

#[test]
fn the_contract_ws_rs_has_the_actions_events_priorities_and_address() {
    let ws = generated(Target::Contract, "ws.rs");
    for item in [
        "pub enum Action",
        "pub enum ControlAction",
        "pub enum Event",
        "pub enum Priority",
        "pub const WS_PATH: &str = \"/api/v3/ws\";",
    ] {
        assert!(ws.contains(&compact(item)), "no `{item}` in ws.rs");
    }
    // The contract knows the actions; running them is the server's (`dispatch.rs`).
    assert!(!ws.contains("dispatch"), "ws.rs still dispatches");
    for (index, id) in OPERATION_IDS.iter().enumerate() {
        let variant = id.to_upper_camel_case();
        for expected in [
            format!("{id:?} => Some(Action::{variant})"),
            format!("Action::{variant} => Some(&OPERATIONS[{index}])"),
            format!("Action::{variant} => None"),
        ] {
            assert!(ws.contains(&compact(&expected)), "no `{expected}` in ws.rs");
        }
    }
    for control in CONTROL_ACTIONS {
        let variant = control.to_upper_camel_case();
        for expected in [
            format!("Action::{variant} => Some(ControlAction::{variant})"),
            format!("Action::{variant} => Priority::Critical"),
            format!("ControlAction::{variant} => Action::{variant}"),
        ] {
            assert!(ws.contains(&compact(&expected)), "no `{expected}` in ws.rs");
        }
    }
    for event in EVENTS {
        assert!(
            ws.contains(&compact(&format!("{event:?} => Some(Event::"))),
            "`{event}` is not read by Event::from_name"
        );
    }
}

#[test]
fn the_priority_enum_of_ws_rs_is_the_generators_table() {
    let ws = generated(Target::Contract, "ws.rs");
    let variants: Vec<String> = Priority::ALL
        .iter()
        .map(|level| format!("/// {} {}", level.meaning(), level.variant()))
        .collect();
    let declaration = format!("pub enum Priority {{ {}, }}", variants.join(", "));
    assert!(ws.contains(&compact(&declaration)), "no `{declaration}`");
    let all: Vec<String> = Priority::ALL
        .iter()
        .map(|level| format!("Priority::{}", level.variant()))
        .collect();
    let all = format!(
        "pub const ALL: [Priority; {}] = [{}];",
        Priority::ALL.len(),
        all.join(", ")
    );
    assert!(ws.contains(&compact(&all)), "no `{all}`");
    let sheddable: Vec<String> = Priority::ALL
        .iter()
        .filter(|level| level.is_sheddable())
        .map(|level| format!("Priority::{}", level.variant()))
        .collect();
    assert_eq!(sheddable, ["Priority::Low", "Priority::Background"]);
    let sheddable = format!("matches!(self, {})", sheddable.join(" | "));
    assert!(ws.contains(&compact(&sheddable)), "no `{sheddable}`");
    for level in Priority::ALL {
        let name = format!("Priority::{} => {:?}", level.variant(), level.name());
        assert!(ws.contains(&compact(&name)), "no `{name}`");
    }
}

#[test]
fn the_control_payload_limits_are_constants_of_ws_rs() {
    let ws = generated(Target::Contract, "ws.rs");
    let limits = compact(
        "pub mod limits {
             /// `authenticate`: `token` has `minLength: 1`.
             pub const AUTHENTICATE_TOKEN_MIN_LENGTH: usize = 1;
             /// `authenticate`: `token` has `maxLength: 8192`.
             pub const AUTHENTICATE_TOKEN_MAX_LENGTH: usize = 8192;
             /// `refresh`: `refreshToken` has `minLength: 1`.
             pub const REFRESH_REFRESH_TOKEN_MIN_LENGTH: usize = 1;
             /// `refresh`: `refreshToken` has `maxLength: 512`.
             pub const REFRESH_REFRESH_TOKEN_MAX_LENGTH: usize = 512;
             /// `subscribe`: `topics` has `minItems: 1`.
             pub const SUBSCRIBE_TOPICS_MIN_ITEMS: usize = 1;
             /// `subscribe`: `topics` has `maxItems: 50`.
             pub const SUBSCRIBE_TOPICS_MAX_ITEMS: usize = 50;
             /// `subscribe`: `since` has `maxItems: 50`.
             pub const SUBSCRIBE_SINCE_MAX_ITEMS: usize = 50;
             /// `unsubscribe`: `topics` has `minItems: 1`.
             pub const UNSUBSCRIBE_TOPICS_MIN_ITEMS: usize = 1;
             /// `unsubscribe`: `topics` has `maxItems: 50`.
             pub const UNSUBSCRIBE_TOPICS_MAX_ITEMS: usize = 50;
         }",
    );
    assert!(ws.contains(&limits), "no `{limits}` in:\n{ws}");
}

#[test]
fn the_server_dispatch_rs_runs_every_operation_through_its_security_check() {
    let dispatch = generated(Target::Server, "dispatch.rs");
    assert!(dispatch.contains(&compact(
        "pub async fn dispatch<H: PetStoreApi>(
             handler: &H,
             authentication: &Authentication,
             ctx: Ctx,
             action: Action,
             payload: serde_json::Value,
         ) -> Result<Success, ApiError>"
    )));
    let (_, api) = &*OPENAPI_DOCUMENT;
    for operation in &api.operations {
        let id = &operation.id;
        let variant = id.to_upper_camel_case();
        let security = id.to_shouty_snake_case();
        let principal = if operation.requires_credentials() {
            format!("principal: authorize(authentication, security::{security})?")
        } else {
            format!("principal: identify(authentication, security::{security})")
        };
        for expected in [
            format!("Action::{variant} => {{"),
            format!("handler.{}(&ctx, request).await?", id.to_snake_case()),
            principal,
        ] {
            assert!(
                dispatch.contains(&compact(&expected)),
                "no `{expected}` in dispatch.rs"
            );
        }
    }
    // Control actions are the session's own: reaching `dispatch` with one is a bug, answered
    // as a server error.
    let controls: Vec<String> = CONTROL_ACTIONS
        .iter()
        .map(|control| format!("Action::{}", control.to_upper_camel_case()))
        .collect();
    let arm = format!("{} => {{", controls.join(" | "));
    assert!(
        dispatch.contains(&compact(&arm)),
        "no `{arm}` in dispatch.rs"
    );
    assert!(dispatch.contains(&compact("Err(ApiError::Internal)")));
}

// ---- the WebSocket address ----

#[test]
fn the_websocket_address_is_the_rest_base_path_and_the_ws_suffix() {
    let ws = check(&document()).unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    let (_, api) = &*OPENAPI_DOCUMENT;
    assert_eq!(WS_SUFFIX, "/ws");
    assert_eq!(ws.address, format!("{}{WS_SUFFIX}", api.base_path));
    assert_eq!(ws.address, "/api/v3/ws");
}

/// `openapi.yaml` served under `url` instead of its own server URL.
fn openapi_served_under(url: &str) -> String {
    let original = "servers:\n  - url: /api/v3\n";
    assert_eq!(
        OPENAPI.matches(original).count(),
        1,
        "the servers of openapi.yaml moved; update this test"
    );
    OPENAPI.replace(original, &format!("servers:\n  - url: {url}\n"))
}

#[test]
fn a_channel_address_left_behind_by_a_new_base_path_is_reported() {
    let moved = parse_openapi(&openapi_served_under("/api/v4"));
    let errors = match check_against(&document(), &moved) {
        Ok(_) => panic!("the old address was accepted under the new base path"),
        Err(errors) => errors,
    };
    assert_listed(
        errors,
        &[(
            "#/channels/petstore/address",
            "the server has one WebSocket endpoint, under the REST base path of openapi.yaml; \
             the address must be `/api/v4/ws`",
        )],
    );
}

#[test]
fn a_channel_address_that_follows_the_base_path_is_accepted() {
    let moved = openapi_served_under("/api/v4");
    let mut document = document();
    set(
        &mut document,
        "/channels/petstore",
        "address",
        json!("/api/v4/ws"),
    );
    let ws = check_against(&document, &parse_openapi(&moved))
        .unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    assert_eq!(ws.address, "/api/v4/ws");
    // And the generated contract says so.
    let text = match serde_json::to_string_pretty(&document) {
        Ok(text) => text,
        Err(error) => panic!("cannot serialize the document: {error}"),
    };
    let specs = load_or_panic(&moved, &text);
    let ws_rs = specs
        .sources(Target::Contract)
        .into_iter()
        .find(|(name, _)| *name == "ws.rs")
        .map(|(_, source)| source)
        .unwrap_or_default();
    assert!(ws_rs.contains("pub const WS_PATH: &str = \"/api/v4/ws\";"));
}

#[test]
fn without_a_server_the_websocket_lives_at_the_root() {
    let original = "servers:\n  - url: /api/v3\n";
    let rootless = parse_openapi(&OPENAPI.replace(original, ""));
    assert_eq!(rootless.1.base_path, "");
    assert_listed(
        match check_against(&document(), &rootless) {
            Ok(_) => panic!("`/api/v3/ws` was accepted without a base path"),
            Err(errors) => errors,
        },
        &[("#/channels/petstore/address", "the address must be `/ws`")],
    );
    let mut document = document();
    set(&mut document, "/channels/petstore", "address", json!("/ws"));
    let ws =
        check_against(&document, &rootless).unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    assert_eq!(ws.address, "/ws");
}

// ---- control payload limits ----

/// A payload limit as `(field, keyword, value)`.
type Limit<'a> = (&'a str, &'static str, usize);

/// `(action, [limit])` for every action, in document order.
fn limits_of(ws: &WsApi) -> Vec<(&str, Vec<Limit<'_>>)> {
    ws.actions
        .iter()
        .map(|action| {
            let limits = action
                .limits
                .iter()
                .map(
                    |PayloadLimit {
                         field,
                         keyword,
                         value,
                     }| (field.as_str(), *keyword, *value),
                )
                .collect();
            (action.name.as_str(), limits)
        })
        .collect()
}

#[test]
fn control_actions_record_the_size_limits_of_their_payloads() {
    let ws = check(&document()).unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    let limits = limits_of(&ws);
    let controls: Vec<_> = limits
        .iter()
        .filter(|(name, _)| CONTROL_ACTIONS.contains(name))
        .cloned()
        .collect();
    assert_eq!(
        controls,
        [
            (
                "authenticate",
                vec![("token", "minLength", 1), ("token", "maxLength", 8192)]
            ),
            (
                "refresh",
                vec![
                    ("refreshToken", "minLength", 1),
                    ("refreshToken", "maxLength", 512)
                ]
            ),
            (
                "subscribe",
                vec![
                    ("topics", "minItems", 1),
                    ("topics", "maxItems", 50),
                    ("since", "maxItems", 50)
                ]
            ),
            (
                "unsubscribe",
                vec![("topics", "minItems", 1), ("topics", "maxItems", 50)]
            ),
            ("ping", vec![]),
        ]
    );
    // Operations' payloads are the operations' parameters; their limits are in openapi.yaml.
    for (name, operation_limits) in &limits {
        if !CONTROL_ACTIONS.contains(name) {
            assert!(operation_limits.is_empty(), "{name}: {operation_limits:?}");
        }
    }
}

#[test]
fn a_limit_edited_in_a_control_payload_is_recorded() {
    let mut document = document();
    set(
        &mut document,
        "/components/schemas/TopicsPayload/properties/topics",
        "maxItems",
        json!(10),
    );
    set(
        &mut document,
        "/components/schemas/SubscribePayload/properties/since",
        "maxItems",
        json!(7),
    );
    let ws = check(&document).unwrap_or_else(|errors| panic!("rejected: {errors:?}"));
    let limits = limits_of(&ws);
    let of = |action: &str| match limits.iter().find(|(name, _)| *name == action) {
        Some((_, action_limits)) => action_limits.clone(),
        None => panic!("no action {action}"),
    };
    assert_eq!(
        of("unsubscribe"),
        [("topics", "minItems", 1), ("topics", "maxItems", 10)]
    );
    assert_eq!(
        of("subscribe"),
        [
            ("topics", "minItems", 1),
            ("topics", "maxItems", 50),
            ("since", "maxItems", 7)
        ]
    );
}

// ---- actions and operations ----

#[test]
fn an_operation_without_an_action_is_reported() {
    let mut document = document();
    remove(&mut document, "/operations", "getPetById");
    assert_errors(
        &document,
        &[("#/operations", "`getPetById` of openapi.yaml has no action")],
    );
}

#[test]
fn an_operation_entry_without_its_action_kind_is_reported() {
    let mut document = document();
    remove(&mut document, "/operations/getPetById", "action");
    assert_errors(
        &document,
        &[
            (
                "#/operations/getPetById/action",
                "must be `receive` or `send`",
            ),
            ("#/operations", "`getPetById` of openapi.yaml has no action"),
        ],
    );
}

#[test]
fn an_action_that_is_neither_an_operation_nor_a_control_action_is_reported() {
    let mut document = document();
    remove(&mut document, "/operations/ping", "x-control");
    assert_errors(
        &document,
        &[(
            "#/operations/ping",
            "action `ping` is no operationId of openapi.yaml; a session action must say \
             `x-control: true`",
        )],
    );
}

#[test]
fn a_rest_operation_cannot_be_a_control_action() {
    let mut document = document();
    set(
        &mut document,
        "/operations/getPetById",
        "x-control",
        json!(true),
    );
    assert_errors(
        &document,
        &[
            (
                "#/operations/getPetById/x-control",
                "`getPetById` is a REST operation, so it cannot be a control action",
            ),
            ("#/operations", "`getPetById` of openapi.yaml has no action"),
        ],
    );
}

#[test]
fn a_missing_priority_is_reported() {
    let mut document = document();
    remove(&mut document, "/operations/addPet", "x-priority");
    assert_errors(
        &document,
        &[
            (
                "#/operations/addPet/x-priority",
                "every action needs a priority",
            ),
            ("#/operations", "`addPet` of openapi.yaml has no action"),
        ],
    );
}

#[test]
fn an_unknown_priority_is_reported() {
    let mut document = document();
    set(
        &mut document,
        "/operations/subscribe",
        "x-priority",
        json!("urgent"),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/subscribe/x-priority",
            "must be critical, high, normal, low or background",
        )],
    );
}

// ---- request payloads ----

#[test]
fn a_request_payload_missing_a_parameter_is_reported() {
    let mut document = document();
    let properties = format!("{}/properties", request_payload("updatePetWithForm"));
    remove(&mut document, &properties, "name");
    assert_errors(
        &document,
        &[(
            "#/operations/updatePetWithForm/messages",
            "`updatePetWithForm` takes `name`, but the request payload does not list it",
        )],
    );
}

#[test]
fn a_request_payload_missing_the_body_is_reported() {
    let mut document = document();
    let payload = request_payload("addPet");
    remove(&mut document, &format!("{payload}/properties"), "body");
    set(&mut document, &payload, "required", json!([]));
    assert_errors(
        &document,
        &[(
            "#/operations/addPet/messages",
            "`addPet` takes `body`, but the request payload does not list it",
        )],
    );
}

#[test]
fn an_extra_parameter_is_reported() {
    let mut document = document();
    let properties = format!("{}/properties", request_payload("getPetById"));
    set(
        &mut document,
        &properties,
        "verbose",
        json!({ "type": "boolean" }),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/getPetById/messages",
            "`verbose` is no parameter or body of `getPetById` in openapi.yaml",
        )],
    );
}

#[test]
fn an_optional_parameter_marked_required_is_reported() {
    let mut document = document();
    let payload = request_payload("updatePetWithForm");
    set(
        &mut document,
        &payload,
        "required",
        json!(["petId", "name"]),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/updatePetWithForm/messages",
            "`name` is optional in openapi.yaml but required here",
        )],
    );
}

#[test]
fn a_required_parameter_marked_optional_is_reported() {
    let mut document = document();
    let payload = request_payload("getPetById");
    set(&mut document, &payload, "required", json!([]));
    assert_errors(
        &document,
        &[(
            "#/operations/getPetById/messages",
            "`petId` is required in openapi.yaml but optional here",
        )],
    );
}

#[test]
fn a_required_body_marked_optional_is_reported() {
    let mut document = document();
    let payload = request_payload("placeOrder");
    remove(&mut document, &payload, "required");
    assert_errors(
        &document,
        &[(
            "#/operations/placeOrder/messages",
            "`body` is required in openapi.yaml but optional here",
        )],
    );
}

#[test]
fn a_parameter_schema_that_differs_is_reported() {
    let mut document = document();
    let status = format!("{}/properties/status", request_payload("findPetsByStatus"));
    set(&mut document, &status, "maxItems", json!(4));
    assert_errors(
        &document,
        &[(
            "#/operations/findPetsByStatus/messages/payload/properties/status",
            "the schema differs from `status` of `findPetsByStatus` in openapi.yaml",
        )],
    );
}

#[test]
fn a_parameter_referencing_another_component_is_reported() {
    let mut document = document();
    let pet_id = format!("{}/properties/petId", request_payload("getPetById"));
    set(
        &mut document,
        &pet_id,
        "$ref",
        json!("./openapi.yaml#/components/schemas/PetName"),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/getPetById/messages/payload/properties/petId",
            "the schema differs from `petId` of `getPetById`",
        )],
    );
}

#[test]
fn a_body_schema_that_differs_is_reported() {
    let mut document = document();
    let body = format!("{}/properties/body", request_payload("placeOrder"));
    set(
        &mut document,
        &body,
        "$ref",
        json!("./openapi.yaml#/components/schemas/Pet"),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/placeOrder/messages/payload/properties/body",
            "the schema differs from `body` of `placeOrder`",
        )],
    );
}

#[test]
fn descriptions_do_not_count_as_schema_differences() {
    let mut document = document();
    let tags = format!("{}/properties/tags", request_payload("findPetsByTags"));
    set(
        &mut document,
        &tags,
        "description",
        json!("Worded differently from openapi.yaml."),
    );
    if let Err(errors) = check(&document) {
        panic!("a description made a difference: {errors:?}");
    }
}

// ---- replies ----

#[test]
fn a_success_payload_that_differs_from_the_2xx_body_is_reported() {
    let mut document = document();
    set(
        &mut document,
        &success_payload("getPetById"),
        "$ref",
        json!("./openapi.yaml#/components/schemas/Order"),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/getPetById/reply/messages",
            "the success payload must be what `getPetById` answers: its 2xx body schema",
        )],
    );
}

#[test]
fn a_success_payload_for_an_operation_without_a_body_must_be_null() {
    let mut document = document();
    *at(&mut document, &success_payload("deletePet")) =
        json!({ "$ref": "./openapi.yaml#/components/schemas/Pet" });
    assert_errors(
        &document,
        &[(
            "#/operations/deletePet/reply/messages",
            "the success payload must be what `deletePet` answers: `type: 'null'`",
        )],
    );
}

#[test]
fn an_image_operation_must_answer_the_image_payload() {
    let mut document = document();
    *at(&mut document, &success_payload("getPetImage")) =
        json!({ "type": "string", "contentEncoding": "base64" });
    assert_errors(
        &document,
        &[(
            "#/operations/getPetImage/reply/messages",
            "`$ref: '#/components/schemas/ImagePayload'`",
        )],
    );
}

#[test]
fn a_reply_without_the_error_alternative_is_reported() {
    let mut document = document();
    let one_of = "/components/messages/getOrderByIdResponse/payload/allOf/1/properties/payload";
    set(
        &mut document,
        one_of,
        "oneOf",
        json!([{ "$ref": "./openapi.yaml#/components/schemas/Order" }]),
    );
    assert_errors(
        &document,
        &[(
            "#/operations/getOrderById/reply/messages",
            "a reply's payload must be",
        )],
    );
}

// ---- references ----

#[test]
fn a_dangling_local_reference_is_reported_where_it_is() {
    let mut document = document();
    *at(
        &mut document,
        "/components/messages/petDeleted/payload/allOf/1/properties/payload",
    ) = json!({ "$ref": "#/components/schemas/DeletedThing" });
    assert_errors(
        &document,
        &[(
            "#/components/messages/petDeleted/payload/allOf/1/properties/payload/$ref",
            "`$ref: #/components/schemas/DeletedThing` points to nothing in asyncapi.yaml",
        )],
    );
}

#[test]
fn a_dangling_reference_into_openapi_yaml_is_reported_where_it_is() {
    let mut document = document();
    *at(
        &mut document,
        "/components/messages/petCreated/payload/allOf/1/properties/payload",
    ) = json!({ "$ref": "./openapi.yaml#/components/schemas/Animal" });
    assert_errors(
        &document,
        &[(
            "#/components/messages/petCreated/payload/allOf/1/properties/payload/$ref",
            "`$ref: ./openapi.yaml#/components/schemas/Animal` points to nothing in openapi.yaml",
        )],
    );
}

#[test]
fn a_reference_to_another_file_is_reported() {
    let mut document = document();
    *at(
        &mut document,
        "/components/messages/orderPlaced/payload/allOf/1/properties/payload",
    ) = json!({ "$ref": "./orders.yaml#/Order" });
    assert_errors(
        &document,
        &[(
            "#/components/messages/orderPlaced/payload/allOf/1/properties/payload/$ref",
            "only references inside this document",
        )],
    );
}

// ---- envelopes and channels ----

#[test]
fn an_envelope_that_does_not_require_its_correlation_id_is_reported() {
    let mut document = document();
    set(
        &mut document,
        "/components/schemas/RequestEnvelope",
        "required",
        json!(["type", "timestamp", "action", "payload"]),
    );
    assert_errors(
        &document,
        &[(
            "#/components/schemas/RequestEnvelope/required",
            "`correlationId` must be required",
        )],
    );
}

#[test]
fn an_envelope_without_its_correlation_id_field_is_reported() {
    let mut document = document();
    remove(
        &mut document,
        "/components/schemas/NotificationEnvelope/properties",
        "correlationId",
    );
    assert_errors(
        &document,
        &[(
            "#/components/schemas/NotificationEnvelope/properties",
            "the envelope field `correlationId` is missing",
        )],
    );
}

#[test]
fn an_envelope_field_the_server_does_not_know_is_reported() {
    let mut document = document();
    set(
        &mut document,
        "/components/schemas/ResponseEnvelope/properties",
        "node",
        json!({ "type": "string" }),
    );
    assert_errors(
        &document,
        &[(
            "#/components/schemas/ResponseEnvelope/properties/node",
            "`node` is not an envelope field",
        )],
    );
}

#[test]
fn an_error_payload_without_its_code_is_reported() {
    let mut document = document();
    remove(
        &mut document,
        "/components/schemas/ErrorPayload/properties",
        "code",
    );
    assert_errors(
        &document,
        &[(
            "#/components/schemas/ErrorPayload/properties",
            "the error payload field `code` is missing",
        )],
    );
}

#[test]
fn a_wrong_channel_address_is_reported() {
    let mut document = document();
    set(&mut document, "/channels/petstore", "address", json!("/ws"));
    assert_errors(
        &document,
        &[(
            "#/channels/petstore/address",
            "the address must be `/api/v3/ws`",
        )],
    );
}

#[test]
fn a_document_of_another_asyncapi_version_is_reported() {
    let mut document = document();
    set(&mut document, "", "asyncapi", json!("2.6.0"));
    assert_errors(&document, &[("#/asyncapi", "must be `3.0.0`")]);
}

// ---- events ----

#[test]
fn a_duplicate_event_is_reported() {
    let mut document = document();
    let copy = at(&mut document, "/operations/notifyPetCreated").clone();
    set(&mut document, "/operations", "notifyPetAdded", copy);
    assert_errors(
        &document,
        &[(
            "#/operations/notifyPetAdded",
            "event `pet.created` is declared twice",
        )],
    );
}

#[test]
fn an_event_without_a_name_is_reported() {
    let mut document = document();
    remove(&mut document, "/components/messages/userDeleted", "name");
    assert_errors(
        &document,
        &[(
            "#/operations/notifyUserDeleted/messages",
            "an event message needs its event `name`",
        )],
    );
}

#[test]
fn an_event_whose_payload_names_another_event_is_reported() {
    let mut document = document();
    *at(
        &mut document,
        "/components/messages/orderUpdated/payload/allOf/1/properties/event/const",
    ) = json!("order.changed");
    assert_errors(
        &document,
        &[(
            "#/operations/notifyOrderUpdated/messages",
            "{event: {const: order.updated}",
        )],
    );
}

/// All problems of a document are reported in one run, not just the first.
#[test]
fn every_error_is_reported_at_once() {
    let mut document = document();
    remove(&mut document, "/operations", "deleteUser");
    set(
        &mut document,
        "/channels/petstore",
        "address",
        json!("/socket"),
    );
    set(
        &mut document,
        "/operations/ping",
        "x-priority",
        json!("asap"),
    );
    let errors = errors_of(&document);
    let locations: Vec<&str> = errors.iter().map(|error| error.location.as_str()).collect();
    assert_eq!(
        locations,
        [
            "#/channels/petstore/address",
            "#/operations/ping/x-priority",
            "#/operations"
        ],
        "{errors:?}"
    );
}
