//! The Redis store against a real private `redis-server`: the behavioural suite every store
//! passes, then what only a shared, remote store can get wrong.

use std::{sync::Arc, time::Duration};

use fred::interfaces::{HashesInterface, KeysInterface};
use uuid::Uuid;

use super::RedisStore;
use crate::{
    redis::{BreakerSettings, Redis, RedisSettings},
    store::{Inventory, OrderUpdate, Store},
};
use petstore_api::models::{Order, OrderStatus, Pet, PetStatus};
use petstore_api::{
    ApiError,
    error::{Conflict, Failure, OneOf, ServerError},
};
use petstore_testkit::redis::{LocalRedis, Persistence};

/// Settings for the shared test server under a prefix of this test's own.
fn settings(url: String, prefix: &str) -> RedisSettings {
    let mut settings = RedisSettings::new(url);
    settings.prefix = prefix.to_owned();
    settings
}

fn unique_prefix() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

async fn connect(prefix: &str) -> Redis {
    Redis::connect(settings(LocalRedis::shared().url(), prefix))
        .await
        .expect("the shared test redis answers")
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(RedisStore::new(connect(&unique_prefix()).await))
}

crate::store::conformance::store_conformance_tests!(fresh);

fn available_pet(name: &str) -> Pet {
    Pet {
        id: None,
        name: name.to_owned(),
        category: None,
        photo_urls: Vec::new(),
        tags: None,
        status: Some(PetStatus::Available),
    }
}

fn order_for(pet_id: i64) -> Order {
    Order {
        id: None,
        pet_id,
        quantity: None,
        ship_date: None,
        status: None,
        complete: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_racing_for_one_pet_place_exactly_one_order() {
    const ROUNDS: usize = 50;
    const TASKS_PER_NODE: usize = 4;
    let prefix = unique_prefix();
    // Two nodes: two stores, each with its own connection pool, on one Redis and one prefix.
    let nodes = [
        Arc::new(RedisStore::new(connect(&prefix).await)),
        Arc::new(RedisStore::new(connect(&prefix).await)),
    ];
    for round in 0..ROUNDS {
        let pet_id = nodes[round % 2]
            .create_pet(available_pet("contested"))
            .await
            .unwrap()
            .value
            .id
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2 * TASKS_PER_NODE));
        let tasks: Vec<_> = (0..2 * TASKS_PER_NODE)
            .map(|task| {
                let node = Arc::clone(&nodes[task % 2]);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let owner = format!("customer-{task}");
                    (
                        owner.clone(),
                        node.place_order(order_for(pet_id), &owner).await,
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (owner, Ok(placed)) => winners.push((owner, placed.order.value.id.unwrap())),
                (_, Err(Failure::Refused(OneOf::Second(Conflict(_))))) => {}
                (_, Err(other)) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (owner, order_id) = &winners[0];
        // Both nodes see the same single order and the reserved pet.
        for node in &nodes {
            assert_eq!(
                node.order_owner(*order_id).await.unwrap().as_ref(),
                Some(owner)
            );
            let pet = node.get_pet(pet_id).await.unwrap().unwrap();
            assert_eq!(pet.value.status, Some(PetStatus::Pending));
        }
    }
    let pending = nodes[0]
        .find_pets_by_status(&[PetStatus::Pending])
        .await
        .unwrap();
    assert_eq!(pending.len(), ROUNDS);
}

#[tokio::test]
async fn order_steps_that_move_a_pet_report_the_inventory_they_left() {
    let store = fresh().await;
    let counts = |available, pending, sold| {
        Some(Inventory::from([
            (PetStatus::Available, available),
            (PetStatus::Pending, pending),
            (PetStatus::Sold, sold),
        ]))
    };
    let mut pets = Vec::new();
    for name in ["kept", "sold", "freed"] {
        let pet = store.create_pet(available_pet(name)).await.unwrap();
        pets.push(pet.value.id.unwrap());
    }

    let sold = store
        .place_order(order_for(pets[1]), "owner")
        .await
        .unwrap();
    assert_eq!(sold.inventory, counts(2, 1, 0), "placed: one pet reserved");
    let freed = store
        .place_order(order_for(pets[2]), "owner")
        .await
        .unwrap();
    assert_eq!(freed.inventory, counts(1, 2, 0));

    // Approving moves no pet: nothing counted.
    let sold_id = sold.order.value.id.unwrap();
    let approve = OrderUpdate {
        status: Some(OrderStatus::Approved),
        ..OrderUpdate::default()
    };
    let approved = store.update_order(sold_id, approve).await.unwrap();
    assert!(approved.pet.is_none());
    assert_eq!(approved.inventory, None);

    let deliver = OrderUpdate {
        status: Some(OrderStatus::Delivered),
        ..OrderUpdate::default()
    };
    let delivered = store.update_order(sold_id, deliver).await.unwrap();
    assert_eq!(
        delivered.inventory,
        counts(1, 1, 1),
        "delivered: the pet is sold"
    );

    let freed_id = freed.order.value.id.unwrap();
    let deleted = store.delete_order(freed_id, None).await.unwrap();
    assert_eq!(
        deleted.inventory,
        counts(2, 0, 1),
        "cancelled: the pet is free again"
    );
    // The counts are the store's: a read now agrees.
    assert_eq!(Some(store.inventory().await.unwrap()), deleted.inventory);
}

#[tokio::test]
async fn another_node_on_the_same_prefix_sees_the_data() {
    let prefix = unique_prefix();
    let first = RedisStore::new(connect(&prefix).await);
    let pet = first.create_pet(available_pet("shared")).await.unwrap();
    let id = pet.value.id.unwrap();
    let placed = first.place_order(order_for(id), "alice").await.unwrap();
    drop(first);

    let second = RedisStore::new(connect(&prefix).await);
    let read = second.get_pet(id).await.unwrap().unwrap();
    assert_eq!(read.value.status, Some(PetStatus::Pending));
    // The bytes are served as the writer rendered them.
    assert_eq!(
        Some(read.json.clone()),
        placed.pet.map(|pet| pet.json.clone())
    );
    let (order, owner) = second
        .get_order_with_owner(placed.order.value.id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order, placed.order);
    assert_eq!(owner, "alice");
    // The sequences are shared too: the next pet does not reuse the first one's id.
    let next = second.create_pet(available_pet("next")).await.unwrap();
    assert_eq!(next.value.id, Some(id + 1));

    // Another prefix is another store.
    let elsewhere = RedisStore::new(connect(&unique_prefix()).await);
    assert_eq!(elsewhere.get_pet(id).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_not_internal() {
    let mut server = LocalRedis::start(Persistence::AppendOnly).expect("redis-server starts");
    let mut settings = settings(server.url(), &unique_prefix());
    settings.command_timeout = Duration::from_millis(300);
    settings.read_retries = 0;
    settings.breaker = BreakerSettings {
        failure_threshold: 2,
        cool_down: Duration::from_secs(30),
    };
    let store = RedisStore::new(Redis::connect(settings).await.expect("connects"));
    let id = store
        .create_pet(available_pet("a"))
        .await
        .unwrap()
        .value
        .id
        .unwrap();
    server.kill();

    fn unavailable<R: Into<ApiError>>(result: Result<(), Failure<R>>) {
        let error = result.err().map(ApiError::from);
        assert!(
            matches!(error, Some(ApiError::Unavailable { .. })),
            "{error:?}"
        );
    }
    // Connection errors first, then the open breaker: both are outages.
    for _ in 0..3 {
        unavailable(store.get_pet(id).await.map(|_| ()));
    }
    unavailable(store.ping().await);
    unavailable(store.place_order(order_for(id), "alice").await.map(|_| ()));
    unavailable(store.find_pets_by_status(&PetStatus::ALL).await.map(|_| ()));
    unavailable(store.get_user("alice").await.map(|_| ()));
}

#[tokio::test]
async fn corrupt_records_are_internal_errors() {
    let prefix = unique_prefix();
    let redis = connect(&prefix).await;
    let store = RedisStore::new(redis.clone());
    let id = store
        .create_pet(available_pet("a"))
        .await
        .unwrap()
        .value
        .id
        .unwrap();
    let key = redis.key(format_args!("pet:{id}"));
    set_field(&redis, &key, "json", "{not json").await;

    assert!(matches!(
        store.get_pet(id).await,
        Err(Failure::Server(ServerError::Internal))
    ));
    assert!(matches!(
        store
            .update_pet_fields(id, None, Some(PetStatus::Sold))
            .await,
        Err(Failure::Server(ServerError::Internal))
    ));
    assert!(matches!(
        store.find_pets_by_status(&[PetStatus::Available]).await,
        Err(Failure::Server(ServerError::Internal))
    ));
    // JSON that is not a pet is corrupt too.
    set_field(&redis, &key, "json", r#"{"name":7}"#).await;
    assert!(matches!(
        store.get_pet(id).await,
        Err(Failure::Server(ServerError::Internal))
    ));
    // So is a record whose version is not a number, or that has none.
    let order_id = store
        .place_order(
            order_for(
                store
                    .create_pet(available_pet("b"))
                    .await
                    .unwrap()
                    .value
                    .id
                    .unwrap(),
            ),
            "alice",
        )
        .await
        .unwrap()
        .order
        .value
        .id
        .unwrap();
    let order_key = redis.key(format_args!("order:{order_id}"));
    set_field(&redis, &order_key, "version", "seven").await;
    assert!(matches!(
        store.get_order(order_id).await,
        Err(Failure::Server(ServerError::Internal))
    ));
    redis
        .write("hdel", move |client| {
            let key = order_key.clone();
            async move { client.hdel::<(), _, _>(key, "version").await }
        })
        .await
        .unwrap();
    assert!(matches!(
        store.get_order_with_owner(order_id).await,
        Err(Failure::Server(ServerError::Internal))
    ));
}

/// Overwrites one field of the hash at `key`, behind the store's back.
async fn set_field(redis: &Redis, key: &str, field: &'static str, value: &'static str) {
    let key = key.to_owned();
    redis
        .write("hset", move |client| {
            let key = key.clone();
            async move { client.hset::<(), _, _>(key, (field, value)).await }
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn nodes_number_their_commits_from_one_counter_under_the_prefix() {
    // A hash tag, as on a Redis Cluster: the counter must share the slot of every other key.
    let prefix = format!("{{{}}}", unique_prefix());
    let redis = connect(&prefix).await;
    let nodes = [
        RedisStore::new(redis.clone()),
        RedisStore::new(connect(&prefix).await),
    ];
    let mut versions = Vec::new();
    for round in 0..6 {
        let node = &nodes[round % 2];
        let pet = node.create_pet(available_pet("shared")).await.unwrap();
        versions.push(pet.version);
        let placed = node
            .place_order(order_for(pet.value.id.unwrap()), "alice")
            .await
            .unwrap();
        versions.push(placed.order.version);
    }
    assert!(
        versions.windows(2).all(|pair| pair[1] > pair[0]),
        "{versions:?}"
    );
    let key = format!("{prefix}:seq:commit");
    let counter: Option<u64> = redis
        .read("get", move |client| {
            let key = key.clone();
            async move { client.get(key).await }
        })
        .await
        .unwrap();
    assert_eq!(counter, versions.last().copied());
}

#[tokio::test]
async fn the_demo_data_loads_into_redis() {
    crate::store::demo::tests::demo_data_is_consistent_and_loaded_once_in(fresh().await).await;
}

/// The same suite on a Redis Cluster of three primaries: with a hash-tag prefix every key of a
/// store lives in one slot, so each atomic step is one script on one node, as on one server.
mod on_redis_cluster {
    use std::sync::Arc;

    use petstore_testkit::redis_cluster::LocalRedisCluster;
    use uuid::Uuid;

    use super::RedisStore;
    use crate::{
        redis::{Redis, RedisError, RedisSettings},
        store::Store,
    };

    fn settings(prefix: String) -> RedisSettings {
        let mut settings = RedisSettings::new(LocalRedisCluster::shared().url());
        settings.prefix = prefix;
        settings
    }

    async fn fresh() -> Arc<dyn Store> {
        let prefix = format!("{{test-{}}}", Uuid::new_v4().simple());
        let redis = Redis::connect(settings(prefix))
            .await
            .expect("the shared test cluster answers");
        Arc::new(RedisStore::new(redis))
    }

    crate::store::conformance::store_conformance_tests!(fresh);

    #[tokio::test]
    async fn a_prefix_without_a_hash_tag_is_refused_with_the_reason() {
        let error = Redis::connect(settings("petstore".into()))
            .await
            .expect_err("refused");
        assert!(matches!(error, RedisError::Config(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("hash tag") && message.contains("one hash slot"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_plain_url_to_a_cluster_node_is_refused_naming_the_scheme() {
        let port = LocalRedisCluster::shared().ports()[0];
        let mut settings = RedisSettings::new(format!("redis://127.0.0.1:{port}"));
        settings.prefix = "{petstore}".into();
        let error = Redis::connect(settings).await.expect_err("refused");
        assert!(error.to_string().contains("redis-cluster://"), "{error}");
    }
}

/// The pet cache: two nodes (two stores, each with its pool and its tracking connection) on one
/// Redis and one prefix. Every wait polls up to a deadline that only guards against a hang.
mod with_a_cache {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use fred::{
        interfaces::{ClientLike, HashesInterface, TransactionInterface},
        types::{ClusterHash, CustomCommand, Value},
    };
    use petstore_api::models::{Pet, PetStatus};
    use petstore_testkit::redis::{LocalRedis, Persistence};

    use super::{available_pet, connect, settings, unique_prefix};
    use crate::{
        redis::Redis,
        store::{Store, Stored, redis_store::RedisStore},
    };

    /// A hang guard, never a timing assertion.
    const DEADLINE: Duration = Duration::from_secs(15);

    const ENTRIES: usize = 1000;

    async fn cached(redis: Redis) -> RedisStore {
        let store = RedisStore::with_cache(redis, ENTRIES)
            .await
            .expect("the tracking connection connects");
        assert!(store.cache_is_tracking(), "tracking is set up at start");
        store
    }

    async fn fresh() -> Arc<dyn Store> {
        Arc::new(cached(connect(&unique_prefix()).await).await)
    }

    crate::store::conformance::store_conformance_tests!(fresh);

    async fn two_nodes() -> (RedisStore, RedisStore, Redis) {
        let prefix = unique_prefix();
        let redis = connect(&prefix).await;
        (
            cached(redis.clone()).await,
            cached(connect(&prefix).await).await,
            redis,
        )
    }

    /// Reads pet `id` through `node` until `done` accepts it; the pet it accepted.
    async fn read_until(
        node: &RedisStore,
        id: i64,
        what: &str,
        done: impl Fn(Option<&Stored<Pet>>) -> bool,
    ) -> Option<Arc<Stored<Pet>>> {
        let started = Instant::now();
        loop {
            let read = node.get_pet(id).await.expect("reads");
            if done(read.as_deref()) {
                return read;
            }
            assert!(started.elapsed() < DEADLINE, "never read {what}: {read:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_write_through_one_node_is_read_fresh_through_the_other_once_announced() {
        let (writer, reader, _) = two_nodes().await;
        let created = writer.create_pet(available_pet("Rex")).await.unwrap();
        let id = created.value.id.unwrap();
        for node in [&writer, &reader] {
            assert_eq!(node.get_pet(id).await.unwrap(), Some(created.clone()));
        }
        let before = reader.cache_stats().unwrap();
        assert_eq!(reader.get_pet(id).await.unwrap(), Some(created.clone()));
        assert_eq!(
            reader.cache_stats().unwrap().hits,
            before.hits + 1,
            "served from the cache"
        );

        let renamed = writer
            .update_pet_fields(id, Some("Max".into()), None)
            .await
            .unwrap();
        // The writer reads its own write at once.
        assert_eq!(writer.get_pet(id).await.unwrap(), Some(renamed.clone()));
        // The other node once the invalidation came round: the same bytes and version.
        let read = read_until(&reader, id, "the rename", |pet| {
            pet.is_some_and(|pet| pet.version == renamed.version)
        })
        .await;
        assert_eq!(read.as_deref(), Some(&*renamed));
        assert_eq!(read.unwrap().json.bytes(), renamed.json.bytes());
        assert!(reader.cache_stats().unwrap().invalidations > before.invalidations);
        // And from then on it stays fresh, now served from the cache again.
        for _ in 0..20 {
            assert_eq!(reader.get_pet(id).await.unwrap(), Some(renamed.clone()));
        }

        writer.delete_pet(id).await.unwrap();
        assert_eq!(writer.get_pet(id).await.unwrap(), None);
        read_until(&reader, id, "the deletion", |pet| pet.is_none()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn readers_racing_a_writer_never_keep_a_replaced_value() {
        const ROUNDS: usize = 150;
        const READERS: usize = 4;
        let (writer, reader, _) = two_nodes().await;
        let reader = Arc::new(reader);
        let id = writer
            .create_pet(available_pet("v0"))
            .await
            .unwrap()
            .value
            .id
            .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (reader, stop) = (Arc::clone(&reader), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let pet = reader.get_pet(id).await.expect("reads").expect("exists");
                        // Whatever is served is a record as some write stored it.
                        let round = pet.value.name.strip_prefix('v').map(str::parse::<usize>);
                        assert!(matches!(round, Some(Ok(_))), "{pet:?}");
                        reads += 1;
                        // A hit never waits on anything: let the writer's task run.
                        tokio::task::yield_now().await;
                    }
                    reads
                })
            })
            .collect();
        for round in 1..=ROUNDS {
            let written = writer
                .update_pet_fields(id, Some(format!("v{round}")), None)
                .await
                .unwrap();
            // Whichever reads were in flight when the write landed, the node ends up serving
            // the write, and keeps serving it.
            read_until(&reader, id, &format!("round {round}"), |pet| {
                pet.is_some_and(|pet| pet.version == written.version)
            })
            .await;
            for _ in 0..3 {
                let pet = reader.get_pet(id).await.unwrap().unwrap();
                assert_eq!(pet.version, written.version, "round {round}: stale again");
                assert_eq!(pet.json.bytes(), written.json.bytes());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut reads = 0;
        for task in readers {
            reads += task.await.unwrap();
        }
        let stats = reader.cache_stats().unwrap();
        assert!(
            reads > 0 && stats.hits > 0 && stats.invalidations > 0,
            "{stats:?}"
        );
    }

    /// Kills the tracking connection of `node` and, in the same transaction (so no
    /// invalidation can reach it), writes pet `id` as `pet` behind every store's back.
    async fn kill_tracking_and_write(redis: &Redis, node: &RedisStore, id: i64, pet: Pet) {
        let client_id = node.cache_client_id().expect("tracking is up");
        let key = redis.key(format_args!("pet:{id}"));
        let json = Stored::new(pet).json.bytes().clone();
        redis
            .write("multi", move |client| {
                let (key, json) = (key.clone(), json.clone());
                async move {
                    let transaction = client.multi();
                    let () = transaction
                        .custom(
                            CustomCommand::new_static("CLIENT", ClusterHash::FirstKey, false),
                            vec![
                                Value::from("KILL"),
                                Value::from("ID"),
                                Value::from(client_id),
                            ],
                        )
                        .await?;
                    let () = transaction
                        .hset(
                            key,
                            [
                                ("json", Value::Bytes(json)),
                                ("version", Value::from("999999")),
                            ],
                        )
                        .await?;
                    transaction.exec::<Value>(true).await.map(|_| ())
                }
            })
            .await
            .expect("the transaction runs");
    }

    #[tokio::test]
    async fn a_lost_tracking_connection_flushes_the_cache_and_the_next_read_is_fresh() {
        let (writer, reader, redis) = two_nodes().await;
        let created = writer.create_pet(available_pet("Rex")).await.unwrap();
        let id = created.value.id.unwrap();
        reader.get_pet(id).await.unwrap();
        let before = reader.cache_stats().unwrap();
        assert_eq!(reader.get_pet(id).await.unwrap(), Some(created.clone()));
        assert_eq!(reader.cache_stats().unwrap().hits, before.hits + 1);
        let old_connection = reader.cache_client_id().unwrap();

        let mut changed = created.value.clone();
        changed.name = "changed while nobody listened".into();
        changed.status = Some(PetStatus::Sold);
        kill_tracking_and_write(&redis, &reader, id, changed).await;

        // No invalidation was sent for that write: only the flush can end the old value.
        let read = read_until(&reader, id, "the write", |pet| {
            pet.is_some_and(|pet| pet.version == 999_999)
        })
        .await
        .unwrap();
        assert_eq!(read.value.name, "changed while nobody listened");
        assert!(reader.cache_stats().unwrap().flushes > before.flushes);

        // Tracking comes back on a new connection, and the cache works again.
        let started = Instant::now();
        while reader
            .cache_client_id()
            .is_none_or(|id| id == old_connection)
        {
            assert!(started.elapsed() < DEADLINE, "tracking never came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(reader.cache_is_tracking());
        let renamed = writer
            .update_pet_fields(id, Some("Max".into()), None)
            .await
            .unwrap();
        read_until(&reader, id, "the rename", |pet| {
            pet.is_some_and(|pet| pet.version == renamed.version)
        })
        .await;
    }

    #[tokio::test]
    async fn a_restarted_redis_flushes_the_cache_and_tracking_comes_back() {
        let mut server = LocalRedis::start(Persistence::AppendOnly).expect("redis-server starts");
        let prefix = unique_prefix();
        let connect_private = || async {
            Redis::connect(settings(server.url(), &prefix))
                .await
                .expect("connects")
        };
        let writer = cached(connect_private().await).await;
        let reader = cached(connect_private().await).await;
        let created = writer.create_pet(available_pet("Rex")).await.unwrap();
        let id = created.value.id.unwrap();
        reader.get_pet(id).await.unwrap();
        let before = reader.cache_stats().unwrap();

        server.kill();
        server.restart().expect("redis-server comes back");
        let started = Instant::now();
        while !(reader.cache_is_tracking()
            && reader.cache_stats().unwrap().flushes > before.flushes)
        {
            assert!(started.elapsed() < DEADLINE, "tracking never came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let renamed = loop {
            // The writer's pool may still be reconnecting.
            if let Ok(renamed) = writer.update_pet_fields(id, Some("Max".into()), None).await {
                break renamed;
            }
            assert!(started.elapsed() < DEADLINE, "writes never came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(pet)) = reader.get_pet(id).await
                && pet.version == renamed.version
            {
                break;
            }
            assert!(started.elapsed() < DEADLINE, "never read the rename");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_flush_in_redis_empties_the_cache() {
        let server = LocalRedis::start(Persistence::None).expect("redis-server starts");
        let redis = Redis::connect(settings(server.url(), &unique_prefix()))
            .await
            .expect("connects");
        let store = cached(redis.clone()).await;
        let id = store
            .create_pet(available_pet("Rex"))
            .await
            .unwrap()
            .value
            .id
            .unwrap();
        store.get_pet(id).await.unwrap();
        assert!(store.get_pet(id).await.unwrap().is_some());
        redis
            .write("flushdb", |client| async move {
                client
                    .custom::<Value, Value>(
                        CustomCommand::new_static("FLUSHDB", ClusterHash::FirstKey, false),
                        vec![],
                    )
                    .await
                    .map(|_| ())
            })
            .await
            .unwrap();
        read_until(&store, id, "the flush", |pet| pet.is_none()).await;
    }

    #[tokio::test]
    async fn with_no_entries_there_is_no_cache_and_every_read_goes_to_redis() {
        let redis = connect(&unique_prefix()).await;
        let store = RedisStore::with_cache(redis.clone(), 0).await.unwrap();
        assert_eq!(store.cache_stats(), None);
        assert!(!store.cache_is_tracking());
        let created = store.create_pet(available_pet("Rex")).await.unwrap();
        let id = created.value.id.unwrap();
        store.get_pet(id).await.unwrap();
        // Behind the store's back, and read back at once: nothing in the node remembered it.
        let key = redis.key(format_args!("pet:{id}"));
        redis
            .write("hset", move |client| {
                let key = key.clone();
                async move { client.hset::<(), _, _>(key, ("version", "424242")).await }
            })
            .await
            .unwrap();
        assert_eq!(store.get_pet(id).await.unwrap().unwrap().version, 424_242);
    }
}
