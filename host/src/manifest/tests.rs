use super::*;

const GOOD: &str = r#"name: clicks
source:
  type: file
  path: in.jsonl
events:
  key: user_id
  timestamp: {field: timestamp, format: seconds}
  fields:
    - {name: item_id, type: string}
    - {name: category, type: string, required: false}
window:
  type: sliding
  size: 30m
  slide: 1m
  allowed_lateness: 2m
transform:
  module: session.wasm
outputs:
  features: [{type: file, path: out/f.jsonl}]
  dead_letters: [{type: file, path: out/d.jsonl}]
  late_events: [{type: file, path: out/l.jsonl}]
"#;

fn problems(text: &str, overrides: &[&str]) -> Vec<Problem> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Manifest::parse("m.yaml", text, &overrides).err().map(|e| e.problems).unwrap_or_default()
}

#[test]
fn a_good_manifest_loads_with_defaults() -> Result<(), ManifestError> {
    use crate::window;
    let m = Manifest::parse("m.yaml", GOOD, &[])?;
    let lowered = m.lower();
    let spec = lowered.window;
    assert_eq!(spec.kind, window::Kind::Sliding { size: 1_800_000, slide: 60_000 });
    assert_eq!(spec.allowed_lateness, 120_000);
    assert_eq!(spec.trigger, window::TriggerMode::Close);
    assert_eq!(spec.state_ttl, 1_800_000 + 120_000 + 3_600_000);
    assert_eq!(lowered.out_of_orderness_ms, 0);
    assert_eq!(lowered.idle_timeout, Some(std::time::Duration::from_secs(60)));
    assert_eq!(lowered.schema.max_future_skew_ms, Some(60_000));
    assert!(lowered.schema.fields[0].required && !lowered.schema.fields[1].required);
    assert_eq!(lowered.transform.kind, crate::wasm::Kind::Window);
    assert_eq!(lowered.transform.limits.memory_bytes, 256 << 20);
    assert_eq!(lowered.transform.bounds.windows, 16_384);
    assert_eq!(lowered.transform.max_delay, std::time::Duration::from_secs(1));
    assert_eq!(lowered.max_event_bytes, 1 << 20);
    assert!(lowered.checkpoint.is_none());
    Ok(())
}

#[test]
fn unknown_fields_are_located_with_line_and_column() {
    let text = GOOD.replace("  slide: 1m", "  slid: 1m");
    let p = problems(&text, &[]);
    // And what the missing `slide` means for a sliding window.
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].message.contains("unknown field `slid`"), "{}", p[0].message);
    assert_eq!((p[0].line, p[0].column), (Some(14), Some(3)));
    assert!(p[0].hint.is_some());
}

#[test]
fn every_unknown_field_is_reported() {
    let text =
        GOOD.replace("  slide: 1m", "  slid: 1m").replace("  path: in.jsonl", "  path: in.jsonl\n  paht: x").replace(
            "  features: [{type: file, path: out/f.jsonl}]",
            "  features: [{type: file, path: out/f.jsonl, apend: true}]",
        );
    let p = problems(&text, &[]);
    let found: Vec<(&str, Option<usize>)> = p.iter().map(|p| (p.path.as_str(), p.line)).collect();
    // Tagged sections (source, sinks) are located at their start; the
    // manifest's own checks run on what is left (`slid` is not `slide`).
    let want =
        [("source", Some(2)), ("window.slid", Some(15)), ("outputs.features[0]", Some(20)), ("window.slide", Some(12))];
    assert_eq!(found, want, "{p:?}");
    assert!(p[..3].iter().all(|p| p.message.starts_with("unknown field")), "{p:?}");
    assert_eq!(p[3].message, "a sliding window needs `slide`");
}

#[test]
fn bad_values_point_at_the_value() {
    let text = GOOD.replace("size: 30m", "size: thirty");
    let p = problems(&text, &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "window.size");
    assert_eq!(p[0].line, Some(13));
    assert!(p[0].message.contains("`thirty` is not a duration"), "{}", p[0].message);
    assert!(p[0].hint.as_deref().is_some_and(|h| h.contains("30s")));
}

#[test]
fn every_semantic_problem_is_reported() {
    let text = GOOD
        .replace("  slide: 1m\n", "  slide: 45m\n")
        .replace("    - {name: category, type: string, required: false}", "    - {name: item_id, type: int}")
        .replace("  dead_letters: [{type: file, path: out/d.jsonl}]", "  dead_letters: []");
    let p = problems(&text, &[]);
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, vec!["window.slide", "events.fields[1].name", "outputs.dead_letters"], "{p:?}");
    assert_eq!(p[0].line, Some(14));
    assert_eq!(p[1].line, Some(10));
    assert_eq!(p[2].line, Some(20));
}

#[test]
fn redis_and_iceberg_take_feature_rows_only() {
    let text = GOOD
        .replace(
            "  late_events: [{type: file, path: out/l.jsonl}]",
            "  late_events: [{type: redis, url: 'redis://127.0.0.1', key: 'late:{key}'}]",
        )
        .replace(
            "  dead_letters: [{type: file, path: out/d.jsonl}]",
            "  dead_letters: [{type: iceberg, warehouse: out/w, table: dead}]",
        );
    let p = problems(&text, &[]);
    let found: Vec<(&str, &str)> = p.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
    assert_eq!(
        found,
        [
            ("outputs.dead_letters[0]", "the iceberg sink stores feature rows only"),
            ("outputs.late_events[0]", "the redis sink stores feature rows only")
        ]
    );
    let features = GOOD.replace(
        "  features: [{type: file, path: out/f.jsonl}]",
        "  features: [{type: file, path: out/f.jsonl}, {type: redis, url: 'redis://127.0.0.1', key: 'u:{key}', ttl: 2h}, \
         {type: iceberg, warehouse: out/w, namespace: offline, table: features, catalog: {type: sql, name: c}}]",
    );
    assert!(problems(&features, &[]).is_empty());
}

/// A Kafka sink writes feature rows as Avro; dead letters and late events
/// are their raw bytes, so `format` and `registry` are refused there.
#[test]
fn a_kafka_sink_takes_avro_for_feature_rows_only() {
    let kafka = |extra: &str| format!("{{type: kafka, brokers: b:9092, topic: t{extra}}}");
    let avro = ", format: avro, registry: {url: 'http://127.0.0.1:8081'}";
    let text = GOOD
        .replace("  features: [{type: file, path: out/f.jsonl}]", &format!("  features: [{}]", kafka(avro)))
        .replace("  dead_letters: [{type: file, path: out/d.jsonl}]", &format!("  dead_letters: [{}]", kafka(avro)))
        .replace(
            "  late_events: [{type: file, path: out/l.jsonl}]",
            &format!("  late_events: [{}]", kafka(", registry: {url: 'http://127.0.0.1:8081'}")),
        );
    let p = problems(&text, &[]);
    let found: Vec<(&str, &str)> = p.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (
                "outputs.dead_letters[0].format",
                "`format` is for feature rows; dead letters are written as their raw bytes"
            ),
            ("outputs.late_events[0].registry", "only format: avro uses a registry"),
            (
                "outputs.late_events[0].registry",
                "`registry` is for feature rows; late events are written as their raw bytes"
            ),
        ]
    );
    let refused = problems(
        &GOOD.replace(
            "  features: [{type: file, path: out/f.jsonl}]",
            &format!("  features: [{}]", kafka(", format: avro")),
        ),
        &[],
    );
    assert_eq!(refused.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(), ["outputs.features[0].registry"]);
}

#[test]
fn kafka_properties_sluice_depends_on_are_refused_where_they_are() {
    let kafka = |properties: &str| {
        GOOD.replace(
            "  type: file\n  path: in.jsonl\n",
            &format!(
                "  type: kafka\n  brokers: 127.0.0.1:9092\n  topics: [clicks]\n  group: g\n  properties:\n{properties}"
            ),
        )
    };
    let text = kafka(concat!(
        "    enable.auto.commit: \"true\"\n",
        "    partition.assignment.strategy: cooperative-sticky\n",
        "    group.id: other\n",
        "    group.protocol: consumer\n",
        "    security.protocol: SASL_SSL\n",
    ));
    let p = problems(&text, &[]);
    let found: Vec<(&str, Option<usize>)> = p.iter().map(|p| (p.path.as_str(), p.line)).collect();
    assert_eq!(
        found,
        vec![
            ("source.properties.enable.auto.commit", Some(8)),
            ("source.properties.group.id", Some(10)),
            ("source.properties.group.protocol", Some(11)),
            ("source.properties.partition.assignment.strategy", Some(9)),
        ]
    );
    assert!(p[0].message.contains("commits offsets itself"), "{}", p[0].message);
    assert!(p[3].message.contains("eager rebalance protocol"), "{}", p[3].message);
    // What Sluice would set anyway, an eager strategy, and passed-through
    // settings are fine.
    let fine = kafka(concat!(
        "    enable.auto.commit: \"false\"\n",
        "    partition.assignment.strategy: roundrobin\n",
        "    group.protocol: classic\n",
        "    fetch.wait.max.ms: \"20\"\n",
    ));
    assert_eq!(problems(&fine, &[]), vec![]);
}

#[test]
fn session_and_tumbling_shapes_are_checked() {
    let session = GOOD.replace("  type: sliding\n  size: 30m\n  slide: 1m\n", "  type: session\n  size: 30m\n");
    let paths: Vec<String> = problems(&session, &[]).into_iter().map(|p| p.path).collect();
    assert_eq!(paths, vec!["window.gap", "window.size"]);
    let tumbling = GOOD.replace("  type: sliding\n", "  type: tumbling\n");
    let paths: Vec<String> = problems(&tumbling, &[]).into_iter().map(|p| p.path).collect();
    assert_eq!(paths, vec!["window.slide"]);
}

#[test]
fn overrides_set_any_field_and_are_blamed_for_their_errors() -> Result<(), ManifestError> {
    let over =
        ["source.path=other.jsonl", "window.trigger=event", "outputs.features.0.path=x.jsonl", "transform.max_batch=7"];
    let over: Vec<String> = over.iter().map(|s| s.to_string()).collect();
    let m = Manifest::parse("m.yaml", GOOD, &over)?;
    assert!(matches!(&m.source, SourceConfig::File(f) if f.path == std::path::Path::new("other.jsonl")));
    assert_eq!(m.window.trigger, TriggerConfig::Event);
    assert_eq!(
        m.outputs.features[0],
        SinkConfig::File(sluice_sink_file::FileSinkConfig { path: "x.jsonl".into(), append: false })
    );
    assert_eq!(m.transform.max_batch, 7);

    // One past the end of a list adds an item; further is an error.
    let m = Manifest::parse("m.yaml", GOOD, &["outputs.features.1={type: file, path: b.jsonl}".to_string()])?;
    assert_eq!(m.outputs.features.len(), 2);
    let p = problems(GOOD, &["outputs.features.5={type: file, path: b.jsonl}"]);
    assert!(p[0].message.contains("index 5 is past the end of a list of 1"), "{p:?}");

    let p = problems(GOOD, &["window.size=soon"]);
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("--set window.size"), "{}", p[0].message);
    assert_eq!(p[0].line, None);
    let p = problems(GOOD, &["window"]);
    assert!(p[0].message.contains("expected PATH=VALUE"));
    Ok(())
}

#[test]
fn off_disables_optional_durations() -> Result<(), ManifestError> {
    let text = GOOD.replace("  allowed_lateness: 2m\n", "  allowed_lateness: 2m\n  state_ttl: off\n");
    let over = ["events.max_future_skew=off".to_string(), "time.idle_timeout=off".to_string()];
    let m = Manifest::parse("m.yaml", &text, &over)?;
    assert_eq!(m.events.max_future_skew, None);
    assert_eq!(m.time.idle_timeout, None);
    assert_eq!(m.window.state_ttl, None);
    let p = problems(GOOD, &["time.idle_timeout=never"]);
    assert!(p[0].message.contains("`never` is not a duration or `off`"), "{p:?}");
    Ok(())
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let p = problems("name: [unclosed\nsource: 1\n", &[]);
    assert_eq!(p.len(), 1);
    assert!(p[0].line.is_some(), "{p:?}");
    assert!(p[0].message.starts_with("not valid YAML"));
}

#[test]
fn errors_render_as_file_line_column() {
    let text = GOOD.replace("  slide: 1m", "  slid: 1m");
    let err = Manifest::parse("pipe.yaml", &text, &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.starts_with("pipe.yaml:14:3: error: "), "{err}");
    assert!(err.contains("\n  hint: "), "{err}");
}

#[test]
fn reference_documents_every_field() {
    let md = reference::markdown();
    for field in [
        "`name`",
        "`source.path`",
        "`source.step`",
        "`events.fields[].required`",
        "`events.timestamp.format`",
        "`time.out_of_orderness`",
        "`window.allowed_lateness`",
        "`window.trigger`",
        "`transform.memory_mib`",
        "`outputs.dead_letters[].path`",
    ] {
        assert!(md.contains(field), "{field} missing from:\n{md}");
    }
    // Every row has a description.
    for line in md.lines().skip(2) {
        assert!(!line.trim_end().ends_with("|  |"), "undocumented: {line}");
    }
    // Each way to start, by the value written.
    assert!(!md.contains("?`"), "a row without a name:\n{md}");
    for start in ["committed", "earliest", "latest", "{timestamp: …}"] {
        assert!(md.contains(&format!("| `source.start: {start}` |")), "source.start: {start} missing:\n{md}");
    }
    // Redis and Iceberg take feature rows only: listed there alone.
    assert!(md.contains("`outputs.features[].type: redis`"));
    assert!(md.contains("`outputs.features[].type: iceberg`"));
    for output in ["dead_letters", "late_events"] {
        assert!(md.contains(&format!("`outputs.{output}[].type: kafka`")));
        for only in ["redis", "iceberg"] {
            assert!(!md.contains(&format!("`outputs.{output}[].type: {only}`")), "{output} lists {only}");
        }
    }
}

#[test]
fn readme_reference_is_the_generated_one() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap_or_default();
    let section = readme
        .split("<!-- manifest-reference:start -->\n")
        .nth(1)
        .and_then(|rest| rest.split("<!-- manifest-reference:end -->").next())
        .unwrap_or_default();
    assert_eq!(section, reference::markdown(), "README's manifest reference is stale: run scripts/readme-reference");
}

/// Item 4 of the hardening issue: every number is checked.
#[test]
fn window_shapes_durations_and_workers_are_bounded() {
    let p = problems(&GOOD.replace("  size: 30m\n  slide: 1m\n", "  size: 1000h\n  slide: 1ms\n"), &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].path.as_str(), p[0].line, p[0].column), ("window.slide", Some(14), Some(3)));
    assert!(p[0].message.contains("puts each event in 3600000000 windows; Sluice allows 10000"), "{}", p[0].message);
    let p = problems(&GOOD.replace("  size: 30m\n", "  size: 2562047788015h\n"), &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].path.as_str(), p[0].line), ("window.size", Some(13)));
    assert!(p[0].message.contains("longer than Sluice supports (100 years, 36500d)"), "{}", p[0].message);
    let p = problems(GOOD, &["parallelism=10000"]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "parallelism");
    assert!(p[0].message.starts_with("10000 workers on "), "{}", p[0].message);
    let p = problems(GOOD, &["transform.memory_mib=5000"]);
    assert!(p[0].message.contains("more than a WebAssembly module can address"), "{p:?}");
}

#[test]
fn the_key_and_the_timestamp_are_not_fields_and_not_empty() {
    let p = problems(&GOOD.replace("    - {name: item_id, type: string}", "    - {name: user_id, type: string}"), &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].path.as_str(), p[0].line), ("events.fields[0].name", Some(9)));
    assert_eq!(p[0].message, "`user_id` is the key, and cannot also be declared as a field");
    let p = problems(GOOD, &["events.key=''"]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].path.as_str(), p[0].message.as_str()),
        ("events.key", "the key field is empty (value given by --set events.key=…)")
    );
    let p = problems(GOOD, &["events.timestamp.field=user_id"]);
    assert!(p.iter().any(|p| p.message.contains("is both the key and the timestamp")), "{p:?}");
}

/// `{from: kafka_key}` and `{from: kafka_timestamp}` lower to the
/// record's metadata, for a Kafka source only; a field of the key's or
/// the time's name is then an ordinary field.
#[test]
fn the_key_and_the_time_may_come_from_the_kafka_record() -> Result<(), ManifestError> {
    use crate::decode::{KeySource, TimeSource};
    let from_kafka = ["events.key={from: kafka_key}", "events.timestamp={from: kafka_timestamp}"];
    let found = |p: Vec<Problem>| p.into_iter().map(|p| (p.path, p.message)).collect::<Vec<_>>();
    assert_eq!(
        found(problems(GOOD, &from_kafka)),
        [
            ("events.key".to_string(), "a file's lines have no Kafka key (value given by --set events.key=…)".into()),
            (
                "events.timestamp.from".to_string(),
                "a file's lines have no Kafka timestamp (value given by --set events.timestamp=…)".into()
            ),
        ]
    );
    let kafka = GOOD
        .replace(
            "  type: file\n  path: in.jsonl",
            "  type: kafka\n  brokers: 127.0.0.1:9092\n  topics: [clicks]\n  group: g",
        )
        .replace("    - {name: item_id, type: string}", "    - {name: user_id, type: string}");
    let m = Manifest::parse("m.yaml", &kafka, &from_kafka.map(String::from))?;
    let schema = m.lower().schema;
    assert_eq!((schema.key, schema.timestamp), (KeySource::KafkaKey(KeyFormat::String), TimeSource::KafkaTimestamp));
    assert_eq!(schema.fields[0].name, "user_id");
    // Neither, or both.
    let p = found(problems(&kafka.replace("{field: timestamp, format: seconds}", "{format: seconds}"), &[]));
    assert!(p.iter().any(|(at, m)| at == "events.timestamp" && m.contains("neither")), "{p:?}");
    let p = found(problems(&kafka, &["events.timestamp.from=kafka_timestamp"]));
    assert!(p.iter().any(|(at, m)| at == "events.timestamp" && m.contains("both")), "{p:?}");
    let p = found(problems(&kafka, &["events.key={from: kafka_value}"]));
    assert!(p.iter().any(|(at, m)| at == "events.key" && m.contains("{from: kafka_key}")), "{p:?}");
    Ok(())
}

#[test]
fn a_byte_order_mark_is_not_a_second_document() -> Result<(), ManifestError> {
    let m = Manifest::parse("m.yaml", &format!("\u{feff}{GOOD}"), &[])?;
    assert_eq!(m.name, "clicks");
    Ok(())
}

/// Item 6: hostile documents are refused before any work that grows with
/// them, at the place where they go wrong.
#[test]
fn deep_and_large_documents_are_refused_where_they_go_wrong() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let text = format!("name: x\nsource: {}1{}\n", open.repeat(100_000), close.repeat(100_000));
        let p = problems(&text, &[]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].message, "nested deeper than 32 levels");
        assert_eq!(p[0].line, Some(2));
    }
    // Block nesting, too, and brackets in quotes or comments do not count.
    let block: String = (0..40).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
    assert_eq!(problems(&block, &[]).first().map(|p| p.message.as_str()), Some("nested deeper than 32 levels"));
    let quoted = GOOD.replace("name: clicks", &format!("name: '{}' # {}", "[".repeat(40), "{".repeat(40)));
    assert_eq!(problems(&quoted, &[]), vec![]);
    let big = format!("{GOOD}# {}\n", "x".repeat(MAX_MANIFEST_BYTES as usize));
    assert!(problems(&big, &[])[0].message.contains("larger than 1048576 bytes"));
}

#[test]
fn checkpoints_need_an_interval_and_something_kept() {
    let paths = |overrides: &[&str]| -> Vec<String> { problems(GOOD, overrides).into_iter().map(|p| p.path).collect() };
    // A file source takes them too: it resumes at the line they hold.
    assert!(paths(&["checkpoint={dir: ck}"]).is_empty());
    let kafka = "source={type: kafka, brokers: '127.0.0.1:9092', topics: [t], group: g}";
    assert!(paths(&[kafka, "checkpoint={dir: ck}"]).is_empty());
    assert_eq!(
        paths(&[kafka, "checkpoint={dir: ck, interval: 1ms, retain: 0}"]),
        ["checkpoint.interval", "checkpoint.retain"]
    );
    let m = Manifest::parse("m.yaml", GOOD, &[kafka.to_string(), "checkpoint={dir: ck}".to_string()]);
    let c = m.ok().and_then(|m| m.checkpoint);
    assert_eq!(c.map(|c| (c.interval.millis(), c.retain)), Some((10_000, 3)));
}

/// Checkpoints go to a directory or an S3 URL, one of the two; the URL's
/// options are the S3 store's own.
#[test]
fn checkpoints_go_to_a_directory_or_an_s3_url() {
    let found = |checkpoint: &str| -> Vec<(String, String)> {
        problems(GOOD, &[&format!("checkpoint={checkpoint}")]).into_iter().map(|p| (p.path, p.message)).collect()
    };
    let s3 = "{url: 's3://bucket/ck', options: {aws_endpoint: 'http://127.0.0.1:9000', aws_allow_http: 'true'}}";
    assert_eq!(found(s3), []);
    let fields = |checkpoint: &str| -> Vec<String> { found(checkpoint).into_iter().map(|(path, _)| path).collect() };
    assert_eq!(fields("{dir: ck, url: 's3://bucket/ck'}"), ["checkpoint.url"]);
    assert_eq!(fields("{interval: 1s}"), ["checkpoint.dir"]);
    assert_eq!(fields("{dir: ck, options: {aws_region: eu-west-1}}"), ["checkpoint.options"]);
    let wrong = found("{url: 'file:///tmp/ck', options: {aws_endpoint: x, colour: blue}}");
    let said: Vec<(&str, &str)> = wrong
        .iter()
        .map(|(path, message)| (path.as_str(), message.split(" (value given").next().unwrap_or("")))
        .collect();
    assert_eq!(
        said,
        [
            ("checkpoint.url", "`file:///tmp/ck` is not an s3:// URL"),
            ("checkpoint.options.colour", "`colour` is not an option of the S3 store"),
        ]
    );
}

#[test]
fn avro_needs_its_writer_schemas_one_way_or_a_container_file() -> Result<(), ManifestError> {
    use crate::decode::avro::Writers;
    let kafka = GOOD.replace(
        "  type: file\n  path: in.jsonl",
        "  type: kafka\n  brokers: 127.0.0.1:9092\n  topics: [clicks]\n  group: g",
    );
    let at = |p: Vec<Problem>| p.into_iter().map(|p| p.path).collect::<Vec<_>>();
    let registry = "events.registry={url: 'http://127.0.0.1:8081'}";
    let m = Manifest::parse("m.yaml", &kafka, &["events.format=avro".into(), registry.into()])?;
    let expected = crate::schema_registry::RegistryConfig::new("http://127.0.0.1:8081");
    assert_eq!(m.lower().schema.avro, Some(Writers::Registry(expected)));
    assert_eq!(at(problems(&kafka, &["events.format=avro"])), ["events.format"]);
    assert_eq!(at(problems(&kafka, &[registry])), ["events.registry"]);
    assert_eq!(
        at(problems(&kafka, &["events.format=avro", registry, "events.writer_schema_file=w.avsc"])),
        ["events.writer_schema_file"]
    );
    // A file is an Avro container file, whose header holds the schema.
    assert_eq!(at(problems(GOOD, &["events.format=avro", registry])), ["events.registry"]);
    assert!(problems(GOOD, &["events.format=avro"]).is_empty());
    let m = Manifest::parse("m.yaml", GOOD, &["events.format=avro".into()])?;
    assert_eq!(m.lower().schema.avro, Some(Writers::Container));
    assert_eq!(
        at(problems(&kafka, &["events.format=avro", "events.registry={url: 'ftp://x', username: u}"])),
        ["events.registry.url", "events.registry.username"]
    );
    // A given writer schema is read as the declared fields now.
    let unreadable =
        r#"events.writer_schema='{"type": "record", "name": "R", "fields": [{"name": "user_id", "type": "string"}]}'"#;
    let p = problems(&kafka, &["events.format=avro", unreadable]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].path == "events.writer_schema" && p[0].message.contains("no field `item_id`"), "{p:?}");
    // An Avro key is in the wire format: it needs the registry.
    let avro_key = "events.key={from: kafka_key, format: avro}";
    assert_eq!(at(problems(&kafka, &[avro_key])), ["events.key.format"]);
    let m = Manifest::parse("m.yaml", &kafka, &["events.format=avro".into(), registry.into(), avro_key.into()])?;
    assert_eq!(m.lower().schema.key, crate::decode::KeySource::KafkaKey(KeyFormat::Avro));
    Ok(())
}
