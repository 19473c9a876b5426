//! Binary image payloads.

use bytes::Bytes;

/// An image as stored and served: its bytes and the content type sniffed from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub content_type: &'static str,
    /// The file itself.
    pub bytes: Bytes,
}
