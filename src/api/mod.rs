//! The API contract, generated from `openapi.yaml` by `build.rs`, and the small runtime types the
//! generated code is written against.
//!
//! - [`models`]: the component schemas as Rust types, with the schema's validators, plus a
//!   structured validator per schema that reports every broken constraint with its path.
//! - [`operations`]: per operation a request struct and a closed response enum, and the
//!   [`operations::PetStoreApi`] trait the handlers implement, and each operation's security
//!   requirements as data ([`security`]).
//!
//! The REST adapter over that trait lives with the REST transport in `crate::http`.

mod context;
mod image;
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
