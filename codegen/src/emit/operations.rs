//! `operations.rs`: per operation a request struct and a closed response enum, and the
//! `PetStoreApi` trait that the handlers implement.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{
    Patterns, const_ident, docs, field_ident, format_file, method_ident, node, rust_type,
    status_variant, type_ident,
};
use crate::ir::{
    Api, BodyContent, Kind, Operation, ParamLocation, Response, ResponseContent, Status,
};

/// Emits `operations.rs`.
pub fn emit(api: &Api) -> String {
    let mut patterns = Patterns::default();
    let types = api.operations.iter().map(operation_types);
    let body_nodes: Vec<TokenStream> = api
        .operations
        .iter()
        .filter_map(|operation| match &operation.body.as_ref()?.content {
            BodyContent::Json(schema) => {
                let ident = const_ident(&operation.id);
                let node = node(schema, &mut patterns);
                let doc = format!(" Checks the request body of `{}`.", operation.id);
                Some(quote! {
                    #[doc = #doc]
                    pub static #ident: &Node = #node;
                })
            }
            BodyContent::Binary => None,
        })
        .collect();
    let pattern_statics = patterns.statics();
    let methods = api.operations.iter().map(trait_method);
    let infos = api.operations.iter().map(|operation| {
        let id = &operation.id;
        let method = operation.method.as_str().to_uppercase();
        let path = &operation.path;
        quote!(OperationInfo { id: #id, method: #method, path: #path })
    });
    let count = proc_macro2::Literal::usize_unsuffixed(api.operations.len());

    let tokens = quote! {
        use crate::api::{Ctx, Image, Serialized};
        use crate::error::ApiError;

        /// How an operation is reached over HTTP.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct OperationInfo {
            /// `operationId`.
            pub id: &'static str,
            /// HTTP method, upper case.
            pub method: &'static str,
            /// Path template relative to the API base (`/pet/{petId}`).
            pub path: &'static str,
        }

        /// Every operation of the spec, in spec order.
        pub const OPERATIONS: [OperationInfo; #count] = [#(#infos),*];

        #(#types)*

        /// The operations of `openapi.yaml`. The handlers implement this once; every transport calls
        /// it. A new operation in the spec is a new method here, so the build fails until it has a
        /// handler.
        pub trait PetStoreApi: Send + Sync + 'static {
            #(#methods)*
        }

        /// The request body schemas, as data for `crate::api::validation`.
        pub mod body_schemas {
            #[allow(unused_imports)]
            use crate::api::validation::{Limit, Node, Pattern, StringFormat};

            #(#body_nodes)*
            #pattern_statics
        }
    };
    format_file(
        "Operations: requests, responses and the handler interface of openapi.yaml.",
        tokens,
    )
}

fn heading(operation: &Operation) -> String {
    let summary = operation.summary.as_deref().unwrap_or_default();
    format!(
        "`{}` ({} {}): {}",
        operation.id,
        operation.method.as_str().to_uppercase(),
        operation.path,
        summary
    )
}

fn operation_types(operation: &Operation) -> TokenStream {
    let base = type_ident(&operation.id);
    let request = format_ident!("{}Request", base);
    let response = format_ident!("{}Response", base);
    let id = &operation.id;

    let request_doc = docs(Some(&format!("Request of {}", heading(operation))));
    let mut fields: Vec<TokenStream> = operation
        .params
        .iter()
        .map(|param| {
            let ident = field_ident(&param.name);
            let ty = param_type(param);
            let where_ = match param.location {
                ParamLocation::Path => "Path",
                ParamLocation::Query => "Query",
                ParamLocation::Header => "Header",
            };
            let doc = docs(Some(&format!(
                "{} parameter `{}`. {}",
                where_,
                param.name,
                param.description.as_deref().unwrap_or_default()
            )));
            quote!(#doc pub #ident: #ty,)
        })
        .collect();
    if let Some(body) = &operation.body {
        let ty = match &body.content {
            BodyContent::Json(schema) => rust_type(schema),
            BodyContent::Binary => quote!(::bytes::Bytes),
        };
        let doc = docs(Some(&format!(
            "Request body. {}",
            body.description.as_deref().unwrap_or_default()
        )));
        fields.push(quote!(#doc pub body: #ty,));
    }

    let response_doc = docs(Some(&format!(
        "Outcomes of `{id}`: one variant per documented status.\n\n\
         Handlers return the success variants; errors arrive through `From<ApiError>`."
    )));
    let variants = operation.responses.iter().map(response_variant);
    let mut arms: Vec<TokenStream> = operation
        .responses
        .iter()
        .filter_map(|r| match (r.status, &r.content) {
            (Status::Code(code), ResponseContent::Error) => {
                let variant = status_variant(r.status);
                let code = proc_macro2::Literal::u16_unsuffixed(code);
                Some(quote!(#code => Self::#variant(error),))
            }
            _ => None,
        })
        .collect();
    arms.push(quote!(500..=599 => Self::ServerError(error),));
    arms.push(quote!(_ => Self::ServerError(error.undocumented_for(#id)),));

    quote! {
        #request_doc
        #[derive(Debug, Clone, PartialEq)]
        pub struct #request {
            #(#fields)*
        }

        #response_doc
        #[derive(Debug)]
        pub enum #response {
            #(#variants)*
        }

        impl From<ApiError> for #response {
            fn from(error: ApiError) -> Self {
                match error.status() {
                    #(#arms)*
                }
            }
        }
    }
}

/// A parameter's field type: optional scalars are `Option`, arrays are always a (maybe empty) `Vec`.
pub(crate) fn param_type(param: &crate::ir::Param) -> TokenStream {
    let ty = rust_type(&param.schema);
    if param.required || matches!(param.schema.kind, Kind::Array(_)) {
        ty
    } else {
        quote!(Option<#ty>)
    }
}

fn response_variant(response: &Response) -> TokenStream {
    let variant = status_variant(response.status);
    let status = match response.status {
        Status::Code(code) => code.to_string(),
        Status::ServerErrors => "5XX".to_owned(),
    };
    let doc = docs(Some(&format!("{status}: {}", response.description)));
    let body = match &response.content {
        ResponseContent::Empty => None,
        ResponseContent::Json(schema) => {
            let ty = rust_type(schema);
            Some(quote!(Serialized<#ty>))
        }
        ResponseContent::Image => Some(quote!(Image)),
        ResponseContent::Error => Some(quote!(ApiError)),
    };
    if response.headers.is_empty() {
        match body {
            Some(body) => quote!(#doc #variant(#body),),
            None => quote!(#doc #variant,),
        }
    } else {
        let body = body.map(|body| quote!(#[doc = " The body."] body: #body,));
        let headers = response.headers.iter().map(|header| {
            let ident = field_ident(&header.name);
            let ty = rust_type(&header.schema);
            let doc = docs(Some(&format!(
                "Header `{}`. {}",
                header.name,
                header.description.as_deref().unwrap_or_default()
            )));
            quote!(#doc #ident: #ty,)
        });
        quote!(#doc #variant { #body #(#headers)* },)
    }
}

fn trait_method(operation: &Operation) -> TokenStream {
    let method = method_ident(&operation.id);
    let base = type_ident(&operation.id);
    let request = format_ident!("{}Request", base);
    let response = format_ident!("{}Response", base);
    let mut text = heading(operation);
    if let Some(description) = &operation.description {
        text.push_str("\n\n");
        text.push_str(description);
    }
    let doc = docs(Some(&text));
    quote! {
        #doc
        fn #method(
            &self,
            ctx: &Ctx,
            request: #request,
        ) -> impl ::std::future::Future<Output = Result<#response, ApiError>> + Send;
    }
}
