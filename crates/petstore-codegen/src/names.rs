//! Rust names for spec names, in one place: the parser rejects specs whose names would clash
//! or not be identifiers, judged on exactly the names the emitters then write.

use heck::ToShoutySnakeCase;

/// A constant name for a spec name (`ErrorResponse` → `ERROR_RESPONSE`, `bearerAuth` →
/// `BEARER_AUTH`).
pub fn const_name(name: &str) -> String {
    name.to_shouty_snake_case()
}

/// Whether `name` (from [`const_name`]) is a plain Rust identifier.
pub fn is_const_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a scope can become a `Scope` variant: `^[a-z][a-z0-9]*(:[a-z][a-z0-9_]*)*$`.
pub fn is_scope_name(scope: &str) -> bool {
    let mut parts = scope.split(':');
    let first = parts.next().unwrap_or_default();
    let starts_with_letter = |part: &str| part.starts_with(|c: char| c.is_ascii_lowercase());
    let lower_alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    starts_with_letter(first)
        && first.chars().all(lower_alphanumeric)
        && parts.all(|part| {
            starts_with_letter(part) && part.chars().all(|c| lower_alphanumeric(c) || c == '_')
        })
}

/// The `Scope` variant of a scope: each `:`- or `_`-separated word capitalised
/// (`pets:write` → `PetsWrite`, `orders:read_all` → `OrdersReadAll`).
pub fn scope_variant(scope: &str) -> String {
    scope
        .split([':', '_'])
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The error kinds of the contract (`petstore_api::error`), by the status they answer. `5XX`
/// is `ServerError`. An error status outside this table cannot be generated.
pub const ERROR_KINDS: [(u16, &str); 10] = [
    (400, "BadRequest"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "NotFound"),
    (408, "RequestTimeout"),
    (409, "Conflict"),
    (413, "PayloadTooLarge"),
    (415, "UnsupportedMediaType"),
    (422, "Invalid"),
    (429, "RateLimited"),
];

/// The error kind of an error status, if the contract has one.
pub fn error_kind(status: u16) -> Option<&'static str> {
    ERROR_KINDS
        .iter()
        .find(|(code, _)| *code == status)
        .map(|(_, kind)| *kind)
}

/// The Rust field (or variable) name of a wire name: snake case (`photoUrls` → `photo_urls`).
/// Keywords that can be raw identifiers become `r#type`; the emitters write exactly this name.
pub fn field_name(wire: &str) -> String {
    heck::ToSnakeCase::to_snake_case(wire)
}

/// Whether `wire` can name a Rust field: its snake-case form is an identifier (a keyword other
/// than `self`, `super`, `crate` and `Self` is written as a raw identifier).
pub fn is_field_name(wire: &str) -> bool {
    let name = field_name(wire);
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
        && !["self", "super", "crate", "Self"].contains(&name.as_str())
}
