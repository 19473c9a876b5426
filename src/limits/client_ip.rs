//! Which address a request really comes from, when reverse proxies sit in front of the server.
//!
//! Forwarding headers are written by whoever sends them, so they are believed only when the
//! socket peer is a configured [`TrustedProxies`] network, and then only up to the first hop
//! that is not a trusted proxy: everything left of that hop was written by the client and may
//! be forged. A request from an untrusted peer is attributed to the peer, whatever it claims.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};
use poem::http::HeaderMap;
use poem::http::header::{FORWARDED, HeaderValue};

/// The non-standard but ubiquitous forwarding header, read when `Forwarded` is absent.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The address a per-client limit should count against: IPv4-mapped IPv6 becomes plain IPv4,
/// and any other IPv6 address becomes its `/64` network address.
///
/// One subscriber usually receives a whole `/64` and could rotate through fresh addresses at
/// will, so counting IPv6 per address would make every per-client limit trivial to evade.
pub fn ip_bucket(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(network))
        }
    }
}

/// The networks whose forwarding headers are believed. The default trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts the proxies in `networks`. IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) are
    /// stored as the IPv4 networks they denote, since addresses are compared in that form.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self {
            networks: networks.into_iter().map(canonical_network).collect(),
        }
    }

    /// Whether no proxy is trusted (forwarding headers are then always ignored).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// The client's address: the socket peer, unless the peer is a trusted proxy; then the
    /// right-most address of the forwarding chain that is not itself a trusted proxy.
    ///
    /// The chain is read from every `Forwarded` header (RFC 7239) if there is one, otherwise
    /// from every `X-Forwarded-For` header. Walking it from the right, trusted proxies are
    /// skipped and the first other address is the client. An entry that cannot be parsed, or
    /// that hides the address (`unknown`, `_obfuscated`), ends the walk at the last trusted
    /// hop, the nearest address known to be good. If every entry is trusted, the left-most
    /// one is the client. IPv4-mapped IPv6 addresses are returned as IPv4.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let chain = if headers.contains_key(FORWARDED) {
            forwarding_chain(headers.get_all(FORWARDED).iter(), forwarded_for)
        } else {
            forwarding_chain(headers.get_all(X_FORWARDED_FOR).iter(), parse_node_address)
        };
        let mut nearest_good = peer;
        for hop in chain.into_iter().rev() {
            match hop {
                Some(ip) if self.contains(ip) => nearest_good = ip,
                Some(ip) => return ip,
                None => return nearest_good,
            }
        }
        nearest_good
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidNetwork;

    /// Parses a configuration list; see [`parse_networks`].
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        parse_networks(list).map(Self::new)
    }
}

/// An entry of a trusted-proxy list that is neither a CIDR network nor an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid trusted proxy {entry:?}: expected an IP address or a CIDR network such as 10.0.0.0/8 or 2001:db8::/32"
)]
pub struct InvalidNetwork {
    /// The offending entry, trimmed.
    pub entry: String,
}

/// Parses a comma-separated list of CIDR networks and bare IP addresses (a bare address is a
/// `/32` or `/128`). Whitespace around entries and empty entries are ignored.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, InvalidNetwork> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| InvalidNetwork {
                    entry: entry.to_owned(),
                })
        })
        .collect()
}

/// An IPv4-mapped IPv6 network as the IPv4 network it denotes; any other network unchanged.
fn canonical_network(network: IpNet) -> IpNet {
    if let IpNet::V6(v6) = network
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Some(prefix) = v6.prefix_len().checked_sub(96)
        && let Ok(v4_network) = Ipv4Net::new(v4, prefix)
    {
        return IpNet::V4(v4_network);
    }
    network
}

/// The hops of a forwarding chain, left to right, across all instances of the header in order:
/// `Some(address)`, or `None` for an entry that does not name a usable address. A header value
/// that is not text at all counts as one such entry. Empty list elements are skipped, as
/// HTTP list syntax requires.
fn forwarding_chain<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    parse_element: fn(&str) -> Option<IpAddr>,
) -> Vec<Option<IpAddr>> {
    let mut chain = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            chain.push(None);
            continue;
        };
        for element in split_outside_quotes(text, ',') {
            let element = element.trim();
            if !element.is_empty() {
                chain.push(parse_element(element).map(|ip| ip.to_canonical()));
            }
        }
    }
    chain
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`),
/// or `None` when it is missing, repeated, hidden or malformed.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_outside_quotes(element, ';') {
        if pair.trim().is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some(unquote(value.trim())?);
    }
    parse_node_address(&found?)
}

/// Splits `text` at `separator`, except inside double-quoted strings.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..index]);
            start = index + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The content of a token or a quoted string (RFC 9110 `quoted-pair` escapes resolved), or
/// `None` if the quotes are unbalanced.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

/// A node address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:8080`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`, where the port may also be an
/// obfuscated identifier (`_port`). `unknown` and obfuscated addresses (`_hidden`) yield `None`.
fn parse_node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let ip = host.parse::<Ipv6Addr>().ok()?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
            .then_some(IpAddr::V6(ip));
    }
    let (host, port) = node.rsplit_once(':')?;
    let ip = host.parse::<Ipv4Addr>().ok()?;
    is_port(port).then_some(IpAddr::V4(ip))
}

/// Whether `port` is a port number or an obfuscated port identifier (RFC 7239 §6.3).
fn is_port(port: &str) -> bool {
    port.parse::<u16>().is_ok() || is_obfuscated(port)
}

/// Whether `text` is an RFC 7239 obfuscated identifier: `_` followed by `[A-Za-z0-9._-]+`.
fn is_obfuscated(text: &str) -> bool {
    text.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

impl fmt::Display for TrustedProxies {
    /// The networks as a comma-separated list that [`parse_networks`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, network) in self.networks.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{network}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderName;

    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn proxies(list: &str) -> TrustedProxies {
        list.parse().unwrap_or_default()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    /// The usual set-up: a load balancer at 10.0.0.1 in front of the server.
    fn behind_lb(pairs: &[(&str, &str)]) -> IpAddr {
        proxies("10.0.0.0/8").client_ip(addr("10.0.0.1"), &headers(pairs))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let trusted = TrustedProxies::default();
        assert!(trusted.is_empty());
        let forged = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            trusted.client_ip(addr("198.51.100.7"), &forged),
            addr("198.51.100.7")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof_its_address_with_forwarding_headers() {
        let trusted = proxies("10.0.0.0/8");
        let forged = headers(&[
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
        ]);
        assert_eq!(
            trusted.client_ip(addr("198.51.100.7"), &forged),
            addr("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_peer_without_forwarding_headers_is_the_client() {
        assert_eq!(behind_lb(&[]), addr("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_forwarded_address_is_the_client() {
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.7")]),
            addr("203.0.113.9"),
            "the left-most entry was written by the client and is ignored"
        );
    }

    #[test]
    fn a_client_prepending_addresses_cannot_hide_behind_them() {
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "10.0.0.9, 198.51.100.7")]),
            addr("198.51.100.7")
        );
    }

    #[test]
    fn all_instances_of_x_forwarded_for_form_one_chain() {
        assert_eq!(
            behind_lb(&[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-for", "10.0.0.5, 10.0.0.6")
            ]),
            addr("203.0.113.9")
        );
        assert_eq!(
            behind_lb(&[
                ("x-forwarded-for", "10.0.0.5"),
                ("x-forwarded-for", "203.0.113.9")
            ]),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn x_forwarded_for_entries_may_carry_ports_and_brackets() {
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "203.0.113.9:51234")]),
            addr("203.0.113.9")
        );
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "[2001:db8::1]:443")]),
            addr("2001:db8::1")
        );
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "2001:db8::1")]),
            addr("2001:db8::1")
        );
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "[2001:db8::1]")]),
            addr("2001:db8::1")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_left_most_is_the_client() {
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "10.0.0.3, 10.0.0.4")]),
            addr("10.0.0.3")
        );
    }

    #[test]
    fn an_unparseable_entry_stops_at_the_last_trusted_hop() {
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.4")]),
            addr("10.0.0.4")
        );
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "203.0.113.9, unknown")]),
            addr("10.0.0.1")
        );
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "203.0.113.9, 300.1.1.1")]),
            addr("10.0.0.1")
        );
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "203.0.113.9, 1.2.3.4:99999")]),
            addr("10.0.0.1")
        );
    }

    #[test]
    fn a_header_value_that_is_not_text_is_an_unparseable_entry() {
        let mut map = headers(&[("x-forwarded-for", "203.0.113.9")]);
        if let Ok(value) = HeaderValue::from_bytes(b"\xff\xfe") {
            map.append(X_FORWARDED_FOR, value);
        }
        let trusted = proxies("10.0.0.0/8");
        assert_eq!(trusted.client_ip(addr("10.0.0.1"), &map), addr("10.0.0.1"));
    }

    #[test]
    fn empty_list_elements_are_skipped() {
        assert_eq!(
            behind_lb(&[("x-forwarded-for", "203.0.113.9, , 10.0.0.4,")]),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        assert_eq!(
            behind_lb(&[
                ("x-forwarded-for", "198.51.100.1"),
                ("forwarded", "for=203.0.113.9")
            ]),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_elements_are_read_from_the_right() {
        assert_eq!(
            behind_lb(&[(
                "forwarded",
                "for=192.0.2.43, for=198.51.100.17;by=10.0.0.2;proto=https, for=10.0.0.3"
            )]),
            addr("198.51.100.17")
        );
    }

    #[test]
    fn forwarded_parameter_names_are_case_insensitive_and_values_may_be_quoted() {
        assert_eq!(
            behind_lb(&[("forwarded", "proto=https; FOR=\"203.0.113.9\"")]),
            addr("203.0.113.9")
        );
        assert_eq!(
            behind_lb(&[("forwarded", "For=203.0.113.9:8080")]),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_accepts_bracketed_ipv6_with_ports() {
        assert_eq!(
            behind_lb(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")]),
            addr("2001:db8:cafe::17")
        );
        assert_eq!(
            behind_lb(&[("forwarded", "for=\"[2001:db8:cafe::17]\"")]),
            addr("2001:db8:cafe::17")
        );
        assert_eq!(
            behind_lb(&[("forwarded", "for=\"203.0.113.9:_port1\"")]),
            addr("203.0.113.9"),
            "an obfuscated port still leaves the address known"
        );
    }

    #[test]
    fn forwarded_unknown_or_obfuscated_addresses_stop_at_the_last_trusted_hop() {
        assert_eq!(
            behind_lb(&[("forwarded", "for=203.0.113.9, for=unknown, for=10.0.0.5")]),
            addr("10.0.0.5")
        );
        assert_eq!(
            behind_lb(&[("forwarded", "for=203.0.113.9, for=_hidden")]),
            addr("10.0.0.1")
        );
    }

    #[test]
    fn malformed_forwarded_elements_stop_the_walk() {
        for malformed in [
            "for=\"203.0.113.9",
            "by=10.0.0.2",
            "for=203.0.113.9;for=198.51.100.1",
            "for",
            "for=\"[2001:db8::1\"",
            "for=\"[2001:db8::1]x\"",
        ] {
            assert_eq!(
                behind_lb(&[("forwarded", &format!("for=198.51.100.1, {malformed}"))]),
                addr("10.0.0.1"),
                "{malformed}"
            );
        }
    }

    #[test]
    fn forwarded_quoted_strings_may_contain_separators_and_escapes() {
        assert_eq!(
            behind_lb(&[(
                "forwarded",
                "for=203.0.113.9;host=\"a,b;c\", for=\"10.0.0.\\5\""
            )]),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn all_instances_of_forwarded_form_one_chain() {
        assert_eq!(
            behind_lb(&[
                ("forwarded", "for=203.0.113.9"),
                ("forwarded", "for=10.0.0.8")
            ]),
            addr("203.0.113.9")
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_is_normalized_for_the_peer_and_the_chain() {
        let trusted = proxies("10.0.0.0/8");
        let chain = headers(&[("x-forwarded-for", "::ffff:203.0.113.9, ::ffff:10.0.0.2")]);
        assert_eq!(
            trusted.client_ip(addr("::ffff:10.0.0.1"), &chain),
            addr("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(addr("::ffff:198.51.100.7"), &chain),
            addr("198.51.100.7")
        );
        assert!(trusted.contains(addr("::ffff:10.1.2.3")));
    }

    #[test]
    fn ipv6_proxies_are_trusted_by_network() {
        let trusted = proxies("2001:db8:ffff::/48");
        let chain = headers(&[(
            "forwarded",
            "for=\"[2001:db8::1]\", for=\"[2001:db8:ffff::2]\"",
        )]);
        assert_eq!(
            trusted.client_ip(addr("2001:db8:ffff::1"), &chain),
            addr("2001:db8::1")
        );
    }

    #[test]
    fn mapped_ipv6_networks_are_stored_as_ipv4() {
        let trusted = proxies("::ffff:10.0.0.0/104");
        assert_eq!(trusted.networks(), proxies("10.0.0.0/8").networks());
    }

    #[test]
    fn network_lists_accept_cidrs_and_bare_addresses_with_any_spacing() {
        let parsed = parse_networks(" 10.0.0.0/8 ,192.0.2.1,  2001:db8::/32, ::1 ,");
        let expected = ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32", "::1/128"]
            .map(|text| text.parse::<IpNet>().ok());
        assert_eq!(
            parsed.map(|list| list.into_iter().map(Some).collect::<Vec<_>>()),
            Ok(expected.to_vec())
        );
        assert_eq!(parse_networks("  "), Ok(Vec::new()));
    }

    #[test]
    fn a_bad_network_entry_is_named_in_the_error() {
        let error = parse_networks("10.0.0.0/8, 10.0.0.0/33, 192.0.2.1").err();
        assert_eq!(
            error.as_ref().map(|e| e.entry.as_str()),
            Some("10.0.0.0/33")
        );
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("\"10.0.0.0/33\""), "{message}");
        assert!(parse_networks("proxy.internal").is_err());
    }

    #[test]
    fn trusted_proxies_display_as_a_list_that_parses_back() {
        let trusted = proxies("10.0.0.0/8, 2001:db8::1");
        assert_eq!(trusted.to_string(), "10.0.0.0/8, 2001:db8::1/128");
        assert_eq!(proxies(&trusted.to_string()), trusted);
    }

    #[test]
    fn ip_buckets_fold_ipv6_into_its_slash_64() {
        assert_eq!(
            ip_bucket(addr("2001:db8:1:2:3:4:5:6")),
            addr("2001:db8:1:2::")
        );
        assert_eq!(ip_bucket(addr("::ffff:192.0.2.1")), addr("192.0.2.1"));
        assert_eq!(ip_bucket(addr("192.0.2.1")), addr("192.0.2.1"));
    }
}
