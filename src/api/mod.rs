//! The API contract, generated from `openapi.yaml` by `build.rs`, and the small runtime types the
//! generated code is written against.
//!
//! - [`models`]: the component schemas as Rust types, with the schema's validators, plus a
//!   structured validator per schema that reports every broken constraint with its path.
//! - [`operations`]: per operation a request struct and a closed response enum, and the
//!   [`operations::PetStoreApi`] trait the handlers implement, and each operation's security
//!   requirements as data ([`security`]).
//!
//! - [`ws`]: the WebSocket actions and events of `asyncapi.yaml` and their dispatch onto the
//!   same trait, with its runtime support in [`messaging`].
//!
//! The REST adapter over that trait lives with the REST transport in `crate::http`; the
//! WebSocket session in `crate::ws`.

mod context;
mod image;
pub mod messaging;
pub mod security;
mod serialized;
pub mod validation;

pub use context::Ctx;
pub use image::Image;
pub use serialized::Serialized;

/// Schemas from `components/schemas`.
#[allow(clippy::all, missing_docs)]
pub mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

/// Operations from `paths`: requests, responses and the handler interface.
#[allow(clippy::all)]
pub mod operations {
    include!(concat!(env!("OUT_DIR"), "/operations.rs"));
}

/// The WebSocket contract of `asyncapi.yaml`: actions (every operation plus the session's
/// control actions), events, and the dispatch of an action onto the same handlers REST calls.
#[allow(clippy::all)]
pub mod ws {
    include!(concat!(env!("OUT_DIR"), "/ws.rs"));
}
