//! Images as actions answer them.

use bytes::Bytes;
use serde::Deserialize;

/// An image as an action answers it (`ImagePayload` of `asyncapi.yaml`): the bytes REST would
/// serve, base64 on the wire, with their content type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePayload {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub content_type: String,
    /// The image itself.
    #[serde(with = "petstore_api::wire::base64_bytes")]
    pub data: Bytes,
}
