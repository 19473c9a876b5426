//! The MCP tools built from small documents: arguments as the WebSocket payload's shape
//! (parameters by name, the body as `body`), results from the success response, annotations from
//! the method, `x-mcp: false`, and the operations that cannot be tools, rejected with their
//! location. Then the project's own document: every operation is a tool, and `mcp.rs` parses.

mod common;
mod project;

use common::{SCHEMES, api, secured_spec, spec, valid, with_servers};
use petstore_codegen::{
    GenError, Target,
    mcp::{Form, Hints, McpApi, Output, Tool, tools},
    parse::parse_spec,
};
use serde_json::{Value, json};

const MODELS: &str = "
    Pet:
      description: A pet.
      type: object
      required: [name]
      properties:
        id:
          type: integer
          format: int64
          minimum: 1
          readOnly: true
        name:
          type: string
          minLength: 1
          maxLength: 100
          example: doggie
        secret:
          type: string
          writeOnly: true
        status:
          $ref: '#/components/schemas/PetStatus'
        tags:
          type: array
          maxItems: 20
          items:
            $ref: '#/components/schemas/Tag'
    PetStatus:
      description: Pet status.
      type: string
      enum: [available, sold]
    Tag:
      type: object
      properties:
        name:
          type: string
    EntityId:
      type: integer
      format: int64
      minimum: 1
";

/// The responses every operation of these documents shares, after its success.
const ERRORS: &str = "
              '400': {$ref: '#/components/responses/Error'}
              '408': {$ref: '#/components/responses/Error'}
              '413': {$ref: '#/components/responses/Error'}
              '415': {$ref: '#/components/responses/Error'}
              '422': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}";

/// A document of one path with these operations (each a YAML mapping under the method, ending
/// with its `responses`, to which the shared error responses are appended).
fn document(path: &str, operations: &[(&str, &str)]) -> String {
    let mut paths = format!("{path}:\n");
    for (method, operation) in operations {
        paths.push_str(&format!("  {method}:\n"));
        paths.push_str(&indent(operation, 4));
        paths.push_str(&indent(ERRORS, 6));
    }
    spec(&paths, MODELS)
}

/// `text` without the indentation common to its lines, indented by `by`, one line each.
fn indent(text: &str, by: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let common = lines
        .iter()
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|line| format!("{}{}\n", " ".repeat(by), &line[common..]))
        .collect()
}

fn mcp_of(text: &str) -> McpApi {
    match tools(&valid(text)) {
        Ok(mcp) => mcp,
        Err(errors) => panic!("expected tools, got:\n{errors}"),
    }
}

/// The errors of a document whose operations cannot all be tools.
fn refused(text: &str) -> Vec<GenError> {
    match tools(&valid(text)) {
        Ok(mcp) => panic!("expected errors, got {mcp:#?}"),
        Err(errors) => errors.0,
    }
}

fn tool<'a>(mcp: &'a McpApi, name: &str) -> &'a Tool {
    match mcp.tools.iter().find(|tool| tool.name == name) {
        Some(tool) => tool,
        None => panic!("no tool {name}"),
    }
}

const UPDATE_PET: &str = "
        summary: Update a pet.
        description: Replaces the pet.
        operationId: updatePet
        parameters:
          - {name: petId, in: path, required: true, description: The pet., example: 7, schema: {$ref: '#/components/schemas/EntityId'}}
          - {name: tags, in: query, required: false, schema: {type: array, maxItems: 3, items: {type: string}}}
        requestBody:
          description: The new pet.
          required: true
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        responses:
          '200':
            description: The pet as stored.
            content:
              application/json:
                schema: {$ref: '#/components/schemas/Pet'}";

#[test]
fn arguments_are_the_parameters_by_name_and_the_body_as_body() {
    let mcp = mcp_of(&document("/pet/{petId}", &[("put", UPDATE_PET)]));
    let tool = tool(&mcp, "updatePet");
    assert_eq!(
        tool.input.root,
        json!({
            "type": "object",
            "properties": {
                "petId": {
                    "type": "integer", "format": "int64", "minimum": 1,
                    "description": "The pet.", "examples": [7]
                },
                "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 3 },
                "body": { "$ref": "#/$defs/Pet", "description": "The new pet." }
            },
            "required": ["petId", "body"]
        })
    );
    assert_eq!(tool.input.form, Form::Input);
    // The body's model and every model it refers to, however deep.
    assert_eq!(tool.input.definitions, ["Pet", "PetStatus", "Tag"]);
    assert_eq!(tool.title.as_deref(), Some("Update a pet"));
    assert_eq!(
        tool.description,
        "Update a pet.\n\nReplaces the pet.\n\nNo credentials needed."
    );
}

#[test]
fn a_json_object_result_is_the_output_schema_itself() {
    let mcp = mcp_of(&document("/pet/{petId}", &[("put", UPDATE_PET)]));
    let Output::Structured { schema, wrapped } = &tool(&mcp, "updatePet").output else {
        panic!("not structured");
    };
    assert!(!wrapped);
    assert_eq!(schema.form, Form::Output);
    // Inlined: an output schema must itself say `"type": "object"`.
    assert_eq!(schema.root["type"], json!("object"));
    assert_eq!(schema.root["description"], json!("A pet."));
    assert_eq!(schema.definitions, ["PetStatus", "Tag"]);
}

#[test]
fn write_only_fields_are_arguments_and_read_only_fields_results() {
    let mcp = mcp_of(&document("/pet/{petId}", &[("put", UPDATE_PET)]));
    let Some(pet) = mcp
        .definitions
        .iter()
        .find(|definition| definition.name == "Pet")
    else {
        panic!("no Pet definition");
    };
    let properties = |schema: &Value| -> Vec<String> {
        schema["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(properties(&pet.input), ["name", "secret", "status", "tags"]);
    assert_eq!(pet.input["properties"]["secret"]["writeOnly"], json!(true));
    let Some(output) = &pet.output else {
        panic!("Pet differs as a result");
    };
    assert_eq!(properties(output), ["id", "name", "status", "tags"]);
    assert_eq!(output["properties"]["id"]["readOnly"], json!(true));
    // A model without such fields has one form.
    let tag = mcp
        .definitions
        .iter()
        .find(|definition| definition.name == "Tag");
    assert!(matches!(tag, Some(tag) if tag.output.is_none()));
    let status = mcp
        .definitions
        .iter()
        .find(|definition| definition.name == "PetStatus");
    assert!(matches!(
        status,
        Some(status) if status.input == json!({
            "type": "string", "description": "Pet status.", "enum": ["available", "sold"]
        })
    ));
}

#[test]
fn other_results_are_wrapped_images_or_a_message() {
    let text = document(
        "/pet/{petId}",
        &[
            (
                "get",
                "
                summary: Find pets.
                operationId: findPets
                parameters:
                  - {name: petId, in: path, required: true, schema: {type: integer}}
                responses:
                  '200':
                    description: The pets.
                    content:
                      application/json:
                        schema: {type: array, items: {$ref: '#/components/schemas/Pet'}}",
            ),
            (
                "delete",
                "
                summary: Delete a pet.
                operationId: deletePet
                parameters:
                  - {name: petId, in: path, required: true, schema: {type: integer}}
                responses:
                  '200': {description: The pet was deleted.}",
            ),
            (
                "post",
                "
                description: The picture.
                operationId: getPicture
                parameters:
                  - {name: petId, in: path, required: true, schema: {type: integer}}
                responses:
                  '200':
                    description: An image.
                    content:
                      image/*:
                        schema: {type: string, format: binary}",
            ),
        ],
    );
    let mcp = mcp_of(&text);
    let Output::Structured { schema, wrapped } = &tool(&mcp, "findPets").output else {
        panic!("not structured");
    };
    assert!(wrapped);
    assert_eq!(
        schema.root,
        json!({
            "type": "object",
            "properties": {
                "result": { "type": "array", "items": { "$ref": "#/$defs/Pet" } }
            },
            "required": ["result"]
        })
    );
    assert_eq!(
        tool(&mcp, "deletePet").output,
        Output::Empty {
            message: "The pet was deleted.".to_owned()
        }
    );
    assert_eq!(tool(&mcp, "getPicture").output, Output::Image);
    // Without a summary there is no title; the description alone describes it.
    assert_eq!(tool(&mcp, "getPicture").title, None);
}

#[test]
fn annotations_follow_the_method() {
    let operation = |method: &str, id: &str| {
        (
            method.to_owned(),
            format!(
                "
                summary: An operation.
                operationId: {id}
                responses:
                  '200': {{description: Done.}}"
            ),
        )
    };
    let operations = [
        operation("get", "read"),
        operation("post", "create"),
        operation("put", "replace"),
        operation("delete", "remove"),
        operation("patch", "change"),
    ];
    let borrowed: Vec<(&str, &str)> = operations
        .iter()
        .map(|(method, operation)| (method.as_str(), operation.as_str()))
        .collect();
    let mcp = mcp_of(&document("/thing", &borrowed));
    let hints = |name: &str| tool(&mcp, name).hints;
    let hint = |read_only, destructive, idempotent| Hints {
        read_only,
        destructive,
        idempotent,
    };
    assert_eq!(hints("read"), hint(true, false, false));
    assert_eq!(hints("create"), hint(false, false, false));
    assert_eq!(hints("replace"), hint(false, false, true));
    assert_eq!(hints("remove"), hint(false, true, true));
    assert_eq!(hints("change"), hint(false, false, false));
}

#[test]
fn the_description_says_which_credentials_a_call_needs() {
    let text = secured_spec(
        "
        /pet:
          post:
            summary: Add a pet.
            operationId: addPet
            security:
              - bearerAuth: [pets:write]
              - api_key: [pets:write]
            responses:
              '200': {description: Added.}
              '401': {$ref: '#/components/responses/Unauthorized'}
              '403': {$ref: '#/components/responses/Error'}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
          get:
            summary: Log out.
            operationId: logout
            security:
              - bearerAuth: []
              - {}
            responses:
              '200': {description: Done.}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        SCHEMES,
        None,
    );
    let mcp = mcp_of(&text);
    assert!(
        tool(&mcp, "addPet").description.ends_with(
            "Credentials: `bearerAuth` with `pets:write` or `api_key` with `pets:write`."
        ),
        "{}",
        tool(&mcp, "addPet").description
    );
    assert!(
        tool(&mcp, "logout")
            .description
            .ends_with("Credentials: `bearerAuth` or none."),
        "{}",
        tool(&mcp, "logout").description
    );
}

/// One `GET /thing` operation with these extra lines (`x-mcp`, no summary, …).
fn thing(extra: &str, summary: Option<&str>) -> String {
    let summary = summary.map_or_else(String::new, |summary| format!("summary: {summary}\n"));
    let operation = format!(
        "{summary}operationId: getThing\n{extra}\nresponses:\n  '200': {{description: The thing.}}"
    );
    document("/thing", &[("get", &operation)])
}

#[test]
fn x_mcp_false_leaves_an_operation_out() {
    let text = document(
        "/thing",
        &[
            (
                "get",
                "
                summary: Read.
                operationId: read
                responses:
                  '200': {description: Done.}",
            ),
            (
                "delete",
                "
                summary: Remove.
                operationId: remove
                x-mcp: false
                responses:
                  '200': {description: Done.}",
            ),
            (
                "put",
                "
                summary: Replace.
                operationId: replace
                x-mcp: true
                responses:
                  '200': {description: Done.}",
            ),
        ],
    );
    let names: Vec<String> = mcp_of(&text)
        .tools
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    assert_eq!(names, ["read", "replace"]);
}

#[test]
fn x_mcp_must_be_true_or_false() {
    let errors = match parse_spec(&thing("x-mcp: 'false'", Some("Read."))) {
        Ok(api) => panic!("expected an error, got {api:#?}"),
        Err(errors) => errors.0,
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].location, "#/paths/~1thing/get/x-mcp");
    assert!(
        errors[0]
            .message
            .contains("`x-mcp` must be `true` or `false`")
    );
}

#[test]
fn an_operation_without_summary_or_description_is_not_a_tool() {
    let errors = refused(&thing("", None));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].location, "#/paths/~1thing/get");
    assert!(
        errors[0].message.contains("needs a description"),
        "{errors:?}"
    );
    // Marked `x-mcp: false` it is left out instead.
    assert!(mcp_of(&thing("x-mcp: false", None)).tools.is_empty());
}

#[test]
fn successes_of_different_shapes_are_not_one_tool() {
    let text = document(
        "/thing",
        &[(
            "post",
            "
            summary: Make a thing.
            operationId: makeThing
            responses:
              '200':
                description: Made.
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/Tag'}
              '202': {description: Accepted, made later.}",
        )],
    );
    let errors = refused(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].location, "#/paths/~1thing/post/responses");
    assert!(
        errors[0].message.contains("200 and 202 differ"),
        "{errors:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = document(
        "/thing",
        &[
            (
                "get",
                "
                operationId: first
                responses:
                  '200': {description: Done.}",
            ),
            (
                "put",
                "
                operationId: second
                responses:
                  '200': {description: Done.}",
            ),
        ],
    );
    let locations: Vec<String> = refused(&text)
        .into_iter()
        .map(|error| error.location)
        .collect();
    assert_eq!(locations, ["#/paths/~1thing/get", "#/paths/~1thing/put"]);
}

#[test]
fn tools_are_named_by_their_operation_whatever_the_server_path() {
    let served = mcp_of(&with_servers(&thing("", Some("Read.")), &["/api/v3"]));
    assert_eq!(served.tools.len(), 1);
    assert_eq!(served.tools[0].name, "getThing");
    let paths = format!(
        "/x:\n  get:\n    summary: X.\n    operationId: getX\n    responses:\n      \
         '200': {{description: Done.}}\n{}",
        indent(ERRORS, 6)
    );
    let names: Vec<String> = match tools(&api(&paths, MODELS)) {
        Ok(mcp) => mcp.tools.into_iter().map(|tool| tool.name).collect(),
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(names, ["getX"]);
}

#[test]
fn every_operation_of_the_project_is_a_tool_and_mcp_rs_parses() {
    let specs = project::specs();
    let names: Vec<&str> = specs
        .mcp
        .tools
        .iter()
        .map(|tool| tool.name.as_str())
        .collect();
    assert_eq!(names, project::OPERATION_IDS);
    for tool in &specs.mcp.tools {
        assert!(tool.description.contains("\n\n"), "{}", tool.name);
        assert!(tool.title.is_some(), "{} has no title", tool.name);
        assert_eq!(tool.input.root["type"], json!("object"), "{}", tool.name);
        if let Output::Structured { schema, .. } = &tool.output {
            assert_eq!(schema.root["type"], json!("object"), "{}", tool.name);
        }
        // Every definition a schema names is one the tool list carries.
        let outputs = match &tool.output {
            Output::Structured { schema, .. } => schema.definitions.clone(),
            Output::Image | Output::Empty { .. } => Vec::new(),
        };
        for name in tool.input.definitions.iter().chain(&outputs) {
            assert!(
                specs
                    .mcp
                    .definitions
                    .iter()
                    .any(|definition| &definition.name == name),
                "{} refers to {name}, which is not defined",
                tool.name
            );
        }
    }
    let source = specs
        .sources(Target::Server)
        .into_iter()
        .find_map(|(name, source)| (name == "mcp.rs").then_some(source));
    let Some(source) = source else {
        panic!("no mcp.rs");
    };
    if let Err(error) = syn::parse_file(&source) {
        panic!("mcp.rs does not parse: {error}\n{source}");
    }
    // The JSON reads as JSON: schemas are raw strings, never escaped.
    assert!(source.contains("root: r##\"{\n  \"type\": \"object\","));
    assert!(source.contains("pub const USER_RESULT: &str"));
}
