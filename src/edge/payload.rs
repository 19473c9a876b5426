//! Reading request bodies within limits: the edge attaches the configured [`BodyLimits`] to
//! every request, and every adapter that reads a body reads it with [`read_limited`], so each
//! body is held to the same limits and more than the limit is a 413, never a partial read.

use bytes::Bytes;
use poem::{Request, RequestBody, http::header};

use petstore_api::ApiError;

/// Body size limits, attached to every request by the edge ([`HttpEdge`](super::HttpEdge)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest JSON body, in bytes.
    pub json: usize,
    /// Largest image upload, in bytes.
    pub image: usize,
}

impl BodyLimits {
    /// The limits the edge attached to `request` (the defaults if none were).
    pub fn of(request: &Request) -> Self {
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

/// Reads at most `limit` bytes of the body; more is a 413, never a partial read.
pub async fn read_limited(
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
