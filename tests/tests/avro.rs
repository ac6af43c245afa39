//! Avro with a schema registry, against real clients: the registry
//! `sluice serve` hosts answers confluent-kafka's `SchemaRegistryClient`
//! on every route and keeps its ids over a restart; click events produced
//! with its `AvroSerializer`, switching schema version mid-stream, give
//! the features of the same events as JSON, through a registry outage,
//! and the Avro feature topic reads back through its `AvroDeserializer`
//! as the JSON one; the Kafka sink registers a new version of its rows'
//! schema as the features change, and is refused one that breaks
//! compatibility.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{BROKERS, Host, Running, TOKEN, Topics, python, unique};
use serde_json::{Value, json};
use sluice_examples::Shape;
use sluice_examples::kafka::create_topic;
use sluice_schema_registry::RegistryConfig;
use sluice_sink_api::{Context, FeatureSchema, FeatureSpec, FeatureType};
use sluice_sink_kafka::{KafkaSink, KafkaSinkConfig, RowFormat};
use sluice_tests::e2e::{self, file_outputs, run_to_end, sluice_run, troubled_stream, wait_until};
use sluice_tests::jsonl::read_output;

/// Every registry route the client calls, each compatibility level with a
/// case it accepts and one it refuses (see `registry_client.py`), then a
/// restart: the same ids, and registering again finds them.
#[test]
fn the_registry_answers_confluent_kafka_s_client_and_keeps_its_ids() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut host = Host::start(&data, dir.path().join("serve-1.log"))?;
    let ids = python("registry_client.py", &[&host.url, TOKEN, "first"])
        .map_err(|e| anyhow::anyhow!("{e}\n{}", host.log_text()))?;
    host.process.terminate()?;

    let host = Host::start(&data, dir.path().join("serve-2.log"))?;
    let fresh = python("registry_client.py", &[&host.url, TOKEN, "restarted", &ids.to_string()])
        .map_err(|e| anyhow::anyhow!("{e}\n{}", host.log_text()))?;
    let (v1, v2) = (ids["v1"].as_u64(), ids["v2"].as_u64());
    assert!(v1.is_some() && v2.is_some() && v1 != v2, "{ids}");
    assert!(fresh["fresh"].as_u64() > v2, "a new schema's id follows the others: {fresh} after {ids}");
    Ok(())
}

/// Feature rows, keyed by entity and window, in one order.
fn features(dir: &Path) -> Vec<String> {
    let mut rows: Vec<String> = read_output(&dir.join("features.jsonl"))
        .iter()
        .map(|r| format!("{} {} {}", r["key"], r["window_start"], r["features"]))
        .collect();
    rows.sort();
    rows
}

/// Seed 000's schema change: clicks produced as Avro v1, then v2 (adding
/// `device_type` with a default), read with the pipeline's declared
/// fields, give exactly the features of the same clicks as JSON; the two
/// records no registry explains are dead letters that say why, with the
/// schema id. The registry is down when the pipeline starts: it holds
/// where it is, says so, and goes on once the registry (restarted, the
/// same ids) answers, losing nothing. The run writes its rows to two
/// Kafka topics as well, as JSON and as Avro (registering the rows'
/// schema once the registry is back): `AvroDeserializer` reads the Avro
/// topic back row for row as the JSON one.
#[test]
fn avro_clicks_across_a_schema_change_give_the_features_of_the_same_clicks_as_json() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let bind = format!("127.0.0.1:{port}");
    let mut host = Host::start_on(&bind, &data, dir.path().join("serve-1.log"))?;
    let (avro, json) = (Topics::create("avro", 1)?, Topics::create("avro-json", 1)?);
    let events = dir.path().join("clicks.jsonl");
    let config = sluice_examples::Config { malformed: 0.0, ..troubled_stream(Shape::Clicks, 3_000, 30, 5.0) };
    sluice_examples::generate(&config, &mut std::io::BufWriter::new(std::fs::File::create(&events)?))?;
    let events = events.display().to_string();
    let ids = python("produce_avro.py", &[&host.url, TOKEN, BROKERS, &avro.input, &json.input, &events])?;
    host.process.terminate()?;

    let json_out = dir.path().join("json");
    std::fs::create_dir(&json_out)?;
    run_to_end("session-features", &[("source", &json.source(100, true)), ("outputs", &file_outputs(&json_out))])?;

    let avro_out = dir.path().join("avro");
    std::fs::create_dir(&avro_out)?;
    let registry = format!("{{url: 'http://{bind}', username: pipeline, password_env: SLUICE_TEST_REGISTRY_TOKEN}}");
    let json_rows = format!("{}-json", avro.features);
    create_topic(BROKERS, &json_rows, 1)?;
    let file = |name: &str| format!("{{type: file, path: '{}'}}", avro_out.join(name).display());
    let kafka = |topic: &str, format: &str| {
        format!("{{type: kafka, brokers: '{BROKERS}', topic: '{topic}', format: {format}, registry: {registry}}}")
    };
    let outputs = format!(
        "{{features: [{}, {}, {{type: kafka, brokers: '{BROKERS}', topic: '{json_rows}'}}], dead_letters: [{}], \
         late_events: [{}]}}",
        file("features.jsonl"),
        kafka(&avro.features, "avro"),
        file("dead.jsonl"),
        file("late.jsonl")
    );
    let log = dir.path().join("avro-run.log");
    let mut run = Running(
        sluice_run(
            "session-features",
            &[
                ("source", &avro.source(100, true)),
                ("outputs", &outputs),
                ("events.format", "avro"),
                ("events.registry", &registry),
            ],
        )
        .env("SLUICE_TEST_REGISTRY_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log)?)
        .spawn()?,
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the pipeline to wait for the registry", Duration::from_secs(60), Duration::from_millis(100), || {
        Ok(log_text().contains("cannot decode the next records yet"))
    })?;
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.0.try_wait()?.is_none(), "the run ended while the registry was down:\n{}", log_text());
    assert!(!avro_out.join("dead.jsonl").exists() || read_output(&avro_out.join("dead.jsonl")).is_empty());

    let _host = Host::start_on(&bind, &data, dir.path().join("serve-2.log"))?;
    let mut status = None;
    wait_until("the Avro run to end", Duration::from_secs(120), Duration::from_millis(100), || {
        status = run.0.try_wait()?;
        Ok(status.is_some())
    })?;
    anyhow::ensure!(status.is_some_and(|s| s.success()), "the Avro run failed:\n{}", log_text());

    let want = features(&json_out);
    assert!(want.len() > 100, "the JSON run computed {} rows", want.len());
    assert_eq!(features(&avro_out), want, "Avro and JSON runs differ");
    assert!(read_output(&json_out.join("dead.jsonl")).is_empty());
    let dead = read_output(&avro_out.join("dead.jsonl"));
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| (d["error_class"].as_str().unwrap_or_default(), d["message"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    let unknown = format!("schema id {}", ids["unknown"]);
    assert!(
        reasons.iter().any(|(class, message)| *class == "unknown_schema_id" && message.contains(&unknown)),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(class, _)| *class == "avro_framing"), "{reasons:?}");

    let url = format!("http://{bind}");
    let read = python("consume_avro.py", &[&url, TOKEN, BROKERS, &avro.features, &json_rows])?;
    let (from_avro, from_json) = (&read["avro"], &read["json"]);
    assert_eq!(from_avro.as_array().map(Vec::len), Some(want.len()), "{}", read["avro"]);
    assert_eq!(from_avro, from_json, "the Avro feature topic does not read back as the JSON one");
    Ok(())
}

/// A writer schema that declares a nested record only by a schema
/// reference to another subject (confluent-kafka's `SchemaReference`): the
/// decoder follows the reference to read `device.os`, declared required,
/// so a record it could not read would be a dead letter; the features are
/// those of the same clicks as JSON.
#[test]
fn a_writer_schema_with_a_reference_to_another_subject_is_read_through_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let (avro, json) = (Topics::create("avro-refs", 1)?, Topics::create("avro-refs-json", 1)?);
    let events = dir.path().join("clicks.jsonl");
    let config = sluice_examples::Config { malformed: 0.0, ..troubled_stream(Shape::Clicks, 2_000, 20, 5.0) };
    sluice_examples::generate(&config, &mut std::io::BufWriter::new(std::fs::File::create(&events)?))?;
    let events = events.display().to_string();
    python("produce_avro_references.py", &[&host.url, TOKEN, BROKERS, &avro.input, &json.input, &events])?;

    let (json_out, avro_out) = (dir.path().join("json"), dir.path().join("avro"));
    std::fs::create_dir(&json_out)?;
    std::fs::create_dir(&avro_out)?;
    run_to_end("session-features", &[("source", &json.source(100, true)), ("outputs", &file_outputs(&json_out))])?;
    let registry = format!("{{url: '{}', username: pipeline, password_env: SLUICE_TEST_REGISTRY_TOKEN}}", host.url);
    let fields = "[{name: item_id, type: string}, {name: category, type: string}, {name: device.os, type: string}]";
    let out = sluice_run(
        "session-features",
        &[
            ("source", &avro.source(100, true)),
            ("outputs", &file_outputs(&avro_out)),
            ("events.format", "avro"),
            ("events.registry", &registry),
            ("events.fields", fields),
        ],
    )
    .env("SLUICE_TEST_REGISTRY_TOKEN", TOKEN)
    .output()?;
    anyhow::ensure!(out.status.success(), "the Avro run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(read_output(&avro_out.join("dead.jsonl")).is_empty(), "{:?}", read_output(&avro_out.join("dead.jsonl")));
    let want = features(&json_out);
    assert!(want.len() > 50, "the JSON run computed {} rows", want.len());
    assert_eq!(features(&avro_out), want, "Avro with a referenced schema and JSON runs differ");
    Ok(())
}

/// A backfill over a data lake's Avro: the same clicks as a JSON-lines
/// file and as an Avro object container file written by fastavro (deflate,
/// many blocks) give the same features, with nothing dead-lettered.
#[test]
fn an_avro_container_file_gives_the_features_of_the_same_clicks_as_json_lines() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (events, avro) = (dir.path().join("clicks.jsonl"), dir.path().join("clicks.avro"));
    // No late events: a file's steps are whole blocks, so the watermark
    // moves at other records than in the JSON run, and only events within
    // the out-of-orderness read the same whatever the steps.
    let config =
        sluice_examples::Config { malformed: 0.0, late: 0.0, ..troubled_stream(Shape::Clicks, 5_000, 50, 5.0) };
    sluice_examples::generate(&config, &mut std::io::BufWriter::new(std::fs::File::create(&events)?))?;
    let written = python("write_avro_file.py", &[&events.display().to_string(), &avro.display().to_string()])?;
    assert!(written["blocks"].as_u64() > Some(10), "{written}");
    let mut outputs = Vec::new();
    for (name, path, format) in [("json", &events, "json"), ("avro", &avro, "avro")] {
        let out = dir.path().join(name);
        std::fs::create_dir(&out)?;
        let source = format!("{{type: file, path: '{}', step: 100}}", path.display());
        run_to_end(
            "session-features",
            &[("source", &source), ("outputs", &file_outputs(&out)), ("events.format", format)],
        )?;
        outputs.push(out);
    }
    let want = features(&outputs[0]);
    assert!(want.len() > 100, "the JSON run computed {} rows", want.len());
    assert_eq!(features(&outputs[1]), want, "Avro file and JSON lines differ");
    for out in &outputs {
        assert!(read_output(&out.join("dead.jsonl")).is_empty(), "dead letters in {}", out.display());
    }
    Ok(())
}

/// A feature.
fn feature(name: &str, ty: FeatureType, nullable: bool) -> FeatureSpec {
    FeatureSpec { name: name.into(), ty, nullable, description: String::new() }
}

/// The Kafka sink with `format: avro` registers its rows' schema under
/// `{topic}-value` as it opens: the same features again find the same id;
/// a nullable feature added (with its default) is a new version under
/// BACKWARD; a required feature added is refused, as old rows lack it,
/// with the registry's 40901 and message, and the sink does not open.
#[test]
fn the_kafka_sink_registers_a_version_per_change_of_features_and_is_refused_an_incompatible_one() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let topic = unique("avro-rows");
    let registry =
        RegistryConfig { username: Some("sink".into()), password_file: Some(token), ..RegistryConfig::new(&host.url) };
    let config = KafkaSinkConfig {
        brokers: BROKERS.into(),
        topic: topic.clone(),
        properties: Default::default(),
        format: RowFormat::Avro,
        registry: Some(registry),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let open = |specs: Vec<FeatureSpec>| -> anyhow::Result<Result<(), sluice_sink_api::Error>> {
        let context =
            Context { schema: Arc::new(FeatureSchema::new(specs).map_err(anyhow::Error::msg)?), ..Context::default() };
        Ok(runtime.block_on(KafkaSink::open("outputs.features[0]", &config, &context)).map(|_| ()))
    };
    let versions = || -> anyhow::Result<Value> {
        let (status, body) = host.call(reqwest::Method::GET, &format!("/subjects/{topic}-value/versions"))?;
        anyhow::ensure!(status == 200, "{status} {body}");
        Ok(body)
    };
    let v1 = vec![feature("clicks", FeatureType::Int, false), feature("items", FeatureType::Strs, false)];
    open(v1.clone())?.map_err(|e| anyhow::anyhow!("{e}\n{}", host.log_text()))?;
    open(v1.clone())?.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(versions()?, json!([1]));

    let mut v2 = v1;
    v2.push(feature("top_category", FeatureType::Str, true));
    open(v2.clone())?.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(versions()?, json!([1, 2]));

    let mut v3 = v2;
    v3.push(feature("avg_price", FeatureType::Float, false));
    let refused = open(v3)?.err().ok_or_else(|| anyhow::anyhow!("an incompatible schema was registered"))?;
    assert!(!refused.retriable, "{refused}");
    assert!(
        refused.message.contains("40901") && refused.message.contains("incompatible with an earlier schema"),
        "{refused}"
    );
    assert_eq!(versions()?, json!([1, 2]));
    Ok(())
}

/// `sluice validate` asks the registry: the subject of each topic's values
/// must exist, and a registry that does not answer is a problem at its URL
/// (a run would start, and wait for it).
#[test]
fn validate_asks_the_registry_for_each_topic_s_subject() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut host = Host::start(&dir.path().join("data"), dir.path().join("serve.log"))?;
    let (registered, unregistered) = (Topics::create("avro-validate", 1)?, Topics::create("avro-unregistered", 1)?);
    let schema = r#"{"type": "record", "name": "click", "fields": [{"name": "user_id", "type": "string"}]}"#;
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/subjects/{}-value/versions", host.url, registered.input))
        .basic_auth("anyone", Some(TOKEN))
        .body(serde_json::json!({ "schema": schema }).to_string())
        .send()?;
    anyhow::ensure!(answer.status().is_success(), "registering: {}", answer.text()?);
    let registry = format!("{{url: '{}', username: validate, password_env: SLUICE_TEST_REGISTRY_TOKEN}}", host.url);
    let validate = |t: &Topics| -> anyhow::Result<(bool, String)> {
        let out = Command::new(e2e::sluice())
            .current_dir(e2e::root())
            .args(["validate", "examples/session-features.yaml"])
            .args(["--set", &format!("source={}", t.source(100, true))])
            .args(["--set", "events.format=avro", "--set", &format!("events.registry={registry}")])
            .env("SLUICE_TEST_REGISTRY_TOKEN", TOKEN)
            .output()?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
    };
    let (ok, said) = validate(&registered)?;
    assert!(ok, "{said}");
    let (ok, said) = validate(&unregistered)?;
    let subject = format!("{}-value", unregistered.input);
    assert!(!ok && said.contains(&format!("has no subject {subject}")) && said.contains("source.topics"), "{said}");
    host.process.terminate()?;
    let (ok, said) = validate(&registered)?;
    assert!(!ok && said.contains("did not answer") && said.contains("events.registry.url"), "{said}");
    Ok(())
}
