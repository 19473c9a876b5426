//! How values the JSON data model has no type for travel: the serde helpers the generated code
//! names in `#[serde(with = …)]`.

/// `date-time` values: RFC 3339, written as `2024-05-01T10:00:00+00:00` (offset spelled out,
/// fractional seconds only when there are some), read in any RFC 3339 form and kept in UTC.
///
/// The spelling is the one this API has always sent and stored, so records written by an older
/// node read back unchanged.
pub mod date_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `value`.
    pub fn serialize<S: Serializer>(
        value: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_rfc3339())
    }

    /// Reads an RFC 3339 date-time.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|value| value.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }

    /// The same for an optional field (absent or `null` is `None`).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `value` (the field is skipped when `None`).
        pub fn serialize<S: Serializer>(
            value: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Reads an optional RFC 3339 date-time.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
        }
    }
}

/// Binary values inside JSON (an image upload carried in a WebSocket payload): base64 text.
pub mod base64_bytes {
    use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `value` as base64.
    pub fn serialize<S: Serializer>(value: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(value))
    }

    /// Reads base64 text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(D::Error::custom)
    }

    /// The same for an optional field (absent or `null` is `None`).
    pub mod option {
        use bytes::Bytes;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `value` as base64 (the field is skipped when `None`).
        pub fn serialize<S: Serializer>(
            value: &Option<Bytes>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Reads optional base64 text.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Bytes>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] Bytes);
            Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Dated {
        #[serde(with = "super::date_time")]
        at: DateTime<Utc>,
        #[serde(
            with = "super::date_time::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Upload {
        #[serde(with = "super::base64_bytes")]
        file: bytes::Bytes,
        #[serde(
            with = "super::base64_bytes::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        thumbnail: Option<bytes::Bytes>,
    }

    #[test]
    fn bytes_travel_as_base64_whether_required_or_optional() {
        let upload = Upload {
            file: bytes::Bytes::from_static(b"abc"),
            thumbnail: Some(bytes::Bytes::from_static(b"de")),
        };
        let json = serde_json::to_string(&upload).expect("serializes");
        assert_eq!(json, r#"{"file":"YWJj","thumbnail":"ZGU="}"#);
        assert_eq!(
            serde_json::from_str::<Upload>(&json).expect("parses"),
            upload
        );
        let bare: Upload = serde_json::from_str(r#"{"file":""}"#).expect("parses");
        assert_eq!(bare.thumbnail, None);
        assert!(serde_json::from_str::<Upload>(r#"{"file":"***"}"#).is_err());
    }

    #[test]
    fn date_times_keep_their_spelling_and_read_any_offset() {
        let at = Utc
            .with_ymd_and_hms(2024, 5, 1, 10, 0, 0)
            .single()
            .expect("valid");
        let json = serde_json::to_string(&Dated { at, maybe: None }).expect("serializes");
        assert_eq!(json, r#"{"at":"2024-05-01T10:00:00+00:00"}"#);
        let back: Dated = serde_json::from_str(
            r#"{"at":"2024-05-01T12:00:00+02:00","maybe":"2024-05-01T10:00:00Z"}"#,
        )
        .expect("parses");
        assert_eq!(
            back,
            Dated {
                at,
                maybe: Some(at)
            }
        );
        assert!(serde_json::from_str::<Dated>(r#"{"at":"yesterday"}"#).is_err());
    }
}
