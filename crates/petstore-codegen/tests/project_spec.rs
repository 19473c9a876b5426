//! The project's own `openapi.yaml` goes through every pass, and what comes out is Rust.

mod common;

use common::OPERATION_IDS;
use petstore_codegen::{
    generate_sources,
    ir::{Api, Model, Operation, SchemeKind, SecuritySchemeInfo, Status},
    parse::parse_spec,
};

const SPEC: &str = include_str!("../../openapi.yaml");

#[test]
fn openapi_yaml_lowers_without_errors() {
    let api = match parse_spec(SPEC) {
        Ok(api) => api,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    };
    let ids: Vec<_> = api.operations.iter().map(|op| op.id.as_str()).collect();
    assert_eq!(ids, OPERATION_IDS);
    for operation in &api.operations {
        assert!(
            operation
                .responses
                .iter()
                .any(|r| r.status == Status::ServerErrors),
            "{} has no 5XX",
            operation.id
        );
    }
    let models: Vec<_> = api.models.iter().map(Model::name).collect();
    assert_eq!(
        models,
        [
            "PetStatus",
            "Order",
            "OrderStatus",
            "Category",
            "User",
            "Tag",
            "Pet",
            "TokenRequest",
            "RefreshRequest",
            "TokenResponse",
            "ApiResponse",
            "ErrorResponse",
            "FieldError"
        ]
    );
}

fn project_api() -> Api {
    match parse_spec(SPEC) {
        Ok(api) => api,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    }
}

fn operation<'a>(api: &'a Api, id: &str) -> &'a Operation {
    match api.operations.iter().find(|operation| operation.id == id) {
        Some(operation) => operation,
        None => panic!("openapi.yaml has no operation `{id}`"),
    }
}

/// `[(scheme, [scopes])]` alternatives, for comparing with literals.
fn alternatives(operation: &Operation) -> Vec<Vec<(&str, Vec<&str>)>> {
    operation
        .security
        .iter()
        .map(|requirement| {
            requirement
                .iter()
                .map(|(scheme, scopes)| {
                    (scheme.as_str(), scopes.iter().map(String::as_str).collect())
                })
                .collect()
        })
        .collect()
}

#[test]
fn openapi_yaml_declares_a_bearer_and_an_api_key_scheme() {
    let api = project_api();
    let schemes: Vec<(&str, &SchemeKind)> = api
        .security_schemes
        .iter()
        .map(|SecuritySchemeInfo { name, kind, .. }| (name.as_str(), kind))
        .collect();
    assert_eq!(
        schemes,
        [
            (
                "bearerAuth",
                &SchemeKind::HttpBearer {
                    bearer_format: Some("JWT".to_owned())
                }
            ),
            (
                "api_key",
                &SchemeKind::ApiKeyHeader {
                    header: "api_key".to_owned()
                }
            ),
        ]
    );
    assert!(
        api.security_schemes
            .iter()
            .all(|scheme| scheme.description.is_some())
    );
}

#[test]
fn writes_need_a_scope_via_either_scheme_and_reads_of_pets_are_public() {
    let api = project_api();
    assert_eq!(
        alternatives(operation(&api, "addPet")),
        [
            [("bearerAuth", vec!["pets:write"])],
            [("api_key", vec!["pets:write"])]
        ]
    );
    assert_eq!(
        alternatives(operation(&api, "getInventory")),
        [
            [("bearerAuth", vec!["inventory:read"])],
            [("api_key", vec!["inventory:read"])]
        ]
    );
    for public in [
        "findPetsByStatus",
        "findPetsByTags",
        "getPetById",
        "getPetImage",
        "createUser",
        "loginUser",
        "createToken",
        "refreshToken",
    ] {
        assert_eq!(
            operation(&api, public).security,
            Vec::<Vec<(String, Vec<String>)>>::new(),
            "{public} should be public"
        );
    }
}

#[test]
fn logout_accepts_a_bearer_token_or_no_credentials() {
    let api = project_api();
    let logout = operation(&api, "logoutUser");
    assert_eq!(alternatives(logout), [vec![("bearerAuth", vec![])], vec![]]);
    assert!(!logout.requires_credentials());
}

#[test]
fn every_scope_of_openapi_yaml_is_collected_once_in_order() {
    assert_eq!(
        project_api().scopes,
        [
            "inventory:read",
            "orders:manage",
            "orders:read",
            "orders:write",
            "pets:write",
            "users:manage",
            "users:read",
            "users:write",
        ]
    );
}

#[test]
fn generated_sources_parse_as_rust() {
    let generated = match generate_sources(SPEC) {
        Ok(generated) => generated,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    };
    for (name, source) in [
        ("models.rs", &generated.models),
        ("operations.rs", &generated.operations),
        ("rest.rs", &generated.rest),
    ] {
        // The emitters fall back to `compile_error!` when their tokens do not form a file.
        assert!(
            !source.contains("compile_error!"),
            "{name} is not valid Rust:\n{source}"
        );
        if let Err(error) = syn::parse_file(source) {
            panic!("{name} does not parse: {error}\n{source}");
        }
    }
}

#[test]
fn the_trait_has_one_method_per_operation() {
    let generated = match generate_sources(SPEC) {
        Ok(generated) => generated,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    };
    let file = match syn::parse_file(&generated.operations) {
        Ok(file) => file,
        Err(error) => panic!("operations.rs does not parse: {error}"),
    };
    let Some(api_trait) = file.items.iter().find_map(|item| match item {
        syn::Item::Trait(item) if item.ident == "PetStoreApi" => Some(item),
        _ => None,
    }) else {
        panic!("operations.rs has no `trait PetStoreApi`");
    };
    let methods: Vec<String> = api_trait
        .items
        .iter()
        .filter_map(|item| match item {
            syn::TraitItem::Fn(method) => Some(method.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = OPERATION_IDS.iter().map(|id| snake_case(id)).collect();
    assert_eq!(methods, expected);
}

#[test]
fn the_rest_adapter_serves_every_operation() {
    let generated = match generate_sources(SPEC) {
        Ok(generated) => generated,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    };
    let file = match syn::parse_file(&generated.rest) {
        Ok(file) => file,
        Err(error) => panic!("rest.rs does not parse: {error}"),
    };
    let Some(adapter) = file.items.iter().find_map(|item| match item {
        syn::Item::Impl(item) if item.attrs.iter().any(|a| a.path().is_ident("OpenApi")) => {
            Some(item)
        }
        _ => None,
    }) else {
        panic!("rest.rs has no `#[OpenApi] impl`");
    };
    let methods = adapter
        .items
        .iter()
        .filter(|item| matches!(item, syn::ImplItem::Fn(_)))
        .count();
    assert_eq!(methods, OPERATION_IDS.len());
    for id in OPERATION_IDS {
        assert!(
            generated.rest.contains(&format!("operation_id = \"{id}\"")),
            "rest.rs does not serve {id}"
        );
    }
}

#[test]
fn generation_is_deterministic() {
    // build.rs skips rewriting identical output; nondeterminism would rebuild on every build.
    let first = generate_sources(SPEC);
    let second = generate_sources(SPEC);
    assert!(first.is_ok());
    assert_eq!(first, second);
}

/// `getPetById` → `get_pet_by_id`, independently of the generator's own conversion.
fn snake_case(id: &str) -> String {
    let mut out = String::new();
    for c in id.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A constraint changed in the spec reaches both validators — the poem-openapi attribute on the
/// model field and the schema node the structured validation walks — with no Rust edited.
#[test]
fn a_constraint_edited_in_the_spec_changes_the_generated_validation() {
    let original = "        name:\n          type: string\n          minLength: 1\n          maxLength: 100\n          example: doggie\n";
    assert_eq!(
        SPEC.matches(original).count(),
        1,
        "the Pet.name schema moved; update this test"
    );
    let edited = SPEC.replace(
        original,
        &original.replace("maxLength: 100", "maxLength: 7"),
    );

    let before = generate_sources(SPEC).expect("openapi.yaml generates");
    let after = generate_sources(&edited).expect("the edited spec generates");

    let pet_name = |models: &str| -> String {
        let start = models.find("pub struct Pet {").expect("Pet is generated");
        let field = models[start..]
            .find("pub name: String")
            .expect("Pet.name is generated");
        models[start..start + field].lines().rev().take(3).collect()
    };
    assert!(pet_name(&before.models).contains("max_length = 100"));
    assert!(pet_name(&after.models).contains("max_length = 7"));

    let pet_node = |models: &str| -> String {
        let start = models
            .find("pub static PET: Node")
            .expect("the Pet node is generated");
        let rest = &models[start + 1..];
        let node = &rest[..rest.find("pub static").unwrap_or(rest.len())];
        let name = node.find("name: \"name\"").expect("the Pet.name node");
        node[name..].chars().take(400).collect()
    };
    assert!(pet_node(&before.models).contains("max_length: Some(100)"));
    assert!(pet_node(&after.models).contains("max_length: Some(7)"));
}
