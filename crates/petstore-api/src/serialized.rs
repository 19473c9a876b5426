//! Pre-serialized JSON entities.
//!
//! Reads dominate a pet store, so entities are rendered to JSON once, when they are written, and
//! the bytes are handed to every transport as they are. A `getPetById` answer is then a map lookup
//! and a reference-counted buffer clone: no serializer runs on the read path.

use std::{fmt, marker::PhantomData};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

/// The JSON text of a `T`, rendered with the same rules the REST schema documents.
///
/// The type parameter records what the bytes are (so an adapter can document the schema and the
/// compiler can keep a `Pet` from being answered where an `Order` is due); it costs nothing at
/// run time.
pub struct Serialized<T> {
    json: Bytes,
    kind: PhantomData<fn() -> T>,
}

impl<T: Serialize> Serialized<T> {
    /// Renders `value` to JSON.
    pub fn new(value: &T) -> Self {
        // The generated models serialize infallibly (no maps with non-string keys, no custom
        // serializers that fail); `null` would only stand for a bug, never a partial document.
        let json = serde_json::to_vec(value).unwrap_or_else(|error| {
            tracing::error!(%error, "a model could not be rendered as JSON");
            b"null".to_vec()
        });
        Self::from_trusted_bytes(Bytes::from(json))
    }
}

impl<T> Serialized<T> {
    /// Wraps bytes that are already the JSON text of a `T` (as written by [`Serialized::new`]
    /// earlier, e.g. read back from a store). Nothing is checked.
    pub fn from_trusted_bytes(json: Bytes) -> Self {
        Self {
            json,
            kind: PhantomData,
        }
    }

    /// The JSON text.
    pub fn bytes(&self) -> &Bytes {
        &self.json
    }

    /// The JSON text, consuming the wrapper.
    pub fn into_bytes(self) -> Bytes {
        self.json
    }
}

impl<T> Serialized<Vec<T>> {
    /// Builds a JSON array from already serialized items without re-rendering them.
    pub fn from_items<'a, I>(items: I) -> Self
    where
        I: IntoIterator<Item = &'a Serialized<T>>,
        T: 'a,
    {
        let items = items.into_iter();
        let mut out = BytesMut::with_capacity(2 + items.size_hint().0 * 128);
        out.put_u8(b'[');
        for (index, item) in items.enumerate() {
            if index > 0 {
                out.put_u8(b',');
            }
            out.put_slice(&item.json);
        }
        out.put_u8(b']');
        Self::from_trusted_bytes(out.freeze())
    }
}

impl<T> Clone for Serialized<T> {
    fn clone(&self) -> Self {
        Self::from_trusted_bytes(self.json.clone())
    }
}

impl<T> fmt::Debug for Serialized<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Serialized")
            .field(&String::from_utf8_lossy(&self.json))
            .finish()
    }
}

impl<T> PartialEq for Serialized<T> {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}
