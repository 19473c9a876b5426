//! Request and response payloads of the REST adapter.
//!
//! poem-openapi's stock `Json<T>` parses and validates in one step and reports a failure as free
//! text with status 400. The spec promises more: 400 for bytes that are not JSON, 422 with every
//! field error for JSON that breaks the schema, 413 over the size limit. So request bodies arrive
//! as [`JsonBody`] (read with a limit, parsed to a `serde_json::Value`) and the generated adapter
//! validates them with `petstore_api::validation`, as every transport does. Errors are rendered
//! here, once, for all of HTTP ([`error_response`]).

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{
    Request, RequestBody, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    payload::{ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use serde_json::Value;

use petstore_api::ApiError;

/// Body size limits, attached to every request by the server (`Route::data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest JSON body, in bytes.
    pub json: usize,
    /// Largest image upload, in bytes.
    pub image: usize,
}

impl BodyLimits {
    /// The limits the edge attached to `request` (the defaults if none were).
    fn of(request: &Request) -> Self {
        request.data::<Self>().copied().unwrap_or_default()
    }
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            json: 1024 * 1024,
            image: 5 * 1024 * 1024,
        }
    }
}

const JSON: &str = "application/json";

/// Reads at most `limit` bytes of the body; more is a 413, never a partial read.
async fn read_limited(
    request: &Request,
    body: &mut RequestBody,
    limit: usize,
) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before a byte is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit: Some(limit) });
    }
    let body = body
        .take()
        .map_err(|_| ApiError::BadRequest("the request body was already read".to_owned()))?;
    body.into_bytes_limit(limit)
        .await
        .map_err(|error| match error {
            poem::error::ReadBodyError::PayloadTooLarge => {
                ApiError::PayloadTooLarge { limit: Some(limit) }
            }
            other => ApiError::BadRequest(format!("cannot read the request body: {other}")),
        })
}

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

/// The HTTP status of an error.
pub fn error_status(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The full HTTP response for an error: its status, headers and `ErrorResponse` body.
pub fn error_response(error: &ApiError) -> Response {
    let body = serde_json::to_vec(&error.to_body()).unwrap_or_else(|_| {
        br#"{"code":500,"type":"INTERNAL","message":"internal error"}"#.to_vec()
    });
    let mut builder = Response::builder()
        .status(error_status(error))
        .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    for (name, value) in error.headers() {
        builder = builder.header(name, value);
    }
    builder.body(body)
}

/// An [`ApiError`] as poem's error type, for the places poem expects one (a request body that
/// cannot be read, the edge's refusals): rendered by [`error_response`] like every other error.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HttpError(pub ApiError);

impl poem::error::ResponseError for HttpError {
    fn status(&self) -> StatusCode {
        error_status(&self.0)
    }

    fn as_response(&self) -> Response {
        error_response(&self.0)
    }
}
