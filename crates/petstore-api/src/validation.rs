//! Structured validation of JSON documents against the spec's schemas.
//!
//! Clients deserve every broken constraint at once, each with the path of the offending field, so
//! the generator emits each schema as data ([`Node`]) and this module walks a document against
//! it. [`parse_body`] runs this check first and then serde builds the typed value; every
//! transport reads its input through here, so all of them accept and refuse the same documents.

use std::sync::OnceLock;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{error::Invalid, models::FieldError};

/// A numeric bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The bound.
    pub value: f64,
    /// Whether the bound itself is excluded.
    pub exclusive: bool,
}

/// String formats that are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    /// Any string.
    Plain,
    /// RFC 3339 date-time.
    DateTime,
    /// UUID.
    Uuid,
}

/// A regular expression, compiled on first use and then kept.
#[derive(Debug)]
pub struct Pattern {
    source: &'static str,
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// A pattern from the spec.
    pub const fn new(source: &'static str) -> Self {
        Self {
            source,
            compiled: OnceLock::new(),
        }
    }

    /// The pattern as written in the spec.
    pub fn source(&self) -> &'static str {
        self.source
    }

    fn is_match(&self, text: &str) -> bool {
        // The generator compiles every pattern before emitting it, so `None` (an invalid regex)
        // cannot happen; treat it as "no match" rather than panic.
        self.compiled
            .get_or_init(|| Regex::new(self.source).ok())
            .as_ref()
            .is_some_and(|regex| regex.is_match(text))
    }
}

/// One property of an object schema.
#[derive(Debug)]
pub struct Property {
    /// Name on the wire.
    pub name: &'static str,
    /// Whether it must be present.
    pub required: bool,
    /// Whether it is read-only (may not be sent).
    pub read_only: bool,
    /// Its schema.
    pub node: &'static Node,
}

/// A schema, as data.
#[derive(Debug)]
pub enum Node {
    /// `integer` of 32 or 64 bits.
    Integer {
        /// 32 or 64.
        bits: u8,
        /// Lower bound.
        minimum: Option<Limit>,
        /// Upper bound.
        maximum: Option<Limit>,
    },
    /// `number`.
    Number {
        /// Lower bound.
        minimum: Option<Limit>,
        /// Upper bound.
        maximum: Option<Limit>,
    },
    /// `boolean`.
    Boolean,
    /// `string`.
    String {
        /// Format to check.
        format: StringFormat,
        /// `minLength`, in characters.
        min_length: Option<usize>,
        /// `maxLength`, in characters.
        max_length: Option<usize>,
        /// `pattern`.
        pattern: Option<&'static Pattern>,
    },
    /// A string enum.
    Enum {
        /// Schema name.
        name: &'static str,
        /// Allowed values.
        values: &'static [&'static str],
    },
    /// `array`.
    Array {
        /// Item schema.
        items: &'static Node,
        /// `minItems`.
        min_items: Option<usize>,
        /// `maxItems`.
        max_items: Option<usize>,
        /// `uniqueItems`.
        unique: bool,
    },
    /// `object` with only `additionalProperties`.
    Map {
        /// Value schema.
        values: &'static Node,
    },
    /// `object` with properties.
    Object {
        /// Schema name.
        name: &'static str,
        /// Properties.
        properties: &'static [Property],
    },
}

/// Checks `value` against `node` and returns every problem found, each with its path
/// (`tags[0].name`; the empty path is the document itself).
pub fn validate(node: &Node, value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check(node, value, &mut String::new(), &mut errors);
    errors
}

/// Parses a request body: validation errors become a 422 with every field error, then serde
/// builds the typed value.
///
/// # Errors
/// [`Invalid`] listing every broken constraint.
pub fn parse_body<T: DeserializeOwned>(value: Value, node: &Node) -> Result<T, Invalid> {
    let errors = validate(node, &value);
    if !errors.is_empty() {
        let message = match errors.as_slice() {
            [single] if single.path.is_empty() => format!("request body {}", single.message),
            [single] => format!("{}: {}", single.path, single.message),
            many => format!("{} fields are invalid", many.len()),
        };
        return Err(Invalid { message, errors });
    }
    serde_json::from_value(value).map_err(|error| {
        // Reaching this means the schema nodes and the model types disagree: a generator bug.
        tracing::warn!(%error, "body passed schema validation but not parsing");
        Invalid::field("", error.to_string())
    })
}

fn check(node: &Node, value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    let mut fail = |message: String| {
        errors.push(FieldError {
            path: path.clone(),
            message,
        })
    };
    match node {
        Node::Integer {
            bits,
            minimum,
            maximum,
        } => {
            let Some(number) = value.as_i64() else {
                let what = if value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0) {
                    "must fit in a 64-bit signed integer"
                } else {
                    "must be an integer"
                };
                return fail(what.to_owned());
            };
            if *bits == 32 && i32::try_from(number).is_err() {
                return fail("must fit in a 32-bit signed integer".to_owned());
            }
            check_bounds(number as f64, minimum, maximum, fail);
        }
        Node::Number { minimum, maximum } => match value.as_f64() {
            Some(number) => check_bounds(number, minimum, maximum, fail),
            None => fail("must be a number".to_owned()),
        },
        Node::Boolean => {
            if !value.is_boolean() {
                fail("must be a boolean".to_owned());
            }
        }
        Node::String {
            format,
            min_length,
            max_length,
            pattern,
        } => {
            let Some(text) = value.as_str() else {
                return fail("must be a string".to_owned());
            };
            let length = text.chars().count();
            if let Some(min) = min_length.filter(|min| length < *min) {
                fail(format!("must be at least {} long", count(min, "character")));
            }
            if let Some(max) = max_length.filter(|max| length > *max) {
                fail(format!("must be at most {} long", count(max, "character")));
            }
            if let Some(pattern) = pattern.filter(|pattern| !pattern.is_match(text)) {
                fail(format!("must match the pattern {}", pattern.source()));
            }
            match format {
                StringFormat::DateTime if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                    fail("must be an RFC 3339 date-time".to_owned());
                }
                StringFormat::Uuid if uuid::Uuid::parse_str(text).is_err() => {
                    fail("must be a UUID".to_owned());
                }
                _ => {}
            }
        }
        Node::Enum { values, .. } => match value.as_str() {
            Some(text) if values.contains(&text) => {}
            _ => fail(format!("must be one of: {}", values.join(", "))),
        },
        Node::Array {
            items,
            min_items,
            max_items,
            unique,
        } => {
            let Some(array) = value.as_array() else {
                return fail("must be an array".to_owned());
            };
            if let Some(min) = min_items.filter(|min| array.len() < *min) {
                fail(format!("must have at least {}", count(min, "item")));
            }
            if let Some(max) = max_items.filter(|max| array.len() > *max) {
                // Checking every item of an oversized array would let a client make us do
                // unbounded work; the count alone is the answer.
                return fail(format!("must have at most {}", count(max, "item")));
            }
            if *unique && has_duplicates(array) {
                fail("must not contain duplicate items".to_owned());
            }
            let base = path.len();
            for (index, item) in array.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                check(items, item, path, errors);
                path.truncate(base);
            }
        }
        Node::Map { values } => {
            let Some(object) = value.as_object() else {
                return fail("must be an object".to_owned());
            };
            let base = path.len();
            for (key, item) in object {
                push_key(path, key);
                check(values, item, path, errors);
                path.truncate(base);
            }
        }
        Node::Object { properties, .. } => {
            let Some(object) = value.as_object() else {
                return fail("must be an object".to_owned());
            };
            let base = path.len();
            for property in *properties {
                push_key(path, property.name);
                match object.get(property.name) {
                    None if property.required => {
                        errors.push(FieldError {
                            path: path.clone(),
                            message: "is required".to_owned(),
                        });
                    }
                    None => {}
                    // The spec declares nothing `nullable`: a present `null` is a wrong value,
                    // not an absent one (poem-openapi alone would read it as absent).
                    Some(Value::Null) => errors.push(FieldError {
                        path: path.clone(),
                        message: "must not be null".to_owned(),
                    }),
                    Some(_) if property.read_only => errors.push(FieldError {
                        path: path.clone(),
                        message: "is read-only".to_owned(),
                    }),
                    Some(item) => check(property.node, item, path, errors),
                }
                path.truncate(base);
            }
        }
    }
}

fn check_bounds(
    number: f64,
    minimum: &Option<Limit>,
    maximum: &Option<Limit>,
    mut fail: impl FnMut(String),
) {
    if let Some(Limit { value, exclusive }) = minimum
        && (number < *value || (*exclusive && number == *value))
    {
        let relation = if *exclusive {
            "greater than"
        } else {
            "at least"
        };
        fail(format!("must be {relation} {value}"));
    }
    if let Some(Limit { value, exclusive }) = maximum
        && (number > *value || (*exclusive && number == *value))
    {
        let relation = if *exclusive { "less than" } else { "at most" };
        fail(format!("must be {relation} {value}"));
    }
}

/// `1 item`, `3 items`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(index, item)| items[..index].contains(item))
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::models::{Pet, schemas};

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|error| error.path.as_str()).collect()
    }

    #[test]
    fn valid_pet_has_no_errors() {
        let pet = json!({"name": "doggie", "photoUrls": [], "tags": [{"id": 1, "name": "a"}], "status": "sold"});
        assert!(validate(&schemas::PET, &pet).is_empty());
    }

    #[test]
    fn every_broken_field_is_reported_with_its_path() {
        let pet = json!({
            "id": 0,
            "photoUrls": "nope",
            "category": {"name": ""},
            "tags": [{"name": "ok"}, {"id": "x"}],
            "status": "lost"
        });
        let errors = validate(&schemas::PET, &pet);
        assert_eq!(
            paths(&errors),
            [
                "id",
                "name",
                "category.name",
                "photoUrls",
                "tags[1].id",
                "status"
            ]
        );
        assert_eq!(errors[1].message, "is required");
    }

    #[test]
    fn integers_are_range_checked_by_width() {
        let order = json!({"petId": 1, "quantity": 3_000_000_000_i64});
        let errors = validate(&schemas::ORDER, &order);
        assert_eq!(paths(&errors), ["quantity"]);
        let order = json!({"petId": 1.5});
        assert_eq!(
            validate(&schemas::ORDER, &order)[0].message,
            "must be an integer"
        );
    }

    #[test]
    fn oversized_arrays_are_refused_without_walking_them() {
        let urls: Vec<Value> = (0..10_000).map(|_| json!(1)).collect();
        let pet = json!({"name": "n", "photoUrls": urls});
        let errors = validate(&schemas::PET, &pet);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].message, "must have at most 20 items");
    }

    #[test]
    fn patterns_and_formats_are_checked() {
        let user = json!({"username": "a b", "email": "nope", "phone": "x"});
        assert_eq!(
            paths(&validate(&schemas::USER, &user)),
            ["username", "email", "phone"]
        );
        let order = json!({"petId": 1, "shipDate": "yesterday"});
        assert_eq!(paths(&validate(&schemas::ORDER, &order)), ["shipDate"]);
    }

    #[test]
    fn parse_body_returns_typed_value_or_all_errors() {
        let pet: Pet =
            parse_body(json!({"name": "rex", "photoUrls": ["u"]}), &schemas::PET).unwrap();
        assert_eq!(pet.name, "rex");
        let error = parse_body::<Pet>(json!({"photoUrls": 1}), &schemas::PET).unwrap_err();
        assert_eq!(error.errors.len(), 2);
    }
}
