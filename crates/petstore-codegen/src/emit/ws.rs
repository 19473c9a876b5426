//! `ws.rs` (contract): the WebSocket contract of `asyncapi.yaml` over the operations of
//! `openapi.yaml`: `Action` (every operation plus the session's control actions, with each
//! action's queue priority and operation), `ControlAction`, `Event`, `Priority`, the endpoint's
//! address and the limits of the control payloads.
//!
//! Runtime items used: `crate::operations::{OperationInfo, OPERATIONS}`.

use heck::ToShoutySnakeCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Source, docs, format_file, type_ident, usize_literal};
use crate::{
    asyncapi::{Priority as Level, WsAction, WsApi},
    ir::Api,
};

/// Emits `ws.rs`.
pub fn emit(api: &Api, ws: &WsApi) -> String {
    let action_enum = action_enum(api, ws);
    let control_enum = control_enum(ws);
    let event_enum = event_enum(ws);
    let priority_enum = priority_enum();
    let limits = limits(ws);
    let address = &ws.address;
    let tokens = quote! {
        use crate::operations::{OPERATIONS, OperationInfo};

        /// The WebSocket endpoint's path (the channel's `address`).
        pub const WS_PATH: &str = #address;

        #priority_enum

        #action_enum

        #control_enum

        #event_enum

        #limits
    };
    format_file(
        "WebSocket: actions, events and priorities of asyncapi.yaml.",
        Source::Both,
        tokens,
    )
}

/// The runtime `Priority` enum, from the generator's one table of levels.
fn priority_enum() -> TokenStream {
    let variants: Vec<_> = Level::ALL
        .iter()
        .map(|level| format_ident!("{}", level.variant()))
        .collect();
    let names = Level::ALL.map(Level::name);
    let variant_docs = Level::ALL.map(|level| docs(Some(level.meaning())));
    let sheddable: Vec<_> = Level::ALL
        .iter()
        .filter(|level| level.is_sheddable())
        .map(|level| format_ident!("{}", level.variant()))
        .collect();
    let count = usize_literal(Level::ALL.len());
    quote! {
        /// Where a request waits in a session's queue, highest first (`x-priority`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Priority {
            #(#variant_docs #variants,)*
        }

        impl Priority {
            /// Every level, highest first.
            pub const ALL: [Priority; #count] = [#(Priority::#variants),*];

            /// Position in [`Priority::ALL`] (0 is the highest).
            pub const fn index(self) -> usize {
                self as usize
            }

            /// Whether a full queue refuses this level (`OVERLOADED`) rather than making it
            /// wait.
            pub fn is_sheddable(self) -> bool {
                matches!(self, #(Priority::#sheddable)|*)
            }

            /// The level as `x-priority` writes it, for logs and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    #(Priority::#variants => #names,)*
                }
            }
        }
    }
}

/// The size limits of the control payloads, one constant each
/// (`SUBSCRIBE_TOPICS_MAX_ITEMS`).
fn limits(ws: &WsApi) -> TokenStream {
    let constants: Vec<TokenStream> = ws
        .actions
        .iter()
        .flat_map(|action| action.limits.iter().map(move |limit| (action, limit)))
        .map(|(action, limit)| {
            let ident = format_ident!(
                "{}_{}_{}",
                action.name.to_shouty_snake_case(),
                limit.field.to_shouty_snake_case(),
                limit.keyword.to_shouty_snake_case()
            );
            let doc = format!(
                " `{}`: `{}` has `{}: {}`.",
                action.name, limit.field, limit.keyword, limit.value
            );
            let value = usize_literal(limit.value);
            quote!(#[doc = #doc] pub const #ident: usize = #value;)
        })
        .collect();
    if constants.is_empty() {
        return TokenStream::new();
    }
    quote! {
        /// The limits the control actions' payload schemas state.
        pub mod limits {
            #(#constants)*
        }
    }
}

fn action_enum(api: &Api, ws: &WsApi) -> TokenStream {
    let variants: Vec<_> = ws
        .actions
        .iter()
        .map(|action| type_ident(&action.name))
        .collect();
    let names: Vec<&str> = ws
        .actions
        .iter()
        .map(|action| action.name.as_str())
        .collect();
    let variant_docs = ws.actions.iter().map(action_doc);
    let priorities = ws.actions.iter().map(|action| {
        let priority = format_ident!("{}", action.priority.variant());
        quote!(Priority::#priority)
    });
    let operations = ws.actions.iter().map(|action| {
        match api
            .operations
            .iter()
            .position(|operation| operation.id == action.name)
        {
            Some(index) => {
                let index = usize_literal(index);
                quote!(Some(&OPERATIONS[#index]))
            }
            None => quote!(None),
        }
    });
    let controls = ws.actions.iter().map(|action| {
        if action.control {
            let variant = type_ident(&action.name);
            quote!(Some(ControlAction::#variant))
        } else {
            quote!(None)
        }
    });
    let count = usize_literal(ws.actions.len());
    quote! {
        /// What a request envelope can ask for: every operation of `openapi.yaml` (named by its
        /// `operationId`) and the session's control actions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            #(#variant_docs #variants,)*
        }

        impl Action {
            /// Every action, in document order.
            pub const ALL: [Action; #count] = [#(Action::#variants),*];

            /// The action's position in [`Action::ALL`] (declaration order), for tables indexed
            /// by action.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The action's name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    #(Action::#variants => #names,)*
                }
            }

            /// The action called `name`, if there is one.
            pub fn from_name(name: &str) -> Option<Action> {
                match name {
                    #(#names => Some(Action::#variants),)*
                    _ => None,
                }
            }

            /// Where the action waits in the session's request queue (`x-priority`).
            pub fn priority(self) -> Priority {
                match self {
                    #(Action::#variants => #priorities,)*
                }
            }

            /// The REST operation this action runs; `None` for control actions.
            pub fn operation(self) -> Option<&'static OperationInfo> {
                match self {
                    #(Action::#variants => #operations,)*
                }
            }

            /// The control action this is; `None` for operations.
            pub fn control(self) -> Option<ControlAction> {
                match self {
                    #(Action::#variants => #controls,)*
                }
            }
        }

        impl std::fmt::Display for Action {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    }
}

fn action_doc(action: &WsAction) -> TokenStream {
    let summary = action.summary.as_deref().unwrap_or_default();
    let kind = if action.control {
        "control action".to_owned()
    } else {
        "operation".to_owned()
    };
    docs(Some(&format!(
        "`{}` ({kind}, {} priority): {summary}",
        action.name,
        action.priority.variant().to_lowercase()
    )))
}

fn control_enum(ws: &WsApi) -> TokenStream {
    let controls: Vec<&WsAction> = ws.actions.iter().filter(|action| action.control).collect();
    let variants: Vec<_> = controls
        .iter()
        .map(|action| type_ident(&action.name))
        .collect();
    let variant_docs = controls
        .iter()
        .map(|action| docs(action.summary.as_deref()));
    quote! {
        /// The actions the session handles itself (`x-control: true` in `asyncapi.yaml`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ControlAction {
            #(#variant_docs #variants,)*
        }

        impl ControlAction {
            /// The same action as an [`Action`].
            pub fn action(self) -> Action {
                match self {
                    #(ControlAction::#variants => Action::#variants,)*
                }
            }
        }
    }
}

fn event_enum(ws: &WsApi) -> TokenStream {
    let variants: Vec<_> = ws
        .events
        .iter()
        .map(|event| type_ident(&event.name.replace('.', "_")))
        .collect();
    let names: Vec<&str> = ws.events.iter().map(|event| event.name.as_str()).collect();
    let variant_docs = ws.events.iter().map(|event| {
        docs(Some(&format!(
            "`{}`: {}",
            event.name,
            event.summary.as_deref().unwrap_or_default()
        )))
    });
    let count = usize_literal(ws.events.len());
    quote! {
        /// What a notification envelope can announce.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event {
            #(#variant_docs #variants,)*
        }

        impl Event {
            /// Every event, in document order.
            pub const ALL: [Event; #count] = [#(Event::#variants),*];

            /// The event's name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    #(Event::#variants => #names,)*
                }
            }

            /// The event called `name`, if there is one.
            pub fn from_name(name: &str) -> Option<Event> {
                match name {
                    #(#names => Some(Event::#variants),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for Event {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    }
}
