//! Recognising uploaded images by their content.

use petstore_api::{Image, error::UnsupportedMediaType};

/// The image types `uploadFile` accepts, as sniffed from the first bytes.
const ACCEPTED: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Checks that `bytes` are a PNG, JPEG, GIF or WebP image, whatever the client claimed.
pub fn sniff(bytes: bytes::Bytes) -> Result<Image, UnsupportedMediaType> {
    // An empty body is schema-valid binary, so it is refused like any other non-image (415)
    // rather than as malformed input.
    if bytes.is_empty() {
        return Err(UnsupportedMediaType(
            "no file uploaded: the body is empty, not a PNG, JPEG, GIF or WebP image".to_owned(),
        ));
    }
    let detected = infer::get(&bytes).map(|kind| kind.mime_type());
    match detected.and_then(|mime| ACCEPTED.iter().find(|accepted| **accepted == mime)) {
        Some(content_type) => Ok(Image {
            content_type,
            bytes,
        }),
        None => Err(UnsupportedMediaType(format!(
            "the upload is not a PNG, JPEG, GIF or WebP image (detected: {})",
            detected.unwrap_or("unknown")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn recognises_each_accepted_type_by_magic_bytes() {
        let samples: [(&[u8], &str); 4] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
            (b"\xff\xd8\xff\xe0\0\x10JFIF\0", "image/jpeg"),
            (b"GIF89a\x01\0\x01\0\0\0\0", "image/gif"),
            (b"RIFF\x1a\0\0\0WEBPVP8 ", "image/webp"),
        ];
        for (bytes, expected) in samples {
            assert_eq!(
                sniff(Bytes::from_static(bytes)).map(|i| i.content_type),
                Ok(expected)
            );
        }
    }

    #[test]
    fn refuses_empty_and_non_image_bodies() {
        for refused in [
            Bytes::new(),
            Bytes::from_static(b"%PDF-1.7\n"),
            Bytes::from_static(b"hello"),
        ] {
            let error = sniff(refused).expect_err("not an image");
            assert!(error.0.contains("PNG, JPEG, GIF or WebP"), "{error}");
        }
    }
}
