//! The project's own `openapi.yaml` goes through every pass, and what comes out is Rust: the
//! contract (`models.rs`, `operations.rs`, `ws.rs`) and the server's adapters (`rest.rs`,
//! `dispatch.rs`).

mod project;

use std::collections::BTreeSet;

use petstore_codegen::{
    Specs, Target,
    ir::{Api, Model, Operation, ResponseContent, SchemeKind, SecuritySchemeInfo, Status},
    load,
    names::ERROR_KINDS,
    parse::parse_spec,
};
use project::{ASYNCAPI, OPENAPI, OPERATION_IDS, load_or_panic, specs};
use quote::ToTokens;
use syn::{
    Token, braced,
    parse::{ParseStream, Parser},
    punctuated::Punctuated,
};

fn project_api() -> Api {
    match parse_spec(OPENAPI) {
        Ok(api) => api,
        Err(errors) => panic!("openapi.yaml is rejected:\n{errors}"),
    }
}

#[test]
fn openapi_yaml_lowers_without_errors() {
    let api = project_api();
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
    assert_eq!(api.base_path, "/api/v3");
}

#[test]
fn load_checks_both_documents_with_one_parse_each() {
    let specs = specs();
    assert_eq!(specs.api, project_api());
    assert_eq!(specs.ws.address, "/api/v3/ws");
    assert_eq!(specs.ws.actions.len(), OPERATION_IDS.len() + 5);
}

#[test]
fn load_names_the_document_a_problem_is_in() {
    let broken_openapi = OPENAPI.replacen("url: /api/v3", "url: https://example.com/api/v3", 1);
    assert_ne!(
        broken_openapi, OPENAPI,
        "the server URL moved; update this test"
    );
    let failure = match load(&broken_openapi, ASYNCAPI) {
        Ok(_) => panic!("a server URL that is not a path was accepted"),
        Err(failure) => failure,
    };
    assert_eq!(failure.document, "openapi.yaml");
    assert_eq!(
        failure.error.to_string(),
        "#/servers/0/url: the server URL must be a path (`/api/v3`): the server is reached at \
         whatever host serves it"
    );

    let broken_asyncapi = ASYNCAPI.replacen("address: /api/v3/ws", "address: /ws", 1);
    assert_ne!(
        broken_asyncapi, ASYNCAPI,
        "the channel address moved; update this test"
    );
    let failure = match load(OPENAPI, &broken_asyncapi) {
        Ok(_) => panic!("a WebSocket address outside the base path was accepted"),
        Err(failure) => failure,
    };
    assert_eq!(failure.document, "asyncapi.yaml");
    assert_eq!(
        failure.error.to_string(),
        "#/channels/petstore/address: the server has one WebSocket endpoint, under the REST base \
         path of openapi.yaml; the address must be `/api/v3/ws`"
    );
}

#[test]
fn load_refuses_the_project_document_without_an_example_a_documentation_ui_needs() {
    // The first `doggie` is the `name` parameter of `updatePetWithForm`.
    let without = OPENAPI.replacen("          example: doggie\n", "", 1);
    assert_ne!(
        without, OPENAPI,
        "the pet name example moved; update this test"
    );
    let failure = match load(&without, ASYNCAPI) {
        Ok(_) => panic!("a parameter without an example was accepted"),
        Err(failure) => failure,
    };
    assert_eq!(failure.document, "openapi.yaml");
    assert!(
        failure
            .error
            .to_string()
            .starts_with("#/paths/~1pet~1{petId}/post: parameter `name` needs an `example`"),
        "{}",
        failure.error
    );
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

// ---- the generated files ----

/// The file `name` of `target`, generated from the project's documents.
fn source(target: Target, name: &str) -> String {
    match specs()
        .sources(target)
        .into_iter()
        .find(|(file, _)| *file == name)
    {
        Some((_, source)) => source,
        None => panic!("{target:?} has no {name}"),
    }
}

/// The file `name` of `target`, parsed.
fn parsed(target: Target, name: &str) -> syn::File {
    let text = source(target, name);
    match syn::parse_file(&text) {
        Ok(file) => file,
        Err(error) => panic!("{name} does not parse: {error}\n{text}"),
    }
}

/// `text` parsed as a `T`, which it must be.
fn parse<T: syn::parse::Parse>(text: &str) -> T {
    match syn::parse_str(text) {
        Ok(parsed) => parsed,
        Err(error) => panic!("`{text}` does not parse: {error}"),
    }
}

/// Tokens printed as one string, for comparing generated items with expected ones; trailing
/// commas (which prettyplease adds where it breaks lines) are left out.
fn tokens(item: &impl ToTokens) -> String {
    let text = item.to_token_stream().to_string();
    let text = [">", ")", "]", "}"].iter().fold(text, |text, close| {
        text.replace(&format!(", {close}"), close)
    });
    text.trim_end_matches(" ,").to_owned()
}

/// The `Request`, `Response` and `Error` type names of an operation.
fn operation_types(id: &str) -> (String, String, String) {
    let base = upper_camel_case(id);
    (
        format!("{base}Request"),
        format!("{base}Response"),
        format!("{base}Error"),
    )
}

#[test]
fn every_generated_file_of_both_targets_parses_as_rust() {
    let specs = specs();
    for (target, files) in [
        (
            Target::Contract,
            &["models.rs", "operations.rs", "ws.rs"][..],
        ),
        (Target::Server, &["rest.rs", "dispatch.rs", "mcp.rs"][..]),
    ] {
        let sources = specs.sources(target);
        let names: Vec<&str> = sources.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, files, "{target:?}");
        for (name, source) in &sources {
            // The emitters fall back to `compile_error!` when their tokens do not form a file.
            assert!(
                !source.contains("compile_error!"),
                "{name} is not valid Rust:\n{source}"
            );
            if let Err(error) = syn::parse_file(source) {
                panic!("{name} does not parse: {error}\n{source}");
            }
            assert!(
                source.contains("// Generated by petstore-codegen from "),
                "{name} has no generated-file header"
            );
        }
    }
}

#[test]
fn the_trait_has_one_method_per_operation_returning_its_success_or_error() {
    let file = parsed(Target::Contract, "operations.rs");
    let Some(api_trait) = file.items.iter().find_map(|item| match item {
        syn::Item::Trait(item) if item.ident == "PetStoreApi" => Some(item),
        _ => None,
    }) else {
        panic!("operations.rs has no `trait PetStoreApi`");
    };
    let methods: Vec<(String, String, String)> = api_trait
        .items
        .iter()
        .filter_map(|item| match item {
            syn::TraitItem::Fn(method) => Some((
                method.sig.ident.to_string(),
                tokens(&method.sig.inputs),
                tokens(&method.sig.output),
            )),
            _ => None,
        })
        .collect();
    let expected: Vec<(String, String, String)> = OPERATION_IDS
        .iter()
        .map(|id| {
            let (request, response, error) = operation_types(id);
            let signature: syn::Signature = parse(&format!(
                "fn {}(&self, ctx: &Ctx, request: {request}) \
                 -> impl Future<Output = Result<{response}, {error}>> + Send",
                snake_case(id)
            ));
            (
                signature.ident.to_string(),
                tokens(&signature.inputs),
                tokens(&signature.output),
            )
        })
        .collect();
    assert_eq!(methods, expected);
}

/// The variant an independent reading of HTTP gives a status (`404` → `NotFound`).
fn status_variant(status: Status) -> &'static str {
    match status {
        Status::ServerErrors => "ServerError",
        Status::Code(200) => "Ok",
        Status::Code(201) => "Created",
        Status::Code(204) => "NoContent",
        Status::Code(400) => "BadRequest",
        Status::Code(401) => "Unauthorized",
        Status::Code(403) => "Forbidden",
        Status::Code(404) => "NotFound",
        Status::Code(408) => "RequestTimeout",
        Status::Code(409) => "Conflict",
        Status::Code(413) => "PayloadTooLarge",
        Status::Code(415) => "UnsupportedMediaType",
        Status::Code(422) => "UnprocessableEntity",
        Status::Code(429) => "TooManyRequests",
        Status::Code(other) => panic!("openapi.yaml documents {other}; extend this table"),
    }
}

/// The contract's error kind for an error status, written out here rather than read from the
/// generator.
fn error_kind(status: Status) -> &'static str {
    match status {
        Status::ServerErrors => "ServerError",
        Status::Code(422) => "Invalid",
        Status::Code(429) => "RateLimited",
        other => status_variant(other),
    }
}

/// The variants of the enum `name` in `file`, as `Variant(Type)` / `Variant` / `Variant { .. }`
/// text with the documentation left out.
fn enum_variants(file: &syn::File, name: &str) -> Vec<String> {
    let Some(item) = file.items.iter().find_map(|item| match item {
        syn::Item::Enum(item) if item.ident == name => Some(item),
        _ => None,
    }) else {
        panic!("no `enum {name}`");
    };
    item.variants
        .iter()
        .map(|variant| {
            let mut variant = variant.clone();
            variant.attrs.clear();
            if let syn::Fields::Named(fields) = &mut variant.fields {
                for field in &mut fields.named {
                    field.attrs.clear();
                }
            }
            tokens(&variant)
        })
        .collect()
}

#[test]
fn every_operation_has_a_closed_error_enum_of_its_documented_error_statuses() {
    let api = project_api();
    let file = parsed(Target::Contract, "operations.rs");
    for operation in &api.operations {
        let (_, _, error) = operation_types(&operation.id);
        let expected: Vec<String> = operation
            .responses
            .iter()
            .filter(|response| response.content == ResponseContent::Error)
            .map(|response| {
                tokens(&parse::<syn::Variant>(&format!(
                    "{}({})",
                    status_variant(response.status),
                    error_kind(response.status)
                )))
            })
            .collect();
        assert!(!expected.is_empty(), "{} documents no error", operation.id);
        assert_eq!(enum_variants(&file, &error), expected, "{error}");
    }
}

#[test]
fn every_success_enum_holds_only_the_2xx_outcomes() {
    let api = project_api();
    let file = parsed(Target::Contract, "operations.rs");
    for operation in &api.operations {
        let (_, response, _) = operation_types(&operation.id);
        let expected: Vec<&str> = operation
            .responses
            .iter()
            .filter(|response| matches!(response.status, Status::Code(200..=299)))
            .map(|response| status_variant(response.status))
            .collect();
        let variants: Vec<String> = enum_variants(&file, &response)
            .into_iter()
            .map(|variant| {
                variant
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(variants, expected, "{response}");
    }
}

/// The `operation_errors!` invocations of `operations.rs`: the enum named and its
/// `Variant(Kind)` list.
fn operation_errors_invocations(file: &syn::File) -> Vec<(String, Vec<String>)> {
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Macro(item) => Some(&item.mac),
            _ => None,
        })
        .map(|mac| {
            assert_eq!(
                tokens(&mac.path),
                tokens(&parse::<syn::Path>("crate::error::operation_errors")),
                "an unexpected macro in operations.rs"
            );
            let parser = |input: ParseStream| {
                let name: syn::Ident = input.parse()?;
                let content;
                braced!(content in input);
                let variants = Punctuated::<syn::Variant, Token![,]>::parse_terminated(&content)?;
                Ok((
                    name.to_string(),
                    variants.iter().map(tokens).collect::<Vec<_>>(),
                ))
            };
            match parser.parse2(mac.tokens.clone()) {
                Ok(invocation) => invocation,
                Err(error) => panic!(
                    "`{}` is not `Enum {{ Variant(Kind), … }}`: {error}",
                    tokens(mac)
                ),
            }
        })
        .collect()
}

#[test]
fn every_error_enum_gets_its_conversions_from_operation_errors() {
    let api = project_api();
    let file = parsed(Target::Contract, "operations.rs");
    let expected: Vec<(String, Vec<String>)> = api
        .operations
        .iter()
        .map(|operation| {
            let (_, _, error) = operation_types(&operation.id);
            let variants = enum_variants(&file, &error);
            (error, variants)
        })
        .collect();
    assert_eq!(operation_errors_invocations(&file), expected);
}

#[test]
fn only_operations_that_require_credentials_convert_from_denied() {
    let api = project_api();
    let file = parsed(Target::Contract, "operations.rs");
    let denied: BTreeSet<String> = file
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Impl(item) => {
                let (_, path, _) = item.trait_.as_ref()?;
                (tokens(path) == tokens(&parse::<syn::Path>("From<Denied>")))
                    .then(|| tokens(&item.self_ty))
            }
            _ => None,
        })
        .collect();
    let expected: BTreeSet<String> = api
        .operations
        .iter()
        .filter(|operation| operation.requires_credentials())
        .map(|operation| operation_types(&operation.id).2)
        .collect();
    assert!(expected.contains("AddPetError"));
    assert!(!expected.contains("LogoutUserError"));
    assert!(!expected.contains("GetPetByIdError"));
    assert_eq!(denied, expected);
}

#[test]
fn operations_rs_states_the_base_path_of_the_server() {
    let file = parsed(Target::Contract, "operations.rs");
    let base = file.items.iter().find_map(|item| match item {
        syn::Item::Const(item) if item.ident == "API_BASE" => Some(tokens(&item.expr)),
        _ => None,
    });
    assert_eq!(base.as_deref(), Some("\"/api/v3\""));
}

#[test]
fn the_rest_adapter_serves_every_operation_and_answers_its_typed_outcome() {
    let rest = source(Target::Server, "rest.rs");
    let file = parsed(Target::Server, "rest.rs");
    let Some(adapter) = file.items.iter().find_map(|item| match item {
        syn::Item::Impl(item) if item.attrs.iter().any(|a| a.path().is_ident("OpenApi")) => {
            Some(item)
        }
        _ => None,
    }) else {
        panic!("rest.rs has no `#[OpenApi] impl`");
    };
    let methods: Vec<(String, String)> = adapter
        .items
        .iter()
        .filter_map(|item| match item {
            syn::ImplItem::Fn(method) => {
                Some((method.sig.ident.to_string(), tokens(&method.sig.output)))
            }
            _ => None,
        })
        .collect();
    let expected: Vec<(String, String)> = OPERATION_IDS
        .iter()
        .map(|id| {
            let (_, response, error) = operation_types(id);
            (
                snake_case(id),
                tokens(&parse::<syn::ReturnType>(&format!(
                    "-> Answer<{response}, {error}>"
                ))),
            )
        })
        .collect();
    assert_eq!(methods, expected);
    for id in OPERATION_IDS {
        assert!(
            rest.contains(&format!("operation_id = \"{id}\"")),
            "rest.rs does not serve {id}"
        );
    }

    // Each outcome documents and renders itself, once.
    let implemented: Vec<(String, String)> = file
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Impl(item) => {
                let (_, path, _) = item.trait_.as_ref()?;
                Some((tokens(path), tokens(&item.self_ty)))
            }
            _ => None,
        })
        .collect();
    for id in OPERATION_IDS {
        let (_, response, error) = operation_types(id);
        for (trait_name, ty) in [
            ("Documented", &response),
            ("Render", &response),
            ("Documented", &error),
        ] {
            let count = implemented
                .iter()
                .filter(|(t, s)| t == trait_name && s == ty)
                .count();
            assert_eq!(count, 1, "impl {trait_name} for {ty}");
        }
    }
}

/// The functions of `mod responses` in `rest.rs`, by name.
fn shared_response_functions(file: &syn::File) -> Vec<String> {
    let Some(items) = file.items.iter().find_map(|item| match item {
        syn::Item::Mod(item) if item.ident == "responses" => item.content.as_ref(),
        _ => None,
    }) else {
        panic!("rest.rs has no `mod responses`");
    };
    items
        .1
        .iter()
        .filter_map(|item| match item {
            syn::Item::Fn(function) => Some(function.sig.ident.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn each_distinct_error_response_is_written_once_and_every_one_is_used() {
    let api = project_api();
    let rest = source(Target::Server, "rest.rs");
    let functions = shared_response_functions(&parsed(Target::Server, "rest.rs"));
    let unique: BTreeSet<&String> = functions.iter().collect();
    assert_eq!(unique.len(), functions.len(), "{functions:?}");
    // One function per distinct (status, description, headers) of the spec's error responses.
    let mut distinct = Vec::new();
    for response in api
        .operations
        .iter()
        .flat_map(|operation| &operation.responses)
        .filter(|response| response.content == ResponseContent::Error)
    {
        if !distinct.contains(&response) {
            distinct.push(response);
        }
    }
    assert_eq!(functions.len(), distinct.len(), "{functions:?}");
    // The 429 of every operation is the same response, so it is one function used by all.
    assert!(functions.contains(&"too_many_requests".to_owned()));
    assert_eq!(
        rest.matches("responses::too_many_requests()").count(),
        OPERATION_IDS.len()
    );
    for function in &functions {
        assert!(
            rest.contains(&format!("responses::{function}()")),
            "`responses::{function}` is never used"
        );
    }
}

#[test]
fn error_kinds_the_generator_names_are_declared_by_the_contract() {
    let contract = include_str!("../../petstore-api/src/error.rs");
    let kinds = ERROR_KINDS
        .iter()
        .map(|(_, kind)| *kind)
        .chain(["ServerError", "Denied"]);
    for kind in kinds {
        assert!(
            contract.contains(&format!("pub struct {kind}"))
                || contract.contains(&format!("pub enum {kind}")),
            "petstore_api::error declares no `{kind}`"
        );
    }
    assert!(contract.contains("macro_rules! operation_errors"));
}

#[test]
fn generation_is_deterministic() {
    // The build scripts skip rewriting identical output; nondeterminism would rebuild on every
    // build.
    for target in [Target::Contract, Target::Server] {
        assert_eq!(
            specs().sources(target),
            specs().sources(target),
            "{target:?}"
        );
    }
}

/// A constraint changed in the spec reaches every place it is stated — the validation node of
/// the contract, the model's size-limit constant and the REST adapter's documentation type —
/// with no Rust edited.
#[test]
fn a_constraint_edited_in_the_spec_changes_the_generated_validation() {
    let original = "        name:\n          type: string\n          minLength: 1\n          maxLength: 100\n          example: doggie\n";
    assert_eq!(
        OPENAPI.matches(original).count(),
        1,
        "the Pet.name schema moved; update this test"
    );
    let edited = OPENAPI.replace(
        original,
        &original.replace("maxLength: 100", "maxLength: 7"),
    );
    let before = specs();
    let after = load_or_panic(&edited, ASYNCAPI);
    let file = |specs: &Specs, target: Target, name: &str| -> String {
        match specs
            .sources(target)
            .into_iter()
            .find(|(file, _)| *file == name)
        {
            Some((_, source)) => source,
            None => panic!("no {name}"),
        }
    };

    let pet_node = |models: &str| -> String {
        let start = models
            .find("pub static PET: Node")
            .expect("the Pet node is generated");
        let rest = &models[start + 1..];
        let node = &rest[..rest.find("pub static").unwrap_or(rest.len())];
        let name = node.find("name: \"name\"").expect("the Pet.name node");
        node[name..].chars().take(400).collect()
    };
    let models_before = file(&before, Target::Contract, "models.rs");
    let models_after = file(&after, Target::Contract, "models.rs");
    assert!(pet_node(&models_before).contains("max_length: Some(100)"));
    assert!(pet_node(&models_after).contains("max_length: Some(7)"));

    let pet_constant = |models: &str| -> String {
        let start = models.find("impl Pet {").expect("Pet has size limits");
        let end = models[start..].find("\n}").expect("the impl ends");
        models[start..start + end].to_owned()
    };
    assert!(pet_constant(&models_before).contains("pub const NAME_MAX_LENGTH: usize = 100;"));
    assert!(pet_constant(&models_after).contains("pub const NAME_MAX_LENGTH: usize = 7;"));

    let pet_name_doc_type = |rest: &str| -> String {
        let start = rest.find("pub struct Pet {").expect("Pet is documented");
        let field = rest[start..]
            .find("pub name: String")
            .expect("Pet.name is documented");
        rest[start..start + field].lines().rev().take(3).collect()
    };
    let rest_before = file(&before, Target::Server, "rest.rs");
    let rest_after = file(&after, Target::Server, "rest.rs");
    assert!(pet_name_doc_type(&rest_before).contains("max_length = 100"));
    assert!(pet_name_doc_type(&rest_after).contains("max_length = 7"));
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

/// `getPetById` → `GetPetById`, independently of the generator's own conversion.
fn upper_camel_case(id: &str) -> String {
    let mut chars = id.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
