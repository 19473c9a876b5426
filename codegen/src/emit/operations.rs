//! `operations.rs`: per operation a request struct and a closed response enum, and the
//! `PetStoreApi` trait that the handlers implement; the spec's security schemes, scopes and
//! per-operation requirements as data the transports enforce before a handler runs.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{
    Patterns, const_ident, docs, field_ident, format_file, method_ident, node, rust_type,
    status_variant, type_ident,
};
use crate::{
    ir::{
        Api, BodyContent, Kind, Operation, ParamLocation, Response, ResponseContent, SchemeKind,
        SecuritySchemeInfo, Status,
    },
    names,
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
        let security = const_ident(&operation.id);
        quote!(OperationInfo { id: #id, method: #method, path: #path, security: security::#security })
    });
    let count = Literal::usize_unsuffixed(api.operations.len());
    let scope_enum = scope_enum(&api.scopes);
    let schemes = schemes(&api.security_schemes);
    let requirements = requirements(api);
    let security_imports = if api.security_schemes.is_empty() {
        quote!(
            use crate::api::security::{SecurityRequirement, SecurityScheme};
        )
    } else {
        quote!(
            use crate::api::security::{SchemeKind, SecurityRequirement, SecurityScheme};
        )
    };

    let tokens = quote! {
        use crate::api::{Ctx, Image, Serialized};
        #security_imports
        use crate::error::ApiError;

        /// How an operation is reached over HTTP, and who may call it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct OperationInfo {
            /// `operationId`.
            pub id: &'static str,
            /// HTTP method, upper case.
            pub method: &'static str,
            /// Path template relative to the API base (`/pet/{petId}`).
            pub path: &'static str,
            /// Its security requirements (any one suffices; none: public), from [`security`].
            pub security: &'static [SecurityRequirement],
        }

        /// Every operation of the spec, in spec order.
        pub const OPERATIONS: [OperationInfo; #count] = [#(#infos),*];

        #scope_enum

        #schemes

        #requirements

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
            use crate::api::security::{SchemeScopes, SecurityRequirement};
        )
    } else {
        quote!(
            use crate::api::security::SecurityRequirement;
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
            requirement
                .iter()
                .map(|(scheme, scopes)| {
                    if scopes.is_empty() {
                        format!("`{scheme}` (no scope needed)")
                    } else {
                        let scopes: Vec<String> =
                            scopes.iter().map(|scope| format!("`{scope}`")).collect();
                        format!("`{scheme}` with {}", scopes.join(" and "))
                    }
                })
                .collect::<Vec<_>>()
                .join(" together with ")
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
    let mut text = format!("{status}: {}", response.description);
    if response.content == ResponseContent::Error && !response.headers.is_empty() {
        let names: Vec<String> = response
            .headers
            .iter()
            .map(|header| format!("`{}`", header.name))
            .collect();
        text.push_str(&format!(
            "\n\nSent with {}, valued from the error ([`ApiError::header`]).",
            names.join(", ")
        ));
    }
    let doc = docs(Some(&text));
    let body = match &response.content {
        ResponseContent::Empty => None,
        ResponseContent::Json(schema) => {
            let ty = rust_type(schema);
            Some(quote!(Serialized<#ty>))
        }
        ResponseContent::Image => Some(quote!(Image)),
        ResponseContent::Error => Some(quote!(ApiError)),
    };
    // An error's headers come from the error itself, so its variant holds only the error.
    if response.headers.is_empty() || response.content == ResponseContent::Error {
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
