//! `operations.rs` (contract): per operation a request struct, a closed success enum and a
//! closed error enum, and the `PetStoreApi` trait the handlers implement; the spec's base path,
//! security schemes, scopes and per-operation requirements as data the transports enforce
//! before a handler runs; the parameter and body schemas as validation nodes.
//!
//! Runtime items used: `crate::{Ctx, Image, Serialized}`, `crate::error` (the error kinds and
//! the `operation_errors!` macro that writes each operation's error enum and its conversions),
//! `crate::security`, `crate::validation` and `crate::wire`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{
    Patterns, Source, Uses, const_ident, docs, error_kind, field_ident, format_file, method_ident,
    node, operation_types, rust_type, serde_field, status_variant,
};
use crate::{
    ir::{
        Api, BodyContent, Kind, Operation, Param, ParamLocation, Response, ResponseContent,
        SchemeKind, SecuritySchemeInfo, Status, describe_requirement,
    },
    names,
};

/// Emits `operations.rs`.
pub fn emit(api: &Api) -> String {
    let mut uses = Uses::default();
    for operation in &api.operations {
        for param in &operation.params {
            uses.add(&param.schema);
        }
        if let Some(body) = &operation.body {
            match &body.content {
                BodyContent::Json(schema) => uses.add(schema),
                BodyContent::Binary => uses.bytes = true,
            }
        }
        for response in &operation.responses {
            if let ResponseContent::Json(schema) = &response.content {
                uses.add(schema);
            }
            for header in &response.headers {
                if response.content != ResponseContent::Error {
                    uses.add(&header.schema);
                }
            }
        }
    }
    let library_imports = uses.library_imports();
    let models = uses.model_idents();
    let model_imports = (!models.is_empty()).then(|| quote!(use crate::models::{#(#models),*};));
    let kinds = error_kinds_used(api);
    let uses_image = api.operations.iter().any(|operation| {
        operation
            .responses
            .iter()
            .any(|response| response.content == ResponseContent::Image)
    });
    let image_import = uses_image.then(|| quote!(Image,));
    let uses_json = api.operations.iter().any(|operation| {
        operation
            .responses
            .iter()
            .any(|response| matches!(response.content, ResponseContent::Json(_)))
    });
    let serialized_import = uses_json.then(|| quote!(Serialized,));
    let denied_import = api
        .operations
        .iter()
        .any(|operation| operation.requires_credentials())
        .then(|| quote!(Denied,));

    let mut body_patterns = Patterns::default();
    let body_nodes: Vec<TokenStream> = api
        .operations
        .iter()
        .filter_map(|operation| match &operation.body.as_ref()?.content {
            BodyContent::Json(schema) => {
                let ident = const_ident(&operation.id);
                let node = node(schema, &mut body_patterns);
                let doc = format!(" Checks the request body of `{}`.", operation.id);
                Some(quote! {
                    #[doc = #doc]
                    pub static #ident: &Node = #node;
                })
            }
            BodyContent::Binary => None,
        })
        .collect();
    let body_pattern_statics = body_patterns.statics();
    let body_validation_imports =
        super::models::validation_imports(&body_pattern_statics, &body_nodes);
    let mut patterns = Patterns::default();
    let param_nodes: Vec<TokenStream> = api
        .operations
        .iter()
        .flat_map(|operation| operation.params.iter().map(move |param| (operation, param)))
        .map(|(operation, param)| {
            let ident = param_const(operation, &param.name);
            let doc = format!(" Checks parameter `{}` of `{}`.", param.name, operation.id);
            let node = node(&param.schema, &mut patterns);
            quote!(#[doc = #doc] pub static #ident: &Node = #node;)
        })
        .collect();
    let pattern_statics = patterns.statics();
    let validation_imports = super::models::validation_imports(&pattern_statics, &param_nodes);

    let types = api.operations.iter().map(operation_types_of);
    let methods = api.operations.iter().map(trait_method);
    let infos = api.operations.iter().map(|operation| {
        let id = &operation.id;
        let method = operation.method.as_str().to_uppercase();
        let path = &operation.path;
        let security = const_ident(&operation.id);
        quote!(OperationInfo { id: #id, method: #method, path: #path, security: security::#security })
    });
    let count = Literal::usize_unsuffixed(api.operations.len());
    let base_path = &api.base_path;
    let mut response_headers: Vec<String> = Vec::new();
    for header in api
        .operations
        .iter()
        .flat_map(|operation| &operation.responses)
        .flat_map(|response| &response.headers)
    {
        if !response_headers
            .iter()
            .any(|known| known.eq_ignore_ascii_case(&header.name))
        {
            response_headers.push(header.name.clone());
        }
    }
    let header_count = Literal::usize_unsuffixed(response_headers.len());
    let scope_enum = scope_enum(&api.scopes);
    let schemes = schemes(&api.security_schemes);
    let requirements = requirements(api);
    let security_imports = if api.security_schemes.is_empty() {
        quote!(
            use crate::security::{SecurityRequirement, SecurityScheme};
        )
    } else {
        quote!(
            use crate::security::{SchemeKind, SecurityRequirement, SecurityScheme};
        )
    };

    let tokens = quote! {
        use std::future::Future;

        #library_imports
        use serde::Serialize;

        use crate::{#image_import #serialized_import Ctx, payload::Success};
        use crate::error::{#denied_import #(#kinds),*};
        #model_imports
        #security_imports

        /// The path every operation's [`OperationInfo::path`] is relative to: the spec's
        /// `servers[0].url`.
        pub const API_BASE: &str = #base_path;

        /// How an operation is reached over HTTP, and who may call it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct OperationInfo {
            /// `operationId`.
            pub id: &'static str,
            /// HTTP method, upper case.
            pub method: &'static str,
            /// Path template relative to [`API_BASE`] (`/pet/{petId}`).
            pub path: &'static str,
            /// Its security requirements (any one suffices; none: public), from [`security`].
            pub security: &'static [SecurityRequirement],
        }

        /// Every operation of the spec, in spec order.
        pub const OPERATIONS: [OperationInfo; #count] = [#(#infos),*];

        /// Every response header the spec documents (success and error responses), once each,
        /// in spec order: what a browser client must be allowed to read.
        pub const RESPONSE_HEADERS: [&str; #header_count] = [#(#response_headers),*];

        #scope_enum

        #schemes

        #requirements

        #(#types)*

        /// The operations of `openapi.yaml`. The handlers implement this once; every transport
        /// calls it. A new operation in the spec is a new method here, and a new error status a
        /// new variant of its error enum, so the build fails until the handlers and the
        /// transports account for it.
        pub trait PetStoreApi: Send + Sync + 'static {
            #(#methods)*
        }

        /// The request body schemas, as data for `crate::validation`.
        pub mod body_schemas {
            #body_validation_imports

            #(#body_nodes)*
            #body_pattern_statics
        }

        /// The parameter schemas, as data for `crate::validation`: what a transport that
        /// carries parameters in a JSON payload checks them against.
        pub mod param_schemas {
            #validation_imports

            #(#param_nodes)*
            #pattern_statics
        }
    };
    format_file(
        "Operations: requests, responses, errors and the handler interface of openapi.yaml.",
        Source::OpenApi,
        tokens,
    )
}

/// The error kinds some operation documents, sorted, for the `use` list.
fn error_kinds_used(api: &Api) -> Vec<proc_macro2::Ident> {
    let mut kinds: Vec<String> = api
        .operations
        .iter()
        .flat_map(|operation| &operation.responses)
        .filter(|response| response.content == ResponseContent::Error)
        .map(|response| error_kind(response.status).to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .map(|kind| format_ident!("{kind}"))
        .collect()
}

/// The static holding the schema of parameter `name` of `operation` (`GET_PET_BY_ID_PET_ID`).
pub(crate) fn param_const(operation: &Operation, name: &str) -> proc_macro2::Ident {
    format_ident!(
        "{}_{}",
        names::const_name(&operation.id),
        names::const_name(name)
    )
}

/// The `Scope` enum: one variant per scope the spec's requirements name, sorted by name.
fn scope_enum(scopes: &[String]) -> TokenStream {
    let variants: Vec<_> = scopes
        .iter()
        .map(|scope| format_ident!("{}", names::scope_variant(scope)))
        .collect();
    let variant_docs = scopes.iter().map(|scope| format!(" `{scope}`"));
    let count = Literal::usize_unsuffixed(scopes.len());
    quote! {
        /// A permission named as a scope in the spec's security requirements; a caller's role
        /// grants a set of them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            #(#[doc = #variant_docs] #variants,)*
        }

        impl Scope {
            /// Every scope, sorted by name.
            pub const ALL: [Scope; #count] = [#(Scope::#variants),*];

            /// The scope as the spec writes it (`pets:write`).
            pub fn as_str(self) -> &'static str {
                match self {
                    #(Scope::#variants => #scopes,)*
                }
            }

            /// The scope the spec writes as `name`, if there is one.
            pub fn from_name(name: &str) -> Option<Scope> {
                Self::ALL.into_iter().find(|scope| scope.as_str() == name)
            }
        }

        impl std::fmt::Display for Scope {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    }
}

/// One static per security scheme, and `SECURITY_SCHEMES` listing them in spec order.
fn schemes(schemes: &[SecuritySchemeInfo]) -> TokenStream {
    let statics = schemes.iter().map(|scheme| {
        let ident = const_ident(&scheme.name);
        let name = &scheme.name;
        let (kind, how) = match &scheme.kind {
            SchemeKind::HttpBearer { bearer_format } => {
                let format = match bearer_format {
                    Some(format) => quote!(Some(#format)),
                    None => quote!(None),
                };
                let hint = bearer_format
                    .as_deref()
                    .map(|format| format!(" ({format})"))
                    .unwrap_or_default();
                (
                    quote!(SchemeKind::HttpBearer { bearer_format: #format }),
                    format!("a bearer token{hint} in `Authorization`"),
                )
            }
            SchemeKind::ApiKeyHeader { header } => (
                quote!(SchemeKind::ApiKeyHeader { header: #header }),
                format!("a key in the `{header}` header"),
            ),
        };
        let description = match &scheme.description {
            Some(description) => quote!(Some(#description)),
            None => quote!(None),
        };
        let doc = docs(Some(&format!("Security scheme `{name}`: {how}.")));
        quote! {
            #doc
            pub static #ident: SecurityScheme = SecurityScheme {
                name: #name,
                kind: #kind,
                description: #description,
            };
        }
    });
    let idents = schemes.iter().map(|scheme| const_ident(&scheme.name));
    let count = Literal::usize_unsuffixed(schemes.len());
    quote! {
        #(#statics)*

        /// Every security scheme of the spec, in spec order.
        pub static SECURITY_SCHEMES: [&SecurityScheme; #count] = [#(&#idents),*];
    }
}

/// The `security` module: per operation, its requirements as data.
fn requirements(api: &Api) -> TokenStream {
    let any_scheme = api
        .operations
        .iter()
        .flat_map(|operation| &operation.security)
        .any(|requirement| !requirement.is_empty());
    let imports = if any_scheme {
        quote!(
            use crate::security::{SchemeScopes, SecurityRequirement};
        )
    } else {
        quote!(
            use crate::security::SecurityRequirement;
        )
    };
    let statics = api.operations.iter().map(|operation| {
        let ident = const_ident(&operation.id);
        let doc = docs(Some(&who_may_call(operation)));
        let alternatives = operation.security.iter().map(|requirement| {
            let schemes = requirement.iter().map(|(scheme, scopes)| {
                let scheme = const_ident(scheme);
                let scopes = scopes
                    .iter()
                    .map(|scope| format_ident!("{}", names::scope_variant(scope)));
                quote!(SchemeScopes { scheme: &super::#scheme, scopes: &[#(super::Scope::#scopes),*] })
            });
            quote!(SecurityRequirement(&[#(#schemes),*]))
        });
        quote! {
            #doc
            pub static #ident: &[SecurityRequirement] = &[#(#alternatives),*];
        }
    });
    quote! {
        /// Who may call each operation: its security requirements, any one of which suffices
        /// (none: public; an empty one: anonymous callers too). The transports check them
        /// before the handler runs.
        pub mod security {
            #imports

            #(#statics)*
        }
    }
}

/// One line saying who may call `operation`.
fn who_may_call(operation: &Operation) -> String {
    let id = &operation.id;
    if operation.security.is_empty() {
        return format!("`{id}` is public: anyone may call it.");
    }
    let alternatives: Vec<String> = operation
        .security
        .iter()
        .map(|requirement| {
            if requirement.is_empty() {
                return "anonymous callers".to_owned();
            }
            describe_requirement(requirement, " (no scope needed)")
        })
        .collect();
    format!("Who may call `{id}`: {}.", alternatives.join(", or "))
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

/// The request struct, success enum and error enum of one operation.
fn operation_types_of(operation: &Operation) -> TokenStream {
    let (request, response, error) = operation_types(&operation.id);
    let id = &operation.id;
    let models = TokenStream::new();

    let request_doc = docs(Some(&format!(
        "Request of {}\n\nIts serialized form is the operation's JSON payload: the \
         parameters by name and the body as `body`.",
        heading(operation)
    )));
    let mut fields: Vec<TokenStream> = operation
        .params
        .iter()
        .map(|param| {
            let ident = field_ident(&param.name);
            let ty = param_type(param, &models);
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
            let optional = !param.required && !matches!(param.schema.kind, Kind::Array(_));
            let serde = serde_field(&param.name, &param.schema, optional, false);
            quote!(#doc #serde pub #ident: #ty,)
        })
        .collect();
    if let Some(body) = &operation.body {
        let (ty, serde) = match &body.content {
            BodyContent::Json(schema) => (rust_type(schema, &models), TokenStream::new()),
            BodyContent::Binary => (
                quote!(Bytes),
                quote!(#[serde(with = "crate::wire::base64_bytes")]),
            ),
        };
        let doc = docs(Some(&format!(
            "Request body. {}",
            body.description.as_deref().unwrap_or_default()
        )));
        fields.push(quote!(#doc #serde pub body: #ty,));
    }

    let response_doc = docs(Some(&format!(
        "What `{id}` answers when it succeeds: one variant per documented 2xx status."
    )));
    let variants = operation
        .responses
        .iter()
        .filter(|response| response.content != ResponseContent::Error)
        .map(response_variant);

    let error_doc = docs(Some(&format!(
        "What `{id}` answers when it fails: one variant per documented error status, holding \
         that status's error kind."
    )));
    let errors: Vec<&Response> = operation
        .responses
        .iter()
        .filter(|response| response.content == ResponseContent::Error)
        .collect();
    let error_variants = errors.iter().map(|response| {
        let variant = status_variant(response.status);
        let kind = error_kind(response.status);
        let doc = docs(Some(&format!(
            "{}: {}",
            status_text(response.status),
            response.description
        )));
        quote!(#doc #variant(#kind),)
    });
    let conversions = errors.iter().map(|response| {
        let variant = status_variant(response.status);
        let kind = error_kind(response.status);
        quote!(#variant(#kind))
    });
    // An operation that requires credentials documents 401 and 403 (the parser checks), so a
    // refusal by its security requirements is one of its errors.
    let denied = operation.requires_credentials().then(|| {
        quote! {
            impl From<Denied> for #error {
                fn from(denied: Denied) -> Self {
                    match denied {
                        Denied::Unauthorized(error) => Self::Unauthorized(error),
                        Denied::Forbidden(error) => Self::Forbidden(error),
                    }
                }
            }
        }
    });

    let success = success_payload(operation);
    quote! {
        #request_doc
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct #request {
            #(#fields)*
        }

        #response_doc
        #[derive(Debug, Clone, PartialEq)]
        pub enum #response {
            #(#variants)*
        }

        #error_doc
        #[derive(Debug, Clone, PartialEq)]
        pub enum #error {
            #(#error_variants)*
        }

        crate::error::operation_errors!(#error { #(#conversions),* });

        #denied

        #success
    }
}

/// `From<XResponse> for Success`: the payload a success is carried as where the operation's
/// answer travels inside a message (a WebSocket reply, a tool result) rather than as an HTTP
/// response: the HTTP-equivalent status and the body as JSON (headers do not travel).
fn success_payload(operation: &Operation) -> TokenStream {
    let (_, response, _) = operation_types(&operation.id);
    let arms = operation
        .responses
        .iter()
        .filter(|outcome| outcome.content != ResponseContent::Error)
        .map(|outcome| {
            let variant = status_variant(outcome.status);
            let code = match outcome.status {
                Status::Code(code) => Literal::u16_unsuffixed(code),
                Status::ServerErrors => Literal::u16_unsuffixed(500),
            };
            let has_headers = !outcome.headers.is_empty();
            match (&outcome.content, has_headers) {
                (ResponseContent::Json(_), true) => {
                    quote!(#response::#variant { body, .. } => Success::json(#code, body.into_bytes()),)
                }
                (ResponseContent::Json(_), false) => {
                    quote!(#response::#variant(body) => Success::json(#code, body.into_bytes()),)
                }
                (ResponseContent::Image, true) => {
                    quote!(#response::#variant { body, .. } => Success::image(#code, &body),)
                }
                (ResponseContent::Image, false) => {
                    quote!(#response::#variant(image) => Success::image(#code, &image),)
                }
                (ResponseContent::Empty | ResponseContent::Error, true) => {
                    quote!(#response::#variant { .. } => Success::empty(#code),)
                }
                (ResponseContent::Empty | ResponseContent::Error, false) => {
                    quote!(#response::#variant => Success::empty(#code),)
                }
            }
        });
    quote! {
        impl From<#response> for Success {
            fn from(response: #response) -> Self {
                match response {
                    #(#arms)*
                }
            }
        }
    }
}

/// `200`, `5XX`.
fn status_text(status: Status) -> String {
    match status {
        Status::Code(code) => code.to_string(),
        Status::ServerErrors => "5XX".to_owned(),
    }
}

/// A parameter's field type: optional scalars are `Option`, arrays are always a (maybe empty)
/// `Vec`.
pub(crate) fn param_type(param: &Param, models: &TokenStream) -> TokenStream {
    let ty = rust_type(&param.schema, models);
    if param.required || matches!(param.schema.kind, Kind::Array(_)) {
        ty
    } else {
        quote!(Option<#ty>)
    }
}

fn response_variant(response: &Response) -> TokenStream {
    let variant = status_variant(response.status);
    let doc = docs(Some(&format!(
        "{}: {}",
        status_text(response.status),
        response.description
    )));
    let models = TokenStream::new();
    let body = match &response.content {
        ResponseContent::Empty | ResponseContent::Error => None,
        ResponseContent::Json(schema) => {
            let ty = rust_type(schema, &models);
            Some(quote!(Serialized<#ty>))
        }
        ResponseContent::Image => Some(quote!(Image)),
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
            let ty = rust_type(&header.schema, &models);
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
    let (request, response, error) = operation_types(&operation.id);
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
        ) -> impl Future<Output = Result<#response, #error>> + Send;
    }
}
