//! Each topic's recent events, numbered, so a client that reconnects can be sent what it missed.
//!
//! A bus places every event it publishes ([`Stamp`]): a bus-wide sequence number, and in each
//! topic of its audience the next offset (1, 2, 3, …) under the history's epoch. It keeps the
//! last events of every topic, bounded by count and age ([`HistorySettings`]): [`LocalHistory`]
//! in memory for a single node, Redis Streams for a cluster (`redis_bus`).
//!
//! # Recovery without gap or duplicate
//!
//! A session that subscribes with positions is registered in the [`Hub`](super::Hub) first,
//! which answers its *horizon*: the sequence number of the last event the hub delivered. From
//! then on the hub delivers it every later event, except those at or before the client's own
//! position in a topic (the hub's per-connection floor: the client saw them, maybe through
//! another node that was ahead). The bus then replays, per topic, the events after the client's
//! position up to the horizon: exactly the ones the hub will not deliver. [`decide`] is that
//! choice, shared by both buses.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use petstore_api::{NotRecovered, StreamPosition, TopicPosition};

use super::{Audience, Notification, Stamp, Topic};

/// How much history each topic keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySettings {
    /// Events kept per topic.
    pub length: usize,
    /// Events older than this are not replayed.
    pub max_age: Duration,
    /// Events kept in the bus-wide log a node fills gaps in its live feed from (Redis only).
    pub log_length: usize,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            length: 1_000,
            max_age: Duration::from_secs(600),
            log_length: 10_000,
        }
    }
}

/// One topic of a `subscribe`, and where the client wants to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The topic.
    pub topic: Topic,
    /// The last position the client saw, if it gave one.
    pub since: Option<StreamPosition>,
}

/// What the bus answers for one topic: its position for the session, and the events to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecovery {
    /// Where the session stands once the replay is sent (the `subscribe` answer).
    pub position: TopicPosition,
    /// The events to send before live ones, in order.
    pub replay: Vec<Notification>,
}

/// Why a recovery was refused or could not be attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// The client claims a position the topic has not reached: not one the server gave out.
    #[error(
        "`since`: offset {offset} of topic {topic} is ahead of the topic's latest event ({latest})"
    )]
    Ahead {
        /// The topic.
        topic: Topic,
        /// The offset the client gave.
        offset: u64,
        /// The topic's latest offset.
        latest: u64,
    },
    /// The history could not be read (Redis unreachable).
    #[error("the event history is unavailable: {0}")]
    Unavailable(String),
}

/// What a bus knows about one topic when a session subscribes to it.
pub(super) struct TopicState<'a> {
    /// The history's epoch now.
    pub epoch: &'a str,
    /// The topic's latest offset, delivered or not.
    pub latest: u64,
    /// The offset of its last event at or before the horizon (what the session has been
    /// "delivered" by being registered).
    pub at_horizon: u64,
    /// The kept events after the client's position, up to the horizon, oldest first.
    pub kept: Vec<Notification>,
}

/// Decides one topic's recovery; see the module documentation.
pub(super) fn decide(
    resume: &Resume,
    state: TopicState<'_>,
    now_ms: i64,
    max_age: Duration,
) -> Result<TopicRecovery, RecoverError> {
    let TopicState {
        epoch,
        latest,
        at_horizon,
        kept,
    } = state;
    let position = |offset: u64| TopicPosition {
        topic: resume.topic.clone(),
        offset,
        epoch: epoch.to_owned(),
        recovered: None,
        replayed: None,
        reason: None,
    };
    let Some(since) = &resume.since else {
        return Ok(TopicRecovery {
            position: position(at_horizon),
            replay: Vec::new(),
        });
    };
    let refused = |reason| TopicRecovery {
        position: TopicPosition {
            recovered: Some(false),
            reason: Some(reason),
            ..position(at_horizon)
        },
        replay: Vec::new(),
    };
    if since.epoch != epoch {
        return Ok(refused(NotRecovered::EpochChanged));
    }
    if since.offset > latest {
        return Err(RecoverError::Ahead {
            topic: resume.topic.clone(),
            offset: since.offset,
            latest,
        });
    }
    if since.offset >= at_horizon {
        // Nothing delivered here that the client has not seen; what it saw beyond the horizon
        // (through a node that was ahead) the hub's floor keeps from it.
        return Ok(TopicRecovery {
            position: TopicPosition {
                recovered: Some(true),
                replayed: Some(0),
                ..position(since.offset)
            },
            replay: Vec::new(),
        });
    }
    let wanted = at_horizon - since.offset;
    let oldest_allowed = oldest_allowed(now_ms, max_age);
    let complete = kept.len() as u64 == wanted
        && kept
            .first()
            .and_then(|first| first.offset_in(&resume.topic))
            == Some(since.offset + 1)
        && kept
            .first()
            .is_some_and(|first| first.timestamp_ms() >= oldest_allowed);
    if !complete {
        return Ok(refused(NotRecovered::TooOld));
    }
    Ok(TopicRecovery {
        position: TopicPosition {
            recovered: Some(true),
            replayed: Some(wanted),
            ..position(at_horizon)
        },
        replay: kept,
    })
}

/// The history of a single node: every topic's last events in memory, and the numbering.
///
/// The epoch is made when the node starts, so a client's position from before a restart is
/// recognized as from a history that is gone.
pub struct LocalHistory {
    settings: HistorySettings,
    epoch: Arc<str>,
    seq: u64,
    /// Every topic's latest offset (kept after its events expire, so offsets never repeat).
    latest: HashMap<Topic, u64>,
    /// The kept events of topics that have some, oldest first.
    kept: HashMap<Topic, VecDeque<Notification>>,
    /// The last version published per entity. One entry per entity ever written (kept after a
    /// deletion, so a late update cannot follow it): a few dozen bytes each, like the Redis
    /// bus's `{prefix}:events:versions` hash.
    published: HashMap<String, u64>,
    /// Publishes since the last sweep of expired events.
    since_sweep: u32,
}

/// Publishes between two sweeps of every topic for expired events.
const SWEEP_EVERY: u32 = 1_024;

impl LocalHistory {
    /// An empty history under a fresh epoch.
    #[must_use]
    pub fn new(settings: HistorySettings) -> Self {
        Self {
            settings,
            epoch: Arc::from(uuid::Uuid::new_v4().simple().to_string()),
            seq: 0,
            latest: HashMap::new(),
            kept: HashMap::new(),
            published: HashMap::new(),
            since_sweep: 0,
        }
    }

    /// The epoch of this history.
    #[must_use]
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    /// Places `notification` and keeps it; `None` if it reports an entity version older than
    /// one already published (see [`super::EntityVersion`]): it is superseded and not published.
    pub fn place(&mut self, notification: Notification) -> Option<Notification> {
        if let Some(version) = notification.version() {
            match self.published.get_mut(&version.entity) {
                Some(last) if version.version <= *last => return None,
                Some(last) => *last = version.version,
                None => {
                    self.published
                        .insert(version.entity.clone(), version.version);
                }
            }
        }
        self.seq += 1;
        let offsets = match notification.audience() {
            Audience::Topics(topics) => topics
                .iter()
                .map(|topic| {
                    let latest = self.latest.entry(topic.clone()).or_default();
                    *latest += 1;
                    *latest
                })
                .collect(),
            Audience::User(_) => Vec::new(),
        };
        let placed = notification.stamped(Stamp {
            seq: self.seq,
            epoch: Arc::clone(&self.epoch),
            offsets,
        });
        if let Audience::Topics(topics) = placed.audience() {
            let now = placed.timestamp_ms();
            for topic in topics {
                let kept = self.kept.entry(topic.clone()).or_default();
                kept.push_back(placed.clone());
                while kept.len() > self.settings.length {
                    kept.pop_front();
                }
                expire(kept, now, self.settings.max_age);
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.sweep(placed.timestamp_ms());
        }
        Some(placed)
    }

    /// Drops every topic's expired events, and the topics left without any.
    fn sweep(&mut self, now_ms: i64) {
        let max_age = self.settings.max_age;
        self.kept.retain(|_, kept| {
            expire(kept, now_ms, max_age);
            !kept.is_empty()
        });
    }

    /// Each topic's recovery for a session registered at `horizon`.
    ///
    /// # Errors
    /// [`RecoverError::Ahead`] for a position the topic has not reached.
    pub fn recover(
        &self,
        resumes: &[Resume],
        horizon: u64,
        now_ms: i64,
    ) -> Result<Vec<TopicRecovery>, RecoverError> {
        resumes
            .iter()
            .map(|resume| {
                let latest = self.latest.get(&resume.topic).copied().unwrap_or(0);
                let kept = self.kept.get(&resume.topic);
                let after_horizon = kept.map_or(0, |kept| {
                    kept.iter()
                        .rev()
                        .take_while(|event| event.seq() > horizon)
                        .count()
                }) as u64;
                let at_horizon = latest.saturating_sub(after_horizon);
                let since = resume.since.as_ref().map_or(0, |since| since.offset);
                let replay = kept
                    .map(|kept| {
                        kept.iter()
                            .filter(|event| {
                                event.seq() <= horizon
                                    && event.offset_in(&resume.topic).unwrap_or(0) > since
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                decide(
                    resume,
                    TopicState {
                        epoch: &self.epoch,
                        latest,
                        at_horizon,
                        kept: replay,
                    },
                    now_ms,
                    self.settings.max_age,
                )
            })
            .collect()
    }
}

/// The time (ms since the Unix epoch) of the oldest event still kept at `now_ms`.
fn oldest_allowed(now_ms: i64, max_age: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX))
}

/// Drops the events older than `max_age` from the front of a topic's history.
fn expire(kept: &mut VecDeque<Notification>, now_ms: i64, max_age: Duration) {
    let oldest_allowed = oldest_allowed(now_ms, max_age);
    while kept
        .front()
        .is_some_and(|event| event.timestamp_ms() < oldest_allowed)
    {
        kept.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use uuid::Uuid;

    use super::*;
    use crate::events::Event;

    fn pet_event(id: i64, at_ms: i64) -> Notification {
        Notification::from_parts(
            Uuid::new_v4(),
            Event::PetUpdated,
            at_ms,
            Audience::Topics(vec![Topic::Pets, Topic::Pet(id)]),
            Bytes::from(format!(r#"{{"id":{id}}}"#)),
        )
    }

    fn resume(topic: Topic, offset: u64, epoch: &str) -> Resume {
        Resume {
            topic: topic.clone(),
            since: Some(StreamPosition {
                topic,
                offset,
                epoch: epoch.to_owned(),
            }),
        }
    }

    fn history(length: usize) -> LocalHistory {
        LocalHistory::new(HistorySettings {
            length,
            max_age: Duration::from_secs(600),
            log_length: 0,
        })
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn offsets_count_each_topic_and_the_sequence_counts_every_event() {
        let mut history = history(10);
        let first = history.place(pet_event(1, NOW)).expect("placed");
        let second = history.place(pet_event(2, NOW)).expect("placed");
        let third = history.place(pet_event(1, NOW)).expect("placed");
        assert_eq!((first.seq(), second.seq(), third.seq()), (1, 2, 3));
        assert_eq!(third.offset_in(&Topic::Pets), Some(3));
        assert_eq!(third.offset_in(&Topic::Pet(1)), Some(2));
        assert_eq!(second.offset_in(&Topic::Pet(2)), Some(1));
    }

    #[test]
    fn an_older_version_of_an_entity_is_superseded() {
        let mut history = history(10);
        assert!(
            history
                .place(pet_event(1, NOW).versioned("pet:1", 5))
                .is_some()
        );
        assert!(
            history
                .place(pet_event(1, NOW).versioned("pet:1", 4))
                .is_none()
        );
        assert!(
            history
                .place(pet_event(1, NOW).versioned("pet:1", 5))
                .is_none()
        );
        assert!(
            history
                .place(pet_event(1, NOW).versioned("pet:1", 6))
                .is_some()
        );
        // Another entity has its own versions.
        assert!(
            history
                .place(pet_event(2, NOW).versioned("pet:2", 1))
                .is_some()
        );
        assert_eq!(history.latest.get(&Topic::Pets), Some(&3));
    }

    #[test]
    fn the_events_after_a_position_are_replayed_in_order() {
        let mut history = history(10);
        for _ in 0..5 {
            history.place(pet_event(1, NOW));
        }
        let epoch = history.epoch().to_string();
        let recovered = history
            .recover(&[resume(Topic::Pet(1), 2, &epoch)], 5, NOW)
            .expect("recovers");
        let recovery = &recovered[0];
        assert_eq!(recovery.position.recovered, Some(true));
        assert_eq!(recovery.position.replayed, Some(3));
        assert_eq!(recovery.position.offset, 5);
        let offsets: Vec<_> = recovery
            .replay
            .iter()
            .map(|event| event.offset_in(&Topic::Pet(1)))
            .collect();
        assert_eq!(offsets, [Some(3), Some(4), Some(5)]);
    }

    #[test]
    fn events_after_the_horizon_are_left_to_live_delivery() {
        let mut history = history(10);
        for _ in 0..5 {
            history.place(pet_event(1, NOW));
        }
        let epoch = history.epoch().to_string();
        let recovered = history
            .recover(&[resume(Topic::Pets, 1, &epoch)], 3, NOW)
            .expect("recovers");
        assert_eq!(recovered[0].position.offset, 3);
        assert_eq!(recovered[0].replay.len(), 2);
    }

    #[test]
    fn a_lost_history_or_a_trimmed_one_is_said_so() {
        let mut history = history(3);
        for _ in 0..6 {
            history.place(pet_event(1, NOW));
        }
        let epoch = history.epoch().to_string();
        let recovered = history
            .recover(
                &[
                    resume(Topic::Pets, 1, &epoch),
                    resume(Topic::Pet(1), 1, "another"),
                    resume(Topic::Pet(1), 3, &epoch),
                ],
                6,
                NOW,
            )
            .expect("answers");
        assert_eq!(recovered[0].position.reason, Some(NotRecovered::TooOld));
        assert_eq!(recovered[0].position.offset, 6);
        assert_eq!(
            recovered[1].position.reason,
            Some(NotRecovered::EpochChanged)
        );
        assert_eq!(recovered[2].position.replayed, Some(3));
    }

    #[test]
    fn events_older_than_the_age_limit_are_not_replayed() {
        let mut history = history(10);
        history.place(pet_event(1, NOW - 700_000));
        history.place(pet_event(1, NOW));
        let epoch = history.epoch().to_string();
        let recovered = history
            .recover(&[resume(Topic::Pets, 0, &epoch)], 2, NOW)
            .expect("answers");
        assert_eq!(recovered[0].position.reason, Some(NotRecovered::TooOld));
    }

    #[test]
    fn a_position_ahead_of_the_topic_is_refused_and_one_at_it_replays_nothing() {
        let mut history = history(10);
        history.place(pet_event(1, NOW));
        let epoch = history.epoch().to_string();
        let error = history
            .recover(&[resume(Topic::Pets, 9, &epoch)], 1, NOW)
            .expect_err("ahead");
        assert!(error.to_string().contains("ahead"), "{error}");
        let recovered = history
            .recover(&[resume(Topic::Pets, 1, &epoch)], 1, NOW)
            .expect("answers");
        assert_eq!(recovered[0].position.replayed, Some(0));
        // A topic without events stands at 0.
        let fresh = history
            .recover(
                &[Resume {
                    topic: Topic::Inventory,
                    since: None,
                }],
                1,
                NOW,
            )
            .expect("answers");
        assert_eq!(fresh[0].position.offset, 0);
        assert_eq!(fresh[0].position.recovered, None);
    }
}
