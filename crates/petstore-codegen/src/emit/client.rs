//! `client.rs` (the typed WebSocket client, `petstore-client`): one method per operation on
//! `WsClient`, so a caller writes `client.get_pet_by_id(GetPetByIdRequest { pet_id: 1 })` and
//! gets a `Pet` back, never a JSON value.
//!
//! Each method hands the operation's request struct (whose serialized form is the action's
//! payload: parameters by wire name, the body as `body`) to the client's one generic call and
//! names the type its success payload is read into: the success response's JSON schema type,
//! `ImagePayload` (`{"contentType", "data"}`) for an image, `()` for no body. The success
//! response is the one `asyncapi.yaml` is checked against ([`Operation::success`]). Errors come
//! back as the client's error type carrying the error payload, the same for every operation, so
//! nothing per status is generated.
//!
//! Runtime items used: `crate::{WsClient, ClientError, ImagePayload}` and
//! `WsClient::operation`, from `petstore_api` the request structs, the models and `ws::Action`.

use proc_macro2::TokenStream;
use quote::quote;

use super::{
    Source, Uses, docs, format_file, method_ident, operation_types, rust_type, type_ident,
};
use crate::ir::{Api, Operation, ResponseContent, Status};

/// Emits `client.rs`.
pub fn emit(api: &Api) -> String {
    let mut uses = Uses::default();
    for operation in &api.operations {
        if let Some(ResponseContent::Json(schema)) =
            operation.success().map(|response| &response.content)
        {
            uses.add(schema);
        }
    }
    let library_imports = uses.library_imports();
    let models = uses.model_idents();
    let model_imports =
        (!models.is_empty()).then(|| quote!(use petstore_api::models::{#(#models),*};));
    let requests = api
        .operations
        .iter()
        .map(|operation| operation_types(&operation.id).0);
    let uses_image = api.operations.iter().any(|operation| {
        operation
            .success()
            .is_some_and(|response| response.content == ResponseContent::Image)
    });
    let image_import = uses_image.then(|| quote!(ImagePayload,));
    let methods = api.operations.iter().map(method);
    let tokens = quote! {
        #library_imports

        #model_imports
        use petstore_api::operations::{#(#requests),*};
        use petstore_api::ws::Action;

        use crate::{ClientError, #image_import WsClient};

        /// The operations of `openapi.yaml` as WebSocket actions, one typed method each.
        impl WsClient {
            #(#methods)*
        }
    };
    format_file(
        "Client: one typed WebSocket call per operation of openapi.yaml.",
        Source::OpenApi,
        tokens,
    )
}

/// The method of one operation.
fn method(operation: &Operation) -> TokenStream {
    let name = method_ident(&operation.id);
    let action = type_ident(&operation.id);
    let (request, _, _) = operation_types(&operation.id);
    let success = operation.success();
    let output = match success.map(|response| &response.content) {
        Some(ResponseContent::Json(schema)) => rust_type(schema, &TokenStream::new()),
        Some(ResponseContent::Image) => quote!(ImagePayload),
        Some(ResponseContent::Empty | ResponseContent::Error) | None => quote!(()),
    };
    let doc = docs(Some(&method_doc(operation)));
    quote! {
        #doc
        pub async fn #name(&self, request: #request) -> Result<#output, ClientError> {
            self.operation(Action::#action, &request).await
        }
    }
}

/// The documentation of one method: the operation, what a success answers, which errors the
/// spec documents.
fn method_doc(operation: &Operation) -> String {
    let mut doc = format!(
        "`{}` ({} {}){}",
        operation.id,
        operation.method.as_str().to_uppercase(),
        operation.path,
        operation
            .summary
            .as_deref()
            .map(|summary| format!(": {}", summary.trim()))
            .unwrap_or_default()
    );
    if let Some(description) = &operation.description {
        doc.push_str("\n\n");
        doc.push_str(description.trim());
    }
    if let Some(success) = operation.success() {
        let status = status_text(success.status);
        let what = match &success.content {
            ResponseContent::Json(_) => format!("the body of the {status} response"),
            ResponseContent::Image => {
                format!("the image of the {status} response, as an `ImagePayload`")
            }
            ResponseContent::Empty | ResponseContent::Error => {
                format!("`()`: the {status} response has no body")
            }
        };
        doc.push_str(&format!(
            "\n\nAnswers {what} ({}).",
            success.description.trim().trim_end_matches('.')
        ));
    }
    let errors: Vec<String> = operation
        .responses
        .iter()
        .filter(|response| response.content == ResponseContent::Error)
        .map(|response| status_text(response.status))
        .collect();
    if !errors.is_empty() {
        doc.push_str(&format!(
            "\n\n# Errors\n[`ClientError::Api`] carrying the error payload for the documented \
             error statuses\n({});\nthe other variants when no well-formed answer arrived.",
            errors.join(", ")
        ));
    }
    doc
}

fn status_text(status: Status) -> String {
    match status {
        Status::Code(code) => code.to_string(),
        Status::ServerErrors => "5XX".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use heck::ToSnakeCase;

    use super::*;

    /// The project's own documents, as the client crate's build script reads them.
    fn project_api() -> Api {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let read = |name: &str| match std::fs::read_to_string(root.join(name)) {
            Ok(text) => text,
            Err(error) => panic!("cannot read {name}: {error}"),
        };
        match crate::load(&read("openapi.yaml"), &read("asyncapi.yaml")) {
            Ok(specs) => specs.api,
            Err(failure) => panic!("{} is rejected: {}", failure.document, failure.error),
        }
    }

    /// The generated file, parsed.
    fn generated(api: &Api) -> syn::File {
        let source = emit(api);
        assert!(
            !source.contains("compile_error!"),
            "client.rs is not valid Rust:\n{source}"
        );
        match syn::parse_file(&source) {
            Ok(file) => file,
            Err(error) => panic!("client.rs does not parse: {error}\n{source}"),
        }
    }

    /// The methods of `impl WsClient`, as (name, request type, output type) text.
    fn methods(file: &syn::File) -> Vec<(String, String, String)> {
        let Some(client) = file.items.iter().find_map(|item| match item {
            syn::Item::Impl(item) => Some(item),
            _ => None,
        }) else {
            panic!("client.rs has no `impl WsClient`");
        };
        client
            .items
            .iter()
            .filter_map(|item| match item {
                syn::ImplItem::Fn(method) => Some(method),
                _ => None,
            })
            .map(|method| {
                let request = match method.sig.inputs.iter().nth(1) {
                    Some(syn::FnArg::Typed(argument)) => {
                        let ty = &argument.ty;
                        quote!(#ty).to_string()
                    }
                    _ => panic!("`{}` takes no request", method.sig.ident),
                };
                let output = match &method.sig.output {
                    syn::ReturnType::Type(_, ty) => quote!(#ty).to_string(),
                    syn::ReturnType::Default => String::new(),
                };
                assert!(
                    method.sig.asyncness.is_some(),
                    "`{}` is not async",
                    method.sig.ident
                );
                (method.sig.ident.to_string(), request, output)
            })
            .collect()
    }

    #[test]
    fn the_client_has_one_typed_method_per_operation_in_spec_order() {
        let api = project_api();
        let methods = methods(&generated(&api));
        let names: Vec<&str> = methods.iter().map(|(name, _, _)| name.as_str()).collect();
        let expected: Vec<String> = api
            .operations
            .iter()
            .map(|operation| operation.id.to_snake_case())
            .collect();
        assert_eq!(names, expected);
        assert_eq!(methods.len(), 23, "the project's spec has 23 operations");
        for ((_, request, _), operation) in methods.iter().zip(&api.operations) {
            assert_eq!(
                request.replace(' ', ""),
                format!("{}Request", type_ident(&operation.id)),
                "{}",
                operation.id
            );
        }
    }

    #[test]
    fn success_payloads_are_read_into_the_schema_type_an_image_or_nothing() {
        let api = project_api();
        let methods = methods(&generated(&api));
        let output = |name: &str| match methods.iter().find(|(method, _, _)| method == name) {
            Some((_, _, output)) => output.replace(' ', ""),
            None => panic!("no method {name}"),
        };
        assert_eq!(output("get_pet_by_id"), "Result<Pet,ClientError>");
        assert_eq!(
            output("find_pets_by_status"),
            "Result<Vec<Pet>,ClientError>"
        );
        assert_eq!(
            output("get_inventory"),
            "Result<BTreeMap<String,i32>,ClientError>"
        );
        assert_eq!(output("get_pet_image"), "Result<ImagePayload,ClientError>");
        assert_eq!(output("delete_pet"), "Result<(),ClientError>");
        assert_eq!(output("login_user"), "Result<String,ClientError>");
        assert_eq!(output("create_token"), "Result<TokenResponse,ClientError>");
    }

    #[test]
    fn every_method_sends_its_own_action() {
        let api = project_api();
        let source = emit(&api);
        for operation in &api.operations {
            let call = format!(
                "self.operation(Action::{}, &request)",
                type_ident(&operation.id)
            );
            assert!(source.contains(&call), "no `{call}` in:\n{source}");
        }
    }
}
