//! Which Redis deployment `--redis-url` names — one server, a primary watched by Sentinel, or a
//! Redis Cluster — and what each asks of the rest of the configuration.
//!
//! The URL is fred's syntax, checked here first so a mistake stops the start with a sentence
//! saying what is wrong instead of a connection that half works:
//!
//! ```text
//! redis://[user:password@]host[:port][/db]
//! redis-sentinel://[user:password@]sentinel1[:port][,sentinel2[:port]…][/db]?sentinelServiceName=NAME[&node=host:port…]
//! redis-cluster://[user:password@]node1:port[,node2:port…][?node=host:port…]
//! ```
//!
//! Several hosts may be listed with commas in the host part (the form most Redis clients
//! document) or as repeated `node=host:port` parameters (fred's own form); both mean the same.
//! For Sentinel the hosts are the *sentinels* (port 26379 when left out), never the data nodes:
//! the client asks them for the current primary on every (re)connection, so it follows a
//! failover by itself.
//!
//! Two checks only a deployment can fail:
//!
//! - On a cluster, every key of one deployment must live in one hash slot, because some store
//!   scripts build key names from the data they read (Redis refuses a script that touches a key
//!   it was not given on another slot) and a store step must stay atomic. So the prefix must be
//!   a hash tag (`{petstore}`), and a prefix that is not one is refused.
//! - `redis://` pointing at a cluster node or at a replica would fail later on every write
//!   (`MOVED`, `READONLY`): [`verify`] refuses it at start-up, naming the scheme to use.

use fred::{
    clients::Pool,
    interfaces::ClientLike,
    prelude::Config,
    types::{ClusterHash, InfoKind},
};

use super::RedisError;

/// The kind of Redis deployment a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://`), possibly with replicas nobody fails over to.
    Standalone,
    /// A primary with replicas, found through Sentinel (`redis-sentinel://`).
    Sentinel {
        /// The name the sentinels monitor the primary under (`sentinelServiceName`).
        service: String,
    },
    /// A Redis Cluster (`redis-cluster://`): keys sharded over hash slots.
    Cluster,
}

/// A checked `--redis-url`: the deployment it names and fred's configuration for it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What kind of deployment.
    pub topology: Topology,
    /// fred's configuration, from the URL as fred reads it.
    pub config: Config,
}

/// Reads `url`, checking it against `prefix`.
///
/// # Errors
/// [`RedisError::Config`] with a sentence saying what is wrong: an unknown or TLS scheme, a
/// Sentinel URL without its service name, a database other than 0 on a cluster, several hosts
/// on a plain `redis://`, a cluster prefix that is not a hash tag, or anything fred refuses.
pub fn parse(url: &str, prefix: &str) -> Result<Target, RedisError> {
    let url = Expanded::new(url)?;
    let topology = match url.scheme.as_str() {
        "redis" | "valkey" => {
            if url.hosts > 1 || url.has_query("node") {
                return Err(config_error(
                    "a redis:// URL names one server; list several hosts with \
                     redis-sentinel:// (the sentinels) or redis-cluster:// (cluster nodes)",
                ));
            }
            Topology::Standalone
        }
        "redis-sentinel" | "valkey-sentinel" => {
            let Some(service) = url.query("sentinelServiceName") else {
                return Err(config_error(
                    "a redis-sentinel:// URL needs ?sentinelServiceName=NAME, the name the \
                     sentinels monitor the primary under (`sentinel monitor NAME …`)",
                ));
            };
            Topology::Sentinel { service }
        }
        "redis-cluster" | "valkey-cluster" => {
            if !matches!(url.database.as_str(), "" | "/" | "/0") {
                return Err(config_error(
                    "a Redis Cluster has only database 0: drop the /db from the redis-cluster:// URL",
                ));
            }
            check_cluster_prefix(prefix)?;
            Topology::Cluster
        }
        scheme if scheme.starts_with("rediss") || scheme.starts_with("valkeys") => {
            return Err(config_error(format!(
                "{scheme}:// (TLS to Redis) is not built in: reach Redis over a private network, \
                 or through a TLS tunnel on a loopback port with redis://"
            )));
        }
        scheme => {
            return Err(config_error(format!(
                "unknown scheme {scheme}://: use redis://, redis-sentinel:// or redis-cluster://"
            )));
        }
    };
    let config =
        Config::from_url(&url.text).map_err(|error| config_error(error.details().to_owned()))?;
    Ok(Target { topology, config })
}

/// Refuses a prefix that does not put every key of the deployment in one hash slot.
///
/// Redis hashes only the part of a key between the first `{` and the first `}` after it, when
/// that part is not empty. Every key is `{prefix}:…`, so the prefix must contain such a pair
/// itself; the rest of the key then never matters.
///
/// # Errors
/// [`RedisError::Config`] saying why, and what to use instead.
pub fn check_cluster_prefix(prefix: &str) -> Result<(), RedisError> {
    if hash_tag(prefix).is_some() {
        return Ok(());
    }
    Err(config_error(format!(
        "on Redis Cluster the key prefix must be a hash tag, e.g. --redis-prefix '{{{}}}': \
         the store's atomic steps are Lua scripts whose keys must all live in one hash slot \
         (some are built from the data the script reads), and only a hash tag in the prefix \
         puts every key there; `{prefix}` has none",
        prefix.trim_matches(|c| c == '{' || c == '}')
    )))
}

/// The hash tag of `key` as Redis Cluster reads it: the text between the first `{` and the
/// first `}` after it, when not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

/// Where a command without keys that must reach the node holding the deployment's keys (the
/// `WAIT` after a write) is sent: the hash slot of the prefix, on a cluster.
pub(super) fn slot_routing(topology: &Topology, prefix: &str) -> Option<ClusterHash> {
    (*topology == Topology::Cluster)
        .then(|| ClusterHash::Custom(fred::util::redis_keyslot(prefix.as_bytes())))
}

/// Checks the server the pool reached is what the URL says it is.
///
/// # Errors
/// [`RedisError::Config`] when a `redis://` URL names a cluster node (every command on a key of
/// another node would answer `MOVED`) or a replica (every write would answer `READONLY`);
/// [`RedisError::Unreachable`] when the checks get no answer.
pub async fn verify(pool: &Pool, target: &Target) -> Result<(), RedisError> {
    if target.topology != Topology::Standalone {
        // fred found the nodes itself: the primary through the sentinels (checking its ROLE),
        // or every primary of the cluster from its slot map.
        return Ok(());
    }
    let client = pool.next();
    let cluster: String = client
        .info(Some(InfoKind::Cluster))
        .await
        .map_err(|error| RedisError::Unreachable(error.to_string()))?;
    if info_field(&cluster, "cluster_enabled") == Some("1") {
        return Err(config_error(
            "the server is a Redis Cluster node: use a redis-cluster:// URL (and a hash-tag \
             prefix such as {petstore})",
        ));
    }
    let replication: String = client
        .info(Some(InfoKind::Replication))
        .await
        .map_err(|error| RedisError::Unreachable(error.to_string()))?;
    if info_field(&replication, "role") == Some("slave") {
        return Err(config_error(
            "the server is a replica (read-only): point --redis-url at the primary, or at the \
             sentinels with redis-sentinel:// so failovers are followed",
        ));
    }
    Ok(())
}

/// The value of `name` in an `INFO` section.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .find_map(|(field, value)| (field == name).then_some(value))
}

fn config_error(message: impl Into<String>) -> RedisError {
    RedisError::Config(message.into())
}

/// A URL with a comma-separated host list rewritten to fred's `node=` parameters, and the
/// parts the checks above look at.
struct Expanded {
    /// The URL as fred reads it.
    text: String,
    scheme: String,
    hosts: usize,
    /// The path: `/db`, or empty.
    database: String,
    query: Vec<(String, String)>,
}

impl Expanded {
    fn new(url: &str) -> Result<Self, RedisError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(config_error(
                "not a URL: expected redis://, redis-sentinel:// or redis-cluster://",
            ));
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        // Credentials end at the last `@`: a password may contain anything else.
        let (credentials, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let hosts: Vec<&str> = hosts.split(',').collect();
        if hosts.iter().any(|host| host.is_empty()) {
            return Err(config_error("an empty host in the Redis URL"));
        }
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, query),
            None => (tail, ""),
        };
        let mut text = format!("{scheme}://{credentials}{}{path}", hosts[0]);
        // fred takes a default port for the first host only; the others get the same one.
        let default_port = if scheme.ends_with("-sentinel") {
            26379
        } else {
            6379
        };
        let extra: Vec<String> = hosts[1..]
            .iter()
            .map(|host| match host.contains(':') {
                true => format!("node={host}"),
                false => format!("node={host}:{default_port}"),
            })
            .collect();
        let query = [query.to_owned()]
            .into_iter()
            .chain(extra)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        if !query.is_empty() {
            text.push('?');
            text.push_str(&query);
        }
        let pairs = url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Ok(Self {
            text,
            scheme: scheme.to_ascii_lowercase(),
            hosts: hosts.len(),
            database: path.to_owned(),
            query: pairs,
        })
    }

    fn query(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    }

    fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(key, _)| key == name)
    }
}

#[cfg(test)]
mod tests {
    use fred::types::config::ServerConfig;

    use super::*;

    fn hosts(target: &Target) -> Vec<String> {
        let mut hosts: Vec<String> = target
            .config
            .server
            .hosts()
            .iter()
            .map(|server| format!("{}:{}", server.host, server.port))
            .collect();
        hosts.sort();
        hosts
    }

    #[test]
    fn a_plain_url_names_one_server() {
        let target = parse("redis://user:secret@10.0.0.5:6380/2", "petstore").expect("valid");
        assert_eq!(target.topology, Topology::Standalone);
        assert_eq!(hosts(&target), ["10.0.0.5:6380"]);
        assert_eq!(target.config.database, Some(2));
        assert_eq!(target.config.password.as_deref(), Some("secret"));
    }

    #[test]
    fn sentinel_urls_list_the_sentinels_with_commas_or_node_parameters() {
        let expected = ["s1:26379", "s2:26380", "s3:26379"];
        for url in [
            "redis-sentinel://s1,s2:26380,s3:26379/0?sentinelServiceName=mymaster",
            "redis-sentinel://s1:26379/0?sentinelServiceName=mymaster&node=s2:26380&node=s3:26379",
        ] {
            let target = parse(url, "petstore").expect(url);
            assert_eq!(
                target.topology,
                Topology::Sentinel {
                    service: "mymaster".into()
                },
                "{url}"
            );
            assert!(
                matches!(target.config.server, ServerConfig::Sentinel { .. }),
                "{url}"
            );
            assert_eq!(hosts(&target), expected, "{url}");
        }
    }

    #[test]
    fn a_sentinel_url_without_its_service_name_is_refused() {
        let error = parse("redis-sentinel://s1:26379,s2:26379", "petstore").expect_err("refused");
        assert!(error.to_string().contains("sentinelServiceName"), "{error}");
    }

    #[test]
    fn cluster_urls_list_seed_nodes_and_need_a_hash_tag_prefix() {
        let target =
            parse("redis-cluster://n1:7000,n2:7001?node=n3:7002", "{petstore}").expect("valid");
        assert_eq!(target.topology, Topology::Cluster);
        assert!(target.config.server.is_clustered());
        assert_eq!(hosts(&target), ["n1:7000", "n2:7001", "n3:7002"]);

        let error = parse("redis-cluster://n1:7000", "petstore").expect_err("no hash tag");
        let message = error.to_string();
        assert!(message.contains("hash tag"), "{message}");
        assert!(message.contains("{petstore}"), "suggests one: {message}");
        assert!(message.contains("one hash slot"), "says why: {message}");
        let error = parse("redis-cluster://n1:7000/3", "{petstore}").expect_err("db 3");
        assert!(error.to_string().contains("database 0"), "{error}");
    }

    #[test]
    fn hash_tags_are_read_as_redis_reads_them() {
        assert_eq!(hash_tag("{petstore}"), Some("petstore"));
        assert_eq!(hash_tag("app{eu}"), Some("eu"));
        assert_eq!(hash_tag("a{b}{c}"), Some("b"));
        // An empty first pair makes Redis hash the whole key.
        assert_eq!(hash_tag("{}x{y}"), None);
        assert_eq!(hash_tag("petstore"), None);
        assert_eq!(hash_tag("{petstore"), None);
        assert_eq!(hash_tag("pet}store{"), None);
        for prefix in ["{petstore}", "app{eu}"] {
            check_cluster_prefix(prefix).expect(prefix);
        }
        for prefix in ["petstore", "{}", "{}x{y}"] {
            check_cluster_prefix(prefix).expect_err(prefix);
        }
    }

    #[test]
    fn every_key_of_a_hash_tag_prefix_is_routed_to_the_prefix_slot() {
        let Some(ClusterHash::Custom(slot)) = slot_routing(&Topology::Cluster, "{petstore}") else {
            panic!("a cluster routes by the prefix's slot");
        };
        for key in [
            "{petstore}:pet:1",
            "{petstore}:events:seq",
            "{petstore}:user:{x}",
        ] {
            assert_eq!(fred::util::redis_keyslot(key.as_bytes()), slot, "{key}");
        }
        assert_eq!(slot_routing(&Topology::Standalone, "{petstore}"), None);
    }

    #[test]
    fn mistakes_are_named() {
        for (url, words) in [
            ("redis://a:6379,b:6379", "redis-sentinel://"),
            ("rediss://a:6379", "TLS"),
            ("rediss-sentinel://a?sentinelServiceName=m", "TLS"),
            ("memcached://a", "unknown scheme"),
            ("a:6379", "not a URL"),
            ("redis-cluster://a:1,,b:2", "empty host"),
        ] {
            let error = parse(url, "{petstore}").expect_err(url);
            assert!(error.to_string().contains(words), "{url}: {error}");
        }
    }

    #[test]
    fn info_fields_are_read_by_name() {
        let info = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "cluster_enabled"), None);
    }
}
