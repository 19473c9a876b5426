//! `rest.rs` (server): the poem-openapi adapter that serves any `PetStoreApi` over HTTP.
//!
//! - `schemas`: one poem-openapi type per component schema, with the schema's validators. They
//!   only *document* (poem-openapi derives the served OpenAPI document from them) and read enum
//!   parameters; request bodies are read by the contract's own validation, exactly as every
//!   other transport reads them.
//! - Per operation one method, declaring the parameters and body as the spec has them, that
//!   checks the operation's security requirements while building the handler's context, builds
//!   the contract's request, calls the handler and answers its typed outcome.
//! - The documented responses, as data: each operation's success enum and error enum describe
//!   their own responses (`Documented`), the error responses the spec shares (`TooManyRequests`
//!   with its rate-limit headers) are written once, in `responses`.
//! - The direct lane (`DirectRoute`, `RestApi::answer_direct`): the operations a request names
//!   by its method and path alone (a `GET` whose only parameters are integers in the path), matched
//!   and answered without poem-openapi's router, through the same method body as the routed
//!   method, so the hot reads skip the router's per-request work and answer the same. The edge
//!   answers them itself, lending who is calling (`Calling`) instead of attaching it to the
//!   request.
//!
//! Runtime items used (`crate::rest::runtime`): `Answer`, `Calling`, `Documented`, `Render`, the
//! response builders, `JsonBody`, `OctetStream`, `request_context`, `caller_context` and
//! `PathSegments`.

use std::collections::BTreeMap;

use heck::ToUpperCamelCase;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::{
    Source, Uses, const_ident, docs, field_ident, format_file, method_ident, operation_types,
    poem_validator, rust_type, status_variant, type_ident, used_names,
};
use crate::ir::{
    Api, Body, BodyContent, Constraints, EnumModel, Header, Kind, Model, ObjectModel, Operation,
    ParamLocation, Response, ResponseContent, Status,
};

/// Emits `rest.rs`.
pub fn emit(api: &Api) -> String {
    let tag_variants = api.tags.iter().map(|tag| {
        let variant = format_ident!("{}", tag.name.to_upper_camel_case());
        let name = &tag.name;
        let doc = docs(tag.description.as_deref());
        quote!(#doc #[oai(rename = #name)] #variant,)
    });
    let mirrors: Vec<TokenStream> = api
        .models
        .iter()
        .map(|model| match model {
            Model::Object(object) => object_mirror(object),
            Model::Enum(enumeration) => enum_mirror(enumeration),
        })
        .collect();
    let shared = SharedErrors::collect(api);
    let error_fns = shared.functions();
    let body_types = api.operations.iter().filter_map(body_doc_type);
    let documented = api
        .operations
        .iter()
        .map(|operation| documented_outcomes(operation, &shared));
    let methods = api
        .operations
        .iter()
        .map(|operation| rest_method(api, operation));

    let mut mirror_uses = Uses::default();
    for model in &api.models {
        if let Model::Object(object) = model {
            for field in &object.fields {
                mirror_uses.add(&field.schema);
            }
        }
    }
    let mirror_imports = mirror_uses.library_imports();
    let mut mirror_derives = Vec::new();
    if api
        .models
        .iter()
        .any(|model| matches!(model, Model::Enum(_)))
    {
        mirror_derives.push(format_ident!("Enum"));
    }
    if api
        .models
        .iter()
        .any(|model| matches!(model, Model::Object(_)))
    {
        mirror_derives.push(format_ident!("Object"));
    }
    let mut top_uses = Uses::default();
    for operation in &api.operations {
        for param in &operation.params {
            top_uses.add(&param.schema);
        }
        for response in &operation.responses {
            if let ResponseContent::Json(schema) = &response.content {
                top_uses.add(schema);
            }
            for header in &response.headers {
                top_uses.add(&header.schema);
            }
        }
    }
    // Models are named through `schemas::`; only the library types need importing.
    let top_imports = top_uses.library_imports();

    let methods: Vec<TokenStream> = methods.collect();
    let property_examples = api.models.iter().flat_map(|model| match model {
        Model::Object(object) => object
            .fields
            .iter()
            .filter_map(|field| {
                let example = field.schema.example.as_ref()?.to_string();
                let (schema, property) = (&object.name, &field.name);
                Some(quote!((#schema, #property, #example)))
            })
            .collect::<Vec<_>>(),
        Model::Enum(_) => Vec::new(),
    });
    let parameter_examples = api.operations.iter().flat_map(|operation| {
        operation
            .params
            .iter()
            .chain(&operation.edge_params)
            .filter_map(move |param| {
                let example = param.example.as_ref()?.to_string();
                let (id, name) = (&operation.id, &param.name);
                Some(quote!((#id, #name, #example)))
            })
    });
    let items = quote! {
        #(#body_types)*
        #(#documented)*
    };
    let direct = direct_lane(api);
    let all = quote!(#items #(#methods)* #direct);
    let runtime = used_names(
        &[
            "Answer",
            "Calling",
            "Documented",
            "JsonBody",
            "OctetStream",
            "PathSegments",
            "Render",
            "caller_context",
            "image_content",
            "header",
            "json_content",
            "render_empty",
            "render_image",
            "render_json",
            "request_context",
            "set_header",
            "success_response",
        ],
        &all,
    );
    let params = used_names(&["Header", "Path", "Query"], &all);
    let body_doc_imports = (!body_doc_names_empty(api)).then(|| {
        quote!(
            use std::borrow::Cow;
        )
    });
    let registry_imports = used_names(&["MetaResponse", "MetaSchemaRef", "Registry"], &all);
    let error_headers = shared.has_headers().then(|| quote!(header,));

    let tokens = quote! {
        #body_doc_imports
        use std::sync::Arc;

        #top_imports
        use petstore_api::{operations::*, validation::parse_body};
        use poem::{Request, Response, http::StatusCode};
        use poem_openapi::{
            OpenApi, Tags,
            param::{#(#params),*},
            registry::{#(#registry_imports),*},
            types::Type,
        };

        use crate::rest::runtime::{#(#runtime),*};

        /// The component schemas as poem-openapi types: what the served document is derived
        /// from, and how enum parameters are read.
        pub mod schemas {
            #mirror_imports
            use poem_openapi::{#(#mirror_derives),*};

            #(#mirrors)*
        }

        /// The error responses of the spec, each written once and shared by every operation
        /// that documents it.
        mod responses {
            use poem_openapi::registry::MetaResponse;

            use super::schemas::ErrorResponse;
            use crate::rest::runtime::{error_response, #error_headers json_content};

            #(#error_fns)*
        }

        /// The spec's property examples as JSON text, by schema and property: poem-openapi's
        /// derives cannot carry them, so they are added to its registry (`crate::rest`).
        pub const PROPERTY_EXAMPLES: &[(&str, &str, &str)] = &[#(#property_examples),*];

        /// The spec's parameter examples as JSON text, by operation and parameter, added to the
        /// parameters' schemas the same way.
        pub const PARAMETER_EXAMPLES: &[(&str, &str, &str)] = &[#(#parameter_examples),*];

        /// The spec's tags.
        #[derive(Tags)]
        pub enum ApiTags {
            #(#tag_variants)*
        }

        #items

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

        #direct
    };
    format_file(
        "REST adapter: serves PetStoreApi over HTTP with poem-openapi.",
        Source::OpenApi,
        tokens,
    )
}

/// Whether no operation needs a body documentation type.
fn body_doc_names_empty(api: &Api) -> bool {
    api.operations
        .iter()
        .all(|operation| body_doc_type(operation).is_none())
}

/// A documentation type for an object schema, with the schema's validators.
fn object_mirror(model: &ObjectModel) -> TokenStream {
    let ident = type_ident(&model.name);
    let doc = match &model.description {
        Some(description) => docs(Some(description)),
        None => docs(Some(&format!("The `{}` schema.", model.name))),
    };
    let fields = model.fields.iter().map(|field| {
        let name = field_ident(&field.name);
        let wire = &field.name;
        let ty = rust_type(&field.schema, &TokenStream::new());
        let ty = if field.required {
            ty
        } else {
            quote!(Option<#ty>)
        };
        let doc = docs(field.schema.description.as_deref());
        let mut attributes = vec![quote!(rename = #wire)];
        if let Some(validator) = poem_validator(&field.schema) {
            attributes.push(validator);
        }
        if field.write_only {
            attributes.push(quote!(write_only));
        }
        if field.read_only {
            attributes.push(quote!(read_only));
        }
        quote! {
            #doc
            #[oai(#(#attributes),*)]
            pub #name: #ty,
        }
    });
    quote! {
        #doc
        #[derive(Debug, Clone, Object)]
        pub struct #ident {
            #(#fields)*
        }
    }
}

/// A documentation type for an enum schema, and its conversion into the contract's enum (for
/// enum parameters, which poem-openapi reads).
fn enum_mirror(model: &EnumModel) -> TokenStream {
    let ident = type_ident(&model.name);
    let doc = match &model.description {
        Some(description) => docs(Some(description)),
        None => docs(Some(&format!("The `{}` schema.", model.name))),
    };
    let variants: Vec<_> = model
        .values
        .iter()
        .map(|value| format_ident!("{}", value.to_upper_camel_case()))
        .collect();
    let declarations = variants.iter().zip(&model.values).map(|(variant, value)| {
        let doc = format!(" `{value}`");
        quote!(#[doc = #doc] #[oai(rename = #value)] #variant,)
    });
    quote! {
        #doc
        #[derive(Debug, Clone, Copy, Enum)]
        pub enum #ident {
            #(#declarations)*
        }

        impl From<#ident> for petstore_api::models::#ident {
            fn from(value: #ident) -> Self {
                match value {
                    #(#ident::#variants => Self::#variants,)*
                }
            }
        }
    }
}

/// The distinct error responses of the spec (by status, description and headers), each to be
/// written once as a function in `responses`.
struct SharedErrors {
    /// Function name → the response it builds; a second distinct response for one status gets
    /// a numbered name.
    functions: BTreeMap<String, Response>,
}

impl SharedErrors {
    fn collect(api: &Api) -> Self {
        let mut functions: BTreeMap<String, Response> = BTreeMap::new();
        for response in api
            .operations
            .iter()
            .flat_map(|operation| &operation.responses)
            .filter(|response| response.content == ResponseContent::Error)
        {
            let base = status_variant(response.status).to_string();
            let base = heck::ToSnakeCase::to_snake_case(base.as_str());
            let mut name = base.clone();
            let mut index = 1;
            loop {
                match functions.get(&name) {
                    Some(existing) if existing == response => break,
                    Some(_) => {
                        index += 1;
                        name = format!("{base}_{index}");
                    }
                    None => {
                        functions.insert(name.clone(), response.clone());
                        break;
                    }
                }
            }
        }
        Self { functions }
    }

    /// The function that builds `response`.
    fn function_for(&self, response: &Response) -> Ident {
        let name = self
            .functions
            .iter()
            .find(|(_, candidate)| *candidate == response)
            .map(|(name, _)| name.as_str())
            .unwrap_or("server_error");
        format_ident!("{name}")
    }

    fn has_headers(&self) -> bool {
        self.functions
            .values()
            .any(|response| !response.headers.is_empty())
    }

    fn functions(&self) -> Vec<TokenStream> {
        self.functions
            .iter()
            .map(|(name, response)| {
                let ident = format_ident!("{name}");
                let description = &response.description;
                let (status, range) = status_parts(response.status);
                let headers = response.headers.iter().map(header_meta);
                let doc = docs(Some(&response.description));
                quote! {
                    #doc
                    pub(super) fn #ident() -> MetaResponse {
                        error_response(
                            #status,
                            #range,
                            #description,
                            json_content::<ErrorResponse>(),
                            vec![#(#headers),*],
                        )
                    }
                }
            })
            .collect()
    }
}

/// `(Some(404), None)` or `(None, Some("5XX"))`, as tokens.
fn status_parts(status: Status) -> (TokenStream, TokenStream) {
    match status {
        Status::Code(code) => (quote!(Some(#code)), quote!(None)),
        Status::ServerErrors => (quote!(None), quote!(Some("5XX"))),
    }
}

/// A `header::<T>(name, description)` expression documenting a response header.
fn header_meta(header: &Header) -> TokenStream {
    let name = &header.name;
    let ty = rust_type(&header.schema, &TokenStream::new());
    let description = match &header.description {
        Some(description) => quote!(Some(#description)),
        None => quote!(None),
    };
    quote!(header::<#ty>(#name, #description))
}

/// `Documented` and `Render` for an operation's success enum, `Documented` for its error enum.
fn documented_outcomes(operation: &Operation, shared: &SharedErrors) -> TokenStream {
    let (_, response, error) = operation_types(&operation.id);
    let successes: Vec<&Response> = operation
        .responses
        .iter()
        .filter(|response| response.content != ResponseContent::Error)
        .collect();
    let success_metas = successes.iter().map(|response| {
        let (status, _) = status_parts(response.status);
        let description = &response.description;
        let content = match &response.content {
            ResponseContent::Json(schema) => {
                let ty = rust_type(schema, &quote!(schemas::));
                quote!(json_content::<#ty>())
            }
            ResponseContent::Image => quote!(image_content()),
            ResponseContent::Empty | ResponseContent::Error => quote!(Vec::new()),
        };
        let headers = response.headers.iter().map(header_meta);
        quote!(success_response(#status, #description, #content, vec![#(#headers),*]))
    });
    let registrations: Vec<TokenStream> = successes
        .iter()
        .filter_map(|response| match &response.content {
            ResponseContent::Json(schema) => {
                let ty = rust_type(schema, &quote!(schemas::));
                Some(quote!(<#ty as Type>::register(registry);))
            }
            _ => None,
        })
        .collect();
    // Nothing to register keeps the trait's default (which registers nothing).
    let register = (!registrations.is_empty()).then(|| {
        quote! {
            fn register(registry: &mut Registry) {
                #(#registrations)*
            }
        }
    });
    let render_arms = successes.iter().map(|response| render_arm(response));
    let error_fns = operation
        .responses
        .iter()
        .filter(|response| response.content == ResponseContent::Error)
        .map(|response| {
            let function = shared.function_for(response);
            quote!(responses::#function())
        });
    quote! {
        impl Documented for #response {
            fn responses() -> Vec<MetaResponse> {
                vec![#(#success_metas),*]
            }

            #register
        }

        impl Render for #response {
            fn render(self) -> Response {
                match self {
                    #(#render_arms)*
                }
            }
        }

        impl Documented for #error {
            fn responses() -> Vec<MetaResponse> {
                vec![#(#error_fns),*]
            }

            fn register(registry: &mut Registry) {
                <schemas::ErrorResponse as Type>::register(registry);
            }
        }
    }
}

/// The arm of `Render::render` for one success variant: status, body, headers.
fn render_arm(response: &Response) -> TokenStream {
    let variant = status_variant(response.status);
    let status = match response.status {
        Status::Code(code) => quote!(StatusCode::from_u16(#code).unwrap_or(StatusCode::OK)),
        Status::ServerErrors => quote!(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let status = match response.status {
        Status::Code(200) => quote!(StatusCode::OK),
        Status::Code(201) => quote!(StatusCode::CREATED),
        Status::Code(204) => quote!(StatusCode::NO_CONTENT),
        _ => status,
    };
    let header_idents: Vec<_> = response
        .headers
        .iter()
        .map(|header| field_ident(&header.name))
        .collect();
    let header_names = response.headers.iter().map(|header| header.name.as_str());
    let (pattern_body, render) = match &response.content {
        ResponseContent::Json(_) => (Some(quote!(body)), quote!(render_json(#status, body))),
        ResponseContent::Image => (Some(quote!(body)), quote!(render_image(#status, body))),
        ResponseContent::Empty | ResponseContent::Error => (None, quote!(render_empty(#status))),
    };
    if header_idents.is_empty() {
        let pattern = match pattern_body {
            Some(body) => quote!(Self::#variant(#body)),
            None => quote!(Self::#variant),
        };
        quote!(#pattern => #render,)
    } else {
        let bindings = pattern_body
            .into_iter()
            .chain(header_idents.iter().map(|ident| quote!(#ident)));
        quote! {
            Self::#variant { #(#bindings),* } => {
                let mut response = #render;
                #(set_header(&mut response, #header_names, &#header_idents);)*
                response
            }
        }
    }
}

fn body_doc_ident(operation: &Operation) -> proc_macro2::Ident {
    format_ident!("{}Body", type_ident(&operation.id))
}

/// poem-openapi only documents validators written on parameters and object fields, so a JSON
/// body whose own schema has constraints (`minItems` on a list body) would lose them in the
/// emitted spec. This type documents the body as its Rust type's schema plus those constraints;
/// `petstore_api::validation` enforces them.
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
    let ty = rust_type(schema, &quote!(schemas::));
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

        impl Type for #ident {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                <#ty as Type>::name()
            }

            fn schema_ref() -> MetaSchemaRef {
                let mut schema_ref = <#ty as Type>::schema_ref();
                if let MetaSchemaRef::Inline(schema) = &mut schema_ref {
                    #(#updates)*
                }
                schema_ref
            }

            fn register(registry: &mut Registry) {
                <#ty as Type>::register(registry);
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }
    })
}

fn rest_method(api: &Api, operation: &Operation) -> TokenStream {
    let method = method_ident(&operation.id);
    let (_, response, error) = operation_types(&operation.id);
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
        let ty = super::operations::param_type(param, &quote!(schemas::));
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
        fields.push(param_value(&ident, param, optional_array));
    }
    // Documented, read by the edge before this method runs; bound so poem-openapi serves it.
    for param in &operation.edge_params {
        let ident = format_ident!("_{}", field_ident(&param.name).to_string());
        let name = &param.name;
        let ty = super::operations::param_type(param, &quote!(schemas::));
        let mut attributes = vec![quote!(name = #name)];
        if let Some(validator) = poem_validator(&param.schema) {
            attributes.push(validator);
        }
        let doc = docs(param.description.as_deref());
        arguments.push(quote!(#doc #[oai(#(#attributes),*)] #ident: Header<#ty>));
    }
    if let Some(body) = &operation.body {
        let doc = docs(body.description.as_deref());
        match &body.content {
            BodyContent::Json(schema) => {
                // `JsonBody`'s type parameter only documents the body; the value is read by
                // `parse_body` into the request field's type.
                let ty = if schema.constraints == Constraints::default() {
                    rust_type(schema, &quote!(schemas::))
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

    let call = operation_call(operation, &fields);
    quote! {
        #doc
        #[oai(path = #path, method = #http_method, operation_id = #id #tag)]
        async fn #method(
            &self,
            http: &Request,
            #(#arguments),*
        ) -> Answer<#response, #error> {
            let calling = &Calling::attached(http);
            #call
        }
    }
}

/// The body of an operation's method once its parameters and body are read (bound by their
/// names, as poem-openapi's extractors) and who is calling is known (`calling`, a `&Calling`):
/// the context, the contract's request, the handler's call and its typed outcome, an `Answer`.
/// Shared by the routed method and the direct lane, so both answer alike.
fn operation_call(operation: &Operation, fields: &[TokenStream]) -> TokenStream {
    let method = method_ident(&operation.id);
    let (request, response, error) = operation_types(&operation.id);
    let security = const_ident(&operation.id);
    let has_json_body = matches!(
        operation.body.as_ref().map(|body| &body.content),
        Some(BodyContent::Json(_))
    );
    if operation.requires_credentials() || has_json_body {
        // Refused credentials or an invalid body end the call early, as one of the
        // operation's documented errors (`From<Denied>`, `From<Invalid>`).
        let context = if operation.requires_credentials() {
            quote!(request_context(calling, security::#security)?)
        } else {
            quote!(caller_context(calling, security::#security))
        };
        quote! {
            let outcome: Result<#response, #error> = async {
                let ctx = #context;
                let request = #request { #(#fields),* };
                self.handler.#method(&ctx, request).await
            }
            .await;
            Answer(outcome)
        }
    } else {
        quote! {
            let ctx = caller_context(calling, security::#security);
            let request = #request { #(#fields),* };
            Answer(self.handler.#method(&ctx, request).await)
        }
    }
}

/// The request field for a parameter: enum values converted from their documentation type.
fn param_value(ident: &Ident, param: &crate::ir::Param, optional_array: bool) -> TokenStream {
    let is_enum = |schema: &crate::ir::Schema| matches!(schema.kind, Kind::Named(_));
    match &param.schema.kind {
        Kind::Array(item) if is_enum(item) => {
            let values = if optional_array {
                quote!(#ident.0.unwrap_or_default())
            } else {
                quote!(#ident.0)
            };
            quote!(#ident: #values.into_iter().map(Into::into).collect())
        }
        Kind::Named(_) if param.required => quote!(#ident: #ident.0.into()),
        Kind::Named(_) => quote!(#ident: #ident.0.map(Into::into)),
        _ if optional_array => quote!(#ident: #ident.0.unwrap_or_default()),
        _ => quote!(#ident: #ident.0),
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

/// The direct lane: the operations whose requests are told apart by their method and path
/// alone, answered without poem-openapi's router (`DirectRoute`, `RestApi::answer_direct`).
///
/// An operation qualifies when a request for it carries nothing but its path: `GET`, no body, no
/// parameter the edge reads, and every parameter a required integer in the path (read as
/// poem-openapi reads it, `str::parse`, and checked against the same bounds). Any other path
/// template that could match a path the route takes must lose to it in the router (static
/// segments where the other has parameters), so the router could not have chosen another
/// operation (or answered 405) for it. A request the lane declines, a malformed one included,
/// goes to the router, which stays the reference for every error it raises.
fn direct_lane(api: &Api) -> TokenStream {
    let mut routes: Vec<&Operation> = api
        .operations
        .iter()
        .filter(|operation| direct_eligible(api, operation))
        .collect();
    // Static paths first, as the router prefers them (no two routes overlap, so only clarity
    // depends on it).
    routes.sort_by_key(|operation| operation.params.len());

    let variants = routes.iter().map(|operation| {
        let variant = type_ident(&operation.id);
        let doc = format!(
            " `{} {}` (`{}`).",
            operation.method.as_str().to_ascii_uppercase(),
            operation.path,
            operation.id
        );
        let fields = operation.params.iter().map(|param| {
            let ident = field_ident(&param.name);
            let ty = rust_type(&param.schema, &TokenStream::new());
            let doc = format!(" `{}`.", param.name);
            quote!(#[doc = #doc] #ident: #ty)
        });
        if operation.params.is_empty() {
            quote!(#[doc = #doc] #variant,)
        } else {
            quote!(#[doc = #doc] #variant { #(#fields),* },)
        }
    });
    let matchers = routes.iter().map(|operation| direct_matcher(operation));
    let ids = routes.iter().map(|operation| {
        let variant = type_ident(&operation.id);
        let id = &operation.id;
        if operation.params.is_empty() {
            quote!(Self::#variant => #id,)
        } else {
            quote!(Self::#variant { .. } => #id,)
        }
    });
    let arms = routes.iter().map(|operation| {
        let variant = type_ident(&operation.id);
        let (_, response, error) = operation_types(&operation.id);
        let idents: Vec<Ident> = operation
            .params
            .iter()
            .map(|param| field_ident(&param.name))
            .collect();
        let fields: Vec<TokenStream> = operation
            .params
            .iter()
            .map(|param| param_value(&field_ident(&param.name), param, false))
            .collect();
        let call = operation_call(operation, &fields);
        let pattern = if idents.is_empty() {
            quote!(DirectRoute::#variant)
        } else {
            quote!(DirectRoute::#variant { #(#idents),* })
        };
        quote! {
            #pattern => {
                // Bound as the routed method's extractors bind them.
                #(let #idents = Path(#idents);)*
                let answer: Answer<#response, #error> = { #call };
                poem::IntoResponse::into_response(answer)
            }
        }
    });
    // The path is split once, into as many segments as the longest route has; a longer path
    // is no direct route's.
    let most_segments = routes
        .iter()
        .map(|operation| template_segments(&operation.path).len())
        .max()
        .unwrap_or(0);
    let most_segments = proc_macro2::Literal::usize_unsuffixed(most_segments);
    let method_check = (!routes.is_empty()).then(|| {
        quote! {
            if *method != poem::http::Method::GET {
                return None;
            }
            let path = path.strip_prefix(API_BASE)?;
            let segments = PathSegments::<#most_segments>::of(path)?;
            let segments = segments.as_slice();
        }
    });
    let unused = routes.is_empty().then(|| quote!(let _ = (method, path);));
    quote! {
        /// The requests of the direct lane: operations named by their method and path alone,
        /// with their path parameters read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum DirectRoute {
            #(#variants)*
        }

        impl DirectRoute {
            /// The route of a `method` request for `path` (the full path, under `API_BASE`), if
            /// the direct lane takes it: its operation qualifies and its parameters read and
            /// pass their bounds. `None` leaves the request to the router.
            pub fn of(method: &poem::http::Method, path: &str) -> Option<Self> {
                #unused
                #method_check
                #(#matchers)*
                None
            }

            /// The `operationId` of the route's operation.
            pub fn operation_id(self) -> &'static str {
                match self {
                    #(#ids)*
                }
            }
        }

        impl<H: PetStoreApi> RestApi<H> {
            /// Answers a request of the direct lane as the operation's method above answers it:
            /// the same context, request, handler call and rendering; who is calling is lent by
            /// the edge, which answers the lane's requests itself.
            pub async fn answer_direct(&self, calling: &Calling<'_>, route: DirectRoute) -> Response {
                match route {
                    #(#arms)*
                }
            }
        }
    }
}

/// Whether `operation` is served by the direct lane (see [`direct_lane`]).
fn direct_eligible(api: &Api, operation: &Operation) -> bool {
    let simple = operation.method == crate::ir::Method::Get
        && operation.body.is_none()
        && operation.edge_params.is_empty()
        && operation.params.iter().all(|param| {
            param.location == ParamLocation::Path
                && param.required
                && matches!(param.schema.kind, Kind::Integer(_))
        });
    let template = template_segments(&operation.path);
    let bound = template.iter().filter(|segment| segment.is_param()).count();
    simple
        && bound == operation.params.len()
        && api.operations.iter().all(|other| {
            let other = template_segments(&other.path);
            other == template || !could_overlap(&template, &other) || wins(&template, &other)
        })
}

/// One segment of a path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'a> {
    /// Literal text.
    Static(&'a str),
    /// `{name}`.
    Param(&'a str),
}

impl Segment<'_> {
    fn is_param(self) -> bool {
        matches!(self, Segment::Param(_))
    }
}

/// `/pet/{petId}` → `[Static("pet"), Param("petId")]`.
fn template_segments(path: &str) -> Vec<Segment<'_>> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Static(segment),
            },
        )
        .collect()
}

/// Whether `other` could match a path that `direct` (whose parameters are integers) takes.
fn could_overlap(direct: &[Segment<'_>], other: &[Segment<'_>]) -> bool {
    direct.len() == other.len()
        && direct.iter().zip(other).all(|pair| match pair {
            (Segment::Static(a), Segment::Static(b)) => a == b,
            (Segment::Param(_), Segment::Static(text)) => text.parse::<i128>().is_ok(),
            (_, Segment::Param(_)) => true,
        })
}

/// Whether the router prefers `direct` to `other` on every path both match: `direct` is static
/// wherever they differ (the router tries static segments before parameters).
fn wins(direct: &[Segment<'_>], other: &[Segment<'_>]) -> bool {
    direct.iter().zip(other).all(|pair| match pair {
        (Segment::Static(a), Segment::Static(b)) => a == b,
        (Segment::Static(_), Segment::Param(_)) => true,
        (Segment::Param(_), _) => false,
    })
}

/// The `if` that takes `operation`'s requests: the path's `segments` (split once for every
/// route) compared with the static segments, each parameter parsed and checked against its
/// bounds.
fn direct_matcher(operation: &Operation) -> TokenStream {
    let template = template_segments(&operation.path);
    let patterns = template.iter().map(|segment| match segment {
        Segment::Static(text) => quote!(#text),
        Segment::Param(name) => {
            let ident = field_ident(name);
            quote!(#ident)
        }
    });
    let checks = operation.params.iter().map(|param| {
        let ident = field_ident(&param.name);
        let ty = rust_type(&param.schema, &TokenStream::new());
        let bounds = bound_checks(&ident, &param.schema.constraints);
        quote!(&& let Ok(#ident) = #ident.parse::<#ty>() #(&& #bounds)*)
    });
    let variant = type_ident(&operation.id);
    let idents: Vec<Ident> = operation
        .params
        .iter()
        .map(|param| field_ident(&param.name))
        .collect();
    let route = if idents.is_empty() {
        quote!(Self::#variant)
    } else {
        quote!(Self::#variant { #(#idents),* })
    };
    quote! {
        if let [#(#patterns),*] = segments #(#checks)* {
            return Some(#route);
        }
    }
}

/// A parameter's `minimum` and `maximum`, compared as poem-openapi's validators compare them (as
/// `f64`).
fn bound_checks(ident: &Ident, constraints: &Constraints) -> Vec<TokenStream> {
    let mut checks = Vec::new();
    if let Some(minimum) = &constraints.minimum {
        let value = proc_macro2::Literal::f64_suffixed(minimum.value);
        checks.push(if minimum.exclusive {
            quote!((#ident as f64) > #value)
        } else {
            quote!((#ident as f64) >= #value)
        });
    }
    if let Some(maximum) = &constraints.maximum {
        let value = proc_macro2::Literal::f64_suffixed(maximum.value);
        checks.push(if maximum.exclusive {
            quote!((#ident as f64) < #value)
        } else {
            quote!((#ident as f64) <= #value)
        });
    }
    checks
}
