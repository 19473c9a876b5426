//! The protocol as a client sees it: the handshake, the tool list generated from `openapi.yaml`,
//! tool results (structured, wrapped, image, empty) and tool errors (`isError` with the REST error
//! body), resources, and what is a JSON-RPC error rather than a tool error.

use petstore_api::operations::OPERATIONS;
use petstore_testkit::{
    app::{ADMIN_API_KEY, PNG, id_of, ok_json, spawn_app},
    mcp::{Credentials, McpClient, error_body},
};
use serde_json::{Value, json};

fn admin() -> Credentials {
    Credentials::ApiKey(ADMIN_API_KEY.to_owned())
}

#[tokio::test]
async fn the_handshake_offers_tools_and_subscribable_resources() {
    let app = spawn_app(|_| {}).await;
    let client = McpClient::connect(&app.base_url, Credentials::None).await;
    let info = &client.initialized;
    assert_eq!(info["protocolVersion"], json!("2025-11-25"));
    assert_eq!(info["serverInfo"]["name"], json!("petstore-ws"));
    assert!(info["capabilities"]["tools"].is_object(), "{info}");
    assert_eq!(info["capabilities"]["resources"]["subscribe"], json!(true));
    assert!(
        info["instructions"]
            .as_str()
            .is_some_and(|text| text.contains("tool"))
    );
    client.close().await;

    // An older client gets the revision it asked for, from 2025-06-18 on.
    let mut older = McpClient::unconnected(&app.base_url, Credentials::None);
    older.protocol_version = "2025-06-18".to_owned();
    let response = older
        .post(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": { "name": "older", "version": "0" }
            }
        }))
        .await;
    older.session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let result = petstore_testkit::mcp::answer_of(response, 1).await;
    assert!(matches!(&result, Ok(result) if result["protocolVersion"] == "2025-06-18"));
    older.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn every_operation_is_a_tool_described_from_the_spec() {
    let app = spawn_app(|_| {}).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    let listed = match client.call("tools/list", json!({})).await {
        Ok(listed) => listed,
        Err(error) => panic!("tools/list failed: {error}"),
    };
    let tools = listed["tools"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    let operations: Vec<&str> = OPERATIONS.iter().map(|operation| operation.id).collect();
    assert_eq!(names, operations);
    let tool = |name: &str| -> &Value {
        match tools.iter().find(|tool| tool["name"] == json!(name)) {
            Some(tool) => tool,
            None => panic!("no tool {name}"),
        }
    };
    let get_pet = tool("getPetById");
    assert_eq!(get_pet["title"], json!("Find pet by ID"));
    assert!(
        get_pet["description"]
            .as_str()
            .is_some_and(|text| text.starts_with("Find pet by ID.\n\nReturns a single pet.")),
        "{get_pet}"
    );
    assert_eq!(
        get_pet["inputSchema"]["properties"]["petId"]["minimum"],
        json!(1)
    );
    assert_eq!(get_pet["inputSchema"]["required"], json!(["petId"]));
    assert_eq!(get_pet["outputSchema"]["type"], json!("object"));
    assert!(get_pet["outputSchema"]["$defs"]["Category"].is_object());
    assert_eq!(
        get_pet["annotations"],
        json!({ "readOnlyHint": true, "openWorldHint": false })
    );
    assert_eq!(
        tool("deletePet")["annotations"],
        json!({
            "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true,
            "openWorldHint": false
        })
    );
    assert_eq!(
        tool("updatePet")["annotations"]["idempotentHint"],
        json!(true)
    );
    assert_eq!(
        tool("addPet")["annotations"]["destructiveHint"],
        json!(false)
    );
    assert_eq!(
        tool("addPet")["inputSchema"]["properties"]["body"]["$ref"],
        json!("#/$defs/Pet")
    );
    // A password is an argument (write-only), never part of a result.
    assert!(
        tool("createUser")["inputSchema"]["$defs"]["User"]["properties"]["password"].is_object()
    );
    assert!(tool("createUser")["outputSchema"]["properties"]["password"].is_null());
    // Results that are not objects are wrapped; images and empty answers have no schema.
    assert_eq!(
        tool("findPetsByStatus")["outputSchema"]["required"],
        json!(["result"])
    );
    assert!(tool("getPetImage")["outputSchema"].is_null());
    assert!(tool("deletePet")["outputSchema"].is_null());
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_tool_answers_what_rest_answers_as_structured_content_and_text() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("rex").await;
    let rest = ok_json(app.get(&format!("/pet/{pet}")).await).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    let result = client
        .call_tool("getPetById", json!({ "petId": pet }))
        .await;
    assert_eq!(result["isError"], json!(false), "{result}");
    assert_eq!(result["structuredContent"], rest);
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(serde_json::from_str::<Value>(text).ok(), Some(rest.clone()));

    let found = client
        .call_tool("findPetsByStatus", json!({ "status": ["available"] }))
        .await;
    assert_eq!(found["structuredContent"], json!({ "result": [rest] }));
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn images_and_empty_answers_have_their_own_content() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("rex").await;
    let uploaded = ok_json(app.upload(pet, PNG).await).await;
    let image = uploaded["message"]
        .as_str()
        .and_then(|url| url.rsplit_once("/image/"))
        .map(|(_, image)| image.to_owned())
        .unwrap_or_default();
    let mut client = McpClient::connect(&app.base_url, admin()).await;
    let result = client
        .call_tool("getPetImage", json!({ "petId": pet, "imageId": image }))
        .await;
    assert_eq!(result["content"][0]["type"], json!("image"), "{result}");
    assert_eq!(result["content"][0]["mimeType"], json!("image/png"));
    let deleted = client.call_tool("deletePet", json!({ "petId": pet })).await;
    assert_eq!(deleted["isError"], json!(false), "{deleted}");
    assert_eq!(
        deleted["content"],
        json!([{ "type": "text", "text": "The pet was deleted." }])
    );
    assert!(deleted.get("structuredContent").is_none());
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_call_is_an_error_result_with_the_rest_error_body() {
    let app = spawn_app(|_| {}).await;
    let mut anonymous = McpClient::connect(&app.base_url, Credentials::None).await;
    let invalid = anonymous
        .call_tool("addPet", json!({ "body": { "name": "" } }))
        .await;
    let body = error_body(&invalid);
    // Credentials are checked before the body's schema, as over REST.
    assert_eq!(body["type"], json!("UNAUTHORIZED"), "{body}");
    anonymous.close().await;
    // Field errors, as REST reports them.
    let mut client = McpClient::connect(&app.base_url, admin()).await;
    let invalid = client
        .call_tool("addPet", json!({ "body": { "name": "", "tags": "x" } }))
        .await;
    let body = error_body(&invalid);
    assert_eq!(body["code"], json!(422));
    assert_eq!(body["type"], json!("VALIDATION_ERROR"));
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"name") && paths.contains(&"photoUrls"),
        "{body}"
    );
    let missing = client
        .call_tool("getPetById", json!({ "petId": 999 }))
        .await;
    assert_eq!(error_body(&missing)["type"], json!("NOT_FOUND"));
    let bad = client
        .call_tool("getPetById", json!({ "petId": "x" }))
        .await;
    assert_eq!(error_body(&bad)["code"], json!(400));
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_tools_and_malformed_messages_are_protocol_errors() {
    let app = spawn_app(|_| {}).await;
    let mut client = McpClient::connect(&app.base_url, Credentials::None).await;
    let unknown = client
        .call(
            "tools/call",
            json!({ "name": "noSuchTool", "arguments": {} }),
        )
        .await;
    assert!(
        matches!(&unknown, Err(error) if error["code"] == json!(-32602)),
        "{unknown:?}"
    );
    let no_method = client.call("no/such/method", json!({})).await;
    assert!(
        matches!(&no_method, Err(error) if error["code"] == json!(-32601)),
        "{no_method:?}"
    );
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn pets_and_orders_are_resources_read_as_rest_reads_them() {
    let app = spawn_app(|_| {}).await;
    let pet = app.add_available_pet("rex").await;
    app.create_user("alice", "correct-horse-battery").await;
    app.create_user("bob", "correct-horse-battery").await;
    let (alice, _) = app.create_token("alice", "correct-horse-battery").await;
    let (bob, _) = app.create_token("bob", "correct-horse-battery").await;
    let mut as_alice = McpClient::connect(&app.base_url, Credentials::Bearer(alice)).await;
    let placed = as_alice
        .call_tool(
            "placeOrder",
            json!({ "body": { "petId": pet, "quantity": 1 } }),
        )
        .await;
    let order = id_of(&placed["structuredContent"]);

    let templates = match as_alice.call("resources/templates/list", json!({})).await {
        Ok(templates) => templates,
        Err(error) => panic!("{error}"),
    };
    let uris: Vec<&str> = templates["resourceTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|template| template["uriTemplate"].as_str())
        .collect();
    assert_eq!(
        uris,
        ["petstore://pet/{petId}", "petstore://order/{orderId}"]
    );

    let read = as_alice
        .call(
            "resources/read",
            json!({ "uri": format!("petstore://pet/{pet}") }),
        )
        .await;
    let rest = ok_json(app.get(&format!("/pet/{pet}")).await).await;
    let contents = read
        .map(|read| read["contents"][0].clone())
        .unwrap_or_default();
    assert_eq!(contents["mimeType"], json!("application/json"));
    let text = contents["text"].as_str().unwrap_or_default();
    assert_eq!(serde_json::from_str::<Value>(text).ok(), Some(rest));
    let own = as_alice
        .call(
            "resources/read",
            json!({ "uri": format!("petstore://order/{order}") }),
        )
        .await;
    assert!(own.is_ok(), "{own:?}");

    // The same rules as getOrderById: bob may not read alice's order.
    let mut as_bob = McpClient::connect(&app.base_url, Credentials::Bearer(bob)).await;
    let foreign = as_bob
        .call(
            "resources/read",
            json!({ "uri": format!("petstore://order/{order}") }),
        )
        .await;
    assert!(
        matches!(&foreign, Err(error) if error["code"] == json!(-32600) && error["data"]["type"] == json!("FORBIDDEN")),
        "{foreign:?}"
    );
    let missing = as_bob
        .call("resources/read", json!({ "uri": "petstore://pet/999" }))
        .await;
    assert!(
        matches!(&missing, Err(error) if error["code"] == json!(-32002) && error["data"]["type"] == json!("NOT_FOUND")),
        "{missing:?}"
    );
    let unknown = as_bob
        .call("resources/read", json!({ "uri": "petstore://user/alice" }))
        .await;
    assert!(
        matches!(&unknown, Err(error) if error["code"] == json!(-32602)),
        "{unknown:?}"
    );
    as_alice.close().await;
    as_bob.close().await;
    app.shutdown().await;
}
