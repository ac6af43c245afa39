//! The Redis sink's Feast layout against the real Redis on 127.0.0.1:6379:
//! Feast's write rule (an older row after a newer one leaves the newer),
//! the `_ts` a Feast writer stores respected, null features, and rows
//! Feast cannot hold handed back. (That Feast reads these hashes is
//! `tests/tests/feast.rs`, with Feast itself.)

use std::sync::Arc;

use prost::Message;
use redis::AsyncCommands;
use sluice_sink_api::{
    Batch, Context, EntityKey, FeatureRow, FeatureSchema, FeatureSpec, FeatureType, FeatureValue, Features, Scalar,
    Sink, Trigger,
};
use sluice_sink_redis::feast::{FeastLayout, field};
use sluice_sink_redis::{FeastView, RedisSink, RedisSinkConfig};

const URL: &str = "redis://127.0.0.1:6379/0";
const VIEW: &str = "velocity";

/// A project of its own, so that the test's keys are its own.
fn project() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sluice_test_{}_{nanos}", std::process::id())
}

fn context() -> Context {
    let spec = |name: &str, ty, nullable| FeatureSpec { name: name.into(), ty, nullable, description: String::new() };
    let schema = FeatureSchema::new(vec![
        spec("tx_count", FeatureType::Int, false),
        spec("merchants", FeatureType::Ints, true),
        spec("last", FeatureType::Str, true),
    ])
    .unwrap_or_default();
    Context { schema: Arc::new(schema), ..Context::default() }
}

/// The row of window [end - 60 s, end) for `key` with `tx_count`.
fn row(key: &str, end: i64, trigger: Trigger, count: i64) -> FeatureRow {
    FeatureRow {
        key: key.into(),
        window_start: end - 60_000,
        window_end: end,
        event_time: end - 1_000,
        trigger,
        features: Features(vec![
            ("tx_count".into(), FeatureValue::Int(count)),
            ("merchants".into(), FeatureValue::Mixed(vec![Scalar::Int(7), Scalar::Int(count)])),
        ]),
        computed_at: 0,
    }
}

/// Feast's serialized `Value(int64_val=n)` for 0 <= n < 128, by hand.
fn int64_value(n: u8) -> Vec<u8> {
    vec![0x20, n]
}

async fn open(project: &str) -> anyhow::Result<(RedisSink, FeastLayout)> {
    let view = FeastView { project, feature_view: VIEW, join_key: "user_id" };
    let config = RedisSinkConfig::feast(URL, &view, None);
    let sink = RedisSink::open("features", &config, &context()).await?;
    Ok((sink, FeastLayout::new(project, VIEW, "user_id", &context().schema)))
}

/// The stored `tx_count` value and `_ts` (milliseconds) of `key`.
async fn stored(redis: &mut redis::aio::MultiplexedConnection, key: &[u8]) -> anyhow::Result<(Vec<u8>, i64)> {
    let (count, ts): (Vec<u8>, Vec<u8>) =
        redis.hget(key, (&field(VIEW, "tx_count")[..], format!("_ts:{VIEW}"))).await?;
    let ts = prost_types::Timestamp::decode(&ts[..])?;
    Ok((count, ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000))
}

#[tokio::test]
async fn an_older_row_written_after_a_newer_one_leaves_the_newer() -> anyhow::Result<()> {
    let project = project();
    let (mut sink, layout) = open(&project).await?;
    let mut redis = redis::Client::open(URL)?.get_multiplexed_async_connection().await?;
    let key = layout.key(&EntityKey::Str("u1".into()));

    // In one batch and across batches, whatever the trigger: the row of
    // the later window stays.
    sink.write(Batch::Features(&[row("u1", 120_000, Trigger::Close, 2), row("u1", 60_000, Trigger::Late, 1)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(2), 120_000));
    sink.write(Batch::Features(&[row("u1", 60_000, Trigger::Close, 1)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(2), 120_000));
    // A correction of the stored window (same time) replaces it.
    sink.write(Batch::Features(&[row("u1", 120_000, Trigger::Late, 3)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(3), 120_000));
    // A row fired per event is as of its event: 179 s, after 120 s.
    sink.write(Batch::Features(&[row("u1", 180_000, Trigger::Event, 4)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(4), 179_000));

    // A `_ts` another writer stored, with nanoseconds, as Feast writes it
    // (`Timestamp.FromDatetime`): 200.5 s. A row of 200 s is older.
    let feast_ts = prost_types::Timestamp { seconds: 200, nanos: 500_000_000 }.encode_to_vec();
    let _: () = redis.hset(&key, format!("_ts:{VIEW}"), feast_ts).await?;
    sink.write(Batch::Features(&[row("u1", 200_000, Trigger::Close, 5)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(4), 200_500));
    sink.write(Batch::Features(&[row("u1", 201_000, Trigger::Close, 6)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(6), 201_000));

    // Every declared feature is written: `last`, left out, as an empty
    // (null) `Value`; the list as Feast's `Int64List`.
    let (merchants, last): (Vec<u8>, Vec<u8>) =
        redis.hget(&key, (&field(VIEW, "merchants")[..], &field(VIEW, "last")[..])).await?;
    // Value(int64_list_val=Int64List(val=[7, 6])).SerializeToString()
    assert_eq!(merchants, b"r\x04\n\x02\x07\x06".to_vec());
    assert_eq!(last, Vec::<u8>::new());
    let exists: bool = redis.hexists(&key, &field(VIEW, "last")[..]).await?;
    assert!(exists, "a null feature is stored, empty");
    assert!(sink.take_rejected().is_empty());

    // Read back as the host's online reads do: typed, with the row's time;
    // nothing for a key never written.
    let view = FeastView { project: &project, feature_view: VIEW, join_key: "user_id" };
    let keys = [EntityKey::Str("u1".into()), EntityKey::Str("nobody".into())];
    let read = RedisSinkConfig::feast(URL, &view, None).lookup(&context().schema, &keys).await?;
    let want = serde_json::json!({"tx_count": 6, "merchants": [7, 6], "last": null});
    assert_eq!(read.len(), 2);
    assert_eq!(
        read[0].as_ref().map(|s| (s.time, serde_json::Value::Object(s.features.clone()))),
        Some((Some(201_000), want))
    );
    assert_eq!(read[1], None);
    let _: () = redis.del(&key).await?;
    Ok(())
}

#[tokio::test]
async fn a_row_feast_cannot_hold_is_handed_back_and_the_rest_are_written() -> anyhow::Result<()> {
    let project = project();
    let (mut sink, layout) = open(&project).await?;
    let mut redis = redis::Client::open(URL)?.get_multiplexed_async_connection().await?;
    let mut holed = row("u2", 60_000, Trigger::Close, 2);
    holed.features.0[1].1 = FeatureValue::Mixed(vec![Scalar::Int(7), Scalar::Null]);
    sink.write(Batch::Features(&[row("u1", 60_000, Trigger::Close, 1), holed, row("u3", 60_000, Trigger::Close, 3)]))
        .await?;
    let rejected = sink.take_rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].error_class, "redis_unrepresentable");
    let message = &rejected[0].message;
    assert!(message.contains("user_id=u2") && message.contains("`merchants`: item 1 is null"), "{message}");
    let refused: serde_json::Value = serde_json::from_slice(&rejected[0].raw)?;
    assert_eq!(refused["key"].as_str(), Some("u2"));
    for (user, count) in [("u1", 1), ("u3", 3)] {
        let key = layout.key(&EntityKey::Str(user.into()));
        assert_eq!(stored(&mut redis, &key).await?, (int64_value(count), 60_000), "{user}");
        let _: () = redis.del(&key).await?;
    }
    let exists: bool = redis.exists(layout.key(&EntityKey::Str("u2".into()))).await?;
    assert!(!exists, "nothing of the refused row is written");
    Ok(())
}

/// Seed 002: two pipelines writing views of one entity share its hash,
/// each view with its own fields and `_ts`: a view's row older than the
/// other view's stays written, and neither touches the other's fields.
#[tokio::test]
async fn two_views_of_one_entity_keep_their_own_fields_and_times() -> anyhow::Result<()> {
    let project = project();
    let (mut velocity, layout) = open(&project).await?;
    let view = FeastView { project: &project, feature_view: "sessions", join_key: "user_id" };
    let mut sessions = RedisSink::open("features", &RedisSinkConfig::feast(URL, &view, None), &context()).await?;
    let mut redis = redis::Client::open(URL)?.get_multiplexed_async_connection().await?;
    let key = layout.key(&EntityKey::Str("u1".into()));

    sessions.write(Batch::Features(&[row("u1", 600_000, Trigger::Close, 8)])).await?;
    velocity.write(Batch::Features(&[row("u1", 300_000, Trigger::Close, 2)])).await?;
    assert_eq!(stored(&mut redis, &key).await?, (int64_value(2), 300_000));
    let (count, ts): (Vec<u8>, Vec<u8>) =
        redis.hget(&key, (&field("sessions", "tx_count")[..], "_ts:sessions")).await?;
    let ts = prost_types::Timestamp::decode(&ts[..])?;
    assert_eq!((count, ts.seconds), (int64_value(8), 600));
    let fields: usize = redis.hlen(&key).await?;
    assert_eq!(fields, 2 * 4, "three features and a `_ts` per view");
    let _: () = redis.del(&key).await?;
    Ok(())
}
