//! Hand-worked cases for each example transform, through the example
//! manifests as shipped (only inputs, outputs and the watermark step are
//! overridden). Expected values are worked out by hand in the comments.

mod common;

use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z in seconds: the generator's epoch.
const BASE: i64 = 1_767_225_600;

fn ms(seconds: i64) -> i64 {
    (BASE + seconds) * 1000
}

fn click(user: &str, at: i64, item: &str, category: &str) -> String {
    format!(
        "{{\"user_id\":\"{user}\",\"item_id\":\"{item}\",\"category\":\"{category}\",\"timestamp\":{}.000}}\n",
        BASE + at
    )
}

fn tx(user: &str, at: i64, amount: &str, merchant: &str) -> String {
    format!(
        "{{\"user_id\":\"{user}\",\"merchant_id\":\"{merchant}\",\"amount\":{amount},\"timestamp\":{}}}\n",
        BASE + at
    )
}

/// Rows as (start, end, trigger, features), in emission order.
fn rows(features: &[Value]) -> Vec<(i64, i64, String, Value)> {
    features
        .iter()
        .map(|f| {
            (
                f["window_start"].as_i64().unwrap_or(0),
                f["window_end"].as_i64().unwrap_or(0),
                f["trigger"].as_str().unwrap_or("").to_string(),
                f["features"].clone(),
            )
        })
        .collect()
}

#[test]
fn session_features_by_hand() -> anyhow::Result<()> {
    // Clicks at 0 s, 30 s, 45 s and 90 s (out of order: 45 s arrives
    // last), then a malformed line. Windows are 30 min sliding by 1 min.
    let input = [
        click("u1", 0, "i1", "c1"),
        click("u1", 30, "i2", "c2"),
        click("u1", 90, "i3", "c2"),
        click("u1", 45, "i1", "c1"),
        format!("{{\"user_id\": \"u1\", \"item_id\": 5, \"category\": \"c1\", \"timestamp\": {BASE}}}\n"),
    ]
    .concat();
    let run = common::run_example("session-features", &input, &[])?;
    let rows = rows(&run.features);
    // Windows holding 0 s end at 60 s … 1800 s; those holding 90 s end at
    // 120 s … 1860 s: 31 windows in all, each fired once on close.
    assert_eq!(rows.len(), 31);
    assert!(rows.iter().all(|r| r.2 == "close"));
    let at = |end: i64| rows.iter().find(|r| r.1 == ms(end)).map(|r| r.3.clone()).unwrap_or_default();
    // [-1740 s, 60 s): the clicks at 0, 30, 45 s, in event-time order.
    assert_eq!(
        at(60),
        json!({"items_clicked_30m": ["i1", "i2", "i1"], "item_count_30m": 3, "distinct_items_30m": 2,
               "distinct_categories_30m": 2, "top_category_30m": "c1"})
    );
    // [-1680 s, 120 s): all four; c1 and c2 tie at 2, c1 is smaller.
    assert_eq!(
        at(120),
        json!({"items_clicked_30m": ["i1", "i2", "i1", "i3"], "item_count_30m": 4, "distinct_items_30m": 3,
               "distinct_categories_30m": 2, "top_category_30m": "c1"})
    );
    // [60 s, 1860 s): only the click at 90 s.
    assert_eq!(
        at(1860),
        json!({"items_clicked_30m": ["i3"], "item_count_30m": 1, "distinct_items_30m": 1,
               "distinct_categories_30m": 1, "top_category_30m": "c2"})
    );
    assert_eq!(rows.iter().find(|r| r.1 == ms(60)).map(|r| r.0), Some(ms(60 - 1800)));
    assert_eq!(run.dead.len(), 1);
    assert_eq!(run.dead[0]["position"]["offset"], 5);
    assert_eq!(run.dead[0]["error_class"], "wrong_type");
    Ok(())
}

#[test]
fn tx_velocity_by_hand() -> anyhow::Result<()> {
    // 5-min tumbling, 30 s out-of-orderness, 1 min lateness; a watermark
    // after every record. W after each: -30, 70, 269, 271, 610 (closes
    // [0,300) and [300,600)), 610 (320 s is late but within lateness:
    // [300,600) re-fires), 670, 670 (10 s: [0,300) is past its lateness,
    // a late event), then the end closes [600,900).
    let input = [
        tx("u1", 0, "10.50", "m1"),
        tx("u1", 100, "2.25", "m2"),
        tx("u1", 299, "1.00", "m1"),
        tx("u1", 301, "5.00", "m3"),
        tx("u1", 640, "1.00", "m1"),
        tx("u1", 320, "4.00", "m1"),
        tx("u1", 700, "1.00", "m2"),
        tx("u1", 10, "3.00", "m9"),
        "not json\n".to_string(),
    ]
    .concat();
    let run = common::run_example("tx-velocity", &input, &["source.step=1"])?;
    assert_eq!(
        rows(&run.features),
        vec![
            (ms(0), ms(300), "close".into(), json!({"tx_count": 3, "tx_sum": 13.75, "distinct_merchants": 2})),
            (ms(300), ms(600), "close".into(), json!({"tx_count": 1, "tx_sum": 5.0, "distinct_merchants": 1})),
            (ms(300), ms(600), "late".into(), json!({"tx_count": 2, "tx_sum": 9.0, "distinct_merchants": 2})),
            (ms(600), ms(900), "close".into(), json!({"tx_count": 2, "tx_sum": 2.0, "distinct_merchants": 2})),
        ]
    );
    assert_eq!(run.late.len(), 1);
    assert_eq!(run.late[0]["position"]["offset"], 8);
    assert_eq!(run.late[0]["event_time"], ms(10));
    assert_eq!(run.late[0]["watermark"], ms(670));
    assert_eq!(run.dead.len(), 1);
    assert_eq!(
        (run.dead[0]["position"]["offset"].clone(), run.dead[0]["error_class"].clone()),
        (json!(9), json!("invalid_json"))
    );
    Ok(())
}

#[test]
fn user_session_by_hand() -> anyhow::Result<()> {
    // Sessions close after 15 min without a click; every click emits its
    // session so far. 2000 s starts a new session (120 s + 900 s < 2000 s).
    let input = [
        click("u1", 0, "i1", "c1"),
        click("u1", 60, "i1", "c1"),
        click("u1", 120, "i2", "c1"),
        click("u1", 2000, "i3", "c1"),
    ]
    .concat();
    let run = common::run_example("user-session", &input, &["source.step=1"])?;
    assert_eq!(
        rows(&run.features),
        vec![
            (ms(0), ms(900), "event".into(), json!({"clicks_in_session": 1, "session_duration_s": 0})),
            (ms(0), ms(960), "event".into(), json!({"clicks_in_session": 2, "session_duration_s": 60})),
            (ms(0), ms(1020), "event".into(), json!({"clicks_in_session": 3, "session_duration_s": 120})),
            (ms(2000), ms(2900), "event".into(), json!({"clicks_in_session": 1, "session_duration_s": 0})),
        ]
    );
    Ok(())
}

/// The blackhole sink takes every row, dead letter and late event a file
/// sink would, and writes nothing: the summary counts what the file holds
/// in the run with files.
#[test]
fn a_blackhole_sink_takes_what_a_file_sink_would_and_keeps_nothing() -> anyhow::Result<()> {
    let input = [
        click("u1", 0, "i1", "c1"),
        click("u2", 10, "i2", "c2"),
        format!("{{\"user_id\": \"u1\", \"item_id\": 5, \"category\": \"c1\", \"timestamp\": {BASE}}}\n"),
        click("u1", 4000, "i3", "c1"),
        click("u2", 20, "i4", "c1"),
    ]
    .concat();
    let files = common::run_example("session-features", &input, &["source.step=1"])?;
    assert!(!files.features.is_empty() && !files.dead.is_empty() && !files.late.is_empty(), "every output is used");
    let blackholes = [
        "outputs.features.0={type: blackhole}",
        "outputs.dead_letters.0={type: blackhole, report_every: off}",
        "outputs.late_events.0={type: blackhole, report_every: 1s}",
        "source.step=1",
    ];
    let run = common::run_example("session-features", &input, &blackholes)?;
    assert!(run.features.is_empty() && run.dead.is_empty() && run.late.is_empty(), "nothing is written");
    let counted = (run.summary.feature_rows, run.summary.dead_letters, run.summary.late_events);
    assert_eq!(counted, (files.features.len() as u64, files.dead.len() as u64, files.late.len() as u64));
    Ok(())
}

/// Keys typed `int` reach the sink as JSON numbers; a key that is not an
/// integer is a dead letter. Typed `string` (the default), the same
/// integer keys are text.
#[test]
fn integer_keys_keep_their_type_to_the_sinks() -> anyhow::Result<()> {
    let tx = |user: &str, at: i64| {
        format!("{{\"user_id\":{user},\"merchant_id\":\"m\",\"amount\":1,\"timestamp\":{}}}\n", BASE + at)
    };
    let input = [tx("7", 0), tx("42", 10), tx("7", 20), tx("\"u1\"", 30)].concat();
    let run = common::run_example("tx-velocity", &input, &["events.key_type=int"])?;
    let mut keys: Vec<(Value, Value)> =
        run.features.iter().map(|f| (f["key"].clone(), f["features"]["tx_count"].clone())).collect();
    keys.sort_by_key(|(k, _)| k.as_i64());
    assert_eq!(keys, [(json!(7), json!(2)), (json!(42), json!(1))]);
    let dead: Vec<&str> = run.dead.iter().filter_map(|d| d["error_class"].as_str()).collect();
    assert_eq!(dead, ["wrong_type"]);
    let text = common::run_example("tx-velocity", &input, &[])?;
    let mut keys: Vec<Value> = text.features.iter().map(|f| f["key"].clone()).collect();
    keys.sort_by_key(|k| k.as_str().map(str::to_string));
    assert_eq!(keys, [json!("42"), json!("7"), json!("u1")]);
    Ok(())
}

/// Dual write: the same rows to the file and to Redis, one hash per user
/// holding the latest window's features.
#[test]
fn session_features_dual_write_to_redis() -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("sluice-test:{}:{nanos}", std::process::id());
    let input = [click("u1", 0, "i1", "c1"), click("u2", 10, "i2", "c2"), click("u1", 30, "i3", "c1")].concat();
    let redis = format!(
        "outputs.features.1={{type: redis, url: 'redis://127.0.0.1:6379', key: '{prefix}:user:{{key}}', ttl: 2h}}"
    );
    let run = common::run_example("session-features", &input, &[&redis])?;
    let mut conn = ::redis::Client::open("redis://127.0.0.1:6379")?.get_connection()?;
    for user in ["u1", "u2"] {
        // The row with the latest window end is what the hash holds.
        let last = run
            .features
            .iter()
            .filter(|f| f["key"] == user)
            .max_by_key(|f| f["window_end"].as_i64())
            .cloned()
            .unwrap_or_default();
        let key = format!("{prefix}:user:{user}");
        let hash: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL").arg(&key).query(&mut conn)?;
        assert_eq!(hash.get("window_end"), Some(&last["window_end"].to_string()));
        assert_eq!(hash.get("items_clicked_30m"), Some(&last["features"]["items_clicked_30m"].to_string()));
        assert_eq!(hash.get("item_count_30m"), Some(&last["features"]["item_count_30m"].to_string()));
        assert_eq!(hash.get("top_category_30m").map(String::as_str), last["features"]["top_category_30m"].as_str());
        let ttl: i64 = ::redis::cmd("TTL").arg(&key).query(&mut conn)?;
        assert!(ttl > 7_000, "ttl {ttl}");
        let _: () = ::redis::cmd("DEL").arg(&key).query(&mut conn)?;
    }
    // u1's latest window is [0 s, 1800 s): both its clicks, i1 then i3.
    let u1 = run.features.iter().filter(|f| f["key"] == "u1").max_by_key(|f| f["window_end"].as_i64()).cloned();
    let u1 = u1.unwrap_or_default();
    assert_eq!((u1["window_start"].as_i64(), u1["window_end"].as_i64()), (Some(ms(0)), Some(ms(1800))));
    assert_eq!(u1["features"]["items_clicked_30m"], json!(["i1", "i3"]));
    Ok(())
}
