//! Request and response payloads of the REST adapter.
//!
//! poem-openapi's stock `Json<T>` parses and validates in one step and reports a failure as free
//! text with status 400. The spec promises more: 400 for bytes that are not JSON, 422 with every
//! field error for JSON that breaks the schema, 413 over the size limit. So request bodies arrive
//! as [`JsonBody`] (read with a limit, parsed to a `serde_json::Value`) and the generated adapter
//! validates them with `petstore_api::validation`, as every transport does. Both are read with
//! the edge's limits ([`read_limited`]), and their errors are rendered by the edge's one HTTP
//! error rendering ([`HttpError`]).

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{Request, RequestBody};
use poem_openapi::{
    payload::{ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use serde_json::Value;

use crate::edge::{BodyLimits, HttpError, read_limited};
use petstore_api::ApiError;

const JSON: &str = "application/json";

/// A JSON request body documented as a `T`, parsed but not yet validated.
pub struct JsonBody<T>(pub Value, PhantomData<fn() -> T>);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: Type);

impl<T: Type> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = read_limited(request, body, BodyLimits::of(request).json)
            .await
            .map_err(HttpError)?;
        if bytes.is_empty() {
            return Err(HttpError(ApiError::BadRequest(
                "a JSON request body is required".to_owned(),
            ))
            .into());
        }
        let value = serde_json::from_slice(&bytes).map_err(|error| {
            HttpError(ApiError::BadRequest(format!(
                "request body is not valid JSON: {error}"
            )))
        })?;
        Ok(Self(value, PhantomData))
    }
}

/// `application/json`, `application/json; charset=utf-8` and `application/*+json`.
fn is_json(content_type: &str) -> bool {
    matches!(content_type.parse::<mime::Mime>(), Ok(mime)
        if mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)))
}

/// A raw `application/octet-stream` body (an image upload), read up to the image limit.
pub struct OctetStream(pub Bytes);

impl Payload for OctetStream {
    const CONTENT_TYPE: &'static str = "application/octet-stream";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(mime) if mime.essence_str() == Self::CONTENT_TYPE)
    }

    fn schema_ref() -> MetaSchemaRef {
        Self::binary_schema()
    }
}

impl OctetStream {
    /// `type: string, format: binary`.
    pub fn binary_schema() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("binary"),
            ..MetaSchema::new("string")
        }))
    }
}

poem_openapi::impl_apirequest_for_payload!(OctetStream,);

impl ParsePayload for OctetStream {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(
            read_limited(request, body, BodyLimits::of(request).image)
                .await
                .map_err(HttpError)?,
        ))
    }
}
