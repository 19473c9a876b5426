//! Request and response payloads of the REST adapter.
//!
//! poem-openapi's stock `Json<T>` parses and validates in one step and reports a failure as free
//! text with status 400. The spec promises more: 400 for bytes that are not JSON, 422 with every
//! field error for JSON that breaks the schema, 413 over the size limit. So request bodies arrive
//! as [`JsonBody`] (read with a limit, parsed to a `serde_json::Value`) and the generated adapter
//! validates them with `crate::api::validation`. Responses carry pre-serialized JSON
//! ([`Serialized`]) so no serializer runs on the read path.

use std::{borrow::Cow, marker::PhantomData};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use poem::{
    IntoResponse, Request, RequestBody, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    payload::{ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ToHeader, Type},
};
use serde_json::Value;

use crate::{
    api::{Image, Serialized, models::ErrorResponse},
    error::ApiError,
};

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
        let bytes = read_limited(request, body, BodyLimits::of(request).json).await?;
        if bytes.is_empty() {
            return Err(ApiError::BadRequest("a JSON request body is required".to_owned()).into());
        }
        let value = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::BadRequest(format!("request body is not valid JSON: {error}"))
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
            read_limited(request, body, BodyLimits::of(request).image).await?,
        ))
    }
}

impl<T: Type> Payload for Serialized<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for Serialized<T> {
    /// The read path: the stored bytes and a static header value, nothing copied.
    fn into_response(self) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON))
            .body(self.into_bytes())
    }
}

/// An image answered with its own content type, documented as `image/*`.
pub struct ImageBody(pub Image);

impl Payload for ImageBody {
    const CONTENT_TYPE: &'static str = "image/*";

    fn schema_ref() -> MetaSchemaRef {
        OctetStream::schema_ref()
    }
}

impl IntoResponse for ImageBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.0.content_type)
            .header(header::CACHE_CONTROL, "public, max-age=86400, immutable")
            .header("x-content-type-options", "nosniff")
            .body(self.0.bytes)
    }
}

/// The error body (`ErrorResponse`) of an [`ApiError`].
pub struct ErrorBody(pub ApiError);

impl Payload for ErrorBody {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> MetaSchemaRef {
        ErrorResponse::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ErrorResponse::register(registry);
    }
}

impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// A `date-time` response header (RFC 3339, UTC, whole seconds).
///
/// poem-openapi documents `DateTime` values but cannot write them as headers; this newtype can.
pub struct DateTimeHeader(pub DateTime<Utc>);

impl Type for DateTimeHeader {
    const IS_REQUIRED: bool = true;
    type RawValueType = DateTime<Utc>;
    type RawElementValueType = DateTime<Utc>;

    fn name() -> Cow<'static, str> {
        <DateTime<Utc> as Type>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        <DateTime<Utc> as Type>::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ToHeader for DateTimeHeader {
    fn to_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true)).ok()
    }
}

/// A header of an error response (`WWW-Authenticate`, `Retry-After`, …), documented as the spec
/// declares it (`T` is its schema type) and valued from the error itself ([`ApiError::header`]),
/// so the documented headers and the ones sent cannot drift apart.
pub struct ErrorHeader<T> {
    value: Option<HeaderValue>,
    schema: PhantomData<fn() -> T>,
}

impl<T> ErrorHeader<T> {
    /// The header `name` of `error`'s response.
    pub fn of(error: &ApiError, name: &str) -> Self {
        Self {
            value: error
                .header(name)
                .and_then(|value| HeaderValue::from_str(&value).ok()),
            schema: PhantomData,
        }
    }
}

impl<T: Type> Type for ErrorHeader<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = HeaderValue;
    type RawElementValueType = HeaderValue;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.value.as_ref()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.value.iter())
    }
}

impl<T: Type> ToHeader for ErrorHeader<T> {
    fn to_header(&self) -> Option<HeaderValue> {
        self.value.clone()
    }
}

/// The HTTP status of an error.
pub fn error_status(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The full HTTP response for an error: its status, headers and `ErrorResponse` body.
pub fn error_response(error: &ApiError) -> Response {
    let body = serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(&error.to_body()))
        .unwrap_or_else(|_| {
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

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        error_status(self)
    }

    fn as_response(&self) -> Response {
        error_response(self)
    }
}
