//! Service API keys: the classic Petstore `api_key` header, for machines rather than people.
//!
//! Keys come from configuration, one entry per service as `NAME:ROLE:SHA256HEX`, for example
//! `inventory-bot:admin:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`. The
//! hex is the SHA-256 of the key; the key itself never appears in configuration, so a leaked
//! config file or environment dump grants nothing. To create one:
//!
//! ```text
//! KEY=$(openssl rand -base64 32)          # hand this to the service, store it nowhere else
//! printf %s "$KEY" | sha256sum            # put this hex into the configuration entry
//! ```
//!
//! A single fast hash is enough, unlike for passwords: a key is 256 random bits, so there is no
//! dictionary to try and a password-grade KDF (Argon2) would only cost time on every request
//! without making a brute force of 2^256 any less hopeless. That holds only for long random
//! keys, which is why keys must be generated as above and never chosen by hand; the hash alone
//! cannot tell us how a key was made.
//!
//! A presented key is hashed and looked up by its hash, so no comparison ever runs over the
//! secret itself, and timing reveals at most something about a SHA-256 output the caller
//! cannot steer.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest::{SHA256, digest};

use petstore_api::Role;

/// Presented keys longer than this are rejected unhashed. Ours are 44 characters; the bound
/// leaves room for other generators without letting a client make us hash megabytes.
const MAX_PRESENTED_LEN: usize = 512;

/// Longest accepted key name.
const MAX_NAME_LEN: usize = 64;

/// Hex digits in a SHA-256.
const HASH_HEX_LEN: usize = 64;

/// A configuration entry that cannot be used, or a set of entries that cannot be combined.
///
/// Messages say which part of which entry is wrong but never repeat the offending hash or the
/// whole entry: a hash is not secret, but a key pasted into the wrong place by mistake is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidApiKeySpec {
    /// Not three parts separated by `:`.
    #[error(
        "an API key entry must be NAME:ROLE:SHA256HEX (three parts separated by `:`), \
         got {parts} part(s)"
    )]
    Shape {
        /// How many `:`-separated parts the entry had.
        parts: usize,
    },
    /// The name is empty, too long, or has a character outside `[A-Za-z0-9._-]`.
    #[error(
        "API key name must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, `.`, `_` and \
         `-`: {reason}"
    )]
    Name {
        /// What is wrong with it.
        reason: String,
    },
    /// The role is not one of [`Role::ALL`].
    #[error("API key `{name}`: unknown role (expected `customer` or `admin`)")]
    Role {
        /// The entry's name.
        name: String,
    },
    /// The hash does not have 64 characters.
    #[error(
        "API key `{name}`: the hash must be the {HASH_HEX_LEN} hex digits of a SHA-256, \
         got {len} characters"
    )]
    HashLength {
        /// The entry's name.
        name: String,
        /// The length found.
        len: usize,
    },
    /// The hash has a character that is not a hex digit.
    #[error("API key `{name}`: the hash has a non-hex character at position {position}")]
    HashCharacter {
        /// The entry's name.
        name: String,
        /// 1-based position of the first offending character.
        position: usize,
    },
    /// Two entries share a name, so logs and metrics could not tell the services apart.
    #[error("API key name `{name}` is configured more than once")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// Two entries share a hash, so they share a key and it would be ambiguous which service
    /// (and which role) a request comes from.
    #[error(
        "API keys `{first}` and `{second}` have the same hash: every service needs its own key"
    )]
    DuplicateHash {
        /// The entry configured first.
        first: String,
        /// The entry configured later.
        second: String,
    },
}

/// One configured key: who it is for, what it may do, and the SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySpec {
    /// The service's name, for logs and metrics: 1 to 64 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// The role requests with this key act with.
    pub role: Role,
    /// SHA-256 of the key string.
    pub sha256: [u8; 32],
}

impl FromStr for ApiKeySpec {
    type Err = InvalidApiKeySpec;

    /// Parse `NAME:ROLE:SHA256HEX`; whitespace around the entry is ignored, the hex may be in
    /// either case.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = entry.trim().split(':').collect();
        let [name, role, hex] = parts[..] else {
            return Err(InvalidApiKeySpec::Shape { parts: parts.len() });
        };
        check_name(name)?;
        let role = role.parse().map_err(|_| InvalidApiKeySpec::Role {
            name: name.to_owned(),
        })?;
        let sha256 = parse_hash(name, hex)?;
        Ok(Self {
            name: name.to_owned(),
            role,
            sha256,
        })
    }
}

/// Who is calling, once a presented key has been recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    /// The configured name of the service.
    pub name: String,
    /// The role its requests act with.
    pub role: Role,
}

/// The configured service keys, looked up by the SHA-256 of a presented key.
#[derive(Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], ServiceKey>,
}

impl fmt::Debug for ApiKeys {
    /// Names and roles only, by name: the hashes stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&ServiceKey> = self.by_hash.values().collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        f.debug_struct("ApiKeys").field("keys", &keys).finish()
    }
}

impl ApiKeys {
    /// The keys of `specs`.
    ///
    /// # Errors
    /// [`InvalidApiKeySpec::DuplicateName`] or [`InvalidApiKeySpec::DuplicateHash`] when two
    /// entries share a name or a key.
    pub fn new(specs: Vec<ApiKeySpec>) -> Result<Self, InvalidApiKeySpec> {
        let mut by_hash: HashMap<[u8; 32], ServiceKey> = HashMap::with_capacity(specs.len());
        for spec in specs {
            if by_hash.values().any(|key| key.name == spec.name) {
                return Err(InvalidApiKeySpec::DuplicateName { name: spec.name });
            }
            if let Some(first) = by_hash.get(&spec.sha256) {
                return Err(InvalidApiKeySpec::DuplicateHash {
                    first: first.name.clone(),
                    second: spec.name,
                });
            }
            by_hash.insert(
                spec.sha256,
                ServiceKey {
                    name: spec.name,
                    role: spec.role,
                },
            );
        }
        Ok(Self { by_hash })
    }

    /// No keys: every presented key is refused.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether no key is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Number of configured keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// The key presented in the `api_key` header, if it is one of ours. Empty and over-long
    /// input is refused before it is hashed.
    #[must_use]
    pub fn verify(&self, presented: &str) -> Option<&ServiceKey> {
        if presented.is_empty() || presented.len() > MAX_PRESENTED_LEN {
            return None;
        }
        self.by_hash.get(&sha256(presented))
    }

    /// SHA-256 hex (lowercase) of a key, for tests and for documenting how to configure one;
    /// the same as `printf %s "$KEY" | sha256sum`.
    #[must_use]
    pub fn hash_hex(key: &str) -> String {
        use fmt::Write;
        sha256(key)
            .iter()
            .fold(String::with_capacity(HASH_HEX_LEN), |mut hex, byte| {
                // Writing into a String cannot fail.
                let _ = write!(hex, "{byte:02x}");
                hex
            })
    }
}

fn check_name(name: &str) -> Result<(), InvalidApiKeySpec> {
    let reason = if name.is_empty() {
        "it is empty".to_owned()
    } else if let Some(position) = name
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("character {} is not allowed", position + 1)
    } else if name.len() > MAX_NAME_LEN {
        // All ASCII by now, so this is the number of characters.
        format!("it has {} characters", name.len())
    } else {
        return Ok(());
    };
    Err(InvalidApiKeySpec::Name { reason })
}

fn parse_hash(name: &str, hex: &str) -> Result<[u8; 32], InvalidApiKeySpec> {
    if let Some(position) = hex.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(InvalidApiKeySpec::HashCharacter {
            name: name.to_owned(),
            position: position + 1,
        });
    }
    // All ASCII from here on, so bytes and characters coincide.
    if hex.len() != HASH_HEX_LEN {
        return Err(InvalidApiKeySpec::HashLength {
            name: name.to_owned(),
            len: hex.len(),
        });
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(hash)
}

/// The value of an ASCII hex digit (checked by the caller).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

fn sha256(key: &str) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as `openssl rand -base64 32` makes them.
    const KEY: &str = "q5V0n8JrQd3Zb0cR8xk1Yh2m3Lw9TsUe4pGfAiNoBvE=";
    /// SHA-256 of `test`, as `printf %s test | sha256sum` prints it.
    const TEST_HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn spec(name: &str, role: &str, key: &str) -> ApiKeySpec {
        format!("{name}:{role}:{}", ApiKeys::hash_hex(key))
            .parse()
            .unwrap()
    }

    #[test]
    fn hash_hex_matches_sha256sum() {
        assert_eq!(ApiKeys::hash_hex("test"), TEST_HEX);
    }

    #[test]
    fn good_spec_parses_into_name_role_and_hash() {
        let parsed: ApiKeySpec = format!("inventory-bot:admin:{TEST_HEX}").parse().unwrap();
        assert_eq!(parsed.name, "inventory-bot");
        assert_eq!(parsed.role, Role::Admin);
        assert_eq!(parsed.sha256, sha256("test"));

        let upper: ApiKeySpec = format!("  svc_1.a:customer:{}\n", TEST_HEX.to_uppercase())
            .parse()
            .unwrap();
        assert_eq!(upper.role, Role::Customer);
        assert_eq!(upper.sha256, parsed.sha256);
    }

    #[test]
    fn spec_without_three_parts_is_a_shape_error() {
        for (entry, parts) in [
            ("", 1),
            (KEY, 1),
            ("bot:admin", 2),
            (&format!("bot:admin:{TEST_HEX}:extra") as &str, 4),
        ] {
            assert_eq!(
                entry.parse::<ApiKeySpec>(),
                Err(InvalidApiKeySpec::Shape { parts }),
                "{entry}"
            );
        }
    }

    #[test]
    fn spec_with_bad_name_says_why() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let longest = "a".repeat(MAX_NAME_LEN);
        assert!(
            format!("{longest}:admin:{TEST_HEX}")
                .parse::<ApiKeySpec>()
                .is_ok()
        );
        for (name, reason) in [
            ("", "it is empty"),
            (long.as_str(), "it has 65 characters"),
            ("inventory bot", "character 10 is not allowed"),
            ("bot/1", "character 4 is not allowed"),
            ("bötchen", "character 2 is not allowed"),
        ] {
            let err = format!("{name}:admin:{TEST_HEX}")
                .parse::<ApiKeySpec>()
                .unwrap_err();
            assert_eq!(
                err,
                InvalidApiKeySpec::Name {
                    reason: reason.to_owned()
                },
                "{name}"
            );
        }
    }

    #[test]
    fn spec_with_unknown_role_names_the_entry() {
        for role in ["", "root", "Admin"] {
            let err = format!("bot:{role}:{TEST_HEX}")
                .parse::<ApiKeySpec>()
                .unwrap_err();
            assert_eq!(err, InvalidApiKeySpec::Role { name: "bot".into() });
            assert!(err.to_string().contains("`bot`"), "{err}");
        }
    }

    #[test]
    fn spec_with_bad_hash_says_what_is_wrong_without_echoing_it() {
        let short = &TEST_HEX[..63];
        let long = format!("{TEST_HEX}0");
        let bad_char = format!("{}g", &TEST_HEX[..63]);
        let cases = [
            (
                "",
                InvalidApiKeySpec::HashLength {
                    name: "bot".into(),
                    len: 0,
                },
            ),
            (
                short,
                InvalidApiKeySpec::HashLength {
                    name: "bot".into(),
                    len: 63,
                },
            ),
            (
                &long,
                InvalidApiKeySpec::HashLength {
                    name: "bot".into(),
                    len: 65,
                },
            ),
            (
                &bad_char,
                InvalidApiKeySpec::HashCharacter {
                    name: "bot".into(),
                    position: 64,
                },
            ),
            // The key itself pasted in place of its hash.
            (
                KEY,
                InvalidApiKeySpec::HashCharacter {
                    name: "bot".into(),
                    position: 1,
                },
            ),
        ];
        for (hex, expected) in cases {
            let err = format!("bot:admin:{hex}")
                .parse::<ApiKeySpec>()
                .unwrap_err();
            assert_eq!(err, expected, "{hex}");
            if !hex.is_empty() {
                assert!(!err.to_string().contains(hex), "{err}");
            }
        }
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let err = ApiKeys::new(vec![
            spec("bot", "admin", "k1"),
            spec("bot", "customer", "k2"),
        ])
        .unwrap_err();
        assert_eq!(err, InvalidApiKeySpec::DuplicateName { name: "bot".into() });
    }

    #[test]
    fn duplicate_hashes_are_rejected() {
        let err =
            ApiKeys::new(vec![spec("a", "admin", KEY), spec("b", "customer", KEY)]).unwrap_err();
        assert_eq!(
            err,
            InvalidApiKeySpec::DuplicateHash {
                first: "a".into(),
                second: "b".into()
            }
        );
    }

    #[test]
    fn configured_key_verifies_as_its_service() {
        let keys = ApiKeys::new(vec![
            spec("inventory-bot", "admin", KEY),
            spec("shop-front", "customer", "another long random key"),
        ])
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert!(!keys.is_empty());

        assert_eq!(
            keys.verify(KEY),
            Some(&ServiceKey {
                name: "inventory-bot".into(),
                role: Role::Admin
            })
        );
        assert_eq!(
            keys.verify("another long random key").map(|k| k.role),
            Some(Role::Customer)
        );
    }

    #[test]
    fn unknown_empty_and_huge_keys_do_not_verify() {
        let keys = ApiKeys::new(vec![spec("bot", "admin", KEY)]).unwrap();
        let almost = &KEY[..KEY.len() - 1];
        let huge = "A".repeat(1024 * 1024);
        for presented in ["", almost, "wrong", huge.as_str(), TEST_HEX] {
            assert_eq!(keys.verify(presented), None);
        }
        // The length bound applies even to a key that is configured.
        let long_key = "k".repeat(MAX_PRESENTED_LEN + 1);
        let keys = ApiKeys::new(vec![spec("long", "admin", &long_key)]).unwrap();
        assert_eq!(keys.verify(&long_key), None);
    }

    #[test]
    fn empty_key_set_verifies_nothing() {
        let keys = ApiKeys::empty();
        assert!(keys.is_empty());
        assert_eq!(keys.len(), 0);
        assert_eq!(keys.verify(KEY), None);
    }

    #[test]
    fn debug_shows_names_and_roles_but_no_hashes() {
        let keys = ApiKeys::new(vec![spec("inventory-bot", "admin", "test")]).unwrap();
        let debug = format!("{keys:?}");
        assert!(debug.contains("inventory-bot"), "{debug}");
        assert!(debug.contains("Admin"), "{debug}");
        assert!(!debug.contains(TEST_HEX), "{debug}");
        assert!(!debug.contains("159, 134"), "{debug}");
    }
}
