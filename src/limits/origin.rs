//! Which web origins may call the API from a browser: CORS and WebSocket upgrades.
//!
//! Browsers attach `Origin` to cross-origin requests and to every WebSocket handshake, and a
//! WebSocket handshake is not subject to CORS at all, so the server itself must refuse foreign
//! pages or any site a user visits could talk to the API in that user's name. Origins are
//! compared in their RFC 6454 serialization (`scheme://host[:port]`, lowercase, no default
//! port), which a small strict parser produces for both configuration and requests.

use std::net::Ipv6Addr;

/// The origin of opaque contexts (sandboxed frames, `file:` pages, some redirects).
const NULL_ORIGIN: &str = "null";

/// The longest origin quoted back in an [`OriginRejected`], to keep logs bounded.
const MAX_REJECTED_ORIGIN_CHARS: usize = 256;

/// The origins allowed to make browser requests, besides the server's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    any: bool,
    origins: Vec<String>,
}

/// A configured origin that is not a plain `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed origin {entry:?}: {reason}")]
pub struct InvalidOrigin {
    /// The offending entry as configured.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A browser request whose `Origin` is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {origin:?} is not allowed")]
pub struct OriginRejected {
    /// The refused `Origin` header (cut to 256 characters).
    pub origin: String,
}

impl OriginPolicy {
    /// A policy allowing `origins`: entries like `https://app.example.com` or
    /// `http://localhost:3000`, normalized; `*` allows any origin and `null` allows the opaque
    /// origin, which `*` does not cover. Entries may not carry a path (not even `/`), query,
    /// fragment or credentials, and hosts must be ASCII (punycode for international names).
    pub fn new(origins: &[String]) -> Result<Self, InvalidOrigin> {
        let mut policy = Self::default();
        for entry in origins {
            let trimmed = entry.trim();
            let normalized = if trimmed == "*" {
                policy.any = true;
                continue;
            } else if trimmed.eq_ignore_ascii_case(NULL_ORIGIN) {
                NULL_ORIGIN.to_owned()
            } else {
                Origin::parse(trimmed)
                    .map_err(|reason| InvalidOrigin {
                        entry: entry.clone(),
                        reason,
                    })?
                    .to_string()
            };
            if !policy.origins.contains(&normalized) {
                policy.origins.push(normalized);
            }
        }
        Ok(policy)
    }

    /// Whether a browser request with this `Origin` may proceed. `host` is the request's Host
    /// header (same-origin requests are always allowed).
    ///
    /// Same-origin means the origin's `host[:port]` equals the Host header's, default ports
    /// omitted on both sides; the scheme is not compared, as the request's own scheme is not
    /// known here. An `Origin` that is not a valid serialized origin is refused.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if origin == NULL_ORIGIN {
            return self.allows_null();
        }
        let Ok(parsed) = Origin::parse(origin) else {
            return false;
        };
        if self.any || host.is_some_and(|host| parsed.same_authority(host)) {
            return true;
        }
        let normalized = parsed.to_string();
        self.origins.contains(&normalized)
    }

    /// Checks a request: no Origin header (non-browser client) is allowed; `null` is refused
    /// unless listed.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), OriginRejected> {
        match origin {
            None => Ok(()),
            Some(origin) if self.allows(origin, host) => Ok(()),
            Some(origin) => Err(OriginRejected {
                origin: origin.chars().take(MAX_REJECTED_ORIGIN_CHARS).collect(),
            }),
        }
    }

    /// The explicitly allowed origins, normalized (including `null` if listed, never `*`),
    /// for building a CORS configuration.
    pub fn allowed_origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether `*` was configured.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    fn allows_null(&self) -> bool {
        self.origins.iter().any(|allowed| allowed == NULL_ORIGIN)
    }
}

/// A tuple origin: `scheme://host[:port]`, lowercase, default port dropped.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    authority: Authority,
}

/// A `host[:port]`, lowercase, IPv6 hosts in brackets.
#[derive(Debug, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected scheme://host[:port]")?;
        let scheme = parse_scheme(scheme)?;
        if rest.contains(['/', '?', '#']) {
            return Err("an origin has no path, query or fragment (not even a trailing slash)");
        }
        if rest.contains('@') {
            return Err("an origin has no user name or password");
        }
        let mut authority = Authority::parse(rest)?;
        if authority.port.is_some() && authority.port == default_port(&scheme) {
            authority.port = None;
        }
        Ok(Self { scheme, authority })
    }

    /// Whether this origin names the same host and port as a Host header.
    fn same_authority(&self, host_header: &str) -> bool {
        let Ok(mut host) = Authority::parse(host_header.trim()) else {
            return false;
        };
        if host.port.is_some() && host.port == default_port(&self.scheme) {
            host.port = None;
        }
        host == self.authority
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority.host)?;
        if let Some(port) = self.authority.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl Authority {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (literal, after) = rest.split_once(']').ok_or("unclosed '[' in the host")?;
            let ip: Ipv6Addr = literal.parse().map_err(|_| "invalid IPv6 address")?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("unexpected text after ']'")?),
            };
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            (parse_host(host)?, port)
        };
        let port = port.map(parse_port).transpose()?;
        Ok(Self { host, port })
    }
}

fn parse_scheme(scheme: &str) -> Result<String, &'static str> {
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        Ok(scheme.to_ascii_lowercase())
    } else {
        Err("invalid scheme")
    }
}

fn parse_host(host: &str) -> Result<String, &'static str> {
    if host.is_empty() {
        return Err("missing host");
    }
    if host.contains('*') {
        return Err("wildcard hosts are not supported; list each origin, or use * alone");
    }
    if !host.is_ascii() {
        return Err("hosts must be ASCII; write international names in punycode (xn--)");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("invalid character in the host");
    }
    Ok(host.to_ascii_lowercase())
}

fn parse_port(port: &str) -> Result<u16, &'static str> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number");
    }
    port.parse().map_err(|_| "the port must be at most 65535")
}

/// The port a scheme implies when none is written.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> OriginPolicy {
        let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
        OriginPolicy::new(&origins).unwrap()
    }

    fn invalid(entry: &str) -> InvalidOrigin {
        OriginPolicy::new(&[entry.to_owned()]).unwrap_err()
    }

    #[test]
    fn configured_origins_are_normalized() {
        let normalized = policy(&[
            "HTTPS://App.Example.COM",
            "https://app.example.com:443",
            "http://localhost:80",
            "http://localhost:3000",
            "wss://live.example.com:443",
            "ws://live.example.com:80",
            "https://example.com:080",
            "http://[2001:DB8:0::1]:8080",
            "http://[::FFFF:192.0.2.1]",
            " https://padded.example ",
            "NULL",
        ]);
        assert_eq!(
            normalized.allowed_origins(),
            [
                "https://app.example.com",
                "http://localhost",
                "http://localhost:3000",
                "wss://live.example.com",
                "ws://live.example.com",
                "https://example.com:80",
                "http://[2001:db8::1]:8080",
                "http://[::ffff:192.0.2.1]",
                "https://padded.example",
                "null",
            ]
        );
        assert!(!normalized.allows_any());
    }

    #[test]
    fn configured_origins_with_a_path_or_trailing_slash_are_rejected() {
        for entry in [
            "https://app.example.com/",
            "https://app.example.com/app",
            "https://app.example.com?x=1",
            "https://app.example.com#top",
        ] {
            let error = invalid(entry);
            assert_eq!(error.entry, entry);
            assert!(error.to_string().contains("no path"), "{error}");
        }
    }

    #[test]
    fn malformed_configured_origins_are_rejected_with_the_reason() {
        let cases = [
            ("app.example.com", "expected scheme://host[:port]"),
            ("https://", "missing host"),
            ("https://:443", "missing host"),
            (
                "https://user:pw@app.example.com",
                "no user name or password",
            ),
            ("https://*.example.com", "wildcard hosts are not supported"),
            ("https://bücher.example", "punycode"),
            ("https://app.example.com:", "the port must be a number"),
            ("https://app.example.com:https", "the port must be a number"),
            ("https://app.example.com:70000", "at most 65535"),
            ("https://[::1", "unclosed '['"),
            ("https://[nope]", "invalid IPv6 address"),
            ("https://[::1]x", "unexpected text after ']'"),
            ("1http://example.com", "invalid scheme"),
            ("https://exa mple.com", "invalid character in the host"),
        ];
        for (entry, reason) in cases {
            let error = invalid(entry);
            assert!(error.reason.contains(reason), "{entry}: {error}");
            assert!(error.to_string().contains(entry), "{error}");
        }
    }

    #[test]
    fn listed_origins_are_allowed_in_any_equivalent_spelling() {
        let policy = policy(&["https://app.example.com", "http://localhost:3000"]);
        assert!(policy.allows("https://app.example.com", None));
        assert!(policy.allows("HTTPS://APP.EXAMPLE.COM:443", None));
        assert!(policy.allows("http://localhost:3000", Some("api.example.com")));
    }

    #[test]
    fn unlisted_origins_are_refused() {
        let policy = policy(&["https://app.example.com", "http://localhost:3000"]);
        for origin in [
            "https://evil.example",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.example",
            "http://localhost",
            "http://localhost:3001",
            "https://app.example.com/",
            "https://app.example.com https://evil.example",
            "",
            "garbage",
        ] {
            assert!(!policy.allows(origin, Some("api.example.com")), "{origin}");
        }
    }

    #[test]
    fn same_origin_requests_are_always_allowed() {
        let none = policy(&[]);
        assert!(none.allows("https://api.example.com", Some("api.example.com")));
        assert!(none.allows("https://api.example.com", Some("API.Example.com:443")));
        assert!(none.allows("https://api.example.com:443", Some("api.example.com")));
        assert!(none.allows("http://localhost:8080", Some("localhost:8080")));
        assert!(none.allows("http://[::1]:8080", Some("[0:0::1]:8080")));
        assert!(none.allows("ws://api.example.com", Some("api.example.com:80")));
    }

    #[test]
    fn a_different_host_or_port_is_not_same_origin() {
        let none = policy(&[]);
        assert!(!none.allows("https://evil.example", Some("api.example.com")));
        assert!(!none.allows("http://localhost:8080", Some("localhost:8081")));
        assert!(!none.allows("http://localhost:8080", Some("localhost")));
        assert!(!none.allows("https://api.example.com", Some("api.example.com:80")));
        assert!(!none.allows("https://api.example.com", Some("api.example.com:")));
        assert!(!none.allows("https://api.example.com", None));
        assert!(!none.allows("https://api.example.com", Some("")));
    }

    #[test]
    fn a_star_allows_any_origin_but_not_null() {
        let any = policy(&["*"]);
        assert!(any.allows_any());
        assert!(any.allowed_origins().is_empty());
        assert!(any.allows("https://anything.example", None));
        assert!(!any.allows("not an origin", None));
        assert!(!any.allows("null", None));
        assert!(any.check(Some("null"), None).is_err());
    }

    #[test]
    fn null_is_allowed_only_when_listed() {
        assert!(!policy(&["https://app.example.com"]).allows("null", Some("null")));
        assert!(policy(&["null"]).allows("null", None));
        assert!(policy(&["null"]).check(Some("null"), None).is_ok());
    }

    #[test]
    fn requests_without_an_origin_are_allowed() {
        assert_eq!(policy(&[]).check(None, None), Ok(()));
        assert_eq!(policy(&[]).check(None, Some("api.example.com")), Ok(()));
    }

    #[test]
    fn a_refusal_names_the_origin_within_bounds() {
        let none = policy(&[]);
        assert_eq!(
            none.check(Some("https://evil.example"), Some("api.example.com")),
            Err(OriginRejected {
                origin: "https://evil.example".into()
            })
        );
        let huge = format!("https://{}.example", "a".repeat(10_000));
        let rejected = none.check(Some(&huge), None).unwrap_err();
        assert_eq!(rejected.origin.chars().count(), 256);
        assert!(
            rejected.to_string().starts_with("origin \"https://aaa"),
            "{rejected}"
        );
    }

    #[test]
    fn duplicate_origins_are_listed_once() {
        let policy = policy(&["https://a.example", "HTTPS://A.EXAMPLE:443", "*", "*"]);
        assert_eq!(policy.allowed_origins(), ["https://a.example"]);
        assert!(policy.allows_any());
    }

    #[test]
    fn other_schemes_keep_their_ports() {
        let policy = policy(&["chrome-extension://abcdef", "ftp://files.example:21"]);
        assert_eq!(
            policy.allowed_origins(),
            ["chrome-extension://abcdef", "ftp://files.example:21"]
        );
        assert!(policy.allows("Chrome-Extension://ABCDEF", None));
    }
}
