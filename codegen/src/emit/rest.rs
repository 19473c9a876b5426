//! `rest.rs`: the poem-openapi adapter that serves any `PetStoreApi` over HTTP.
//!
//! Per operation it declares the parameters and body as the spec has them (so poem-openapi emits
//! the same document), checks the operation's security requirements while building the handler's
//! context, builds the transport-neutral request, calls the handler and maps each response
//! variant onto a poem-openapi response.

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{
    const_ident, docs, field_ident, format_file, method_ident, poem_validator, rust_type,
    status_variant, type_ident,
};
use crate::ir::{
    Api, Body, BodyContent, Constraints, Kind, Operation, ParamLocation, Response, ResponseContent,
    Status, StringFormat,
};

/// Emits `rest.rs`.
pub fn emit(api: &Api) -> String {
    let tag_variants = api.tags.iter().map(|tag| {
        let variant = format_ident!("{}", tag.name.to_upper_camel_case());
        let name = &tag.name;
        let doc = docs(tag.description.as_deref());
        quote!(#doc #[oai(rename = #name)] #variant,)
    });
    let response_types = api.operations.iter().map(http_response_type);
    let body_types = api.operations.iter().filter_map(body_doc_type);
    let methods = api
        .operations
        .iter()
        .map(|operation| rest_method(api, operation));

    let tokens = quote! {
        use std::sync::Arc;

        #[allow(unused_imports)]
        use poem_openapi::{
            ApiResponse, OpenApi, Tags,
            param::{Header, Path, Query},
        };

        use crate::api::operations::*;
        use crate::api::operations::security;
        use crate::api::{Serialized, validation::parse_body};
        #[allow(unused_imports)]
        use crate::http::payload::{
            ErrorBody, ErrorHeader, ImageBody, JsonBody, OctetStream, error_status,
        };
        use crate::http::request_context;

        /// The spec's tags.
        #[derive(Tags)]
        pub enum ApiTags {
            #(#tag_variants)*
        }

        #(#response_types)*

        #(#body_types)*

        /// Serves a [`PetStoreApi`] implementation over HTTP, as `openapi.yaml` describes it.
        pub struct RestApi<H> {
            handler: Arc<H>,
        }

        impl<H> RestApi<H> {
            /// An adapter over `handler`.
            pub fn new(handler: Arc<H>) -> Self {
                Self { handler }
            }
        }

        #[OpenApi]
        impl<H: PetStoreApi> RestApi<H> {
            #(#methods)*
        }
    };
    format_file(
        "REST adapter: serves PetStoreApi over HTTP with poem-openapi.",
        tokens,
    )
}

fn http_response_ident(operation: &Operation) -> proc_macro2::Ident {
    format_ident!("{}HttpResponse", type_ident(&operation.id))
}

fn http_response_type(operation: &Operation) -> TokenStream {
    let ident = http_response_ident(operation);
    let doc = format!(" HTTP responses of `{}`.", operation.id);
    let variants = operation.responses.iter().map(|response| {
        let variant = status_variant(response.status);
        let doc = docs(Some(&response.description));
        let status_attribute = match response.status {
            Status::Code(code) => quote!(#[oai(status = #code)]),
            Status::ServerErrors => quote!(#[oai(status_range = "5XX")]),
        };
        let status_field = match response.status {
            Status::Code(_) => None,
            Status::ServerErrors => Some(quote!(poem::http::StatusCode,)),
        };
        let body = match &response.content {
            ResponseContent::Empty => None,
            ResponseContent::Json(schema) => {
                let ty = rust_type(schema);
                Some(quote!(Serialized<#ty>,))
            }
            ResponseContent::Image => Some(quote!(ImageBody,)),
            ResponseContent::Error => Some(quote!(ErrorBody,)),
        };
        let headers = response.headers.iter().map(|header| {
            let name = &header.name;
            let ty = if response.content == ResponseContent::Error {
                let ty = rust_type(&header.schema);
                quote!(ErrorHeader<#ty>)
            } else {
                header_type(&header.schema)
            };
            let doc = docs(header.description.as_deref());
            quote!(#doc #[oai(header = #name)] #ty,)
        });
        let fields = quote!(#status_field #body #(#headers)*);
        if fields.is_empty() {
            quote!(#doc #status_attribute #variant,)
        } else {
            quote!(#doc #status_attribute #variant(#fields),)
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(ApiResponse)]
        pub enum #ident {
            #(#variants)*
        }
    }
}

fn body_doc_ident(operation: &Operation) -> proc_macro2::Ident {
    format_ident!("{}Body", type_ident(&operation.id))
}

/// poem-openapi only documents validators written on parameters and object fields, so a JSON
/// body whose own schema has constraints (`minItems` on a list body) would lose them in the
/// emitted spec. This type documents the body as its Rust type's schema plus those constraints;
/// `crate::api::validation` enforces them.
fn body_doc_type(operation: &Operation) -> Option<TokenStream> {
    let Some(Body {
        content: BodyContent::Json(schema),
        ..
    }) = &operation.body
    else {
        return None;
    };
    let c = &schema.constraints;
    if *c == Constraints::default() {
        return None;
    }
    let ident = body_doc_ident(operation);
    let ty = rust_type(schema);
    let doc = format!(
        " Documents the request body of `{}` with its schema's own constraints.",
        operation.id
    );
    let mut updates = Vec::new();
    let mut set = |field: &str, value: TokenStream| {
        let field = format_ident!("{field}");
        updates.push(quote!(schema.#field = Some(#value);));
    };
    if let Some(bound) = c.minimum {
        let (value, exclusive) = (bound.value, bound.exclusive);
        set("minimum", quote!(#value));
        if exclusive {
            set("exclusive_minimum", quote!(true));
        }
    }
    if let Some(bound) = c.maximum {
        let (value, exclusive) = (bound.value, bound.exclusive);
        set("maximum", quote!(#value));
        if exclusive {
            set("exclusive_maximum", quote!(true));
        }
    }
    if let Some(n) = c.min_length {
        set("min_length", quote!(#n));
    }
    if let Some(n) = c.max_length {
        set("max_length", quote!(#n));
    }
    if let Some(pattern) = &c.pattern {
        set("pattern", quote!(#pattern.to_owned()));
    }
    if let Some(n) = c.min_items {
        set("min_items", quote!(#n));
    }
    if let Some(n) = c.max_items {
        set("max_items", quote!(#n));
    }
    if c.unique_items {
        set("unique_items", quote!(true));
    }
    Some(quote! {
        #[doc = #doc]
        pub struct #ident;

        impl poem_openapi::types::Type for #ident {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> ::std::borrow::Cow<'static, str> {
                <#ty as poem_openapi::types::Type>::name()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                let mut schema_ref = <#ty as poem_openapi::types::Type>::schema_ref();
                if let poem_openapi::registry::MetaSchemaRef::Inline(schema) = &mut schema_ref {
                    #(#updates)*
                }
                schema_ref
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <#ty as poem_openapi::types::Type>::register(registry);
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(::std::iter::once(self))
            }
        }
    })
}

fn rest_method(api: &Api, operation: &Operation) -> TokenStream {
    let method = method_ident(&operation.id);
    let base = type_ident(&operation.id);
    let request = format_ident!("{}Request", base);
    let response = format_ident!("{}Response", base);
    let http_response = http_response_ident(operation);
    let id = &operation.id;
    let http_method = operation.method.as_str();
    let path = poem_path(&operation.path);
    let tag = operation
        .tag
        .as_ref()
        .filter(|tag| api.tags.iter().any(|t| &t.name == *tag))
        .map(|tag| {
            let tag = format!("ApiTags::{}", tag.to_upper_camel_case());
            quote!(, tag = #tag)
        });
    let summary_and_description = match (&operation.summary, &operation.description) {
        (Some(summary), Some(description)) => Some(format!("{summary}\n\n{description}")),
        (Some(text), None) | (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    let doc = docs(summary_and_description.as_deref());

    let mut arguments = Vec::new();
    let mut fields = Vec::new();
    for param in &operation.params {
        let ident = field_ident(&param.name);
        let name = &param.name;
        let ty = super::operations::param_type(param);
        // The request holds an optional array as a plain `Vec` (absent = empty), but poem-openapi
        // documents `Vec` as required; `Option<Vec<_>>` is what documents `required: false`.
        let optional_array = !param.required && matches!(param.schema.kind, Kind::Array(_));
        let ty = if optional_array {
            quote!(Option<#ty>)
        } else {
            ty
        };
        let extractor = match param.location {
            ParamLocation::Path => quote!(Path<#ty>),
            ParamLocation::Query => quote!(Query<#ty>),
            ParamLocation::Header => quote!(Header<#ty>),
        };
        let mut attributes = vec![quote!(name = #name)];
        if let Some(validator) = poem_validator(&param.schema) {
            attributes.push(validator);
        }
        let doc = docs(param.description.as_deref());
        arguments.push(quote!(#doc #[oai(#(#attributes),*)] #ident: #extractor));
        if optional_array {
            fields.push(quote!(#ident: #ident.0.unwrap_or_default()));
        } else {
            fields.push(quote!(#ident: #ident.0));
        }
    }
    if let Some(body) = &operation.body {
        let doc = docs(body.description.as_deref());
        match &body.content {
            BodyContent::Json(schema) => {
                // `JsonBody`'s type parameter only documents the body; the value comes from
                // `parse_body` as the request field's type.
                let ty = if schema.constraints == Constraints::default() {
                    rust_type(schema)
                } else {
                    let ident = body_doc_ident(operation);
                    quote!(#ident)
                };
                let schema_static = const_ident(&operation.id);
                arguments.push(quote!(#doc body: JsonBody<#ty>));
                fields.push(quote!(body: parse_body(body.0, body_schemas::#schema_static)?));
            }
            BodyContent::Binary => {
                arguments.push(quote!(#doc body: OctetStream));
                fields.push(quote!(body: body.0));
            }
        }
    }

    let security = const_ident(&operation.id);
    let arms = operation
        .responses
        .iter()
        .map(|r| response_arm(r, &response, &http_response));

    // In the generated method, a `?` inside the async block (refused credentials, an invalid
    // body) lands in the response enum through `From<ApiError>`.
    quote! {
        #doc
        #[oai(path = #path, method = #http_method, operation_id = #id #tag)]
        async fn #method(
            &self,
            http_request: &poem::Request,
            #(#arguments),*
        ) -> #http_response {
            let outcome: Result<#response, crate::error::ApiError> = async {
                let ctx = request_context(http_request, security::#security)?;
                let request = #request { #(#fields),* };
                self.handler.#method(&ctx, request).await
            }
            .await;
            match outcome.unwrap_or_else(#response::from) {
                #(#arms)*
            }
        }
    }
}

fn response_arm(
    response: &Response,
    outcome: &proc_macro2::Ident,
    http: &proc_macro2::Ident,
) -> TokenStream {
    let variant = status_variant(response.status);
    let header_idents: Vec<_> = response
        .headers
        .iter()
        .map(|h| field_ident(&h.name))
        .collect();
    match (&response.content, response.status) {
        (ResponseContent::Error, status) => {
            // Header values are read from the error before `ErrorBody` takes it.
            let lets = response
                .headers
                .iter()
                .zip(&header_idents)
                .map(|(header, ident)| {
                    let name = &header.name;
                    quote!(let #ident = ErrorHeader::of(&error, #name);)
                });
            let status = match status {
                Status::ServerErrors => Some(quote!(error_status(&error),)),
                Status::Code(_) => None,
            };
            let http_variant =
                quote!(#http::#variant(#status ErrorBody(error) #(, #header_idents)*));
            if header_idents.is_empty() {
                quote!(#outcome::#variant(error) => #http_variant,)
            } else {
                quote!(#outcome::#variant(error) => { #(#lets)* #http_variant })
            }
        }
        (ResponseContent::Image, _) => {
            quote!(#outcome::#variant(image) => #http::#variant(ImageBody(image)),)
        }
        (ResponseContent::Json(_), _) if header_idents.is_empty() => {
            quote!(#outcome::#variant(body) => #http::#variant(body),)
        }
        (ResponseContent::Json(_), _) => {
            let values = response
                .headers
                .iter()
                .map(|h| header_value(&h.schema, &field_ident(&h.name)));
            quote!(#outcome::#variant { body, #(#header_idents),* } => #http::#variant(body, #(#values),*),)
        }
        (ResponseContent::Empty, _) if header_idents.is_empty() => {
            quote!(#outcome::#variant => #http::#variant,)
        }
        (ResponseContent::Empty, _) => {
            let values = response
                .headers
                .iter()
                .map(|h| header_value(&h.schema, &field_ident(&h.name)));
            quote!(#outcome::#variant { #(#header_idents),* } => #http::#variant(#(#values),*),)
        }
    }
}

/// The type of a response header in the HTTP enum: `date-time` needs a wrapper poem-openapi can
/// write as a header.
fn header_type(schema: &crate::ir::Schema) -> TokenStream {
    match schema.kind {
        Kind::String(StringFormat::DateTime) => quote!(crate::http::payload::DateTimeHeader),
        _ => rust_type(schema),
    }
}

/// The expression that turns a handler's header value into [`header_type`].
fn header_value(schema: &crate::ir::Schema, value: &proc_macro2::Ident) -> TokenStream {
    match schema.kind {
        Kind::String(StringFormat::DateTime) => {
            quote!(crate::http::payload::DateTimeHeader(#value))
        }
        _ => quote!(#value),
    }
}

/// `/pet/{petId}` → `/pet/:petId`, the form poem's router takes.
fn poem_path(path: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{name}"),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}
