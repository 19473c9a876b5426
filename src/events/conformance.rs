//! The behaviour every [`EventBus`] must show on the node that publishes, written against the
//! trait only.
//!
//! Each check builds a fresh [`Hub`], has the implementation wire a fresh bus to it, attaches
//! connections to the hub as sessions do, publishes through the bus and reads what the
//! connections' outboxes receive. An implementation runs the whole suite with
//! `event_bus_conformance_tests!(path_to_async_fn_taking_an_Arc_Hub_returning_a_fresh_Arc_dyn_EventBus)`
//! in its test module, so the local and the Redis buses are held to the same deliveries.
//!
//! Delivery may be asynchronous (through Redis it is: the bus reads its own messages back), so
//! every check waits for what must arrive with a deadline, and proves that something did *not*
//! arrive by publishing a marker afterwards that the same connection does receive: delivery is
//! in publishing order, so once the marker is there, anything published before it would have
//! been there first. No fixed sleep, no timing assertion.
//!
//! What takes two nodes (an event crossing from one to another, one order on every node) or a
//! broken Redis stays in the Redis bus's own tests; what a hub does on its own (outbox overflow,
//! replaced connections) stays in the hub's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use petstore_api::{NotRecovered, StreamPosition};

use super::{
    Audience, ConnectionId, Event, EventBus, Hub, Notification, Outbox, OutboxReceiver, Resume,
    TextFrame, Topic,
};

/// Generates one `#[tokio::test]` per check below, each on a fresh hub and a fresh bus from
/// `$fresh` delivering to it.
macro_rules! event_bus_conformance_tests {
    ($fresh:path) => {
        $crate::events::conformance::event_bus_conformance_tests!(@each $fresh;
            a_notification_reaches_every_subscriber_of_its_topics,
            notifications_arrive_in_publishing_order,
            subscribers_of_other_topics_get_nothing,
            a_connection_following_two_topics_of_one_event_gets_it_once,
            an_unsubscribed_topic_delivers_nothing_more,
            user_notifications_reach_every_connection_of_that_owner_only,
            has_subscribers_never_answers_false_when_someone_follows,
            publishing_with_nobody_subscribed_is_fine,
            the_frame_arrives_byte_for_byte,
            events_are_numbered_in_each_topic,
            a_resumed_subscription_gets_what_it_missed_then_live_ones_once,
            a_position_from_another_history_is_not_recovered,
            an_older_version_of_an_entity_is_not_published,
        );
        $crate::events::conformance::event_bus_conformance_tests!(@concurrent $fresh;
            concurrent_publishers_are_each_delivered_once_in_their_own_order,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let hub = ::std::sync::Arc::new($crate::events::Hub::new());
                let bus = $fresh(::std::sync::Arc::clone(&hub)).await;
                $crate::events::conformance::$check(bus, hub).await;
            }
        )*
    };
    (@concurrent $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let hub = ::std::sync::Arc::new($crate::events::Hub::new());
                let bus = $fresh(::std::sync::Arc::clone(&hub)).await;
                $crate::events::conformance::$check(bus, hub).await;
            }
        )*
    };
}

pub(crate) use event_bus_conformance_tests;

type B = Arc<dyn EventBus>;

/// Hang guard for what must arrive; never a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

/// Room for every frame a check sends to one connection, so no outbox overflows.
const OUTBOX: usize = 256;

/// A connection attached to `hub` as a session attaches it, following `topics`.
fn follow(hub: &Hub, topics: &[Topic]) -> (ConnectionId, OutboxReceiver) {
    let id = hub.next_connection_id();
    let (outbox, receiver) = Outbox::new(OUTBOX);
    hub.attach(id, outbox);
    for topic in topics {
        assert!(hub.subscribe(id, topic.clone()), "subscribes to {topic}");
    }
    (id, receiver)
}

/// A connection signed in as `owner`, following nothing.
fn signed_in(hub: &Hub, owner: &str) -> (ConnectionId, OutboxReceiver) {
    let (id, receiver) = follow(hub, &[]);
    assert!(hub.set_owner(id, Some(owner.to_owned())));
    (id, receiver)
}

fn pet_created(id: i64) -> Notification {
    Notification::new(
        Event::PetCreated,
        Audience::Topics(vec![Topic::Pets, Topic::Pet(id)]),
        Bytes::from(format!(r#"{{"id":{id},"name":"Rex","photoUrls":[]}}"#)),
    )
}

fn to_topic(topic: Topic) -> Notification {
    Notification::new(
        Event::PetUpdated,
        Audience::Topics(vec![topic]),
        Bytes::from_static(br#"{"marker":true}"#),
    )
}

fn to_user(owner: &str) -> Notification {
    Notification::new(
        Event::UserUpdated,
        Audience::User(owner.to_owned()),
        Bytes::from(format!(r#"{{"username":"{owner}"}}"#)),
    )
}

/// The next frame a connection receives, without the placing the bus added (`epoch` and
/// `positions`, right before `payload`), so it compares with the frame of the notification as
/// it was published.
async fn next_frame(receiver: &OutboxReceiver) -> TextFrame {
    unplaced(&next_placed_frame(receiver).await)
}

/// The next frame a connection receives, as it is.
async fn next_placed_frame(receiver: &OutboxReceiver) -> TextFrame {
    tokio::time::timeout(GUARD, receiver.recv())
        .await
        .expect("a frame arrives in time")
        .expect("the outbox is open")
}

pub(crate) fn unplaced(frame: &TextFrame) -> TextFrame {
    let text = std::str::from_utf8(frame).expect("frames are UTF-8");
    let (Some(start), Some(end)) = (text.find(r#","epoch":""#), text.find(r#","payload":"#)) else {
        return frame.clone();
    };
    TextFrame::from(format!("{}{}", &text[..start], &text[end..]))
}

/// The `positions` of a placed frame, and its epoch.
fn positions(frame: &TextFrame) -> (String, HashMap<String, u64>) {
    let value: serde_json::Value = serde_json::from_slice(frame).expect("JSON");
    let epoch = value["epoch"].as_str().expect("an epoch").to_owned();
    let positions = serde_json::from_value(value["positions"].clone()).expect("positions");
    (epoch, positions)
}

/// Publishes `marker` (which `receiver`'s connection must be in the audience of) and asserts
/// that it is the next frame there: nothing published earlier is still on its way.
async fn assert_next_is(bus: &B, receiver: &OutboxReceiver, marker: Notification) {
    let expected = marker.frame();
    bus.publish(marker).await;
    assert_eq!(
        next_frame(receiver).await,
        expected,
        "the marker, and nothing before it"
    );
    assert!(receiver.is_empty(), "nothing after the marker either");
}

pub(crate) async fn a_notification_reaches_every_subscriber_of_its_topics(bus: B, hub: Arc<Hub>) {
    let (_, all_pets) = follow(&hub, &[Topic::Pets]);
    let (_, also_all_pets) = follow(&hub, &[Topic::Pets]);
    let (_, pet_5) = follow(&hub, &[Topic::Pet(5)]);

    let notification = pet_created(5);
    let frame = notification.frame();
    bus.publish(notification).await;
    for receiver in [&all_pets, &also_all_pets, &pet_5] {
        assert_eq!(next_frame(receiver).await, frame);
    }
}

pub(crate) async fn notifications_arrive_in_publishing_order(bus: B, hub: Arc<Hub>) {
    let (_, receiver) = follow(&hub, &[Topic::Pets]);
    let mut sent = Vec::new();
    for id in 1..=50 {
        let notification = pet_created(id);
        sent.push(notification.frame());
        bus.publish(notification).await;
    }
    let mut received = Vec::new();
    for _ in 0..sent.len() {
        received.push(next_frame(&receiver).await);
    }
    assert_eq!(received, sent);
}

pub(crate) async fn subscribers_of_other_topics_get_nothing(bus: B, hub: Arc<Hub>) {
    let (_, other_pet) = follow(&hub, &[Topic::Pet(6)]);
    let (_, orders) = follow(&hub, &[Topic::Orders, Topic::Order(5)]);
    let (_, inventory) = follow(&hub, &[Topic::Inventory]);
    let (_, pets) = follow(&hub, &[Topic::Pets]);

    let notification = pet_created(5);
    let frame = notification.frame();
    bus.publish(notification).await;
    assert_eq!(next_frame(&pets).await, frame, "the audience receives it");
    assert_next_is(&bus, &other_pet, to_topic(Topic::Pet(6))).await;
    assert_next_is(&bus, &orders, to_topic(Topic::Orders)).await;
    assert_next_is(&bus, &inventory, to_topic(Topic::Inventory)).await;
}

pub(crate) async fn a_connection_following_two_topics_of_one_event_gets_it_once(
    bus: B,
    hub: Arc<Hub>,
) {
    let (_, receiver) = follow(&hub, &[Topic::Pets, Topic::Pet(5)]);

    let notification = pet_created(5);
    let frame = notification.frame();
    bus.publish(notification).await;
    assert_eq!(next_frame(&receiver).await, frame);
    assert_next_is(&bus, &receiver, to_topic(Topic::Pets)).await;
}

pub(crate) async fn an_unsubscribed_topic_delivers_nothing_more(bus: B, hub: Arc<Hub>) {
    let (id, receiver) = follow(&hub, &[Topic::Pets, Topic::Pet(5)]);
    assert!(hub.unsubscribe(id, &Topic::Pets));

    bus.publish(pet_created(6)).await;
    assert_next_is(&bus, &receiver, to_topic(Topic::Pet(5))).await;
}

pub(crate) async fn user_notifications_reach_every_connection_of_that_owner_only(
    bus: B,
    hub: Arc<Hub>,
) {
    let (_, alice_here) = signed_in(&hub, "alice");
    let (alice_there_id, alice_there) = signed_in(&hub, "alice");
    assert!(hub.subscribe(alice_there_id, Topic::Pets));
    let (_, bob) = signed_in(&hub, "bob");
    let (_, anonymous) = follow(&hub, &[Topic::Pets]);

    let notification = to_user("alice");
    let frame = notification.frame();
    bus.publish(notification).await;
    assert_eq!(next_frame(&alice_here).await, frame);
    assert_eq!(next_frame(&alice_there).await, frame);
    assert_next_is(&bus, &bob, to_user("bob")).await;
    assert_next_is(&bus, &anonymous, to_topic(Topic::Pets)).await;
}

/// The answer may be `true` with nobody listening (a bus that cannot tell), never `false`
/// with someone listening: that would drop the event for them.
pub(crate) async fn has_subscribers_never_answers_false_when_someone_follows(
    bus: B,
    hub: Arc<Hub>,
) {
    let topics = [
        Topic::Pets,
        Topic::Pet(5),
        Topic::Orders,
        Topic::Order(7),
        Topic::Inventory,
    ];
    let mut held = Vec::new();
    for topic in &topics {
        held.push(follow(&hub, std::slice::from_ref(topic)));
        assert!(
            bus.has_subscribers(topic),
            "{topic} right after subscribing"
        );
    }
    for topic in &topics {
        assert!(bus.has_subscribers(topic), "{topic} while followed");
    }
    // One follower left of a topic two connections followed.
    let (second, _receiver) = follow(&hub, &[Topic::Pets]);
    assert!(hub.unsubscribe(second, &Topic::Pets));
    assert!(bus.has_subscribers(&Topic::Pets));
}

pub(crate) async fn publishing_with_nobody_subscribed_is_fine(bus: B, hub: Arc<Hub>) {
    for id in 1..=5 {
        tokio::time::timeout(GUARD, bus.publish(pet_created(id)))
            .await
            .expect("publishing to nobody returns");
    }
    tokio::time::timeout(GUARD, bus.publish(to_user("nobody")))
        .await
        .expect("publishing to an owner without connections returns");

    // The bus still delivers: once a witness on another topic has its marker, everything
    // published before has been handled, so a new follower of `pets` gets only what follows.
    let (_, witness) = follow(&hub, &[Topic::Inventory]);
    assert_next_is(&bus, &witness, to_topic(Topic::Inventory)).await;
    let (_, late) = follow(&hub, &[Topic::Pets]);
    let notification = pet_created(9);
    let frame = notification.frame();
    bus.publish(notification).await;
    assert_eq!(next_frame(&late).await, frame);
    assert!(late.is_empty());
}

/// The envelope (id, time, event) and the payload reach the subscriber exactly as they were
/// published, whatever the payload holds: a bus between nodes must not re-render it.
pub(crate) async fn the_frame_arrives_byte_for_byte(bus: B, hub: Arc<Hub>) {
    let (_, receiver) = follow(&hub, &[Topic::Pet(5)]);
    let payloads: [&'static [u8]; 4] = [
        br#"{"name":"R\u00e9x \"the\" dog","tags":[{"name":"\u2603"}],"b":1,"a":2}"#,
        "{\"name\":\"Réx ☃ 🐕\",\"note\":\"line\\nbreak\"}".as_bytes(),
        b"  [1, 2.50, null, true]  ",
        b"",
    ];
    for (n, payload) in payloads.into_iter().enumerate() {
        let notification = Notification::from_parts(
            Uuid::new_v4(),
            Event::PetUpdated,
            1_700_000_000_123 + i64::try_from(n).unwrap_or_default(),
            Audience::Topics(vec![Topic::Pet(5)]),
            Bytes::from_static(payload),
        );
        let frame = notification.frame();
        bus.publish(notification).await;
        assert_eq!(
            next_frame(&receiver).await,
            frame,
            "payload {:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

pub(crate) async fn concurrent_publishers_are_each_delivered_once_in_their_own_order(
    bus: B,
    hub: Arc<Hub>,
) {
    const TASKS: usize = 4;
    const EACH: usize = 25;
    let (_, receiver) = follow(&hub, &[Topic::Pets]);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let bus = Arc::clone(&bus);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let mut sent = Vec::new();
                for _ in 0..EACH {
                    let notification = to_topic(Topic::Pets);
                    sent.push(notification.frame());
                    bus.publish(notification).await;
                }
                sent
            })
        })
        .collect();
    // Which publisher sent each frame, and at which position.
    let mut origin = HashMap::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        let sent = handle.await.expect("the publishing task finishes");
        for (position, frame) in sent.into_iter().enumerate() {
            origin.insert(frame, (task, position));
        }
    }
    assert_eq!(origin.len(), TASKS * EACH, "every frame is distinct");

    let mut seen = HashSet::new();
    let mut next_of = [0; TASKS];
    for _ in 0..TASKS * EACH {
        let frame = next_frame(&receiver).await;
        let (task, position) = *origin.get(&frame).expect("a frame that was published");
        assert!(seen.insert(frame), "delivered once");
        assert_eq!(position, next_of[task], "publisher {task} in its own order");
        next_of[task] += 1;
    }
    assert!(receiver.is_empty());
}

pub(crate) async fn events_are_numbered_in_each_topic(bus: B, hub: Arc<Hub>) {
    let (_, pets) = follow(&hub, &[Topic::Pets]);
    // A bus shared with earlier events (Redis under a fresh prefix starts at 1 too) numbers from
    // where the topic stands; the differences are what matter.
    for id in [1, 1, 2, 1] {
        bus.publish(pet_created(id)).await;
    }
    let mut frames = Vec::new();
    for _ in 0..4 {
        frames.push(positions(&next_placed_frame(&pets).await));
    }
    let epoch = &frames[0].0;
    assert!(frames.iter().all(|(other, _)| other == epoch), "one epoch");
    let of = |index: usize, topic: &str| frames[index].1.get(topic).copied();
    let first = of(0, "pets").expect("a pets offset");
    assert_eq!(
        [of(1, "pets"), of(2, "pets"), of(3, "pets")],
        [Some(first + 1), Some(first + 2), Some(first + 3)]
    );
    let pet_1 = of(0, "pet:1").expect("a pet:1 offset");
    assert_eq!(
        [of(1, "pet:1"), of(3, "pet:1")],
        [Some(pet_1 + 1), Some(pet_1 + 2)]
    );
    assert_eq!(of(2, "pet:2"), Some(1));
    assert_eq!(
        of(2, "pet:1"),
        None,
        "an event has positions only in its own topics"
    );
}

/// A session that saw the first of five events resumes: the other four are replayed, the ones
/// published afterwards arrive live, each once.
pub(crate) async fn a_resumed_subscription_gets_what_it_missed_then_live_ones_once(
    bus: B,
    hub: Arc<Hub>,
) {
    let (_, watcher) = follow(&hub, &[Topic::Pet(7)]);
    for _ in 0..5 {
        bus.publish(pet_created(7)).await;
    }
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(positions(&next_placed_frame(&watcher).await));
    }
    let (epoch, first) = (&seen[0].0, seen[0].1["pet:7"]);

    let id = hub.next_connection_id();
    let (outbox, resumed) = Outbox::new(OUTBOX);
    hub.attach(id, outbox);
    let since = StreamPosition {
        topic: Topic::Pet(7),
        offset: first,
        epoch: epoch.clone(),
    };
    let horizon = hub
        .subscribe_from(
            id,
            [(Topic::Pet(7), Some((Arc::from(epoch.as_str()), first)))],
        )
        .expect("attached");
    let resume = Resume {
        topic: Topic::Pet(7),
        since: Some(since),
    };
    let recovered = bus.recover(&[resume], horizon).await.expect("recovers");
    let position = &recovered[0].position;
    assert_eq!(position.recovered, Some(true));
    assert_eq!(position.replayed, Some(4));
    assert_eq!(position.offset, first + 4);
    let replayed: Vec<u64> = recovered[0]
        .replay
        .iter()
        .map(|event| event.offset_in(&Topic::Pet(7)).expect("placed"))
        .collect();
    assert_eq!(replayed, [first + 1, first + 2, first + 3, first + 4]);

    bus.publish(pet_created(7)).await;
    let (_, live) = positions(&next_placed_frame(&resumed).await);
    assert_eq!(
        live["pet:7"],
        first + 5,
        "the next live event, nothing replayed twice"
    );
    assert!(resumed.is_empty());
}

pub(crate) async fn a_position_from_another_history_is_not_recovered(bus: B, hub: Arc<Hub>) {
    bus.publish(pet_created(8)).await;
    let id = hub.next_connection_id();
    let (outbox, _receiver) = Outbox::new(OUTBOX);
    hub.attach(id, outbox);
    let horizon = hub
        .subscribe_from(id, [(Topic::Pet(8), None)])
        .expect("attached");
    let resume = Resume {
        topic: Topic::Pet(8),
        since: Some(StreamPosition {
            topic: Topic::Pet(8),
            offset: 1,
            epoch: "a-history-that-is-gone".to_owned(),
        }),
    };
    let recovered = bus.recover(&[resume], horizon).await.expect("answers");
    assert_eq!(recovered[0].position.recovered, Some(false));
    assert_eq!(
        recovered[0].position.reason,
        Some(NotRecovered::EpochChanged)
    );
    assert!(recovered[0].replay.is_empty());
}

pub(crate) async fn an_older_version_of_an_entity_is_not_published(bus: B, hub: Arc<Hub>) {
    let (_, receiver) = follow(&hub, &[Topic::Pet(9)]);
    let versioned = |marker: &str, version| {
        Notification::new(
            Event::PetUpdated,
            Audience::Topics(vec![Topic::Pet(9)]),
            Bytes::from(format!(r#"{{"marker":"{marker}"}}"#)),
        )
        .versioned("pet:9", version)
    };
    let newer = versioned("v2", 2);
    let expected = newer.frame();
    bus.publish(newer).await;
    assert_eq!(next_frame(&receiver).await, expected);
    // Overtaken on its way: the subscriber already has version 2.
    bus.publish(versioned("v1", 1)).await;
    bus.publish(versioned("v2 again", 2)).await;
    assert_next_is(&bus, &receiver, versioned("v3", 3)).await;
}
