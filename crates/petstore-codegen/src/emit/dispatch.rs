//! `dispatch.rs` (server): an operation named by an action and carried as a JSON payload (the
//! WebSocket's request envelopes; any transport that sends an operation's input as one object)
//! onto the same `PetStoreApi` method REST calls.
//!
//! Per operation it reads the parameters by name and `body` from the payload with the spec's
//! validators, checks the operation's security requirements at the same point the REST adapter
//! does (after the parameters and the presence of the body, before the body's schema), calls
//! the handler, and answers its success as a `Success` payload (the contract's
//! `From<XResponse> for Success`); every error becomes the `ApiError` REST would have answered.
//!
//! Runtime items used: `petstore_api::{Ctx, payload::{Payload, Success}}`,
//! `petstore_api::validation::parse_body` and `crate::auth::{Authentication, authorize,
//! identify}`.

use proc_macro2::TokenStream;
use quote::quote;

use super::{
    Source, const_ident, field_ident, format_file, method_ident, operation_types, type_ident,
};
use crate::{
    asyncapi::WsApi,
    ir::{Api, BodyContent, Kind, Operation},
};

/// Emits `dispatch.rs`.
pub fn emit(api: &Api, ws: &WsApi) -> String {
    let arms: Vec<TokenStream> = api.operations.iter().map(dispatch_arm).collect();
    let controls: Vec<_> = ws
        .actions
        .iter()
        .filter(|action| action.control)
        .map(|action| type_ident(&action.name))
        .collect();
    let control_arm = (!controls.is_empty()).then(|| {
        quote! {
            #(Action::#controls)|* => {
                tracing::error!(action = action.as_str(), "control action dispatched as an operation");
                Err(ApiError::Internal)
            }
        }
    });
    let text = quote!(#(#arms)*).to_string();
    let uses_body = text.contains("parse_body");
    let identify = text.contains("identify").then(|| quote!(identify,));
    let authorize = text.contains("authorize").then(|| quote!(authorize,));
    let parse_body = uses_body.then(|| {
        quote!(
            use petstore_api::validation::parse_body;
        )
    });
    let tokens = quote! {
        use petstore_api::{
            ApiError, Ctx,
            operations::*,
            payload::{Payload, Success},
            ws::Action,
        };
        #parse_body

        use crate::auth::{Authentication, #authorize #identify};

        /// Runs an operation action: reads the request from `payload` (parameters by name and
        /// `body`, with the spec's validators), checks the operation's security requirements
        /// against `authentication`, calls the handler and returns its success payload, or the
        /// error REST would have answered.
        ///
        /// `ctx` carries the request id and client address; its principal is set here.
        /// Control actions are the session's own and never reach this function.
        pub async fn dispatch<H: PetStoreApi>(
            handler: &H,
            authentication: &Authentication,
            ctx: Ctx,
            action: Action,
            payload: serde_json::Value,
        ) -> Result<Success, ApiError> {
            match action {
                #(#arms)*
                #control_arm
            }
        }
    };
    format_file(
        "Dispatch: operations carried as JSON payloads onto PetStoreApi.",
        Source::Both,
        tokens,
    )
}

/// One arm of `dispatch`: parameters, security, body, handler, outcome.
fn dispatch_arm(operation: &Operation) -> TokenStream {
    let variant = type_ident(&operation.id);
    let method = method_ident(&operation.id);
    let (request, _, _) = operation_types(&operation.id);
    let security = const_ident(&operation.id);

    let mut reads = Vec::new();
    let mut fields = Vec::new();
    for param in &operation.params {
        let ident = field_ident(&param.name);
        let name = &param.name;
        let schema = super::operations::param_const(operation, name);
        let read = if matches!(param.schema.kind, Kind::Array(_)) {
            quote!(list)
        } else if param.required {
            quote!(required)
        } else {
            quote!(optional)
        };
        reads.push(quote!(let #ident = payload.#read(#name, param_schemas::#schema)?;));
        fields.push(quote!(#ident));
    }
    // As over REST: the body must be there (and a binary one readable) before the credentials
    // are checked; it is checked against its schema after.
    let (read_body, check_body) = match operation.body.as_ref().map(|body| &body.content) {
        Some(BodyContent::Json(_)) => {
            let schema = const_ident(&operation.id);
            (
                Some(quote!(let body = payload.json_body()?;)),
                Some(quote!(let body = parse_body(body, body_schemas::#schema)?;)),
            )
        }
        Some(BodyContent::Binary) => (Some(quote!(let body = payload.binary_body()?;)), None),
        None => (None, None),
    };
    if read_body.is_some() {
        fields.push(quote!(body));
    }
    let payload_binding = if operation.params.is_empty() && operation.body.is_none() {
        quote!(Payload::new(payload)?;)
    } else {
        quote!(let mut payload = Payload::new(payload)?;)
    };
    let principal = if operation.requires_credentials() {
        quote!(authorize(authentication, security::#security)?)
    } else {
        quote!(identify(authentication, security::#security))
    };
    quote! {
        Action::#variant => {
            #payload_binding
            #(#reads)*
            #read_body
            let ctx = Ctx { principal: #principal, ..ctx };
            #check_body
            let request = #request { #(#fields),* };
            Ok(handler.#method(&ctx, request).await?.into())
        }
    }
}
