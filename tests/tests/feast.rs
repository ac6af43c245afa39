//! Feast reads what Sluice writes: the session-features and tx-velocity
//! pipelines run from the broker into Redis in the Feast layout (and to a
//! file, from the same batches); `sluice feast generate` writes a Feast
//! repository for both, real `feast apply` takes it, and
//! `FeatureStore.get_online_features` gives, for every key, the values of
//! the row Sluice computed last (list, integer, string and null features
//! keyed by a string; integer and double features keyed by an integer),
//! also for two views of one entity written by two pipelines into the
//! same hashes (seed 002).

mod common;

use std::path::Path;
use std::process::Command;

use common::{REDIS, Topics, generated, produce_lines, python, unique};
use serde_json::Value;
use sluice_examples::Shape;
use sluice_sink_api::{EntityKey, FeatureSchema};
use sluice_sink_redis::feast::FeastLayout;
use sluice_tests::e2e::{self, run_to_end, troubled_stream};

/// `--set outputs=…`: features to `dir/features.jsonl` and to Redis as
/// `view` of `project`, the rest to files in `dir`.
fn outputs(dir: &Path, project: &str, view: &str, join_key: &str) -> String {
    let file = |name: &str| format!("{{type: file, path: '{}'}}", dir.join(name).display());
    format!(
        "{{features: [{}, {{type: redis, url: '{REDIS}', layout: feast, project: {project}, feature_view: {view}, \
         join_key: {join_key}, ttl: 1h}}], dead_letters: [{}], late_events: [{}]}}",
        file("features.jsonl"),
        file("dead.jsonl"),
        file("late.jsonl")
    )
}

/// `--set` pairs as `run_to_end` and `generate` take them.
fn borrowed<'a>(sets: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    sets.iter().map(|(path, value)| (*path, value.as_str())).collect()
}

/// `sluice feast generate` of an example with `sets`, into `repo`.
fn generate(example: &str, sets: &[(&str, &str)], repo: &Path) -> anyhow::Result<String> {
    let mut command = Command::new(e2e::sluice());
    command.current_dir(e2e::root()).args(["feast", "generate", &format!("examples/{example}.yaml")]);
    for (path, value) in sets {
        command.args(["--set", &format!("{path}={value}")]);
    }
    let out = command.arg("--out").arg(repo).output()?;
    anyhow::ensure!(out.status.success(), "feast generate failed:\n{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// What `feast_online.py` read, checked: every key answered with the
/// values Sluice computed, none a mismatch, the absent key all nulls.
fn check_read(read: &Value, view: &str, min_keys: u64) {
    assert_eq!(read["mismatches"], Value::Array(Vec::new()), "{view}: {read}");
    assert!(read["keys"].as_u64() >= Some(min_keys), "{view}: {read}");
    assert!(read["non_null"].as_u64() > Some(0), "{view}: {read}");
    let absent = read["absent"].as_array().cloned().unwrap_or_default();
    assert!(!absent.is_empty() && absent.iter().all(Value::is_null), "{view}: {read}");
}

#[test]
fn feast_reads_the_features_sluice_writes_with_no_ingestion_job() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A project of its own: its Redis keys are this run's.
    let project = unique("feast").replace('-', "_");
    let repo = dir.path().join("repo");

    // Clicks, and a user whose clicks have no category (its top category
    // is null).
    let clicks = Topics::create("feast-clicks", 1)?;
    let mut lines = generated(&troubled_stream(Shape::Clicks, 3_000, 30, 5.0))?;
    let first: f64 =
        lines.iter().find_map(|l| serde_json::from_str::<Value>(l).ok()?["timestamp"].as_f64()).unwrap_or(0.0);
    for i in 0..20 {
        let t = first + f64::from(i) * 7.0;
        lines.insert(40 * i as usize, format!(r#"{{"user_id":"nocat","item_id":"i{i}","timestamp":{t}}}"#));
    }
    produce_lines(&lines, &clicks.input)?;
    let session = dir.path().join("session");
    std::fs::create_dir(&session)?;
    let session_sets = [
        ("source", clicks.source(100, true)),
        ("outputs", outputs(&session, &project, "session_features", "user_id")),
        ("events.fields.1", "{name: category, type: string, required: false}".into()),
    ];
    let session_sets = borrowed(&session_sets);
    run_to_end("session-features", &session_sets)?;

    // Seed 002: the same users' transactions, a second view of the same
    // entity, written to the same hashes.
    let transactions = generated(&troubled_stream(Shape::Transactions, 3_000, 40, 5.0))?;
    let by_user = Topics::create("feast-tx-user", 1)?;
    produce_lines(&transactions, &by_user.input)?;
    let user_velocity = dir.path().join("user-velocity");
    std::fs::create_dir(&user_velocity)?;
    let user_velocity_sets = [
        ("source", by_user.source(100, true)),
        ("outputs", outputs(&user_velocity, &project, "user_tx_velocity", "user_id")),
    ];
    let user_velocity_sets = borrowed(&user_velocity_sets);
    run_to_end("tx-velocity", &user_velocity_sets)?;

    // Transactions keyed by an integer account number.
    let lines: Vec<String> = transactions
        .into_iter()
        .map(|line| match serde_json::from_str::<Value>(&line) {
            Ok(mut event) => {
                let number = event["user_id"].as_str().and_then(|u| u.strip_prefix('u')?.parse::<i64>().ok());
                if let Some(number) = number {
                    event["user_id"] = Value::from(number * 1_000_003);
                }
                event.to_string()
            }
            Err(_) => line,
        })
        .collect();
    let transactions = Topics::create("feast-tx", 1)?;
    produce_lines(&lines, &transactions.input)?;
    let velocity = dir.path().join("velocity");
    std::fs::create_dir(&velocity)?;
    let velocity_sets = [
        ("source", transactions.source(100, true)),
        ("outputs", outputs(&velocity, &project, "tx_velocity", "account_id")),
        ("events.key_type", "int".into()),
    ];
    let velocity_sets = borrowed(&velocity_sets);
    run_to_end("tx-velocity", &velocity_sets)?;

    // One repository for both pipelines: the second run keeps the first's
    // feature_store.yaml.
    let said = generate("session-features", &session_sets, &repo)?;
    assert!(said.contains("feature_store.yaml") && said.contains("sluice_view_session_features.py"), "{said}");
    let said = generate("tx-velocity", &velocity_sets, &repo)?;
    assert!(!said.contains("feature_store.yaml") && said.contains("sluice_view_tx_velocity.py"), "{said}");
    // The entity is there already, the same: kept, and imported by both.
    let said = generate("tx-velocity", &user_velocity_sets, &repo)?;
    assert!(!said.contains("sluice_entity_user_id.py") && said.contains("sluice_view_user_tx_velocity.py"), "{said}");
    let feast = e2e::python().with_file_name("feast");
    let out = Command::new(&feast).current_dir(&repo).env("FEAST_USAGE", "False").arg("apply").output()?;
    anyhow::ensure!(
        out.status.success(),
        "feast apply failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let repo_text = repo.display().to_string();
    let read = |view: &str, join_key: &str, dir: &Path| {
        let features = dir.join("features.jsonl").display().to_string();
        python("feast_online.py", &[&repo_text, view, join_key, &features])
    };
    let sessions = read("session_features", "user_id", &session)?;
    check_read(&sessions, "session_features", 30);
    assert!(sessions["null"].as_u64() > Some(0), "the null top category of `nocat`: {sessions}");
    let types = &sessions["types"];
    assert_eq!(types["items_clicked_30m"], serde_json::json!(["list"]), "{sessions}");
    assert_eq!(types["item_count_30m"], serde_json::json!(["int"]), "{sessions}");
    assert_eq!(types["top_category_30m"], serde_json::json!(["NoneType", "str"]), "{sessions}");
    let by_user = read("user_tx_velocity", "user_id", &user_velocity)?;
    check_read(&by_user, "user_tx_velocity", 30);
    // The two views share the users' hashes: each keeps its own fields and
    // `_ts` (five and three features, a `_ts` each).
    let layout = FeastLayout::new(&project, "session_features", "user_id", &FeatureSchema::default());
    let mut redis = redis::Client::open(REDIS)?.get_connection()?;
    let fields: usize = redis::cmd("HLEN").arg(layout.key(&EntityKey::Str("u1".into()))).query(&mut redis)?;
    assert_eq!(fields, 5 + 1 + 3 + 1, "u1's hash holds both views");
    let velocities = read("tx_velocity", "account_id", &velocity)?;
    check_read(&velocities, "tx_velocity", 30);
    assert_eq!(velocities["types"]["tx_sum"], serde_json::json!(["float"]), "{velocities}");
    assert_eq!(velocities["types"]["tx_count"], serde_json::json!(["int"]), "{velocities}");

    // The run's keys, away.
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(format!("*{project}")).query(&mut redis)?;
    assert!(keys.len() >= 60, "{} keys end in the project's name", keys.len());
    for chunk in keys.chunks(500) {
        redis::cmd("UNLINK").arg(chunk).query::<()>(&mut redis)?;
    }
    Ok(())
}
