//! `sluice training-set`: labels joined with the offline tables real
//! pipelines wrote (`sluice run` into Iceberg), the result read back with
//! pyarrow. As-of: no label ever gets a row holding an event at or after
//! its time, checked on hand-made labels at window boundaries and against
//! a naive as-of join over the table as pyiceberg reads it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice_examples::{Config, Shape};
use sluice_tests::e2e;

/// 2026-01-01T00:00:00Z: the hand-made events' time zero.
const T0: i64 = 1_767_225_600_000;
const SECOND: i64 = 1_000;

/// A pipeline run to its end over `events` (`{"user", "ts"}` lines), its
/// rows in an Iceberg table: the `misbehave` module's `count` (events in
/// the window), with `window` and `time` as the manifest says them.
struct Pipeline {
    manifest: PathBuf,
    warehouse: PathBuf,
    table: String,
}

/// The hand-made events' settings: keyed by `user`, as text.
const EVENTS: &str = "{key: user, timestamp: {field: ts, format: millis}}";

impl Pipeline {
    fn run(dir: &Path, name: &str, window: &str, time: &str, events: &[String]) -> anyhow::Result<Pipeline> {
        Pipeline::run_with(dir, name, EVENTS, window, time, events)
    }

    /// [`Pipeline::run`] with the manifest's `events` settings `settings`.
    fn run_with(
        dir: &Path,
        name: &str,
        settings: &str,
        window: &str,
        time: &str,
        events: &[String],
    ) -> anyhow::Result<Pipeline> {
        let input = dir.join(format!("{name}.jsonl"));
        std::fs::write(&input, events.join("\n") + "\n")?;
        let warehouse = dir.join("warehouse");
        let module = e2e::root().join("target/modules/misbehave.wasm");
        let manifest = dir.join(format!("{name}.yaml"));
        let out =
            |what: &str| format!("[{{type: file, path: '{}'}}]", dir.join(format!("{name}-{what}.jsonl")).display());
        std::fs::write(
            &manifest,
            format!(
                "name: {name}\n\
                 source: {{type: file, path: '{input}'}}\n\
                 events: {settings}\n\
                 time: {time}\n\
                 window: {window}\n\
                 transform: {{module: '{module}'}}\n\
                 outputs:\n  \
                   features: [{{type: iceberg, warehouse: '{warehouse}', namespace: offline, table: {name}}}]\n  \
                   dead_letters: {dead}\n  \
                   late_events: {late}\n",
                input = input.display(),
                module = module.display(),
                warehouse = warehouse.display(),
                dead = out("dead"),
                late = out("late"),
            ),
        )?;
        let run = Command::new(e2e::sluice()).arg("run").arg(&manifest).output()?;
        anyhow::ensure!(run.status.success(), "sluice run {name}: {}", String::from_utf8_lossy(&run.stderr));
        Ok(Pipeline { manifest, warehouse, table: format!("offline.{name}") })
    }

    /// The table's rows as pyiceberg reads them.
    fn rows(&self) -> anyhow::Result<Vec<Value>> {
        e2e::iceberg_rows(&self.warehouse, &self.table)
    }
}

fn event(user: &str, ms: i64) -> String {
    format!(r#"{{"user": "{user}", "ts": {ms}}}"#)
}

/// `sluice training-set` over `labels` (CSV text) and `views`: its
/// standard output and the rows it wrote, as pyarrow reads them.
fn training_set(dir: &Path, labels: &str, views: &[&Pipeline], args: &[&str]) -> anyhow::Result<(String, Value)> {
    let path = dir.join("labels.csv");
    std::fs::write(&path, labels)?;
    let out_file = dir.join("training.parquet");
    let mut command = Command::new(e2e::sluice());
    command.arg("training-set").arg("--labels").arg(&path).args(["--key", "user", "--time", "at"]);
    for view in views {
        command.arg("--view").arg(&view.manifest);
    }
    let run = command.arg("--out").arg(&out_file).args(args).output()?;
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    anyhow::ensure!(run.status.success(), "sluice training-set: {stdout}{}", String::from_utf8_lossy(&run.stderr));
    let read = common::python("read_parquet.py", &[&out_file.display().to_string()])?;
    Ok((stdout, read))
}

/// Each output row's `(user, label, count)`.
fn counts(read: &Value) -> Vec<(String, String, Option<i64>)> {
    read["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["user"].as_str().unwrap_or("").to_string(), r["label"].to_string(), r["count"].as_i64()))
        .collect()
}

fn expect(rows: &[(&str, &str, Option<i64>)]) -> Vec<(String, String, Option<i64>)> {
    rows.iter().map(|(u, l, c)| (u.to_string(), l.to_string(), *c)).collect()
}

/// Tumbling 1 min windows fired on close. User `a`: 2 events in the first
/// minute, 1 in the second, 3 in the third; `b`: 1 in the first. A window
/// ending at `e` holds events before `e` only, so its row serves labels
/// from `e` on (plus the serving delay), never at `e - 1 ms`.
#[test]
fn as_of_never_gives_a_label_a_window_that_ends_after_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = |n: i64| T0 + n * SECOND;
    let events: Vec<String> = [("a", 10), ("a", 20), ("b", 30), ("a", 70), ("a", 130), ("a", 140), ("a", 150)]
        .iter()
        .map(|&(u, t)| event(u, s(t)))
        .collect();
    let tumbling =
        Pipeline::run(dir.path(), "tumbling", "{type: tumbling, size: 1m}", "{out_of_orderness: 5s}", &events)?;
    let label = |user: &str, ms: i64, name: &str| format!("{user},{ms},{name}\n");
    let mut labels = String::from("user,at,label\n");
    for (user, at, name) in [
        ("a", s(60) - 1, "e-1"),
        ("a", s(60), "e"),
        ("a", s(60) + 1, "e+1"),
        ("a", s(65) - 1, "e+delay-1"),
        ("a", s(65), "e+delay"),
        ("a", s(120) - 1, "e2-1"),
        ("a", s(120), "e2"),
        ("a", s(3600), "hour"),
        ("b", s(60), "b-e"),
        ("b", s(3600), "b-hour"),
        ("c", s(3600), "unknown-key"),
        ("a", s(5), "before-all"),
    ] {
        labels.push_str(&label(user, at, name));
    }
    labels.push_str("a,not a time,bad-time\n");
    labels.push_str(",12,no-key\n");

    // Feast's as-of: no serving delay.
    let (stdout, read) = training_set(dir.path(), &labels, &[&tumbling], &["--serving-delay", "0s"])?;
    let want = expect(&[
        ("a", "\"e-1\"", None),
        ("a", "\"e\"", Some(2)),
        ("a", "\"e+1\"", Some(2)),
        ("a", "\"e+delay-1\"", Some(2)),
        ("a", "\"e+delay\"", Some(2)),
        ("a", "\"e2-1\"", Some(2)),
        ("a", "\"e2\"", Some(1)),
        ("a", "\"hour\"", Some(3)),
        ("b", "\"b-e\"", Some(1)),
        ("b", "\"b-hour\"", Some(1)),
        ("c", "\"unknown-key\"", None),
        ("a", "\"before-all\"", None),
    ]);
    assert_eq!(counts(&read), want, "{stdout}");
    assert!(stdout.contains("14 labels, 12 rows written"), "{stdout}");
    assert!(stdout.contains("view `tumbling`: 3 labels got no row"), "{stdout}");
    assert!(stdout.contains("row 13: its time `not a time` is not a time"), "{stdout}");
    assert!(stdout.contains("row 14: it has no key"), "{stdout}");
    // The label's time comes back as a UTC timestamp, the carried column as it was.
    let schema = read["schema"].to_string();
    assert!(schema.contains("at: timestamp[us, tz=+00:00]") && schema.contains("label: string"), "{schema}");
    assert_eq!(read["rows"][1]["at"], s(60), "{}", read["rows"][1]);

    // By default a closed window reaches the online store when the
    // watermark passes its end: 5 s (the out-of-orderness) later.
    let (_, read) = training_set(dir.path(), &labels, &[&tumbling], &[])?;
    let delayed: BTreeMap<String, Option<i64>> = counts(&read).into_iter().map(|(_, l, c)| (l, c)).collect();
    assert_eq!(delayed["\"e\""], None);
    assert_eq!(delayed["\"e+delay-1\""], None);
    assert_eq!(delayed["\"e+delay\""], Some(2));
    assert_eq!(delayed["\"e2\""], Some(2), "the second window is not served until 125 s");
    Ok(())
}

/// `--out-table`: the training set the Parquet file holds, in a new
/// Iceberg table as pyiceberg reads it, published in one snapshot whose
/// summary says how it was built. A second build into it is refused and
/// leaves it as it was.
#[test]
fn a_training_set_goes_to_a_new_iceberg_table_when_asked() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = |n: i64| T0 + n * SECOND;
    let events: Vec<String> =
        [("a", 10), ("a", 20), ("a", 70), ("b", 30)].iter().map(|&(u, t)| event(u, s(t))).collect();
    let tumbling =
        Pipeline::run(dir.path(), "tumbling", "{type: tumbling, size: 1m}", "{out_of_orderness: 5s}", &events)?;
    let labels = format!("user,at,label\na,{},e\na,{},hour\nb,{},before\nc,{},unknown\n", s(65), s(3600), s(5), s(65));
    let (_, parquet) = training_set(dir.path(), &labels, &[&tumbling], &[])?;
    assert_eq!(counts(&parquet).iter().filter(|(_, _, c)| c.is_some()).count(), 2, "{parquet}");

    let warehouse = dir.path().join("training");
    let table = format!("{{warehouse: '{}', namespace: sets, table: labelled}}", warehouse.display());
    let build = || {
        Command::new(e2e::sluice())
            .args(["training-set", "--labels"])
            .arg(dir.path().join("labels.csv"))
            .args(["--key", "user", "--time", "at", "--view"])
            .arg(&tumbling.manifest)
            .args(["--out-table", &table])
            .output()
    };
    let first = build()?;
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("4 labels, 4 rows written to the table sets.labelled"), "{stdout}");
    let rows = e2e::iceberg_rows(&warehouse, "sets.labelled")?;
    assert_eq!(Value::Array(rows), parquet["rows"]);
    let snapshots = || -> anyhow::Result<Vec<Value>> {
        let out = Command::new(e2e::python())
            .arg(e2e::root().join("scripts/iceberg-read"))
            .arg("--warehouse")
            .arg(&warehouse)
            .args(["--table", "sets.labelled", "--snapshots"])
            .output()?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)?.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    };
    let published = snapshots()?;
    assert_eq!(published.len(), 1, "{published:?}");
    let summary = &published[0]["summary"];
    assert_eq!(summary["sluice.training-set.mode"], "as-of", "{summary}");
    assert_eq!(summary["sluice.training-set.views"], "tumbling", "{summary}");

    let again = build()?;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && stderr.contains("the table sets.labelled exists"), "{stderr}");
    assert_eq!(snapshots()?, published);
    Ok(())
}

/// Fired on every event: the row an event fires holds that event, so it
/// serves labels from 1 ms after it.
#[test]
fn as_of_never_gives_a_label_the_row_of_an_event_at_its_time() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = |n: i64| T0 + n * SECOND;
    let events: Vec<String> = [10, 20, 30].iter().map(|&t| event("a", s(t))).collect();
    let on_event = Pipeline::run(
        dir.path(),
        "on_event",
        "{type: tumbling, size: 1m, trigger: event}",
        "{out_of_orderness: 5s}",
        &events,
    )?;
    let mut labels = String::from("user,at,label\n");
    for (at, name) in [(s(10), "t1"), (s(10) + 1, "t1+1"), (s(20), "t2"), (s(20) + 1, "t2+1"), (s(30) + 1, "t3+1")] {
        labels.push_str(&format!("a,{at},{name}\n"));
    }
    let (stdout, read) = training_set(dir.path(), &labels, &[&on_event], &[])?;
    let want = expect(&[
        ("a", "\"t1\"", None),
        ("a", "\"t1+1\"", Some(1)),
        ("a", "\"t2\"", Some(1)),
        ("a", "\"t2+1\"", Some(2)),
        ("a", "\"t3+1\"", Some(3)),
    ]);
    assert_eq!(counts(&read), want, "{stdout}");
    Ok(())
}

/// Two views in one training set, each joined as if alone; one of them
/// with every row of its table appended again by another writer (twins
/// equal in every column, as a replayed write would leave them): still
/// one row per label, with the features it had before.
#[test]
fn as_of_gives_each_label_one_row_of_each_view_even_from_a_table_with_twin_rows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = |n: i64| T0 + n * SECOND;
    let events: Vec<String> =
        [("a", 10), ("a", 20), ("b", 30), ("a", 70), ("a", 130)].iter().map(|&(u, t)| event(u, s(t))).collect();
    let closed = Pipeline::run(dir.path(), "closed", "{type: tumbling, size: 1m}", "{out_of_orderness: 0s}", &events)?;
    let on_event = Pipeline::run(
        dir.path(),
        "on_event",
        "{type: tumbling, size: 1m, trigger: event}",
        "{out_of_orderness: 0s}",
        &events,
    )?;
    let mut labels = String::from("user,at,label\n");
    for (user, at, name) in
        [("a", s(15), "a15"), ("a", s(60), "a60"), ("a", s(71), "a71"), ("b", s(90), "b90"), ("c", s(90), "c90")]
    {
        labels.push_str(&format!("{user},{at},{name}\n"));
    }
    // (label, closed's count, on_event's count), worked by hand: a closed
    // window serves from its end; an event's row from 1 ms after it.
    let want: Vec<(String, Option<i64>, Option<i64>)> = [
        ("a15", None, Some(1)),
        ("a60", Some(2), Some(2)),
        ("a71", Some(2), Some(1)),
        ("b90", Some(1), Some(1)),
        ("c90", None, None),
    ]
    .iter()
    .map(|&(l, c, e)| (format!("\"{l}\""), c, e))
    .collect();
    let both = |read: &Value| -> Vec<(String, Option<i64>, Option<i64>)> {
        read["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| (r["label"].to_string(), r["closed__count"].as_i64(), r["on_event__count"].as_i64()))
            .collect()
    };
    let args = ["--full-feature-names", "--serving-delay", "0s"];
    let (stdout, read) = training_set(dir.path(), &labels, &[&closed, &on_event], &args)?;
    assert_eq!(both(&read), want, "{stdout}");

    let appended =
        common::python("iceberg_append_again.py", &[&on_event.warehouse.display().to_string(), &on_event.table])?;
    assert_eq!(appended["after"], 2 * appended["before"].as_i64().unwrap_or(-1), "{appended}");
    let (stdout, read) = training_set(dir.path(), &labels, &[&closed, &on_event], &args)?;
    assert_eq!(both(&read), want, "{stdout}");
    assert!(stdout.contains("5 labels, 5 rows written"), "{stdout}");
    Ok(())
}

/// A view keyed by integers (`events.key_type: int`, a `long` key
/// column): labels find their key's rows as with text keys, keys ordered
/// as numbers (7 < 42 < 100) where their text would not be; a label whose
/// key is not an integer is reported with its row number.
#[test]
fn as_of_joins_a_view_keyed_by_integers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = |n: i64| T0 + n * SECOND;
    let events: Vec<String> = [(7, 10), (7, 20), (42, 30), (100, 40), (7, 70)]
        .iter()
        .map(|&(user, t)| format!(r#"{{"user": {user}, "ts": {}}}"#, s(t)))
        .collect();
    let settings = "{key: user, key_type: int, timestamp: {field: ts, format: millis}}";
    let window = "{type: tumbling, size: 1m}";
    let ints = Pipeline::run_with(dir.path(), "ints", settings, window, "{out_of_orderness: 0s}", &events)?;
    let keys: Vec<Option<i64>> = ints.rows()?.iter().map(|r| r["key"].as_i64()).collect();
    assert!(keys.len() == 4 && keys.iter().all(Option::is_some), "a long key column: {keys:?}");
    let mut labels = String::from("user,at,label\n");
    for (user, at, name) in [
        ("7", s(60) - 1, "7-before"),
        ("7", s(60), "7-first"),
        ("42", s(60), "42-first"),
        ("100", s(60), "100-first"),
        ("7", s(120), "7-second"),
        ("8", s(120), "8-none"),
        ("seven", s(120), "not-an-int"),
    ] {
        labels.push_str(&format!("{user},{at},{name}\n"));
    }
    let (stdout, read) = training_set(dir.path(), &labels, &[&ints], &["--serving-delay", "0s"])?;
    let got: Vec<(String, Option<i64>)> = read["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["label"].as_str().unwrap_or("").to_string(), r["count"].as_i64()))
        .collect();
    // Worked by hand: 7 has 2 events in the first minute and 1 in the
    // second, 42 and 100 one each in the first, 8 none.
    let want: Vec<(String, Option<i64>)> = [
        ("7-before", None),
        ("7-first", Some(2)),
        ("42-first", Some(1)),
        ("100-first", Some(1)),
        ("7-second", Some(1)),
        ("8-none", None),
    ]
    .iter()
    .map(|&(l, c)| (l.to_string(), c))
    .collect();
    assert_eq!(got, want, "{stdout}");
    assert!(stdout.contains("row 7: its key `seven` is not an integer"), "{stdout}");
    Ok(())
}

/// When a row of the table became available and how new it is, as
/// `training` documents it, from the row as pyiceberg reads it.
fn available_at(row: &Value, delay: i64) -> (i64, (i64, i64, i64)) {
    let ms = |k: &str| row[k].as_i64().unwrap_or(i64::MIN);
    let (end, event_time, computed) = (ms("window_end"), ms("event_time"), ms("computed_at"));
    match row["trigger"].as_str() {
        Some("event") => (event_time + 1, (event_time, end, computed)),
        Some("late") => ((end + delay).max(computed), (end, end, computed)),
        _ => (end + delay, (end, end, computed)),
    }
}

/// A pipeline over a stream with disorder, late events within the
/// allowed lateness (late corrections, available when written) and too-
/// late ones; labels at random times over the stream and after it. Each
/// output row equals a naive as-of join: for each label, scan every row
/// of its key.
#[test]
fn as_of_equals_a_naive_join_over_a_table_with_late_corrections() -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir()?;
    // An hour of clicks ending now, so that corrections (stamped with
    // this run's clock) are available to the labels after now.
    let now = e2e::now_ms();
    let config = Config {
        late: 0.05,
        late_delay: 600.0,
        malformed: 0.0,
        start: (now - 3_000_000) as f64 / 1000.0,
        ..e2e::troubled_stream(Shape::Clicks, 6_000, 30, 2.0)
    };
    let mut text = Vec::new();
    sluice_examples::generate(&config, &mut text)?;
    let events: Vec<String> = String::from_utf8(text)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let (user, seconds) = (v["user_id"].as_str()?.to_string(), v["timestamp"].as_f64()?);
            Some(event(&user, (seconds * 1000.0) as i64))
        })
        .collect();
    let sliding = Pipeline::run(
        dir.path(),
        "sliding",
        "{type: sliding, size: 5m, slide: 1m, allowed_lateness: 10m}",
        "{out_of_orderness: 10s}",
        &events,
    )?;
    let table = sliding.rows()?;
    assert!(table.iter().any(|r| r["trigger"] == "late"), "no late corrections in the table");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
    let mut labels = String::from("user,at,label\n");
    let mut asked = Vec::new();
    for i in 0..2_000 {
        let user = format!("u{}", rng.random_range(0..32));
        let at = rng.random_range(now - 3_200_000..now + 600_000);
        labels.push_str(&format!("{user},{at},{i}\n"));
        asked.push((user, at));
    }
    let delay = 10_000;
    let (stdout, read) = training_set(dir.path(), &labels, &[&sliding], &[])?;
    let got = counts(&read);
    assert_eq!(got.len(), asked.len(), "{stdout}");
    let mut by_key: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for row in &table {
        by_key.entry(row["key"].as_str().unwrap_or("")).or_default().push(row);
    }
    let mut served = 0;
    for ((user, at), (got_user, label, count)) in asked.iter().zip(&got) {
        assert_eq!(user, got_user);
        let newest = by_key
            .get(user.as_str())
            .into_iter()
            .flatten()
            .map(|row| (available_at(row, delay), row))
            .filter(|((available, _), _)| available <= at)
            .max_by_key(|((_, newness), _)| *newness)
            .map(|(_, row)| row["count"].as_i64());
        let want = newest.flatten();
        served += usize::from(want.is_some());
        assert_eq!(*count, want, "label {label} ({user} at {at})");
    }
    assert!(served > 1_000, "only {served} labels got a row: the test checks little");
    Ok(())
}

/// The example manifest `name` over `input`, as a view file in `dir`
/// (run from the repository root, where its module path points), with
/// `outputs` (YAML) for the example's when given.
fn example_view(dir: &Path, name: &str, input: &Path, outputs: Option<&str>) -> anyhow::Result<Pipeline> {
    let text = std::fs::read_to_string(e2e::root().join(format!("examples/{name}.yaml")))?;
    let mut manifest: serde_yaml::Value = serde_yaml::from_str(&text)?;
    manifest["source"]["path"] = serde_yaml::Value::from(input.display().to_string());
    let module = e2e::root().join(manifest["transform"]["module"].as_str().unwrap_or_default());
    manifest["transform"]["module"] = serde_yaml::Value::from(module.display().to_string());
    if let Some(outputs) = outputs {
        manifest["outputs"] = serde_yaml::from_str(outputs)?;
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, serde_yaml::to_string(&manifest)?)?;
    Ok(Pipeline { manifest: path, warehouse: PathBuf::new(), table: String::new() })
}

/// Where the exact mode's view reads its raw events.
enum Events {
    /// The example's file.
    File,
    /// A topic the test fills with the same lines, one record each, keyed
    /// by their user.
    Topic,
}

/// The exact mode against a brute-force reference: for each label, the
/// example's features computed in the test from the input's valid events
/// of its key in the window ending at the label's time (`window`: the
/// events' times, the label's time, and the events' indices it holds).
fn exact_equals_the_reference(
    example: e2e::Example,
    from: Events,
    window: impl Fn(&[(i64, usize)], i64) -> Vec<usize>,
) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    let mut text = Vec::new();
    sluice_examples::generate(&example.config, &mut text)?;
    std::fs::write(&input, &text)?;
    let view = example_view(dir.path(), example.name, &input, None)?;
    if let Events::Topic = from {
        let topic = common::unique("exact");
        sluice_examples::kafka::create_topic(common::BROKERS, &topic, 2)?;
        let lines: Vec<String> = String::from_utf8(text.clone())?.lines().map(str::to_string).collect();
        common::produce_lines(&lines, &topic)?;
        let mut manifest: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&view.manifest)?)?;
        manifest["source"] = serde_yaml::from_str(&format!(
            "{{type: kafka, brokers: '{}', topics: ['{topic}'], group: '{topic}'}}",
            common::BROKERS
        ))?;
        std::fs::write(&view.manifest, serde_yaml::to_string(&manifest)?)?;
    }
    let parsed = sluice_tests::jsonl::parse_file(&input, example.fields, e2e::now_ms())?;
    // Each key's valid events by time (then by line, as the pipeline).
    let mut by_key: BTreeMap<&str, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Some((key, t, _)) = p {
            by_key.entry(key.as_str()).or_default().push((*t, i));
        }
    }
    for events in by_key.values_mut() {
        events.sort();
    }
    let (first, last) = by_key.values().flatten().fold((i64::MAX, i64::MIN), |(a, b), (t, _)| (a.min(*t), b.max(*t)));
    let keys: Vec<&str> = by_key.keys().copied().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut labels = String::from("user,at,label\n");
    let mut asked = Vec::new();
    for i in 0..1_500 {
        let key = keys[rng.random_range(0..keys.len())];
        // Some labels at an event's exact time, or 1 ms after it.
        let at = match i % 3 {
            0 => rng.random_range(first..last + 3_600_000),
            n => {
                let events = &by_key[key];
                events[rng.random_range(0..events.len())].0 + (n as i64 - 1)
            }
        };
        labels.push_str(&format!("{key},{at},{i}\n"));
        asked.push((key, at));
    }
    let (stdout, read) = training_set(dir.path(), &labels, &[&view], &["--mode", "exact"])?;
    let rows = read["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), asked.len(), "{stdout}");
    let mut computed = 0;
    for ((key, at), row) in asked.iter().zip(&rows) {
        let members = window(&by_key[key], *at);
        let events: Vec<&Value> = members.iter().filter_map(|&i| parsed[i].as_ref().map(|(_, _, v)| v)).collect();
        let times: Vec<i64> = members.iter().filter_map(|&i| parsed[i].as_ref().map(|(_, t, _)| *t)).collect();
        let reference = (example.compute)(&events, &times);
        let want = (!members.is_empty()).then(|| e2e::canonical(&reference));
        let got: serde_json::Map<String, Value> =
            reference.keys().map(|name| (name.clone(), row[name.as_str()].clone())).collect();
        let got = (!got.values().all(Value::is_null)).then(|| e2e::canonical(&got));
        assert_eq!(got, want, "{} at {at}: row {row}", key);
        computed += usize::from(want.is_some());
    }
    assert!(computed > 500, "only {computed} labels had events in their window: the test checks little");
    // Every event is read (a topic from the first label's window on: its
    // records are stamped when produced, after every label), each once.
    let valid = parsed.iter().flatten().count();
    let read = format!("windows computed from {valid} events (0 failed; {} events left out", parsed.len() - valid);
    assert!(stdout.contains(&read), "no `{read}` in {stdout}");
    Ok(())
}

/// Sliding 30 min (session-features): the events in `[t - 30 min, t)`.
#[test]
fn exact_gives_each_label_the_sliding_window_ending_at_its_time() -> anyhow::Result<()> {
    let size = 1_800_000;
    exact_equals_the_reference(e2e::session_features(), Events::File, |events, t| {
        events.iter().filter(|(e, _)| *e >= t - size && *e < t).map(|&(_, i)| i).collect()
    })
}

/// Tumbling 5 min, an aggregate transform (tx-velocity): the events in
/// `[t - 5 min, t)` folded into a new accumulator, then finished.
#[test]
fn exact_folds_an_aggregates_window_ending_at_each_labels_time() -> anyhow::Result<()> {
    let size = 300_000;
    exact_equals_the_reference(e2e::tx_velocity(), Events::File, |events, t| {
        events.iter().filter(|(e, _)| *e >= t - size && *e < t).map(|&(_, i)| i).collect()
    })
}

/// The same sliding windows, their raw events read from a topic of two
/// partitions (each key's records in one), decoded as the pipeline
/// decodes them.
#[test]
fn exact_reads_a_views_raw_events_from_its_topic() -> anyhow::Result<()> {
    let size = 1_800_000;
    exact_equals_the_reference(e2e::session_features(), Events::Topic, |events, t| {
        events.iter().filter(|(e, _)| *e >= t - size && *e < t).map(|&(_, i)| i).collect()
    })
}

/// Sessions with a 15 min gap (user-session): the key's events before `t`
/// back to the last gap of 15 min or more.
#[test]
fn exact_gives_each_label_the_session_before_its_time() -> anyhow::Result<()> {
    let gap = 900_000;
    exact_equals_the_reference(e2e::user_session(), Events::File, |events, t| {
        let before: Vec<(i64, usize)> = events.iter().copied().filter(|(e, _)| *e < t).collect();
        let Some(mut start) = before.len().checked_sub(1) else {
            return Vec::new();
        };
        while start > 0 && before[start].0 - before[start - 1].0 < gap {
            start -= 1;
        }
        before[start..].iter().map(|&(_, i)| i).collect()
    })
}

/// A host builds a training set as a job: labels uploaded by the CLI, the
/// view a pipeline applied to it (the hand-made tumbling windows above,
/// its table under the host's `files/`), the result in `files/` and
/// downloadable. Requests it cannot carry out are refused, and a job that
/// fails says why.
#[test]
fn a_host_builds_a_training_set_as_a_job_over_its_pipelines() -> anyhow::Result<()> {
    use reqwest::Method;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let host = common::Host::start(&data, dir.path().join("serve.log"))?;
    let module = e2e::root().join("target/modules/misbehave.wasm");
    host.cli(&["modules", "push", "misbehave", &module.display().to_string()])?;
    let s = |n: i64| T0 + n * SECOND;
    let events: Vec<String> = [("a", 10), ("a", 20), ("b", 30), ("a", 70), ("a", 130), ("a", 140), ("a", 150)]
        .iter()
        .map(|&(u, t)| event(u, s(t)))
        .collect();
    let (code, body) = host.send(Method::PUT, "/files/events.jsonl", events.join("\n") + "\n")?;
    assert_eq!(code, 204, "{body}");
    let manifest = "name: tumbling\n\
        source: {type: file, path: events.jsonl}\n\
        events: {key: user, timestamp: {field: ts, format: millis}}\n\
        time: {out_of_orderness: 5s}\n\
        window: {type: tumbling, size: 1m}\n\
        transform: {module: misbehave}\n\
        outputs:\n  \
          features: [{type: iceberg, warehouse: warehouse, namespace: offline, table: tumbling}]\n  \
          dead_letters: [{type: file, path: dead.jsonl}]\n  \
          late_events: [{type: file, path: late.jsonl}]\n";
    let (code, body) = host.send(Method::POST, "/pipelines", manifest.to_string())?;
    assert_eq!(code, 201, "{body}");
    host.wait("tumbling", "the end of its file", |s| s["state"] == "STOPPED")?;

    let labels = dir.path().join("labels.csv");
    let mut text = String::from("user,at,label\n");
    for (user, at, name) in [("a", s(60) - 1, "e-1"), ("a", s(60), "e"), ("a", s(120), "e2"), ("b", s(60), "b-e")] {
        text.push_str(&format!("{user},{at},{name}\n"));
    }
    std::fs::write(&labels, text)?;
    let labels = labels.display().to_string();
    let created = host.cli(&[
        "training-sets",
        "create",
        "--labels",
        &labels,
        "--key",
        "user",
        "--time",
        "at",
        "--view",
        "tumbling",
        "--out",
        "training.parquet",
        "--serving-delay",
        "0s",
        "--wait",
    ])?;
    assert!(created.contains("\"state\": \"succeeded\"") && created.contains("\"written\": 4"), "{created}");
    let out = data.join("files/training.parquet");
    let read = common::python("read_parquet.py", &[&out.display().to_string()])?;
    let want =
        expect(&[("a", "\"e-1\"", None), ("a", "\"e\"", Some(2)), ("a", "\"e2\"", Some(1)), ("b", "\"b-e\"", Some(1))]);
    assert_eq!(counts(&read), want);
    let downloaded = reqwest::blocking::Client::new()
        .get(format!("{}/files/training.parquet", host.url))
        .bearer_auth(common::TOKEN)
        .send()?
        .bytes()?;
    assert_eq!(downloaded.as_ref(), std::fs::read(&out)?.as_slice(), "GET /files gives the file");
    let listed = host.cli(&["training-sets", "list"])?;
    assert!(listed.starts_with("1  succeeded  training.parquet  done"), "{listed}");

    let request = |labels: &str, view: &str, key: &str| {
        format!(r#"{{"labels": "{labels}", "key": "{key}", "time": "at", "views": ["{view}"], "out": "x.parquet"}}"#)
    };
    let (code, body) = host.send(Method::POST, "/training-sets", request("../labels.csv", "tumbling", "user"))?;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("`labels`"), "{body}");
    let (code, body) = host.send(Method::POST, "/training-sets", request("labels.csv", "nope", "user"))?;
    assert_eq!(code, 404, "{body}");
    let (code, body) = host.send(Method::POST, "/training-sets", "labels: labels.csv".to_string())?;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("not a training set request"), "{body}");
    let (code, body) = host.send(Method::PUT, "/files/.hidden", String::new())?;
    assert_eq!(code, 400, "{body}");
    // Accepted, then failed: the labels have no such column.
    let (code, job) = host.send(Method::POST, "/training-sets", request("labels.csv", "tumbling", "customer"))?;
    assert_eq!(code, 202, "{job}");
    let path = format!("/training-sets/{}", job["id"]);
    let mut ended = Value::Null;
    e2e::wait_until(
        "the failing job's end",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(50),
        || {
            ended = host.call(Method::GET, &path)?.1;
            Ok(ended["state"] != "running")
        },
    )?;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["error"].as_str().unwrap_or_default().contains("no key column `customer`"), "{ended}");
    Ok(())
}

/// A view for `--check-online`: `example` over its events with none late
/// (the pipeline drops none, so its online rows, its offline rows and its
/// windows computed again agree), run to its end with its features in
/// Redis (`redis`, a sink's YAML) and in the Iceberg table `table` of
/// `warehouse`: the pipeline, its input, and its valid events.
fn served_view(
    dir: &Path,
    example: &e2e::Example,
    redis: &str,
    warehouse: &Path,
    table: &str,
) -> anyhow::Result<(Pipeline, PathBuf, usize)> {
    let input = dir.join(format!("{table}.jsonl"));
    let mut text = Vec::new();
    sluice_examples::generate(&Config { late: 0.0, ..example.config.clone() }, &mut text)?;
    std::fs::write(&input, &text)?;
    let file = |what: &str| format!("{{type: file, path: '{}'}}", dir.join(format!("{table}-{what}.jsonl")).display());
    let outputs = format!(
        "{{features: [{redis}, {{type: iceberg, warehouse: '{}', namespace: offline, table: {table}}}], \
         dead_letters: [{}], late_events: [{}]}}",
        warehouse.display(),
        file("dead"),
        file("late")
    );
    let mut view = example_view(dir, example.name, &input, Some(&outputs))?;
    let run = Command::new(e2e::sluice()).arg("run").arg(&view.manifest).output()?;
    anyhow::ensure!(run.status.success(), "sluice run {table}: {}", String::from_utf8_lossy(&run.stderr));
    view.warehouse = warehouse.to_path_buf();
    view.table = format!("offline.{table}");
    let valid = sluice_tests::jsonl::parse_file(&input, example.fields, e2e::now_ms())?.iter().flatten().count();
    Ok((view, input, valid))
}

/// The keys `--check-online` samples from a view's table, as pyiceberg
/// reads it: each key's newest row (by window end: no row here is fired
/// per event), for those within `window` ms of the table's newest.
fn recent_rows(view: &Pipeline, window: i64) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut newest: BTreeMap<String, Value> = BTreeMap::new();
    for row in view.rows()? {
        let key = row["key"].as_str().unwrap_or_default().to_string();
        let end = |r: &Value| r["window_end"].as_i64().unwrap_or(i64::MIN);
        if newest.get(&key).is_none_or(|held| end(&row) > end(held)) {
            newest.insert(key, row);
        }
    }
    let last = newest.values().map(|r| r["window_end"].as_i64().unwrap_or(i64::MIN)).max().unwrap_or(i64::MIN);
    newest.retain(|_, r| r["window_end"].as_i64().is_some_and(|e| e >= last - window));
    Ok(newest)
}

/// `--check-online`: two views whose three sides must agree,
/// session-features (sliding; Redis's plain layout: lists, integers,
/// text) and tx-velocity (a tumbling aggregate; Feast's layout: doubles).
/// The check finds no skew over every key they serve now; then three
/// differences made by hand are each reported where they are: a feature
/// changed in Redis (online differs from offline and exact), an event
/// added to the history (exact differs from both, for each feature it
/// changes), a key's online row deleted.
#[test]
fn check_online_reports_each_difference_between_online_offline_and_the_events() -> anyhow::Result<()> {
    use redis::Commands;
    let dir = tempfile::tempdir()?;
    let warehouse = dir.path().join("warehouse");
    let prefix = common::unique("check-online");
    let project = common::unique("check_online").replace('-', "_");
    let (sessions, _, session_events) = served_view(
        dir.path(),
        &e2e::session_features(),
        &format!("{{type: redis, url: '{}', key: '{prefix}:{{key}}'}}", common::REDIS),
        &warehouse,
        "sessions",
    )?;
    let (velocity, velocity_input, velocity_events) = served_view(
        dir.path(),
        &e2e::tx_velocity(),
        &format!(
            "{{type: redis, url: '{}', layout: feast, project: {project}, feature_view: tx_velocity, join_key: user_id}}",
            common::REDIS
        ),
        &warehouse,
        "velocity",
    )?;
    let recent_sessions = recent_rows(&sessions, 1_800_000)?;
    let recent_velocity = recent_rows(&velocity, 300_000)?;
    assert!(recent_sessions.len() > 10 && recent_velocity.len() > 10, "the test checks few keys");
    let check = || -> anyhow::Result<(Option<i32>, String)> {
        let run = Command::new(e2e::sluice())
            .args(["training-set", "--check-online", "--sample", "1000", "--view"])
            .arg(&sessions.manifest)
            .arg("--view")
            .arg(&velocity.manifest)
            .output()?;
        let shown = String::from_utf8_lossy(&run.stdout).into_owned();
        anyhow::ensure!(run.status.code() != Some(2), "{shown}{}", String::from_utf8_lossy(&run.stderr));
        Ok((run.status.code(), shown))
    };
    let view_lines = |view: &str, keys: usize, without: usize, events: usize| {
        let checked = keys - without;
        [
            format!("view `{view}`: {keys} keys sampled, {checked} online rows checked ({without} keys without one)"),
            format!("  compared with the offline table: {checked} (0 not in it yet, 0 online rows behind it)"),
            format!("  computed again: {checked} windows from {events} events (0 failed;"),
        ]
    };
    let (code, shown) = check()?;
    assert_eq!(code, Some(0), "{shown}");
    for line in view_lines("session-features", recent_sessions.len(), 0, session_events).iter().chain(&view_lines(
        "tx-velocity",
        recent_velocity.len(),
        0,
        velocity_events,
    )) {
        assert!(shown.contains(line.as_str()), "no line `{line}` in:\n{shown}");
    }
    let features = shown.lines().filter(|l| l.starts_with("  feature `")).count();
    assert_eq!(features, 5 + 3, "{shown}");
    assert_eq!(shown.matches("0 online≠offline, 0 online≠exact, 0 offline≠exact").count(), features, "{shown}");

    // Online: one key's count changed, another key's row gone.
    let mut keys = recent_sessions.keys();
    let (changed, deleted) = (keys.next().cloned().unwrap_or_default(), keys.next().cloned().unwrap_or_default());
    let mut redis = redis::Client::open(common::REDIS)?.get_connection()?;
    let () = redis.hset(format!("{prefix}:{changed}"), "item_count_30m", "999")?;
    let () = redis.del(format!("{prefix}:{deleted}"))?;
    // History: an event the pipeline never saw, in a key's newest window.
    let (added, row) = recent_velocity.iter().next().map(|(k, r)| (k.clone(), r.clone())).unwrap_or_default();
    let end = row["window_end"].as_i64().unwrap_or_default();
    let mut input = std::fs::OpenOptions::new().append(true).open(&velocity_input)?;
    std::io::Write::write_all(
        &mut input,
        format!(
            "{{\"user_id\": \"{added}\", \"merchant_id\": \"m-unseen\", \"amount\": 1000.5, \"timestamp\": {}}}\n",
            end / 1000 - 1
        )
        .as_bytes(),
    )?;

    let (code, shown) = check()?;
    assert_eq!(code, Some(1), "{shown}");
    let expected = [
        view_lines("session-features", recent_sessions.len(), 1, session_events).to_vec(),
        view_lines("tx-velocity", recent_velocity.len(), 0, velocity_events + 1).to_vec(),
        vec![
            "  feature `item_count_30m`: 1 online≠offline, 1 online≠exact, 0 offline≠exact".to_string(),
            "  feature `tx_count`: 0 online≠offline, 1 online≠exact, 1 offline≠exact".to_string(),
            "  feature `tx_sum`: 0 online≠offline, 1 online≠exact, 1 offline≠exact".to_string(),
            "  feature `distinct_merchants`: 0 online≠offline, 1 online≠exact, 1 offline≠exact".to_string(),
            "skew found".to_string(),
        ],
    ]
    .concat();
    for line in &expected {
        assert!(shown.contains(line.as_str()), "no line `{line}` in:\n{shown}");
    }
    // Each difference listed with the three values.
    let count = &recent_sessions[&changed]["item_count_30m"];
    let tx_count = &row["tx_count"];
    for (key, values) in [
        (&changed, format!("`item_count_30m`: online 999, offline {count}, exact {count}")),
        (
            &added,
            format!(
                "`tx_count`: online {tx_count}, offline {tx_count}, exact {}",
                tx_count.as_i64().unwrap_or_default() + 1
            ),
        ),
    ] {
        let listed = shown.lines().any(|l| l.starts_with(&format!("  key {key} at ")) && l.ends_with(&values));
        assert!(listed, "no difference `{values}` of {key} in:\n{shown}");
    }
    assert_eq!(shown.matches("0 online≠offline, 0 online≠exact, 0 offline≠exact").count(), features - 4, "{shown}");
    Ok(())
}
