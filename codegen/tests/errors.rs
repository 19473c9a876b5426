//! Every construct the generator does not support is rejected with the spec location (a JSON
//! pointer) and a message naming the construct, and all problems are reported in one run.

mod common;

use common::{assert_error, errors, single_error};
use petstore_codegen::parse::parse_spec;

/// `responses` for an operation without a JSON body.
const OK: &str = "
      '200': {description: ok}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// `responses` for an operation with a JSON body.
const OK_WITH_BODY: &str = "
      '200': {description: ok}
      '400': {$ref: '#/components/responses/Error'}
      '413': {$ref: '#/components/responses/Error'}
      '415': {$ref: '#/components/responses/Error'}
      '422': {$ref: '#/components/responses/Error'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// `GET /pet` with the given parameters (a YAML list) and the usual responses.
fn get_with_params(parameters: &str) -> String {
    format!(
        "
/pet:
  get:
    operationId: findPets
    parameters:{}
    responses:{OK}",
        indent_by(parameters, 6)
    )
}

/// `POST /pet` with the given `requestBody` mapping and the responses a JSON body needs.
fn post_with_body(body: &str) -> String {
    format!(
        "
/pet:
  post:
    operationId: addPet
    requestBody:{}
    responses:{OK_WITH_BODY}",
        indent_by(body, 6)
    )
}

/// `POST /pet` taking a `Pet` whose schema is given, for schema-level errors.
const POST_PET: &str = "
/pet:
  post:
    operationId: addPet
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: '#/components/schemas/Pet'}
    responses:
      '200': {description: ok}
      '400': {$ref: '#/components/responses/Error'}
      '413': {$ref: '#/components/responses/Error'}
      '415': {$ref: '#/components/responses/Error'}
      '422': {$ref: '#/components/responses/Error'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// Indents every line of a snippet written at column 0 (for nesting in the helpers above).
fn indent_by(text: &str, by: usize) -> String {
    text.lines()
        .map(|line| {
            if line.trim().is_empty() {
                String::new()
            } else {
                format!("{}{line}", " ".repeat(by))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `Pet` component with one property, for schema-level errors.
fn pet_with(property: &str) -> String {
    format!(
        "
Pet:
  type: object
  properties:
    field:{}",
        indent_by(property, 6)
    )
}

const PET_FIELD: &str = "#/components/schemas/Pet/properties/field";

#[test]
fn missing_operation_id() {
    single_error(
        &format!("/pet:\n  get:\n    responses:{OK}"),
        "",
        "#/paths/~1pet/get",
        "operationId",
    );
}

#[test]
fn operation_id_that_is_not_lower_camel_case() {
    single_error(
        &format!("/pet:\n  get:\n    operationId: find_pets\n    responses:{OK}"),
        "",
        "#/paths/~1pet/get/operationId",
        "lowerCamelCase",
    );
}

#[test]
fn default_response() {
    single_error(
        &format!(
            "/pet:\n  get:\n    operationId: findPets\n    responses:{OK}\n      default: {{$ref: '#/components/responses/Error'}}"
        ),
        "",
        "#/paths/~1pet/get/responses/default",
        "`default`",
    );
}

#[test]
fn missing_5xx() {
    single_error(
        "/pet:\n  get:\n    operationId: findPets\n    responses:\n      '200': {description: ok}",
        "",
        "#/paths/~1pet/get/responses",
        "`5XX`",
    );
}

#[test]
fn missing_success_response() {
    single_error(
        "/pet:\n  get:\n    operationId: findPets\n    responses:\n      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
        "#/paths/~1pet/get/responses",
        "2xx",
    );
}

#[test]
fn json_body_without_400_413_415_422() {
    let paths = "
/pet:
  post:
    operationId: addPet
    requestBody:
      required: true
      content:
        application/json:
          schema: {type: string}
    responses:
      '200': {description: ok}
      5XX: {$ref: '#/components/responses/ServerError'}";
    let errors = errors(paths, "");
    assert_eq!(errors.len(), 4, "{errors:#?}");
    for status in ["400", "413", "415", "422"] {
        assert_error(
            &errors,
            "#/paths/~1pet/post/responses",
            &format!("JSON body must document {status}"),
        );
    }
}

#[test]
fn binary_body_needs_no_json_error_statuses() {
    let paths = "
/pet:
  post:
    operationId: upload
    requestBody:
      required: true
      content:
        application/octet-stream:
          schema: {type: string, format: binary}
    responses:
      '200': {description: ok}
      5XX: {$ref: '#/components/responses/ServerError'}";
    assert!(parse_spec(&common::spec(paths, "")).is_ok());
}

#[test]
fn inline_object_schema_in_a_body() {
    single_error(
        &post_with_body(
            "
required: true
content:
  application/json:
    schema:
      type: object
      properties:
        name: {type: string}",
        ),
        "",
        "#/paths/~1pet/post/requestBody/content/application~1json/schema",
        "inline object schemas",
    );
}

#[test]
fn inline_object_schema_in_a_property() {
    single_error(
        POST_PET,
        &pet_with("\ntype: object\nproperties:\n  inner: {type: string}"),
        PET_FIELD,
        "inline object schemas",
    );
}

#[test]
fn inline_enum() {
    single_error(
        POST_PET,
        &pet_with("\ntype: string\nenum: [a, b]"),
        PET_FIELD,
        "inline enums",
    );
}

#[test]
fn one_of() {
    single_error(
        POST_PET,
        &pet_with("\noneOf:\n  - {type: string}\n  - {type: integer}"),
        PET_FIELD,
        "oneOf",
    );
}

#[test]
fn all_of() {
    single_error(
        POST_PET,
        &pet_with("\nallOf:\n  - {type: string}"),
        PET_FIELD,
        "allOf",
    );
}

#[test]
fn nullable() {
    single_error(
        POST_PET,
        &pet_with("\ntype: string\nnullable: true"),
        PET_FIELD,
        "`nullable`",
    );
}

#[test]
fn cookie_parameter() {
    single_error(
        &get_with_params("\n- {name: session, in: cookie, schema: {type: string}}"),
        "",
        "#/paths/~1pet/get/parameters/0",
        "cookie parameters",
    );
}

#[test]
fn explode_false() {
    single_error(
        &get_with_params(
            "\n- {name: tags, in: query, explode: false, schema: {type: array, items: {type: string}}}",
        ),
        "",
        "#/paths/~1pet/get/parameters/0/explode",
        "`explode: false`",
    );
}

#[test]
fn unknown_string_format() {
    single_error(
        POST_PET,
        &pet_with("\ntype: string\nformat: email"),
        PET_FIELD,
        "string format `email`",
    );
}

#[test]
fn known_but_unsupported_string_format_is_named_as_in_the_spec() {
    single_error(
        POST_PET,
        &pet_with("\ntype: string\nformat: date"),
        PET_FIELD,
        "string format `date`",
    );
}

#[test]
fn unknown_integer_format() {
    single_error(
        POST_PET,
        &pet_with("\ntype: integer\nformat: int8"),
        PET_FIELD,
        "integer format `int8`",
    );
}

#[test]
fn dangling_ref() {
    single_error(
        POST_PET,
        &pet_with("\n$ref: '#/components/schemas/Missing'"),
        PET_FIELD,
        "dangling `$ref`: `#/components/schemas/Missing`",
    );
}

#[test]
fn dangling_response_ref() {
    single_error(
        "/pet:\n  get:\n    operationId: findPets\n    responses:\n      '200': {description: ok}\n      5XX: {$ref: '#/components/responses/Missing'}",
        "",
        "#/paths/~1pet/get/responses/5XX",
        "`#/components/responses/Missing`",
    );
}

#[test]
fn several_media_types_in_a_request_body() {
    single_error(
        &post_with_body(
            "
required: true
content:
  application/json:
    schema: {type: string}
  application/xml:
    schema: {type: string}",
        ),
        "",
        "#/paths/~1pet/post/requestBody/content",
        "several media types",
    );
}

#[test]
fn several_media_types_in_a_response() {
    single_error(
        "
/pet:
  get:
    operationId: findPets
    responses:
      '200':
        description: ok
        content:
          application/json:
            schema: {type: string}
          application/xml:
            schema: {type: string}
      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
        "#/paths/~1pet/get/responses/200/content",
        "several media types",
    );
}

#[test]
fn optional_request_body() {
    single_error(
        &post_with_body(
            "
content:
  application/json:
    schema: {type: string}",
        ),
        "",
        "#/paths/~1pet/post/requestBody",
        "optional request bodies",
    );
}

#[test]
fn unsupported_request_media_type() {
    single_error(
        &post_with_body(
            "
required: true
content:
  application/x-www-form-urlencoded:
    schema: {type: string}",
        ),
        "",
        "#/paths/~1pet/post/requestBody/content/application~1x-www-form-urlencoded",
        "`application/x-www-form-urlencoded`",
    );
}

#[test]
fn non_required_response_header() {
    single_error(
        "
/user/login:
  get:
    operationId: loginUser
    responses:
      '200':
        description: ok
        headers:
          X-Rate-Limit:
            schema: {type: integer, format: int32}
      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
        "#/paths/~1user~1login/get/responses/200/headers/X-Rate-Limit",
        "`required: true`",
    );
}

#[test]
fn error_response_with_another_schema() {
    single_error(
        "
/pet:
  get:
    operationId: findPets
    responses:
      '200': {description: ok}
      '404':
        description: Not found.
        content:
          application/json:
            schema: {type: string}
      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
        "#/paths/~1pet/get/responses/404/content/application~1json",
        "`ErrorResponse`",
    );
}

#[test]
fn error_response_without_a_body() {
    single_error(
        &format!(
            "/pet:\n  get:\n    operationId: findPets\n    responses:{OK}\n      '404': {{description: Not found.}}"
        ),
        "",
        "#/paths/~1pet/get/responses/404",
        "`ErrorResponse`",
    );
}

#[test]
fn item_constraints_on_an_array_parameter() {
    single_error(
        &get_with_params(
            "\n- {name: tags, in: query, schema: {type: array, items: {type: string, maxLength: 10}}}",
        ),
        "",
        "#/paths/~1pet/get/parameters/0/schema/items",
        "constraints on the items",
    );
}

#[test]
fn item_constraints_from_an_alias_on_an_array_parameter() {
    single_error(
        &get_with_params(
            "\n- {name: names, in: query, schema: {type: array, items: {$ref: '#/components/schemas/Name'}}}",
        ),
        "\nName: {type: string, minLength: 1}",
        "#/paths/~1pet/get/parameters/0/schema/items",
        "constraints on the items",
    );
}

#[test]
fn object_parameter() {
    single_error(
        &get_with_params(
            "\n- {name: filter, in: query, schema: {$ref: '#/components/schemas/Pet'}}",
        ),
        "\nPet: {type: object, properties: {id: {type: integer}}}",
        "#/paths/~1pet/get/parameters/0/schema",
        "primitives, enums, or arrays",
    );
}

#[test]
fn undeclared_path_parameter() {
    single_error(
        &format!("/pet/{{petId}}:\n  get:\n    operationId: getPet\n    responses:{OK}"),
        "",
        "#/paths/~1pet~1{petId}/get",
        "path parameter `petId`",
    );
}

#[test]
fn optional_path_parameter() {
    let errors = errors(
        &format!(
            "/pet/{{petId}}:\n  get:\n    operationId: getPet\n    parameters:\n      - {{name: petId, in: path, schema: {{type: integer}}}}\n    responses:{OK}"
        ),
        "",
    );
    assert_error(
        &errors,
        "#/paths/~1pet~1{petId}/get/parameters/0",
        "path parameters must be required",
    );
}

#[test]
fn component_name_that_is_not_a_rust_type_name() {
    single_error(
        "",
        "\npet: {type: object, properties: {id: {type: integer}}}",
        "#/components/schemas/pet",
        "UpperCamelCase",
    );
}

#[test]
fn unsupported_method() {
    single_error(
        &format!("/pet:\n  head:\n    operationId: headPet\n    responses:{OK}"),
        "",
        "#/paths/~1pet/head",
        "method is not supported",
    );
}

#[test]
fn text_that_is_not_an_openapi_document() {
    let errors = match parse_spec("openapi: [not, a, document") {
        Ok(api) => panic!("accepted: {api:?}"),
        Err(errors) => errors.0,
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].location, "#");
    assert!(errors[0].message.contains("not a valid OpenAPI"));
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let paths = format!(
        "
/pet:
  get:
    responses:{OK}
  post:
    operationId: addPet
    requestBody:
      content:
        application/json:
          schema: {{$ref: '#/components/schemas/Pet'}}
    responses:{OK_WITH_BODY}
/store:
  get:
    operationId: getStore
    parameters:
      - {{name: session, in: cookie, schema: {{type: string}}}}
    responses:
      '200': {{description: ok}}
      default: {{$ref: '#/components/responses/Error'}}"
    );
    let errors = errors(
        &paths,
        "
Pet:
  type: object
  properties:
    kind: {type: string, enum: [cat, dog]}
    nickname: {type: string, nullable: true}",
    );
    let locations: Vec<_> = errors.iter().map(|e| e.location.as_str()).collect();
    assert_eq!(
        locations,
        [
            "#/components/schemas/Pet/properties/kind",
            "#/components/schemas/Pet/properties/nickname",
            "#/paths/~1pet/get",
            "#/paths/~1pet/post/requestBody",
            "#/paths/~1store/get/parameters/0",
            "#/paths/~1store/get/responses/default",
            "#/paths/~1store/get/responses",
        ],
        "{errors:#?}"
    );
    // The rendered list names every location, one per line.
    let rendered = petstore_codegen::GenErrors(errors).to_string();
    assert_eq!(rendered.lines().count(), 7, "{rendered}");
    assert!(rendered.contains("#/paths/~1store/get/parameters/0: cookie parameters"));
}
