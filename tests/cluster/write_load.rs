//! A write load for the replication tests: writers creating pets through the nodes in turn,
//! recording every answer with when it was sent and how long it took, so a test can tell what
//! was acknowledged, what was refused, how fast, and when writes came back.
//!
//! The writers stop when told, and in any case after [`LOAD_LIMIT`].

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use petstore_testkit::{app::new_pet, cluster::guard};
use serde_json::Value;

/// A load stops by itself after this long, whatever the test does.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// One request of the load.
#[derive(Debug, Clone)]
pub struct Record {
    /// Index of the node it went to.
    pub node: usize,
    /// When it was sent.
    pub sent: Instant,
    /// How long until the answer (or the transport failure).
    pub latency: Duration,
    /// What came back.
    pub outcome: Outcome,
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the new pet: its id and name.
    Acknowledged(i64, String),
    /// Any other status.
    Refused(u16),
    /// No answer at all (a connection cut, the client's own timeout).
    Transport(String),
}

impl Record {
    /// When the answer arrived.
    pub fn answered(&self) -> Instant {
        self.sent + self.latency
    }
}

/// Writers creating pets through the given nodes in turn.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl WriteLoad {
    /// Starts `writers` writers over `base_urls`, each pausing `pause` between requests (so
    /// fast refusals do not turn into a busy loop).
    pub fn start(
        client: &reqwest::Client,
        base_urls: Vec<String>,
        writers: usize,
        pause: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let writers = (0..writers)
            .map(|writer| {
                let (client, base_urls) = (client.clone(), base_urls.clone());
                let (stop, records) = (stop.clone(), records.clone());
                tokio::spawn(async move {
                    let mut sent = 0usize;
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                        let name = format!("ha-{writer}-{sent}");
                        let node = (writer + sent) % base_urls.len();
                        let url = format!("{}/api/v3/pet", base_urls[node]);
                        sent += 1;
                        let at = Instant::now();
                        let outcome = match client.post(url).json(&new_pet(&name)).send().await {
                            Ok(response) if response.status() == 200 => {
                                match response.json::<Value>().await {
                                    Ok(pet) => match pet["id"].as_i64() {
                                        Some(id) => Outcome::Acknowledged(id, name),
                                        None => Outcome::Transport(format!("no id in {pet}")),
                                    },
                                    Err(error) => Outcome::Transport(error.to_string()),
                                }
                            }
                            Ok(response) => Outcome::Refused(response.status().as_u16()),
                            Err(error) => Outcome::Transport(error.to_string()),
                        };
                        records.lock().push(Record {
                            node,
                            sent: at,
                            latency: at.elapsed(),
                            outcome,
                        });
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            records,
            writers,
        }
    }

    /// The records so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().clone()
    }

    /// Acknowledged writes so far.
    pub fn acknowledged_count(&self) -> usize {
        self.records
            .lock()
            .iter()
            .filter(|record| matches!(record.outcome, Outcome::Acknowledged(..)))
            .count()
    }

    /// Stops the writers; returns every record.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for writer in self.writers {
            if let Err(error) = guard("a writer stopping", writer).await {
                panic!("a writer failed: {error}");
            }
        }
        self.records.lock().clone()
    }
}

/// The acknowledged pets of `records`: id → name.
pub fn acknowledged(records: &[Record]) -> BTreeMap<i64, String> {
    records
        .iter()
        .filter_map(|record| match &record.outcome {
            Outcome::Acknowledged(id, name) => Some((*id, name.clone())),
            _ => None,
        })
        .collect()
}

/// How many answers of each kind: `200`, `503`, …, and `transport`.
pub fn outcome_counts(records: &[Record]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        let key = match &record.outcome {
            Outcome::Acknowledged(..) => "200".to_owned(),
            Outcome::Refused(status) => status.to_string(),
            Outcome::Transport(_) => "transport".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}
