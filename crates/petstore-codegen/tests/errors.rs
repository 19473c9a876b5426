//! Every construct the generator does not support is rejected with the spec location (a JSON
//! pointer) and a message naming the construct, and all problems are reported in one run. Last,
//! the documentation rule: the project's documents give every parameter and every scalar
//! property a request body can hold an example, and the REST adapter carries them to the spec
//! it serves; the parser itself still reads documents without examples.

mod common;

use common::{SCHEMES, api, secured_spec, spec, valid, with_servers};
use petstore_codegen::{
    GenError, GenErrors, Specs, Target,
    asyncapi::WsApi,
    examples::check as check_examples,
    ir::{Api, ResponseContent},
    names::ERROR_KINDS,
    parse::{parse_document, parse_spec},
};

/// The errors of a complete document that must be rejected.
fn rejected(text: &str) -> Vec<GenError> {
    match parse_spec(text) {
        Ok(api) => panic!("expected errors, got a model: {api:#?}"),
        Err(GenErrors(errors)) => errors,
    }
}

/// The errors of a document that must be rejected.
fn errors(paths: &str, schemas: &str) -> Vec<GenError> {
    rejected(&spec(paths, schemas))
}

/// The one error of a document with exactly one problem; asserts its location and that the
/// message names the construct.
fn single_error(paths: &str, schemas: &str, location: &str, construct: &str) -> GenError {
    single_error_in(&spec(paths, schemas), location, construct)
}

/// [`single_error`] for a complete document.
fn single_error_in(text: &str, location: &str, construct: &str) -> GenError {
    let mut errors = rejected(text);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        list(&errors)
    );
    assert_error(&errors, location, construct);
    errors.remove(0)
}

/// Asserts that one of `errors` is at `location` and mentions `construct`.
#[track_caller]
fn assert_error(errors: &[GenError], location: &str, construct: &str) {
    assert!(
        errors
            .iter()
            .any(|error| error.location == location && error.message.contains(construct)),
        "no error at `{location}` mentioning `{construct}` among:\n{}",
        list(errors)
    );
}

fn list(errors: &[GenError]) -> String {
    errors
        .iter()
        .map(|error| format!("  {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The responses every operation documents besides a 2xx and `5XX`: the edge's timeout and rate
/// limit.
const EDGE: &str = "
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}";

/// `responses` for an operation without a JSON body.
const OK: &str = "
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// `responses` for an operation with a JSON body.
const OK_WITH_BODY: &str = "
      '200': {description: ok}
      '400': {$ref: '#/components/responses/Error'}
      '413': {$ref: '#/components/responses/Error'}
      '415': {$ref: '#/components/responses/Error'}
      '422': {$ref: '#/components/responses/Error'}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
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
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
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
        &format!(
            "/pet:\n  get:\n    operationId: findPets\n    responses:\n      '200': {{description: ok}}{EDGE}"
        ),
        "",
        "#/paths/~1pet/get/responses",
        "`5XX`",
    );
}

#[test]
fn missing_success_response() {
    single_error(
        &format!(
            "/pet:\n  get:\n    operationId: findPets\n    responses:{EDGE}\n      5XX: {{$ref: '#/components/responses/ServerError'}}"
        ),
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
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
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
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";
    api(paths, "");
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
        &format!(
            "/pet:\n  get:\n    operationId: findPets\n    responses:\n      '200': {{description: ok}}{EDGE}\n      5XX: {{$ref: '#/components/responses/Missing'}}"
        ),
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
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
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
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
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
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
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
    for text in [
        "openapi: [not, a, document",
        "openapi: 3.0.3\ninfo: {title: t}\n",
    ] {
        let errors = match parse_spec(text) {
            Ok(api) => panic!("accepted: {api:?}"),
            Err(errors) => errors.0,
        };
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].location, "#");
        assert!(
            errors[0]
                .message
                .starts_with("not a valid OpenAPI 3.0 document: "),
            "{}",
            errors[0].message
        );
        // The one-parse entry point `load` uses refuses it alike.
        match parse_document(text) {
            Ok((value, _)) => panic!("accepted: {value}"),
            Err(GenErrors(document_errors)) => assert_eq!(document_errors, errors),
        }
    }
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
      '408': {{$ref: '#/components/responses/Error'}}
      '418': {{$ref: '#/components/responses/Error'}}
      '429': {{$ref: '#/components/responses/TooManyRequests'}}
      default: {{$ref: '#/components/responses/Error'}}"
    );
    let text = with_servers(
        &spec(
            &paths,
            "
Pet:
  type: object
  properties:
    kind: {type: string, enum: [cat, dog]}
    nickname: {type: string, nullable: true}",
        ),
        &["https://petstore.example.com/api/v3"],
    );
    let errors = rejected(&text);
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
            "#/paths/~1store/get/responses/418",
            "#/paths/~1store/get/responses",
            "#/servers/0/url",
        ],
        "{errors:#?}"
    );
    // The rendered list names every location, one per line.
    let rendered = GenErrors(errors).to_string();
    assert_eq!(rendered.lines().count(), 9, "{rendered}");
    assert!(rendered.contains("#/paths/~1store/get/parameters/0: cookie parameters"));
    assert!(rendered.contains("#/paths/~1store/get/responses/418: error status 418"));
    assert!(rendered.contains("#/servers/0/url: the server URL must be a path"));
}

/// `responses` for an operation that requires credentials.
const SECURED_OK: &str = "
      '200': {description: ok}
      '401': {$ref: '#/components/responses/Unauthorized'}
      '403': {$ref: '#/components/responses/Error'}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";

/// `POST /pet` with the given `security` list and every response a secured operation needs.
fn secured_post(security: &str) -> String {
    format!(
        "
/pet:
  post:
    operationId: addPet
    security:{}
    responses:{SECURED_OK}",
        indent_by(security, 6)
    )
}

#[test]
fn unknown_security_scheme() {
    single_error_in(
        &secured_spec(&secured_post("\n- nope: [pets:write]"), SCHEMES, None),
        "#/paths/~1pet/post/security/0",
        "unknown security scheme `nope`",
    );
}

#[test]
fn unknown_security_scheme_in_the_document_security() {
    single_error_in(
        &secured_spec(
            &format!("/pet:\n  get:\n    operationId: findPets\n    responses:{SECURED_OK}"),
            SCHEMES,
            Some("- bearerAuth: []\n- nope: []"),
        ),
        "#/security/1",
        "unknown security scheme `nope`",
    );
}

#[test]
fn unsupported_security_scheme_types() {
    for (scheme, construct) in [
        ("{type: http, scheme: basic}", "`basic` is not supported"),
        (
            "{type: apiKey, in: query, name: key}",
            "`in: query` are not supported",
        ),
        (
            "{type: apiKey, in: cookie, name: key}",
            "`in: cookie` are not supported",
        ),
        (
            "{type: oauth2, flows: {clientCredentials: {tokenUrl: 'https://example.com/token', scopes: {}}}}",
            "`oauth2` security schemes are not supported",
        ),
        (
            "{type: openIdConnect, openIdConnectUrl: 'https://example.com/.well-known/openid-configuration'}",
            "`openIdConnect` security schemes are not supported",
        ),
        (
            "{$ref: '#/components/securitySchemes/bearerAuth'}",
            "$ref security schemes are not supported",
        ),
    ] {
        let schemes = format!("{SCHEMES}\nother: {scheme}");
        // Used by an operation, the scheme is reported where it is declared, and only there.
        single_error_in(
            &secured_spec(&secured_post("\n- other: []"), &schemes, None),
            "#/components/securitySchemes/other",
            construct,
        );
    }
}

#[test]
fn scope_that_cannot_become_a_variant_name() {
    for scope in [
        "Pets:write",
        "pets::write",
        "pets:write-all",
        "pets_write",
        "1pets",
    ] {
        single_error_in(
            &secured_spec(
                &secured_post(&format!("\n- bearerAuth: [pets:read, '{scope}']")),
                SCHEMES,
                None,
            ),
            "#/paths/~1pet/post/security/0/bearerAuth/1",
            &format!("scope `{scope}` must match"),
        );
    }
}

#[test]
fn a_bad_scope_is_reported_once_where_it_is_first_named() {
    let text = secured_spec(
        &secured_post("\n- bearerAuth: [Pets]\n- api_key: [Pets]"),
        SCHEMES,
        Some("- bearerAuth: [Pets]"),
    );
    single_error_in(&text, "#/security/0/bearerAuth/0", "scope `Pets`");
}

#[test]
fn scopes_that_become_the_same_variant() {
    single_error_in(
        &secured_spec(
            &secured_post("\n- bearerAuth: ['orders:read_all']\n- api_key: ['orders:read:all']"),
            SCHEMES,
            None,
        ),
        "#/paths/~1pet/post/security/1/api_key/0",
        "scopes `orders:read_all` and `orders:read:all` both become the Rust variant `OrdersReadAll`",
    );
}

#[test]
fn security_schemes_that_become_the_same_constant() {
    single_error_in(
        &secured_spec(
            &secured_post("\n- bearerAuth: []"),
            &format!("{SCHEMES}\nbearer_auth: {{type: http, scheme: bearer}}"),
            None,
        ),
        "#/components/securitySchemes/bearer_auth",
        "`bearerAuth` and `bearer_auth` both become the Rust constant `BEARER_AUTH`",
    );
}

#[test]
fn security_scheme_named_like_a_generated_constant() {
    single_error_in(
        &secured_spec(
            &secured_post("\n- operations: []"),
            "operations: {type: http, scheme: bearer}",
            None,
        ),
        "#/components/securitySchemes/operations",
        "`OPERATIONS`",
    );
}

#[test]
fn security_scheme_name_that_cannot_become_a_constant() {
    single_error_in(
        &secured_spec(
            &secured_post("\n- '2fa': []"),
            "'2fa': {type: http, scheme: bearer}",
            None,
        ),
        "#/components/securitySchemes/2fa",
        "must start with a letter",
    );
}

#[test]
fn secured_operation_without_401_and_403() {
    let paths = "
/pet:
  post:
    operationId: addPet
    security:
      - bearerAuth: [pets:write]
    responses:
      '200': {description: ok}
      '408': {$ref: '#/components/responses/Error'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      5XX: {$ref: '#/components/responses/ServerError'}";
    let errors = rejected(&secured_spec(paths, SCHEMES, None));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for status in ["401", "403"] {
        assert_error(
            &errors,
            "#/paths/~1pet/post/responses",
            &format!(
                "requires credentials (no `{{}}` alternative in its `security`) must document {status}"
            ),
        );
    }
}

#[test]
fn operation_secured_by_the_document_default_without_401_and_403() {
    let errors = rejected(&secured_spec(
        &format!("/pet:\n  get:\n    operationId: findPets\n    responses:{OK}"),
        SCHEMES,
        Some("- api_key: []"),
    ));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(&errors, "#/paths/~1pet/get/responses", "must document 401");
    assert_error(&errors, "#/paths/~1pet/get/responses", "must document 403");
}

#[test]
fn an_anonymous_alternative_needs_no_401_or_403() {
    let paths = format!(
        "/user/logout:\n  get:\n    operationId: logoutUser\n    security:\n      - bearerAuth: []\n      - {{}}\n    responses:{OK}"
    );
    valid(&secured_spec(&paths, SCHEMES, None));
}

#[test]
fn operation_without_408_and_429() {
    let errors = errors(
        "/pet:\n  get:\n    operationId: findPets\n    responses:\n      '200': {description: ok}\n      5XX: {$ref: '#/components/responses/ServerError'}",
        "",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        "#/paths/~1pet/get/responses",
        "every operation must document 408 (the edge may time out any request)",
    );
    assert_error(
        &errors,
        "#/paths/~1pet/get/responses",
        "every operation must document 429 (the edge may rate-limit any request)",
    );
}

#[test]
fn error_response_header_that_is_neither_a_string_nor_an_integer() {
    single_error(
        &format!(
            "
/pet:
  get:
    operationId: findPets
    responses:{OK}
      '409':
        description: Conflict.
        headers:
          Retry-After:
            required: true
            schema: {{type: string, format: date-time}}
        content:
          application/json:
            schema: {{$ref: '#/components/schemas/ErrorResponse'}}"
        ),
        "",
        "#/paths/~1pet/get/responses/409/headers/Retry-After/schema",
        "headers of error responses must be `type: string` (no format) or `type: integer`",
    );
}

// ---- error kinds ----

/// `/pet` answering `status` with the shared client error, besides what every operation
/// documents.
fn get_answering(status: &str) -> String {
    format!(
        "/pet:\n  get:\n    operationId: findPets\n    responses:{OK}\n      '{status}': {{$ref: '#/components/responses/Error'}}"
    )
}

#[test]
fn error_status_without_an_error_kind() {
    // 503 is a server error, but only the `5XX` range has a kind; 3xx statuses are not
    // successes, so they are error statuses too.
    for status in ["302", "405", "418", "503"] {
        let error = single_error(
            &get_answering(status),
            "",
            &format!("#/paths/~1pet/get/responses/{status}"),
            &format!("error status {status} has no error kind"),
        );
        assert_eq!(
            error.message,
            format!(
                "error status {status} has no error kind in the contract (known: 400, 401, 403, \
                 404, 408, 409, 413, 415, 422, 429 and `5XX`); add the kind to petstore-api's \
                 `error` module and to `names::ERROR_KINDS`"
            )
        );
    }
}

#[test]
fn every_status_with_an_error_kind_is_accepted_as_an_error() {
    let extra: String = ERROR_KINDS
        .iter()
        .map(|(status, _)| *status)
        .filter(|status| ![408, 429].contains(status))
        .map(|status| format!("\n      '{status}': {{$ref: '#/components/responses/Error'}}"))
        .collect();
    let api = api(
        &format!("/pet:\n  get:\n    operationId: findPets\n    responses:{OK}{extra}"),
        "",
    );
    let errors = api.operations[0]
        .responses
        .iter()
        .filter(|response| response.content == ResponseContent::Error)
        .count();
    // Every kind, and `5XX`.
    assert_eq!(errors, ERROR_KINDS.len() + 1);
}

// ---- servers ----

#[test]
fn server_url_that_is_not_a_path() {
    for url in [
        "https://petstore.example.com/api/v3",
        "api/v3",
        "{scheme}://petstore.example.com",
    ] {
        let error = single_error_in(
            &with_servers(&spec("", ""), &[url]),
            "#/servers/0/url",
            "the server URL must be a path",
        );
        assert_eq!(
            error.message,
            "the server URL must be a path (`/api/v3`): the server is reached at whatever host \
             serves it",
            "{url}"
        );
    }
}

#[test]
fn a_property_name_that_cannot_become_a_rust_name() {
    for name in ["2fa", "self", "crate", "_"] {
        let schema = format!(
            "
Pet:
  type: object
  properties:
    '{name}': {{type: string}}"
        );
        let error = single_error(
            POST_PET,
            &schema,
            &format!("#/components/schemas/Pet/properties/{name}"),
            "cannot become a Rust name",
        );
        assert!(error.message.contains(&format!("`{name}`")), "{error}");
    }
}

#[test]
fn two_property_names_that_become_one_rust_name() {
    single_error(
        POST_PET,
        "
Pet:
  type: object
  properties:
    petId: {type: integer}
    pet_id: {type: integer}",
        "#/components/schemas/Pet/properties/pet_id",
        "`pet_id` and `petId` would both become the Rust name `pet_id`",
    );
}

#[test]
fn two_parameter_names_that_become_one_rust_name() {
    single_error(
        &get_with_params(
            "
- {name: petId, in: query, schema: {type: integer}}
- {name: pet-id, in: header, schema: {type: integer}}",
        ),
        "",
        "#/paths/~1pet/get/parameters/1",
        "`pet-id` and `petId` would both become the Rust name `pet_id`",
    );
}

#[test]
fn a_parameter_named_like_the_request_body_field() {
    single_error(
        &get_with_params("\n- {name: body, in: query, schema: {type: string}}"),
        "",
        "#/paths/~1pet/get/parameters/0",
        "`body` and `the request body` would both become the Rust name `body`",
    );
}

// ---- the documentation rule (`examples::check`, run by `load`, not by the parser) ----

/// `PUT /pet/{petId}` with a query parameter and a `Pet` body, and `GET /store/inventory`
/// without parameters or body; `examples` is `true` for the version with every example.
fn example_document(examples: bool) -> String {
    let (param_example, query_example) = if examples {
        ("example: 10", "example: [tag1]")
    } else {
        ("", "")
    };
    let paths = format!(
        "
/pet/{{petId}}:
  put:
    operationId: updatePet
    parameters:
      - name: petId
        in: path
        required: true
        schema: {{type: integer, format: int64, minimum: 1}}
        {param_example}
      - name: tags
        in: query
        schema: {{type: array, items: {{type: string}}}}
        {query_example}
    requestBody:
      required: true
      content:
        application/json:
          schema: {{$ref: '#/components/schemas/Pet'}}
    responses:
      '200': {{description: ok}}
      '400': {{$ref: '#/components/responses/Error'}}
      '408': {{$ref: '#/components/responses/Error'}}
      '413': {{$ref: '#/components/responses/Error'}}
      '415': {{$ref: '#/components/responses/Error'}}
      '422': {{$ref: '#/components/responses/Error'}}
      '429': {{$ref: '#/components/responses/TooManyRequests'}}
      5XX: {{$ref: '#/components/responses/ServerError'}}
/store/inventory:
  get:
    operationId: getInventory
    responses:
      '200': {{description: ok}}
      '408': {{$ref: '#/components/responses/Error'}}
      '429': {{$ref: '#/components/responses/TooManyRequests'}}
      5XX: {{$ref: '#/components/responses/ServerError'}}"
    );
    let example = |value: &str| {
        if examples {
            format!(", example: {value}")
        } else {
            String::new()
        }
    };
    let schemas = format!(
        "
Pet:
  type: object
  required: [name, photoUrls]
  properties:
    id: {{type: integer, format: int64, readOnly: true}}
    name: {{type: string{name}}}
    photoUrls: {{type: array, items: {{type: string}}{urls}}}
    status: {{$ref: '#/components/schemas/Status'}}
    available: {{type: boolean}}
    category: {{$ref: '#/components/schemas/Category'}}
Category:
  type: object
  properties:
    id: {{type: integer, format: int64, minimum: 0{category_id}}}
Status:
  type: string
  enum: [available, sold]
Unused:
  type: object
  properties:
    note: {{type: string}}",
        name = example("doggie"),
        urls = example("['https://example.com/a.jpg']"),
        category_id = example("1"),
    );
    spec(&paths, &schemas)
}

fn missing_examples(api: &Api) -> Vec<GenError> {
    match check_examples(api) {
        Ok(()) => Vec::new(),
        Err(GenErrors(errors)) => errors,
    }
}

#[test]
fn a_document_with_every_example_passes() {
    assert_eq!(
        missing_examples(&valid(&example_document(true))),
        Vec::new()
    );
}

#[test]
fn the_generator_reads_a_document_without_examples() {
    let api = valid(&example_document(false));
    let update = &api.operations[0];
    assert!(update.params.iter().all(|param| param.example.is_none()));
}

#[test]
fn every_missing_example_is_reported_where_it_belongs() {
    let mut found: Vec<(String, String)> = missing_examples(&valid(&example_document(false)))
        .into_iter()
        .map(|error| (error.location, error.message))
        .collect();
    found.sort();
    let locations: Vec<&str> = found.iter().map(|(at, _)| at.as_str()).collect();
    // Not the read-only `id`, the enum `status`, the boolean, the nested model (its own
    // properties are checked) or a model no request body reaches.
    assert_eq!(
        locations,
        [
            "#/components/schemas/Category/properties/id",
            "#/components/schemas/Pet/properties/name",
            "#/components/schemas/Pet/properties/photoUrls",
            "#/paths/~1pet~1{petId}/put",
            "#/paths/~1pet~1{petId}/put",
        ]
    );
    assert!(found[3].1.contains("parameter `petId` needs an `example`"));
    assert!(found[4].1.contains("parameter `tags` needs an `example`"));
    assert!(found[0].1.contains("request body"), "{}", found[0].1);
}

#[test]
fn a_parameter_takes_its_schemas_example_when_it_has_none() {
    let text = example_document(true)
        .replace("example: 10", "")
        .replace("minimum: 1}", "minimum: 1, example: 7}");
    let api = valid(&text);
    assert_eq!(missing_examples(&api), Vec::new());
    assert_eq!(
        api.operations[0].params[0].example,
        Some(serde_json::json!(7))
    );
}

#[test]
fn the_rest_adapter_lists_the_examples_for_the_served_spec() {
    let api = valid(&example_document(true));
    // The example document leaves out what a tool needs (a summary); only `rest.rs` matters here.
    let mcp = petstore_codegen::mcp::tools(&api).unwrap_or_default();
    let specs = Specs {
        api,
        ws: WsApi {
            address: "/ws".to_owned(),
            actions: Vec::new(),
            events: Vec::new(),
        },
        mcp,
    };
    let rest = specs
        .sources(Target::Server)
        .into_iter()
        .find_map(|(name, source)| (name == "rest.rs").then_some(source))
        .expect("rest.rs is generated");
    let compact: String = rest.split_whitespace().collect();
    for expected in [
        r#"("Pet","name","\"doggie\"")"#,
        r#"("Pet","photoUrls","[\"https://example.com/a.jpg\"]")"#,
        r#"("Category","id","1")"#,
        r#"("updatePet","petId","10")"#,
        r#"("updatePet","tags","[\"tag1\"]")"#,
    ] {
        assert!(compact.contains(expected), "no {expected} in:\n{rest}");
    }
    assert!(compact.contains("pubconstPROPERTY_EXAMPLES"));
    assert!(compact.contains("pubconstPARAMETER_EXAMPLES"));
}

#[test]
fn an_edge_handled_header_is_documented_apart_from_the_request() {
    let api = valid(&spec(
        &get_with_params(
            "\n- {name: Idempotency-Key, in: header, x-handled-by: edge, example: k-1, schema: {type: string, maxLength: 255}}\
             \n- {name: tags, in: query, schema: {type: string}}",
        ),
        "",
    ));
    let operation = &api.operations[0];
    assert_eq!(
        operation
            .params
            .iter()
            .map(|param| param.name.as_str())
            .collect::<Vec<_>>(),
        ["tags"]
    );
    assert_eq!(operation.edge_params.len(), 1);
    assert_eq!(operation.edge_params[0].name, "Idempotency-Key");
}

#[test]
fn only_an_optional_header_can_be_handled_by_the_edge() {
    single_error(
        &get_with_params("\n- {name: tags, in: query, x-handled-by: edge, schema: {type: string}}"),
        "",
        "#/paths/~1pet/get/parameters/0",
        "only optional header parameters",
    );
    single_error(
        &get_with_params(
            "\n- {name: Idempotency-Key, in: header, x-handled-by: proxy, schema: {type: string}}",
        ),
        "",
        "#/paths/~1pet/get/parameters/0/x-handled-by",
        "`x-handled-by`",
    );
}
