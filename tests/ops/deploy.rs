//! The deployment files against the server: every metric the Grafana dashboards and the
//! Prometheus alert rules query is one a running server exports (the dashboards of the
//! TypeScript predecessor queried series that never existed), and the compose files, the
//! Prometheus configuration and the provisioning describe the documented topology. The
//! Sentinel variant of the compose file runs the same nodes, balancer and monitoring on a
//! primary, a replica and three sentinels whose configuration `redis-sentinel` itself accepts.
//!
//! Metric names are taken from the PromQL of every dashboard target, template variable and alert
//! rule; a histogram counts as exporting its `_bucket`, `_sum` and `_count` series.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use crate::exposition::Exposition;
use petstore_testkit::app::{ok_json, ok_text, send, signing_key_in, spawn_app};
use petstore_testkit::redis::{LocalRedis, Persistence};
use regex::Regex;
use serde_json::{Value, json};

/// Series Prometheus makes itself for every scrape target, not exported by the server.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

fn deploy_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(relative)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn yaml(relative: &str) -> Value {
    let path = deploy_path(relative);
    serde_saphyr::from_str(&read(&path))
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

/// Every dashboard file, parsed.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = deploy_path("grafana/dashboards");
    let entries = fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    let mut dashboards = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            let dashboard = serde_json::from_str(&read(&path))
                .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            dashboards.insert(name, dashboard);
        }
    }
    assert!(!dashboards.is_empty(), "no dashboards in {}", dir.display());
    dashboards
}

/// The PromQL of a dashboard: every target's `expr`, and the query of every template variable.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, queries: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, member) in object {
                    match (key.as_str(), member) {
                        ("expr", Value::String(expr)) => queries.push(expr.clone()),
                        _ => walk(member, queries),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, queries)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    walk(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = match &variable["query"] {
            Value::String(query) => Some(query.clone()),
            Value::Object(object) => object
                .get("query")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        queries.extend(query);
    }
    queries
}

/// The PromQL of every alert (and recording) rule.
fn rule_queries() -> Vec<(String, String)> {
    let rules = yaml("prometheus/alerts.yml");
    let mut queries = Vec::new();
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .unwrap_or_else(|| panic!("a rule without a name: {rule}"));
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("rule {name} has no expr"));
            queries.push((name.to_owned(), expr.to_owned()));
        }
    }
    queries
}

/// PromQL functions, aggregations and keywords: identifiers that are not metric names.
const NOT_METRICS: [&str; 14] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
];

/// The metric names a PromQL expression (or a Grafana `label_values(...)` query) reads.
fn metric_names(query: &str) -> BTreeSet<String> {
    let query = query.trim();
    if let Some(arguments) = query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        // label_values(metric_or_selector, label); with one argument it names only a label.
        return match arguments.rsplit_once(',') {
            Some((selector, _)) => metric_names(selector),
            None => BTreeSet::new(),
        };
    }
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#).expect("regex");
    let matchers = Regex::new(r"\{[^}]*\}").expect("regex");
    let ranges = Regex::new(r"\[[^\]]*\]").expect("regex");
    let grouping = Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
        .expect("regex");
    let variables = Regex::new(r"\$\{?\w+\}?").expect("regex");
    let identifier = Regex::new(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*").expect("regex");

    let stripped = strings.replace_all(query, " ");
    let stripped = matchers.replace_all(&stripped, " ");
    let stripped = ranges.replace_all(&stripped, " ");
    let stripped = grouping.replace_all(&stripped, " ");
    let stripped = variables.replace_all(&stripped, " ");
    let mut names = BTreeSet::new();
    for found in identifier.find_iter(&stripped) {
        let name = found.as_str();
        let called = stripped[found.end()..].trim_start().starts_with('(');
        let digit_before = stripped[..found.start()]
            .chars()
            .next_back()
            .is_some_and(|before| before.is_ascii_digit() || before == '.');
        if called || digit_before || NOT_METRICS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        names.insert(name.to_owned());
    }
    names
}

/// Every series name a running server exports once it has served some requests, on Redis (a
/// private server), so the Redis and cluster families are there too.
async fn exported_series() -> BTreeSet<String> {
    let _turn = crate::metrics_turn().await;
    let redis = LocalRedis::start(Persistence::None)
        .unwrap_or_else(|error| panic!("cannot start a private redis-server: {error}"));
    // Nodes on Redis must share a signing key: one in the server's own directory.
    let key = signing_key_in(redis.dir());
    let app = spawn_app(|config| {
        config.redis_url = Some(redis.url());
        config.jwt_private_key = Some(key.clone());
    })
    .await;
    let pet = app.add_available_pet("Rex").await;
    ok_json(send(app.anonymous.get(app.api(&format!("/pet/{pet}")))).await).await;
    let text = ok_text(send(app.anonymous.get(app.url("/metrics"))).await).await;
    app.shutdown().await;
    let mut names = Exposition::parse(&text).series_names();
    names.extend(PROMETHEUS_SERIES.map(str::to_owned));
    names
}

#[tokio::test]
async fn dashboards_and_alert_rules_query_only_metrics_the_server_exports() {
    let exported = exported_series().await;
    let mut queried: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, dashboard) in dashboards() {
        let queries = dashboard_queries(&dashboard);
        assert!(!queries.is_empty(), "{file} has no queries");
        for query in queries {
            for name in metric_names(&query) {
                queried.entry(name).or_default().insert(file.clone());
            }
        }
    }
    let rules = rule_queries();
    assert!(!rules.is_empty(), "no alert rules");
    for (rule, query) in rules {
        let names = metric_names(&query);
        assert!(!names.is_empty(), "rule {rule} reads no metric: {query}");
        for name in names {
            queried
                .entry(name)
                .or_default()
                .insert(format!("rule {rule}"));
        }
    }
    let missing: Vec<_> = queried
        .iter()
        .filter(|(name, _)| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
}

#[test]
fn the_documented_alert_thresholds_have_rules() {
    let rules: BTreeMap<_, _> = rule_queries().into_iter().collect();
    for (alert, metric, threshold) in [
        (
            "PetstoreAuthFailures",
            "petstore_auth_attempts_total",
            "> 10",
        ),
        (
            "PetstoreRateLimitViolations",
            "petstore_rate_limit_rejections_total",
            "> 100",
        ),
        (
            "PetstoreInvalidMessages",
            "petstore_http_requests_total",
            "> 50",
        ),
        (
            "PetstoreAbnormalConnectionDrops",
            "petstore_http_requests_aborted_total",
            "> 20",
        ),
        (
            "PetstoreRedisCircuitOpen",
            "petstore_circuit_breaker_state",
            "> 0",
        ),
        (
            "PetstoreNodeMissingFromRegistry",
            "petstore_cluster_nodes",
            "< count(up{job=\"petstore\"} == 1)",
        ),
    ] {
        let Some(expr) = rules.get(alert) else {
            panic!("no alert {alert}");
        };
        assert!(expr.contains(metric), "{alert}: {expr}");
        assert!(expr.trim_end().ends_with(threshold), "{alert}: {expr}");
    }
}

#[test]
fn compose_runs_three_nodes_behind_haproxy_with_redis_and_monitoring() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    for service in [
        "redis",
        "node1",
        "node2",
        "node3",
        "lb",
        "prometheus",
        "grafana",
    ] {
        assert!(services.get(service).is_some(), "no service {service}");
    }
    let redis = services["redis"]["command"].to_string();
    assert!(
        redis.contains("--appendonly") && redis.contains("yes"),
        "{redis}"
    );
    assert!(
        services["lb"]["image"]
            .as_str()
            .is_some_and(|image| image.starts_with("haproxy:")),
        "{}",
        services["lb"]
    );
    let balancer = services["lb"]["networks"]["petstore"]["ipv4_address"].clone();
    for node in ["node1", "node2", "node3"] {
        let environment = &services[node]["environment"];
        assert_eq!(
            environment["PETSTORE_TRUSTED_PROXIES"], balancer,
            "{node} must trust the balancer: {environment}"
        );
        assert_eq!(
            environment["PETSTORE_NODE_ID"],
            json!(node),
            "{environment}"
        );
        assert!(
            services[node]["build"].is_object(),
            "{node} is built from the Dockerfile"
        );
    }

    for node in ["node1", "node2", "node3"] {
        let environment = &services[node]["environment"];
        assert_eq!(
            environment["PETSTORE_REDIS_URL"],
            json!("redis://redis:6379"),
            "{node} uses the shared Redis: {environment}"
        );
        assert!(
            environment["PETSTORE_JWT_PRIVATE_KEY"].is_string(),
            "{node} signs with the shared key: {environment}"
        );
    }
    assert!(
        redis.contains("--appendfsync") && redis.contains("everysec"),
        "{redis}"
    );
    assert!(
        services["redis"]["volumes"].to_string().contains(":/data"),
        "Redis keeps its append-only file on a volume"
    );

    let haproxy = read(&deploy_path("haproxy/haproxy.cfg"));
    for line in [
        "option forwardfor",
        "option httpchk GET /ready",
        "http-check expect status 200",
        "check inter 1s fall 2 rise 2",
        "timeout tunnel 1h",
        "timeout client-fin",
        "timeout http-request",
        "balance \"${PETSTORE_LB_BALANCE-leastconn}\"",
        "hash-type consistent",
        "prometheus-exporter",
    ] {
        assert!(haproxy.contains(line), "haproxy.cfg lacks `{line}`");
    }
    for node in ["node1", "node2", "node3"] {
        assert!(
            haproxy.contains(&format!("server {node} {node}:8080")),
            "haproxy.cfg does not balance {node}"
        );
    }

    let prometheus = yaml("prometheus/prometheus.yml");
    let targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"].clone();
    assert_eq!(
        targets,
        json!(["node1:8080", "node2:8080", "node3:8080"]),
        "Prometheus scrapes each node directly"
    );
    let balancer_targets = prometheus["scrape_configs"][1]["static_configs"][0]["targets"].clone();
    assert_eq!(
        balancer_targets,
        json!(["lb:8404"]),
        "Prometheus scrapes HAProxy's metrics"
    );
    assert_eq!(
        prometheus["rule_files"],
        json!(["/etc/prometheus/alerts.yml"])
    );

    let datasources = yaml("grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(datasources["datasources"][0]["uid"], "prometheus");
    let providers = yaml("grafana/provisioning/dashboards/petstore.yml");
    assert_eq!(
        providers["providers"][0]["options"]["path"],
        "/etc/grafana/dashboards"
    );
    for (file, dashboard) in dashboards() {
        assert!(
            dashboard["uid"].is_string() && dashboard["title"].is_string(),
            "{file}"
        );
    }
}

/// The services both compose files run alike: the balancer and the monitoring.
const SHARED_SERVICES: [&str; 3] = ["lb", "prometheus", "grafana"];
/// Node settings the Sentinel variant sets differently, and only those.
const SENTINEL_NODE_SETTINGS: [&str; 3] = [
    "PETSTORE_REDIS_URL",
    "PETSTORE_REDIS_WAIT_REPLICAS",
    "PETSTORE_REDIS_WAIT_TIMEOUT_MS",
];

/// `deploy/sentinel/sentinel.conf`'s directives: the words of each line that is not a comment.
fn sentinel_conf() -> Vec<Vec<String>> {
    read(&deploy_path("sentinel/sentinel.conf"))
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn sentinel_compose_runs_the_same_nodes_on_a_primary_a_replica_and_three_sentinels() {
    let main = yaml("docker-compose.yml");
    let compose = yaml("docker-compose.sentinel.yml");
    let services = &compose["services"];
    let mut names: Vec<&str> = services
        .as_object()
        .map(|services| services.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "grafana",
            "lb",
            "node1",
            "node2",
            "node3",
            "prometheus",
            "redis-primary",
            "redis-replica",
            "sentinel1",
            "sentinel2",
            "sentinel3"
        ]
    );
    for service in SHARED_SERVICES {
        assert_eq!(
            services[service], main["services"][service],
            "{service} differs from docker-compose.yml's"
        );
    }
    assert_eq!(compose["secrets"], main["secrets"]);
    assert_eq!(compose["networks"], main["networks"]);

    // The sentinels' view of the primary, from the file they run.
    let conf = sentinel_conf();
    let monitor = conf
        .iter()
        .find(|words| words.get(..2) == Some(&["sentinel".to_owned(), "monitor".to_owned()]))
        .unwrap_or_else(|| panic!("sentinel.conf monitors no primary: {conf:?}"));
    let [_, _, service, host, port, quorum] = monitor.as_slice() else {
        panic!("sentinel monitor NAME HOST PORT QUORUM: {monitor:?}");
    };
    assert_eq!((host.as_str(), port.as_str()), ("redis-primary", "6379"));
    let sentinels = ["sentinel1", "sentinel2", "sentinel3"];
    let quorum: usize = quorum.parse().expect("a quorum");
    assert!(
        quorum > sentinels.len() / 2 && quorum <= sentinels.len(),
        "quorum {quorum} of {} sentinels",
        sentinels.len()
    );
    assert!(
        conf.contains(
            &["sentinel", "resolve-hostnames", "yes"]
                .map(str::to_owned)
                .to_vec()
        ),
        "the sentinels resolve the services' names"
    );
    assert!(conf.contains(&vec!["port".to_owned(), "26379".to_owned()]));

    for node in ["node1", "node2", "node3"] {
        let (ours, theirs) = (&services[node], &main["services"][node]);
        for key in ["build", "image", "restart", "expose", "networks", "secrets"] {
            assert_eq!(ours[key], theirs[key], "{node}.{key}");
        }
        let mut environment = ours["environment"].clone();
        let mut expected = theirs["environment"].clone();
        for setting in SENTINEL_NODE_SETTINGS {
            if let (Some(ours), Some(theirs)) =
                (environment.as_object_mut(), expected.as_object_mut())
            {
                ours.remove(setting);
                theirs.remove(setting);
            }
        }
        assert_eq!(environment, expected, "{node}: settings besides Redis's");
        let environment = &ours["environment"];
        assert_eq!(environment["PETSTORE_REDIS_WAIT_REPLICAS"], json!("1"));
        let url = environment["PETSTORE_REDIS_URL"].as_str().expect("a URL");
        let target = petstore_ws::redis::topology::parse(url, "petstore")
            .unwrap_or_else(|error| panic!("{node}: {url}: {error}"));
        assert_eq!(
            target.topology,
            petstore_ws::redis::Topology::Sentinel {
                service: service.clone()
            },
            "{node} asks for the primary the sentinels monitor"
        );
        let mut hosts: Vec<String> = target
            .config
            .server
            .hosts()
            .iter()
            .map(|server| format!("{}:{}", server.host, server.port))
            .collect();
        hosts.sort();
        assert_eq!(
            hosts,
            sentinels.map(|sentinel| format!("{sentinel}:26379")),
            "{node} knows every sentinel"
        );
        for dependency in ["redis-replica", "sentinel1", "sentinel2", "sentinel3"] {
            assert_eq!(
                ours["depends_on"][dependency]["condition"], "service_healthy",
                "{node} starts once {dependency} answers"
            );
        }
    }

    for server in ["redis-primary", "redis-replica"] {
        let command = services[server]["command"].to_string();
        for setting in [
            "--appendonly",
            "--appendfsync",
            "everysec",
            "--replica-announce-ip",
        ] {
            assert!(command.contains(setting), "{server}: {command}");
        }
        assert!(
            command.contains(&format!("\"{server}\"")),
            "{server} announces itself by name: {command}"
        );
        assert!(
            services[server]["volumes"].to_string().contains(":/data"),
            "{server} keeps its append-only file on a volume"
        );
    }
    let replica = services["redis-replica"]["command"].to_string();
    assert!(
        replica.contains("\"--replicaof\",\"redis-primary\",\"6379\""),
        "{replica}"
    );
    for sentinel in sentinels {
        let command = services[sentinel]["command"].to_string();
        assert!(
            command.contains("/etc/redis/sentinel.conf") && command.contains("--sentinel"),
            "{sentinel} runs the deployment's sentinel.conf: {command}"
        );
        let volumes = services[sentinel]["volumes"].to_string();
        assert!(
            volumes.contains("./sentinel/sentinel.conf:/etc/redis/sentinel.conf:ro")
                && volumes.contains(&format!("{sentinel}-data:/data")),
            "{sentinel} keeps its rewritten configuration on a volume of its own: {volumes}"
        );
    }
}

#[test]
fn redis_sentinel_accepts_the_deployment_configuration() {
    use petstore_testkit::redis::{LocalRedis, Persistence, Reply, command};

    let primary = LocalRedis::start(Persistence::None).expect("redis-server");
    let dir = std::env::temp_dir().join(format!(
        "petstore-sentinel-conf-{}",
        uuid::Uuid::new_v4().simple()
    ));
    fs::create_dir_all(&dir).expect("a directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    // The deployment's file as it is, but on this machine: a loopback port, a directory of its
    // own, the primary started here in place of the `redis-primary` service.
    let conf = read(&deploy_path("sentinel/sentinel.conf"))
        .replace("port 26379", &format!("bind 127.0.0.1\nport {port}"))
        .replace("dir /data", &format!("dir {}", dir.display()))
        .replace(
            "redis-primary 6379",
            &format!("127.0.0.1 {}", primary.port()),
        );
    assert!(
        conf.contains(&format!("127.0.0.1 {}", primary.port())),
        "the monitor line was rewritten"
    );
    let conf_path = dir.join("sentinel.conf");
    fs::write(&conf_path, conf).expect("the configuration");
    let mut sentinel = match std::process::Command::new("redis-sentinel")
        .arg(&conf_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: redis-sentinel is not installed (Debian/Ubuntu: apt-get install \
                 redis-sentinel)"
            );
            let _ = fs::remove_dir_all(&dir);
            return;
        }
        Err(error) => panic!("cannot run redis-sentinel: {error}"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let answer = loop {
        if let Some(status) = sentinel.try_wait().expect("try_wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = sentinel.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("redis-sentinel refused the configuration ({status}): {stderr}");
        }
        if let Ok(reply) = command(port, &["SENTINEL", "get-master-addr-by-name", "petstore"]) {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redis-sentinel did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(
        answer,
        Reply::Array(vec![
            Reply::Bulk("127.0.0.1".into()),
            Reply::Bulk(primary.port().to_string()),
        ])
    );
}

#[test]
fn metric_names_are_read_from_promql() {
    let cases: [(&str, &[&str]); 7] = [
        ("up{job=\"petstore\"} == 0", &["up"]),
        (
            "sum by (operation) (rate(petstore_http_requests_total{instance=~\"$instance\",status=~\"5..\"}[$__rate_interval]))",
            &["petstore_http_requests_total"],
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(petstore_http_request_duration_seconds_bucket[5m]))) > 0.5",
            &["petstore_http_request_duration_seconds_bucket"],
        ),
        (
            "process_open_fds / on(instance) process_max_fds > 0.8",
            &["process_max_fds", "process_open_fds"],
        ),
        ("sum(increase(a_total[1h] offset 5m)) > 1e3", &["a_total"]),
        (
            "label_values(petstore_build_info, instance)",
            &["petstore_build_info"],
        ),
        ("label_values(instance)", &[]),
    ];
    for (query, expected) in cases {
        let names: Vec<_> = metric_names(query).into_iter().collect();
        assert_eq!(names, expected.to_vec(), "{query}");
    }
}

/// `haproxy -c` on `deploy/haproxy/haproxy.cfg` with `PETSTORE_LB_BALANCE` set to `balance`
/// (unset for `None`): whether HAProxy accepts it, and its output.
fn haproxy_check(balance: Option<&str>) -> (bool, String) {
    let mut command = std::process::Command::new("haproxy");
    command
        .arg("-c")
        .arg("-f")
        .arg(deploy_path("haproxy/haproxy.cfg"))
        .env_remove("PETSTORE_LB_BALANCE");
    if let Some(balance) = balance {
        command.env("PETSTORE_LB_BALANCE", balance);
    }
    let output = command.output().unwrap_or_else(|error| {
        panic!("cannot run haproxy ({error}); Debian/Ubuntu: apt-get install haproxy")
    });
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn haproxy_accepts_the_deployment_configuration_with_each_strategy() {
    for balance in [None, Some("leastconn"), Some("roundrobin"), Some("source")] {
        let (valid, output) = haproxy_check(balance);
        assert!(valid, "haproxy -c with {balance:?}:\n{output}");
        // The node names resolve only inside the compose network; any other warning is a
        // mistake in the file.
        let warnings: Vec<_> = output
            .lines()
            .filter(|line| {
                line.contains("[WARNING]") && !line.contains("could not resolve address")
            })
            .collect();
        assert!(
            warnings.is_empty(),
            "haproxy -c with {balance:?}: {warnings:#?}"
        );
    }
    // The switch is really read: a strategy HAProxy does not know is refused.
    let (valid, output) = haproxy_check(Some("fastest"));
    assert!(!valid, "an unknown strategy was accepted:\n{output}");
}

/// The sources the Dockerfile's build stage copies, as top-level names of the repository.
fn dockerfile_build_copies() -> BTreeSet<String> {
    let dockerfile = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"));
    let mut in_build = false;
    let mut copied = BTreeSet::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            in_build = line.ends_with(" AS build");
            continue;
        }
        let Some(arguments) = line.strip_prefix("COPY ").filter(|_| in_build) else {
            continue;
        };
        let words: Vec<&str> = arguments
            .split_whitespace()
            .filter(|word| !word.starts_with("--"))
            .collect();
        // The last word is the destination.
        for source in &words[..words.len().saturating_sub(1)] {
            copied.insert(source.trim_end_matches('/').to_owned());
        }
    }
    copied
}

/// What `.dockerignore` lets into the build context: it ignores everything (`*`) and admits
/// the `!`-entries.
fn docker_context_entries() -> BTreeSet<String> {
    let ignore = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"));
    let lines: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"*"),
        ".dockerignore starts from nothing"
    );
    lines[1..]
        .iter()
        .map(|line| {
            line.strip_prefix('!')
                .unwrap_or_else(|| panic!("only `!` entries after `*`: {line}"))
                .trim_end_matches('/')
                .to_owned()
        })
        .collect()
}

/// Every file an `include_str!`/`include_bytes!` in the server's build embeds (the sources
/// and build scripts of the server and the crates it is built from, not their tests), as paths
/// relative to the repository.
fn embedded_files() -> BTreeSet<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).expect("regex");
    let mut sources: Vec<PathBuf> = vec![root.join("build.rs")];
    let mut directories = vec![root.join("src")];
    for entry in fs::read_dir(root.join("crates")).expect("crates/") {
        let crate_dir = entry.expect("crates/ entry").path();
        sources.push(crate_dir.join("build.rs"));
        directories.push(crate_dir.join("src"));
    }
    while let Some(directory) = directories.pop() {
        for entry in fs::read_dir(&directory).expect("a source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                directories.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                sources.push(path);
            }
        }
    }
    let mut embedded = BTreeSet::new();
    for source in sources.into_iter().filter(|source| source.exists()) {
        for capture in include.captures_iter(&read(&source)) {
            let target = source
                .parent()
                .expect("a file's directory")
                .join(&capture[1]);
            let target = target
                .canonicalize()
                .unwrap_or_else(|error| panic!("{}: {}: {error}", source.display(), &capture[1]));
            let relative = target
                .strip_prefix(root.canonicalize().expect("the repository"))
                .unwrap_or_else(|_| {
                    panic!("{} embeds a file outside the repository", source.display())
                })
                .to_path_buf();
            embedded.insert(relative);
        }
    }
    embedded
}

#[test]
fn the_image_build_context_holds_everything_the_build_reads() {
    let copied = dockerfile_build_copies();
    let admitted = docker_context_entries();
    assert_eq!(
        copied, admitted,
        "the Dockerfile's build stage copies exactly what .dockerignore admits"
    );
    // The workspace's members and the manifest's benches must be there for cargo to read the
    // manifest at all.
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "crates",
        "src",
        "benches",
    ] {
        assert!(copied.contains(needed), "the image build needs {needed}");
    }
    let embedded = embedded_files();
    assert!(
        embedded.contains(Path::new("openapi.yaml"))
            && embedded.contains(Path::new("asyncapi.yaml")),
        "the specs are embedded: {embedded:?}"
    );
    for file in &embedded {
        let top = file
            .components()
            .next()
            .and_then(|component| component.as_os_str().to_str())
            .unwrap_or_default();
        assert!(
            copied.contains(top),
            "the server embeds {} but the image build does not copy {top}",
            file.display()
        );
    }
}
