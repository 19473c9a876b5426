//! The intermediate model built from small, valid spec snippets: what the emitters are handed.

mod common;

use common::{SCHEMES, api, secured_spec, spec, valid, with_servers};
use petstore_codegen::ir::{
    Body, BodyContent, Bound, Constraints, Field, IntFormat, Kind, Method, Model, ParamLocation,
    Requirement, ResponseContent, Schema, SchemeKind, SecuritySchemeInfo, Status, StringFormat,
};
use petstore_codegen::parse::{parse_document, parse_spec};

/// A schema without constraints.
fn plain(kind: Kind) -> Schema {
    Schema {
        kind,
        constraints: Constraints::default(),
        description: None,
        example: None,
    }
}

fn named(name: &str) -> Schema {
    plain(Kind::Named(name.to_owned()))
}

const PET: &str = "
    Pet:
      type: object
      required: [name, photoUrls]
      properties:
        id:
          type: integer
          format: int64
          readOnly: true
        name:
          $ref: '#/components/schemas/PetName'
        photoUrls:
          type: array
          minItems: 1
          maxItems: 20
          uniqueItems: true
          items:
            type: string
            maxLength: 2048
        status:
          $ref: '#/components/schemas/PetStatus'
        secret:
          type: string
          writeOnly: true
    PetName:
      description: A pet's name.
      type: string
      minLength: 1
      maxLength: 100
    PetStatus:
      type: string
      enum: [available, pending, sold]
    EntityId:
      type: integer
      format: int64
      minimum: 1
";

#[test]
fn operations_keep_id_method_path_and_tag_in_spec_order() {
    let api = api(
        "
        /pet/{petId}:
          get:
            tags: [pet, other]
            summary: Find pet.
            operationId: getPetById
            parameters:
              - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
            responses:
              '200': {description: ok}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
          delete:
            operationId: deletePet
            parameters:
              - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
            responses:
              '200': {description: ok}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        /store/inventory:
          get:
            operationId: getInventory
            responses:
              '200': {description: ok}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        PET,
    );
    let summary: Vec<_> = api
        .operations
        .iter()
        .map(|op| {
            (
                op.id.as_str(),
                op.method,
                op.path.as_str(),
                op.tag.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("getPetById", Method::Get, "/pet/{petId}", Some("pet")),
            ("deletePet", Method::Delete, "/pet/{petId}", None),
            ("getInventory", Method::Get, "/store/inventory", None),
        ]
    );
    assert_eq!(api.operations[0].summary.as_deref(), Some("Find pet."));
}

#[test]
fn parameters_keep_location_requiredness_and_inlined_schema() {
    let api = api(
        "
        /pet/{petId}:
          post:
            operationId: updatePetWithForm
            parameters:
              - name: api_key
                in: header
                schema: {type: string, maxLength: 256}
              - name: petId
                in: path
                required: true
                schema: {$ref: '#/components/schemas/EntityId'}
              - name: name
                in: query
                description: New name.
                schema: {$ref: '#/components/schemas/PetName'}
              - name: status
                in: query
                required: true
                schema: {$ref: '#/components/schemas/PetStatus'}
              - name: tags
                in: query
                style: form
                explode: true
                schema:
                  type: array
                  maxItems: 3
                  items: {$ref: '#/components/schemas/PetStatus'}
            responses:
              '200': {description: ok}
              '400': {$ref: '#/components/responses/Error'}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        PET,
    );
    let params = &api.operations[0].params;
    let summary: Vec<_> = params
        .iter()
        .map(|p| (p.name.as_str(), p.location, p.required))
        .collect();
    assert_eq!(
        summary,
        [
            ("api_key", ParamLocation::Header, false),
            ("petId", ParamLocation::Path, true),
            ("name", ParamLocation::Query, false),
            ("status", ParamLocation::Query, true),
            ("tags", ParamLocation::Query, false),
        ]
    );
    assert_eq!(params[2].description.as_deref(), Some("New name."));

    assert_eq!(params[0].schema.kind, Kind::String(StringFormat::Plain));
    assert_eq!(params[0].schema.constraints.max_length, Some(256));
    // A primitive alias is inlined with its constraints.
    assert_eq!(params[1].schema.kind, Kind::Integer(IntFormat::I64));
    assert_eq!(
        params[1].schema.constraints.minimum,
        Some(Bound {
            value: 1.0,
            exclusive: false
        })
    );
    assert_eq!(params[2].schema.kind, Kind::String(StringFormat::Plain));
    assert_eq!(params[2].schema.constraints.min_length, Some(1));
    assert_eq!(params[2].schema.constraints.max_length, Some(100));
    // An enum stays a reference to its model.
    assert_eq!(params[3].schema, named("PetStatus"));
    assert_eq!(
        params[4].schema.kind,
        Kind::Array(Box::new(named("PetStatus")))
    );
    assert_eq!(params[4].schema.constraints.max_items, Some(3));
}

#[test]
fn request_bodies_are_json_models_or_raw_bytes() {
    let api = api(
        "
        /pet:
          post:
            operationId: addPet
            requestBody:
              description: The pet.
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
              5XX: {$ref: '#/components/responses/ServerError'}
        /pet/{petId}/uploadImage:
          post:
            operationId: uploadFile
            parameters:
              - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
            requestBody:
              required: true
              content:
                application/octet-stream:
                  schema: {type: string, format: binary}
            responses:
              '200': {description: ok}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        /user/createWithList:
          post:
            operationId: createUsersWithListInput
            requestBody:
              required: true
              content:
                application/json:
                  schema:
                    type: array
                    minItems: 1
                    maxItems: 100
                    items: {$ref: '#/components/schemas/Pet'}
            responses:
              '200': {description: ok}
              '400': {$ref: '#/components/responses/Error'}
              '413': {$ref: '#/components/responses/Error'}
              '415': {$ref: '#/components/responses/Error'}
              '422': {$ref: '#/components/responses/Error'}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        PET,
    );
    assert_eq!(
        api.operations[0].body,
        Some(Body {
            description: Some("The pet.".to_owned()),
            content: BodyContent::Json(named("Pet")),
        })
    );
    assert_eq!(
        api.operations[1].body,
        Some(Body {
            description: None,
            content: BodyContent::Binary,
        })
    );
    let Some(Body {
        content: BodyContent::Json(list),
        ..
    }) = &api.operations[2].body
    else {
        panic!("expected a JSON body: {:?}", api.operations[2].body);
    };
    assert_eq!(list.kind, Kind::Array(Box::new(named("Pet"))));
    assert_eq!(list.constraints.min_items, Some(1));
    assert_eq!(list.constraints.max_items, Some(100));
}

#[test]
fn responses_keep_statuses_including_5xx_bodies_and_headers() {
    let api = api(
        "
        /user/login:
          get:
            operationId: loginUser
            responses:
              '200':
                description: The token.
                headers:
                  X-Rate-Limit:
                    description: Calls per hour.
                    required: true
                    schema: {type: integer, format: int32}
                  X-Expires-After:
                    required: true
                    schema: {type: string, format: date-time}
                content:
                  application/json:
                    schema: {type: string}
              '400': {$ref: '#/components/responses/Error'}
              '404':
                description: Inline error.
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/ErrorResponse'}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        /pet/findByStatus:
          get:
            operationId: findPetsByStatus
            responses:
              '200':
                description: Pets.
                content:
                  application/json:
                    schema:
                      type: array
                      items: {$ref: '#/components/schemas/Pet'}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        /pet/{petId}/image:
          get:
            operationId: getPetImage
            parameters:
              - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
            responses:
              '200':
                description: The image.
                content:
                  image/*:
                    schema: {type: string, format: binary}
              '201': {description: Nothing.}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        PET,
    );
    let login = &api.operations[0];
    let statuses: Vec<_> = login.responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Code(200),
            Status::Code(400),
            Status::Code(404),
            Status::Code(408),
            Status::Code(429),
            Status::ServerErrors
        ]
    );
    assert_eq!(
        login.responses[0].content,
        ResponseContent::Json(plain(Kind::String(StringFormat::Plain)))
    );
    assert_eq!(login.responses[0].description, "The token.");
    let headers: Vec<_> = login.responses[0]
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.description.as_deref(), &h.schema.kind))
        .collect();
    assert_eq!(
        headers,
        [
            (
                "X-Rate-Limit",
                Some("Calls per hour."),
                &Kind::Integer(IntFormat::I32)
            ),
            (
                "X-Expires-After",
                None,
                &Kind::String(StringFormat::DateTime)
            ),
        ]
    );
    // Referenced and inline error responses alike become the error outcome.
    for response in &login.responses[1..] {
        assert_eq!(response.content, ResponseContent::Error, "{response:?}");
    }
    assert_eq!(login.responses[1].description, "A client error.");
    // Error responses keep their headers: the server values them from the error.
    let rate_limited = &login.responses[4];
    assert_eq!(rate_limited.content, ResponseContent::Error);
    let headers: Vec<_> = rate_limited
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.description.as_deref(), &h.schema.kind))
        .collect();
    assert_eq!(
        headers,
        [(
            "Retry-After",
            Some("Seconds to wait."),
            &Kind::Integer(IntFormat::I64)
        )]
    );

    assert_eq!(
        api.operations[1].responses[0].content,
        ResponseContent::Json(plain(Kind::Array(Box::new(named("Pet")))))
    );
    let image = &api.operations[2].responses;
    assert_eq!(image[0].content, ResponseContent::Image);
    assert_eq!(image[1].status, Status::Code(201));
    assert_eq!(image[1].content, ResponseContent::Empty);
}

#[test]
fn objects_keep_fields_in_order_with_required_write_only_and_read_only() {
    let api = api("", PET);
    let names: Vec<_> = api.models.iter().map(Model::name).collect();
    // Primitive aliases (`PetName`, `EntityId`) are inlined, not models.
    assert_eq!(names, ["ErrorResponse", "Pet", "PetStatus"]);
    let Model::Object(pet) = &api.models[1] else {
        panic!("Pet is not an object: {:?}", api.models[1]);
    };
    let flags: Vec<_> = pet
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.required, f.read_only, f.write_only))
        .collect();
    assert_eq!(
        flags,
        [
            ("id", false, true, false),
            ("name", true, false, false),
            ("photoUrls", true, false, false),
            ("status", false, false, false),
            ("secret", false, false, true),
        ]
    );
    assert_eq!(pet.fields[0].schema.kind, Kind::Integer(IntFormat::I64));
    assert_eq!(pet.fields[3].schema, named("PetStatus"));
}

#[test]
fn primitive_aliases_are_inlined_with_their_constraints_and_description() {
    let api = api("", PET);
    let Model::Object(pet) = &api.models[1] else {
        panic!("Pet is not an object");
    };
    let name: &Field = &pet.fields[1];
    assert_eq!(
        name.schema,
        Schema {
            kind: Kind::String(StringFormat::Plain),
            constraints: Constraints {
                min_length: Some(1),
                max_length: Some(100),
                ..Constraints::default()
            },
            description: Some("A pet's name.".to_owned()),
            example: None,
        }
    );
}

#[test]
fn arrays_keep_their_own_and_their_items_constraints() {
    let api = api("", PET);
    let Model::Object(pet) = &api.models[1] else {
        panic!("Pet is not an object");
    };
    let photo_urls = &pet.fields[2].schema;
    assert_eq!(
        photo_urls.constraints,
        Constraints {
            min_items: Some(1),
            max_items: Some(20),
            unique_items: true,
            ..Constraints::default()
        }
    );
    let Kind::Array(item) = &photo_urls.kind else {
        panic!("photoUrls is not an array: {photo_urls:?}");
    };
    assert_eq!(item.kind, Kind::String(StringFormat::Plain));
    assert_eq!(item.constraints.max_length, Some(2048));
}

#[test]
fn enums_keep_their_values_in_spec_order() {
    let api = api("", PET);
    let Model::Enum(status) = &api.models[2] else {
        panic!("PetStatus is not an enum");
    };
    assert_eq!(status.name, "PetStatus");
    assert_eq!(status.values, ["available", "pending", "sold"]);
}

#[test]
fn maps_are_objects_with_only_additional_properties() {
    let api = api(
        "
        /store/inventory:
          get:
            operationId: getInventory
            responses:
              '200':
                description: Counts.
                content:
                  application/json:
                    schema:
                      type: object
                      additionalProperties: {type: integer, format: int32}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        "
        Shelf:
          type: object
          properties:
            pets:
              type: object
              additionalProperties: {$ref: '#/components/schemas/Pet'}
        Pet:
          type: object
          properties:
            id: {type: integer}
        ",
    );
    assert_eq!(
        api.operations[0].responses[0].content,
        ResponseContent::Json(plain(Kind::Map(Box::new(plain(Kind::Integer(
            IntFormat::I32
        ))))))
    );
    let Model::Object(shelf) = &api.models[1] else {
        panic!("Shelf is not an object");
    };
    assert_eq!(
        shelf.fields[0].schema.kind,
        Kind::Map(Box::new(named("Pet")))
    );
}

#[test]
fn scalars_map_formats_and_bounds() {
    let api = api(
        "",
        "
        Sample:
          type: object
          properties:
            count: {type: integer}
            small: {type: integer, format: int32, minimum: 0, exclusiveMinimum: true, maximum: 10}
            ratio: {type: number, minimum: 0.5, maximum: 2.5, exclusiveMaximum: true}
            flag: {type: boolean}
            at: {type: string, format: date-time}
            ref: {type: string, format: uuid}
            code: {type: string, pattern: '^[a-z]+$'}
        ",
    );
    let Model::Object(sample) = &api.models[1] else {
        panic!("Sample is not an object");
    };
    let kinds: Vec<_> = sample.fields.iter().map(|f| &f.schema.kind).collect();
    assert_eq!(
        kinds,
        [
            &Kind::Integer(IntFormat::I64),
            &Kind::Integer(IntFormat::I32),
            &Kind::Number,
            &Kind::Boolean,
            &Kind::String(StringFormat::DateTime),
            &Kind::String(StringFormat::Uuid),
            &Kind::String(StringFormat::Plain),
        ]
    );
    let small = &sample.fields[1].schema.constraints;
    assert_eq!(
        (small.minimum, small.maximum),
        (
            Some(Bound {
                value: 0.0,
                exclusive: true
            }),
            Some(Bound {
                value: 10.0,
                exclusive: false
            })
        )
    );
    let ratio = &sample.fields[2].schema.constraints;
    assert_eq!(
        (ratio.minimum, ratio.maximum),
        (
            Some(Bound {
                value: 0.5,
                exclusive: false
            }),
            Some(Bound {
                value: 2.5,
                exclusive: true
            })
        )
    );
    assert_eq!(
        sample.fields[6].schema.constraints.pattern.as_deref(),
        Some("^[a-z]+$")
    );
}

#[test]
fn tags_keep_their_descriptions() {
    let text = spec("", "").replace(
        "paths: {}",
        "tags:\n  - {name: pet, description: Pets.}\n  - name: store\npaths: {}",
    );
    let api = valid(&text);
    let tags: Vec<_> = api
        .tags
        .iter()
        .map(|t| (t.name.as_str(), t.description.as_deref()))
        .collect();
    assert_eq!(tags, [("pet", Some("Pets.")), ("store", None)]);
}

/// A requirement from `(scheme, scopes)` literals.
fn requirement(schemes: &[(&str, &[&str])]) -> Requirement {
    schemes
        .iter()
        .map(|(scheme, scopes)| {
            (
                (*scheme).to_owned(),
                scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            )
        })
        .collect()
}

/// Responses for an operation that requires credentials.
const SECURED_RESPONSES: &str = "
              '200': {description: ok}
              '401': {$ref: '#/components/responses/Unauthorized'}
              '403': {$ref: '#/components/responses/Error'}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}";

#[test]
fn security_schemes_are_lowered_in_spec_order() {
    let api = valid(&secured_spec("", SCHEMES, None));
    assert_eq!(
        api.security_schemes,
        [
            SecuritySchemeInfo {
                name: "bearerAuth".to_owned(),
                kind: SchemeKind::HttpBearer {
                    bearer_format: Some("JWT".to_owned())
                },
                description: Some("An access token.".to_owned()),
            },
            SecuritySchemeInfo {
                name: "api_key".to_owned(),
                kind: SchemeKind::ApiKeyHeader {
                    header: "X-API-Key".to_owned()
                },
                description: None,
            },
        ]
    );
}

#[test]
fn the_document_security_applies_unless_an_operation_overrides_it_even_with_an_empty_list() {
    let paths = format!(
        "
        /pet:
          get:
            operationId: findPets
            responses:{SECURED_RESPONSES}
          post:
            operationId: addPet
            security:
              - api_key: [pets:write]
            responses:{SECURED_RESPONSES}
        /pet/{{petId}}:
          get:
            operationId: getPetById
            security: []
            parameters:
              - {{name: petId, in: path, required: true, schema: {{type: integer}}}}
            responses:{SECURED_RESPONSES}
        "
    );
    let api = valid(&secured_spec(
        &paths,
        SCHEMES,
        Some("- bearerAuth: [pets:read]"),
    ));
    let security: Vec<_> = api
        .operations
        .iter()
        .map(|op| (op.id.as_str(), op.security.clone()))
        .collect();
    assert_eq!(
        security,
        [
            (
                "findPets",
                vec![requirement(&[("bearerAuth", &["pets:read"])])]
            ),
            ("addPet", vec![requirement(&[("api_key", &["pets:write"])])]),
            ("getPetById", vec![]),
        ]
    );
    assert!(api.operations[0].requires_credentials());
    assert!(!api.operations[2].requires_credentials());
}

#[test]
fn an_empty_requirement_is_the_anonymous_alternative() {
    let paths = "
        /user/logout:
          get:
            operationId: logoutUser
            security:
              - bearerAuth: []
                api_key: []
              - {}
            responses:
              '200': {description: ok}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ";
    let api = valid(&secured_spec(paths, SCHEMES, None));
    let logout = &api.operations[0];
    assert_eq!(
        logout.security,
        [
            requirement(&[("bearerAuth", &[]), ("api_key", &[])]),
            requirement(&[]),
        ]
    );
    assert!(!logout.requires_credentials());
}

#[test]
fn scopes_are_collected_sorted_and_unique_from_every_requirement() {
    let paths = format!(
        "
        /pet:
          post:
            operationId: addPet
            security:
              - bearerAuth: [pets:write, 'pets:admin:all_of_it']
              - api_key: [pets:write]
            responses:{SECURED_RESPONSES}
          get:
            operationId: findPets
            responses:{SECURED_RESPONSES}
        "
    );
    let api = valid(&secured_spec(
        &paths,
        SCHEMES,
        Some("- bearerAuth: [inventory:read, pets:write]"),
    ));
    assert_eq!(
        api.scopes,
        ["inventory:read", "pets:admin:all_of_it", "pets:write"]
    );
}

#[test]
fn a_spec_without_security_has_no_schemes_scopes_or_requirements() {
    let api = api(
        "
        /pet:
          get:
            operationId: findPets
            responses:
              '200': {description: ok}
              '408': {$ref: '#/components/responses/Error'}
              '429': {$ref: '#/components/responses/TooManyRequests'}
              5XX: {$ref: '#/components/responses/ServerError'}
        ",
        "",
    );
    assert!(api.security_schemes.is_empty());
    assert!(api.scopes.is_empty());
    assert!(api.operations[0].security.is_empty());
}

// ---- the server ----

#[test]
fn the_base_path_is_the_first_server_url_without_a_trailing_slash() {
    for (urls, base_path) in [
        (&["/api/v3"][..], "/api/v3"),
        (&["/api/v3/"][..], "/api/v3"),
        (&["/"][..], ""),
        (&["/v1", "https://mirror.example.com/v2"][..], "/v1"),
    ] {
        let api = valid(&with_servers(&spec("", ""), urls));
        assert_eq!(api.base_path, base_path, "{urls:?}");
    }
}

#[test]
fn a_document_without_servers_is_served_at_the_root() {
    assert_eq!(api("", "").base_path, "");
}

// ---- one parse per document ----

#[test]
fn parse_document_returns_the_document_as_json_and_the_same_model() {
    let text = with_servers(
        &spec(
            "
            /pet/{petId}:
              get:
                operationId: getPetById
                parameters:
                  - {name: petId, in: path, required: true, schema: {$ref: '#/components/schemas/EntityId'}}
                responses:
                  '200': {description: ok}
                  '408': {$ref: '#/components/responses/Error'}
                  '429': {$ref: '#/components/responses/TooManyRequests'}
                  5XX: {$ref: '#/components/responses/ServerError'}
            ",
            PET,
        ),
        &["/api/v3"],
    );
    let (document, api) = match parse_document(&text) {
        Ok(parsed) => parsed,
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(Ok(api), parse_spec(&text));
    // What `$ref`s from asyncapi.yaml are resolved against: the document as written, `$ref`s
    // and aliases left as they are.
    assert_eq!(
        document.pointer("/paths/~1pet~1{petId}/get/parameters/0/schema"),
        Some(&serde_json::json!({ "$ref": "#/components/schemas/EntityId" }))
    );
    assert_eq!(
        document.pointer("/components/schemas/EntityId"),
        Some(&serde_json::json!({ "type": "integer", "format": "int64", "minimum": 1 }))
    );
    assert_eq!(
        document.pointer("/servers/0/url"),
        Some(&serde_json::json!("/api/v3"))
    );
}
