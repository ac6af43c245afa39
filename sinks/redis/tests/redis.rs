//! The Redis sink against the real Redis on 127.0.0.1:6379.

use std::sync::Arc;

use redis::AsyncCommands;
use sluice_sink_api::{
    Batch, Context, Duration, FeatureRow, FeatureSchema, FeatureSpec, FeatureType, FeatureValue, Features, Sink,
    Trigger,
};
use sluice_sink_redis::{RedisSink, RedisSinkConfig};

const URL: &str = "redis://127.0.0.1:6379/0";

fn prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sluice-test:{}:{nanos}", std::process::id())
}

fn row(key: &str, count: i64, computed_at: i64) -> FeatureRow {
    let name = |n: &str| -> Arc<str> { n.into() };
    FeatureRow {
        key: key.into(),
        window_start: 0,
        window_end: 60_000,
        event_time: 59_000,
        trigger: Trigger::Close,
        features: Features(vec![
            (name("items"), FeatureValue::strs(["i1", "i\"2"])),
            (name("count"), FeatureValue::Int(count)),
            (name("sum"), FeatureValue::Float(12.5)),
            (name("top"), FeatureValue::Str("c1".into())),
            (name("none"), FeatureValue::Null),
        ]),
        computed_at,
    }
}

/// The features [`row`]'s rows hold, and `gone`, which they leave out.
fn context() -> Context {
    let spec = |name: &str, ty, nullable| FeatureSpec { name: name.into(), ty, nullable, description: String::new() };
    let schema = FeatureSchema::new(vec![
        spec("items", FeatureType::Strs, false),
        spec("count", FeatureType::Int, false),
        spec("sum", FeatureType::Float, false),
        spec("top", FeatureType::Str, false),
        spec("none", FeatureType::Str, true),
        spec("gone", FeatureType::Int, true),
    ])
    .unwrap_or_default();
    Context { schema: Arc::new(schema), ..Context::default() }
}

async fn client() -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(URL)?.get_multiplexed_async_connection().await?)
}

#[tokio::test]
async fn rows_become_hashes_with_a_ttl() -> anyhow::Result<()> {
    let prefix = prefix();
    let config =
        RedisSinkConfig::plain(URL, &format!("{prefix}:user:{{key}}:features"), Some(Duration::from_millis(7_200_000)));
    let mut sink = RedisSink::open("features", &config, &context()).await?;
    sink.write(Batch::Features(&[row("u1", 3, 100), row("u2", 5, 100)])).await?;
    // A later row of the same entity overwrites it.
    sink.write(Batch::Features(&[row("u1", 4, 200)])).await?;
    sink.flush().await?;

    let mut redis = client().await?;
    let key = format!("{prefix}:user:u1:features");
    let mut hash: Vec<(String, String)> = redis.hgetall(&key).await?;
    hash.sort();
    let expected: Vec<(String, String)> = [
        ("computed_at", "200"),
        ("count", "4"),
        ("event_time", "59000"),
        ("gone", "null"),
        ("items", r#"["i1","i\"2"]"#),
        ("none", "null"),
        ("sum", "12.5"),
        ("top", "c1"),
        ("trigger", "close"),
        ("window_end", "60000"),
        ("window_start", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(hash, expected);
    let ttl: i64 = redis.ttl(&key).await?;
    assert!((7_000..=7_200).contains(&ttl), "ttl {ttl}");
    let count: String = redis.hget(format!("{prefix}:user:u2:features"), "count").await?;
    assert_eq!(count, "5");
    // Read back as the host's online reads do: every declared feature,
    // typed, and the row's time (its window's end: it fired on close).
    let keys = ["u1".into(), "nobody".into()];
    let read = config.lookup(&context().schema, &keys).await?;
    let want = serde_json::json!({
        "items": ["i1", "i\"2"], "count": 4, "sum": 12.5, "top": "c1", "none": null, "gone": null
    });
    assert_eq!(read.len(), 2);
    assert_eq!(
        read[0].as_ref().map(|s| (s.time, serde_json::Value::Object(s.features.clone()))),
        Some((Some(60_000), want))
    );
    assert_eq!(read[1], None);
    let _: () = redis.del(&[key, format!("{prefix}:user:u2:features")]).await?;
    Ok(())
}

#[tokio::test]
async fn window_bounds_in_the_key_give_each_window_its_own_hash() -> anyhow::Result<()> {
    let prefix = prefix();
    let config = RedisSinkConfig::plain(URL, &format!("{prefix}:{{key}}:{{window_start}}-{{window_end}}"), None);
    let mut sink = RedisSink::open("features", &config, &Context::default()).await?;
    let later = FeatureRow { window_start: 60_000, window_end: 120_000, ..row("u1", 9, 300) };
    sink.write(Batch::Features(&[row("u1", 3, 100), later])).await?;

    let mut redis = client().await?;
    let first: String = redis.hget(format!("{prefix}:u1:0-60000"), "count").await?;
    let second: String = redis.hget(format!("{prefix}:u1:60000-120000"), "count").await?;
    assert_eq!((first.as_str(), second.as_str()), ("3", "9"));
    let _: () = redis.del(&[format!("{prefix}:u1:0-60000"), format!("{prefix}:u1:60000-120000")]).await?;
    Ok(())
}

/// The row of window [start, end) with trigger `trigger` and `count`.
fn window(start: i64, end: i64, trigger: Trigger, count: i64) -> FeatureRow {
    FeatureRow { window_start: start, window_end: end, event_time: end - 1, trigger, ..row("u1", count, end) }
}

#[tokio::test]
async fn a_hash_keeps_the_newest_window_whatever_arrives_late() -> anyhow::Result<()> {
    let prefix = prefix();
    let ttl = Some(Duration::from_millis(600_000));
    let config = RedisSinkConfig::plain(URL, &format!("{prefix}:{{key}}"), ttl);
    let mut sink = RedisSink::open("features", &config, &Context::default()).await?;
    let mut redis = client().await?;
    let key = format!("{prefix}:u1");
    let stored = async |redis: &mut redis::aio::MultiplexedConnection| -> anyhow::Result<(String, String, String)> {
        let (end, trigger, count): (String, String, String) =
            redis.hget(&key, &["window_end", "trigger", "count"]).await?;
        Ok((end, trigger, count))
    };
    let expect = |end: &str, trigger: &str, count: &str| (end.to_string(), trigger.to_string(), count.to_string());

    // Close rows in window order, then a late update of the older window
    // in the same batch and in a later one: the newer window stays.
    sink.write(Batch::Features(&[
        window(0, 60_000, Trigger::Close, 1),
        window(60_000, 120_000, Trigger::Close, 2),
        window(0, 60_000, Trigger::Late, 3),
    ]))
    .await?;
    assert_eq!(stored(&mut redis).await?, expect("120000", "close", "2"));
    sink.write(Batch::Features(&[window(0, 60_000, Trigger::Late, 4)])).await?;
    assert_eq!(stored(&mut redis).await?, expect("120000", "close", "2"));
    // A late update of the stored window corrects it, with the TTL.
    sink.write(Batch::Features(&[window(60_000, 120_000, Trigger::Late, 5)])).await?;
    assert_eq!(stored(&mut redis).await?, expect("120000", "late", "5"));
    let ttl: i64 = redis.ttl(&key).await?;
    assert!((500..=600).contains(&ttl), "ttl {ttl}");
    // On-event rows: an out-of-order event's older window is not written,
    // a newer one is; also after Redis forgot its scripts (a restart).
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut redis).await?;
    sink.write(Batch::Features(&[window(30_000, 90_000, Trigger::Event, 6)])).await?;
    assert_eq!(stored(&mut redis).await?, expect("120000", "late", "5"));
    sink.write(Batch::Features(&[window(90_000, 150_000, Trigger::Event, 7)])).await?;
    assert_eq!(stored(&mut redis).await?, expect("150000", "event", "7"));
    let _: () = redis.del(&key).await?;
    Ok(())
}

#[tokio::test]
async fn dead_letters_are_refused_with_a_reason() -> anyhow::Result<()> {
    let config = RedisSinkConfig::plain(URL, "x:{key}", None);
    let mut sink = RedisSink::open("dead_letters", &config, &Context::default()).await?;
    let err = sink.write(Batch::DeadLetters(&[])).await.err().map(|e| (e.retriable, e.to_string()));
    let (retriable, message) = err.unwrap_or_default();
    assert!(!retriable);
    assert!(message.contains("stores feature rows"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_bad_url_and_an_unreachable_server_are_clear_errors() {
    let bad = RedisSinkConfig::plain("http://nowhere", "k", None);
    let err = RedisSink::open("features", &bad, &Context::default()).await.err().map(|e| (e.retriable, e.to_string()));
    assert!(err.as_ref().is_some_and(|(r, m)| !r && m.contains("is not a Redis URL")), "{err:?}");
    // Nothing listens on port 1: connection refused, worth retrying.
    let down = RedisSinkConfig::plain("redis://127.0.0.1:1", "k", None);
    let err = RedisSink::open("features", &down, &Context::default()).await.err().map(|e| (e.retriable, e.to_string()));
    assert!(err.as_ref().is_some_and(|(r, m)| *r && m.contains("cannot connect")), "{err:?}");
}

/// A row Redis refuses on its own (its key holds a string, not a hash) is
/// handed back as poison; the batch's other rows are written, close rows
/// and guarded (late) rows alike, and the write succeeds.
#[tokio::test]
async fn a_row_redis_refuses_is_handed_back_and_the_rest_are_written() -> anyhow::Result<()> {
    let prefix = prefix();
    let config = RedisSinkConfig::plain(URL, &format!("{prefix}:{{key}}"), None);
    let mut sink = RedisSink::open("features", &config, &Context::default()).await?;
    let mut redis = client().await?;
    let _: () = redis.set(format!("{prefix}:taken"), "not a hash").await?;
    let late = FeatureRow { trigger: Trigger::Late, ..row("u3", 3, 100) };
    sink.write(Batch::Features(&[row("u1", 1, 100), row("taken", 2, 100), late])).await?;
    let rejected = sink.take_rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].error_class, "redis_refused");
    assert!(rejected[0].message.contains(&format!("`{prefix}:taken`")), "{}", rejected[0].message);
    assert!(rejected[0].message.contains("WRONGTYPE"), "{}", rejected[0].message);
    let refused: serde_json::Value = serde_json::from_slice(&rejected[0].raw)?;
    assert_eq!((refused["key"].as_str(), refused["features"]["count"].as_i64()), (Some("taken"), Some(2)));
    for (user, count) in [("u1", "1"), ("u3", "3")] {
        let stored: Option<String> = redis.hget(format!("{prefix}:{user}"), "count").await?;
        assert_eq!(stored.as_deref(), Some(count), "{user}");
    }
    assert!(sink.take_rejected().is_empty(), "handed back once");
    let _: () = redis.del(&[format!("{prefix}:taken"), format!("{prefix}:u1"), format!("{prefix}:u3")]).await?;
    Ok(())
}

/// Seed 002: two pipelines writing their features to one hash per user,
/// each with its own `metadata_prefix`: neither overwrites the other's
/// features or times, and the newest-window rule compares each one's own
/// window (a correction of the transactions' window is written although
/// the sessions' window in the hash ends later).
#[tokio::test]
async fn two_pipelines_share_a_hash_each_with_its_own_times() -> anyhow::Result<()> {
    let prefix = prefix();
    let key = format!("{prefix}:u1");
    let sink = async |metadata: &str| -> anyhow::Result<RedisSink> {
        let config = RedisSinkConfig {
            metadata_prefix: Some(metadata.into()),
            ..RedisSinkConfig::plain(URL, &format!("{prefix}:{{key}}"), None)
        };
        Ok(RedisSink::open("features", &config, &Context::default()).await?)
    };
    let (mut transactions, mut sessions) = (sink("tx_").await?, sink("session_").await?);
    let feature = |name: &str, count: i64, end: i64, trigger: Trigger| FeatureRow {
        features: Features(vec![(name.into(), FeatureValue::Int(count))]),
        ..window(end - 60_000, end, trigger, 0)
    };
    transactions.write(Batch::Features(&[feature("tx_count", 1, 300_000, Trigger::Close)])).await?;
    sessions.write(Batch::Features(&[feature("item_count", 7, 600_000, Trigger::Close)])).await?;
    transactions.write(Batch::Features(&[feature("tx_count", 2, 300_000, Trigger::Late)])).await?;
    // An older window of the transactions is still older than their own.
    transactions.write(Batch::Features(&[feature("tx_count", 9, 240_000, Trigger::Late)])).await?;

    let mut redis = client().await?;
    let hash: std::collections::BTreeMap<String, String> = redis.hgetall(&key).await?;
    let field = |name: &str| hash.get(name).map(String::as_str);
    assert_eq!((field("tx_count"), field("item_count")), (Some("2"), Some("7")), "{hash:?}");
    assert_eq!((field("tx_window_end"), field("tx_trigger")), (Some("300000"), Some("late")), "{hash:?}");
    assert_eq!((field("session_window_end"), field("session_trigger")), (Some("600000"), Some("close")), "{hash:?}");
    assert_eq!(field("window_end"), None, "{hash:?}");
    let _: () = redis.del(&key).await?;
    Ok(())
}
