//! `sluice validate` refuses what `sluice run` could not run or would
//! regret running, each problem at its line and column: windows and
//! numbers out of range, outputs that would destroy the input or each
//! other, hostile files, and sources and sinks that are not there. Each
//! case is a manifest in a fresh folder, checked through the binary.

use std::path::Path;
use std::process::Command;

use sluice_tests::e2e::{root, sluice};

/// A manifest whose lines are known: the source on line 4, the fields on
/// lines 9 and 10, the window on 12 to 14, the module on 16, the outputs
/// on 19 to 21.
fn manifest(dir: &Path) -> String {
    let d = dir.display();
    let module = root().join("target/modules/session-features.wasm");
    format!(
        "name: clicks
source:
  type: file
  path: '{d}/in.jsonl'
events:
  key: user_id
  timestamp: {{field: timestamp, format: seconds}}
  fields:
    - {{name: item_id, type: string}}
    - {{name: category, type: string}}
window:
  type: sliding
  size: 30m
  slide: 1m
transform:
  module: '{}'
outputs:
  features:
    - {{type: file, path: '{d}/features.jsonl'}}
  dead_letters: [{{type: file, path: '{d}/dead.jsonl'}}]
  late_events: [{{type: file, path: '{d}/late.jsonl'}}]
",
        module.display()
    )
}

/// Validate `text` (written to `m.yaml` in `dir`), with `args` after it:
/// whether it passed, and what it said on standard error.
fn validate(dir: &Path, text: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let path = dir.join("m.yaml");
    std::fs::write(&path, text)?;
    let out = Command::new(sluice()).arg("validate").arg(&path).args(args).output()?;
    Ok((out.status.success(), String::from_utf8(out.stderr)?))
}

/// A fresh folder with an input file.
fn folder() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("in.jsonl"), "{}\n")?;
    Ok(dir)
}

/// `text` is refused with `message` at `line:column` of field `field`.
fn refused(text: &str, args: &[&str], at: (usize, usize), field: &str, message: &str) -> anyhow::Result<()> {
    let dir = folder()?;
    let d = dir.path().display().to_string();
    let text = text.replace("{dir}", &d);
    let (ok, said) = validate(dir.path(), &text, args)?;
    assert!(!ok, "validate passed:\n{text}");
    let file = dir.path().join("m.yaml").display().to_string();
    let want = format!("{file}:{}:{}: error: {}", at.0, at.1, message.replace("{dir}", &d));
    assert!(said.contains(&want), "expected\n  {want}\nin\n{said}");
    assert!(said.contains(&format!("(at `{field}`)")), "expected the field `{field}` in\n{said}");
    assert!(said.contains("hint: "), "a hint:\n{said}");
    Ok(())
}

fn good() -> String {
    manifest(Path::new("{dir}"))
}

#[test]
fn the_manifest_as_written_passes() -> anyhow::Result<()> {
    let dir = folder()?;
    let (ok, said) = validate(dir.path(), &manifest(dir.path()), &["--offline"])?;
    assert!(ok, "{said}");
    // With a byte-order mark, as Windows editors write it.
    let (ok, said) = validate(dir.path(), &format!("\u{feff}{}", manifest(dir.path())), &["--offline"])?;
    assert!(ok, "{said}");
    Ok(())
}

// Item 4: every number is checked.

#[test]
fn a_window_on_too_many_windows_per_event_is_refused() -> anyhow::Result<()> {
    let text = good().replace("  size: 30m\n  slide: 1m\n", "  size: 1000h\n  slide: 1ms\n");
    refused(
        &text,
        &["--offline"],
        (14, 3),
        "window.slide",
        "a 1month 11days 5h 26m 24s window sliding every 1ms puts each event in 3600000000 windows; Sluice allows 10000",
    )
}

#[test]
fn a_window_beyond_the_supported_range_is_refused() -> anyhow::Result<()> {
    let text = good().replace("  size: 30m\n", "  size: 2562047788015h\n");
    refused(
        &text,
        &["--offline"],
        (13, 3),
        "window.size",
        "292271023years 16days 13h is longer than Sluice supports (100 years, 36500d)",
    )
}

#[test]
fn more_workers_than_the_machine_runs_are_refused() -> anyhow::Result<()> {
    let text = good().replace("name: clicks\n", "name: clicks\nparallelism: 10000\n");
    refused(&text, &["--offline"], (2, 1), "parallelism", "10000 workers on ")
}

// Item 5: no data destroyed.

#[test]
fn an_output_on_the_source_file_is_refused() -> anyhow::Result<()> {
    let text = good().replace("path: '{dir}/dead.jsonl'", "path: '{dir}/sub/../in.jsonl'");
    let message = "`{dir}/sub/../in.jsonl` is the source file: writing it would destroy the input";
    refused(&text, &["--offline"], (20, 31), "outputs.dead_letters[0].path", message)
}

#[test]
fn two_outputs_on_one_file_are_refused() -> anyhow::Result<()> {
    let text = good().replace("path: '{dir}/late.jsonl'", "path: '{dir}/./features.jsonl'");
    let dir = folder()?;
    let text = text.replace("{dir}", &dir.path().display().to_string());
    let (ok, said) = validate(dir.path(), &text, &["--offline"])?;
    assert!(!ok);
    let file = dir.path().join("m.yaml").display().to_string();
    assert!(said.contains(&format!("{file}:21:")), "{said}");
    assert!(said.contains("is also written by `outputs.features[0].path`: their lines would mix"), "{said}");
    assert!(said.contains("(at `outputs.late_events[0].path`)"), "{said}");
    Ok(())
}

// Item 6: bounded reading.

#[test]
fn a_device_is_no_manifest_module_or_source() -> anyhow::Result<()> {
    let out = Command::new(sluice()).args(["validate", "/dev/zero"]).output()?;
    assert!(!out.status.success());
    let said = String::from_utf8(out.stderr)?;
    assert!(said.contains("/dev/zero: error: the manifest is not a regular file"), "{said}");
    let module = root().join("target/modules/session-features.wasm").display().to_string();
    let text = good().replace(&module, "/dev/zero");
    refused(&text, &["--offline"], (16, 3), "transform.module", "/dev/zero: the module is not a regular file")?;
    let text = good().replace("  path: '{dir}/in.jsonl'", "  path: /dev/zero");
    refused(&text, &["--offline"], (4, 3), "source.path", "`/dev/zero` is not a regular file")
}

#[test]
fn a_deeply_nested_manifest_is_refused_where_it_goes_too_deep() -> anyhow::Result<()> {
    let dir = folder()?;
    let text = format!("name: x\nsource: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let (ok, said) = validate(dir.path(), &text, &["--offline"])?;
    assert!(!ok);
    let file = dir.path().join("m.yaml").display().to_string();
    assert!(said.contains(&format!("{file}:2:41: error: nested deeper than 32 levels")), "{said}");
    Ok(())
}

// Item 7: validate checks what run would refuse.

#[test]
fn a_missing_source_and_an_unwritable_output_are_refused() -> anyhow::Result<()> {
    let text = good().replace("  path: '{dir}/in.jsonl'", "  path: '{dir}/nowhere.jsonl'");
    refused(&text, &["--offline"], (4, 3), "source.path", "cannot read `{dir}/nowhere.jsonl`: No such file")?;
    let text = good().replace("path: '{dir}/features.jsonl'", "path: '{dir}/in.jsonl/features.jsonl'");
    refused(
        &text,
        &["--offline"],
        (19, 20),
        "outputs.features[0].path",
        "cannot create `{dir}/in.jsonl/features.jsonl`: `{dir}/in.jsonl` is not a folder",
    )
}

#[test]
fn the_key_as_a_field_and_an_empty_key_are_refused() -> anyhow::Result<()> {
    let text = good().replace("{name: item_id, type: string}", "{name: user_id, type: string}");
    refused(
        &text,
        &["--offline"],
        (9, 8),
        "events.fields[0].name",
        "`user_id` is the key, and cannot also be declared as a field",
    )?;
    let text = good().replace("  key: user_id\n", "  key: ''\n");
    refused(&text, &["--offline"], (6, 3), "events.key", "the key field is empty")
}

#[test]
fn redis_urls_are_parsed_and_servers_asked() -> anyhow::Result<()> {
    let redis = |url: &str| {
        good().replace(
            "  features:\n",
            &format!("  features:\n    - {{type: redis, url: '{url}', key: 'u:{{{{key}}}}'}}\n"),
        )
    };
    refused(
        &redis("http//nowhere"),
        &["--offline"],
        (19, 21),
        "outputs.features[0].url",
        "`http//nowhere` is not a Redis URL",
    )?;
    // Nothing listens on port 1.
    refused(
        &redis("redis://127.0.0.1:1"),
        &[],
        (19, 21),
        "outputs.features[0].url",
        "Redis at `redis://127.0.0.1:1` does not answer",
    )
}

/// A Feast sink: its settings belong to its layout, and its view is made
/// of the module's features, none of them named as the join key.
#[test]
fn a_feast_sink_is_checked_against_its_layout_and_the_module_s_features() -> anyhow::Result<()> {
    let feast = |settings: &str| {
        good().replace(
            "  features:\n",
            &format!("  features:\n    - {{type: redis, url: 'redis://127.0.0.1:6379', layout: feast, {settings}}}\n"),
        )
    };
    refused(
        &feast("project: shop, feature_view: clicks, join_key: item_count_30m"),
        &["--offline"],
        (19, 104),
        "outputs.features[0].join_key",
        "the module has a feature named `item_count_30m`, the join key",
    )?;
    refused(
        &feast("project: shop, feature_view: clicks, key: 'u:{key}'"),
        &["--offline"],
        (19, 104),
        "outputs.features[0].key",
        "`key` is a setting of `layout: plain`",
    )
}

fn kafka(properties: &str, topic: &str) -> String {
    good().replace(
        "  type: file\n  path: '{dir}/in.jsonl'\n",
        &format!(
            "  type: kafka\n  brokers: 127.0.0.1:9092\n  topics: [{topic}]\n  group: g\n  properties: {{{properties}}}\n"
        ),
    )
}

#[test]
fn librdkafka_properties_are_checked_by_librdkafka() -> anyhow::Result<()> {
    let text = kafka("fetch.wait.max.ms: '5', no.such.property: 'x'", "clicks");
    refused(
        &text,
        &["--offline"],
        (7, 40),
        "source.properties.no.such.property",
        "librdkafka refuses `no.such.property`",
    )
}

#[test]
fn a_topic_that_does_not_exist_is_refused() -> anyhow::Result<()> {
    let text = kafka("", "sluice-no-such-topic");
    refused(&text, &[], (5, 12), "source.topics[0]", "topic `sluice-no-such-topic` does not exist on `127.0.0.1:9092`")
}

/// A checkpoint directory holding the state of another window cannot be
/// restored: validate says so (as `run` would refuse), with the way out.
/// The checkpoint is written by hand: its header is all that is read.
#[test]
fn checkpoints_of_another_window_are_refused() -> anyhow::Result<()> {
    let text = good()
        .replace(
            "  type: file\n  path: '{dir}/in.jsonl'\n",
            "  type: kafka\n  brokers: 127.0.0.1:9092\n  topics: [t]\n  group: g\n",
        )
        .replace("transform:", "checkpoint:\n  dir: '{dir}/ck'\ntransform:");
    let line = text.lines().position(|l| l.starts_with("  dir:")).map_or(0, |i| i + 1);
    let dir = folder()?;
    std::fs::create_dir(dir.path().join("ck"))?;
    let header = serde_json::json!({
        "pipeline": "clicks",
        "fingerprint": "key user_id, tumbling window size 5m, fields [item_id: string, category: string], window transform",
        "host": "h", "epoch": 1, "created_ms": 0, "watermark": 0, "last_sweep": 0, "partitions": []
    })
    .to_string();
    let mut bytes = b"SLUICECK\x01".to_vec();
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 4]);
    std::fs::write(dir.path().join("ck/0000000000000-h-00000001.ckpt"), bytes)?;
    let d = dir.path().display().to_string();
    let (ok, said) = validate(dir.path(), &text.replace("{dir}", &d), &["--offline"])?;
    assert!(!ok, "validate passed");
    let want = format!(
        "m.yaml:{line}:3: error: {d}/ck/0000000000000-h-00000001.ckpt was written by an incompatible pipeline: it has key user_id, tumbling window size 5m"
    );
    assert!(said.contains(&want), "expected\n  {want}\nin\n{said}");
    assert!(said.contains("sliding window size 30m slide 1m") && said.contains("hint: run with --fresh"), "{said}");
    Ok(())
}

/// `state`: settings of the RocksDB backend under the memory backend are a
/// mistake; a budget too small to work and a path that cannot be written
/// are refused; a good RocksDB state passes.
#[test]
fn state_settings_are_checked() -> anyhow::Result<()> {
    let with = |state: &str| good().replace("transform:", &format!("state:\n{state}transform:"));
    refused(
        &with("  memory: 64MiB\n"),
        &["--offline"],
        (16, 3),
        "state.memory",
        "`memory` is a setting of the rocksdb backend",
    )?;
    refused(
        &with("  backend: rocksdb\n  memory: 1MiB\n"),
        &["--offline"],
        (17, 3),
        "state.memory",
        "the budget must be at least 4MiB",
    )?;
    // A file where the folder should be.
    refused(
        &with("  backend: rocksdb\n  path: '{dir}/in.jsonl/state'\n"),
        &["--offline"],
        (17, 3),
        "state.path",
        "cannot create `{dir}/in.jsonl/state`: `{dir}/in.jsonl` is not a folder",
    )?;
    let dir = folder()?;
    let text = with("  backend: rocksdb\n  path: '{dir}/state'\n  memory: 64MiB\n")
        .replace("{dir}", &dir.path().display().to_string());
    let (ok, said) = validate(dir.path(), &text, &["--offline"])?;
    assert!(ok, "{said}");
    Ok(())
}

/// One run reports the problems of every stage, each at its line and
/// column: a field it does not know (reading), a slide longer than the
/// size (the manifest's checks), a source that is not there, a Redis URL
/// that does not parse (what the manifest names), a module that is not
/// there (compiling it).
#[test]
fn every_stage_reports_its_problems_in_one_run() -> anyhow::Result<()> {
    let dir = folder()?;
    let d = dir.path().display().to_string();
    let text = manifest(dir.path())
        .replace("  slide: 1m\n", "  slide: 45m\n  slid: 1m\n")
        .replace(&format!("{d}/in.jsonl"), &format!("{d}/missing.jsonl"))
        .replace(&root().join("target/modules/session-features.wasm").display().to_string(), &format!("{d}/none.wasm"))
        .replace(
            &format!("- {{type: file, path: '{d}/features.jsonl'}}"),
            "- {type: redis, url: 'http://not-redis', key: 'f:{key}'}",
        );
    let (ok, said) = validate(dir.path(), &text, &["--offline"])?;
    assert!(!ok, "{said}");
    let at = |field: &str| said.lines().find(|l| l.contains(&format!("(at `{field}`)"))).map(str::to_string);
    for (field, line, says) in [
        ("window.slid", 15, "unknown field `slid`"),
        ("window.slide", 14, "longer than `size`"),
        ("source.path", 4, "cannot read"),
        ("outputs.features[0].url", 20, "is not a Redis URL"),
        ("transform.module", 17, "cannot read the module"),
    ] {
        let found = at(field).ok_or_else(|| anyhow::anyhow!("nothing at {field}:\n{said}"))?;
        assert!(found.contains(&format!("m.yaml:{line}:")) && found.contains(says), "{field}: {found}\n{said}");
    }
    Ok(())
}
