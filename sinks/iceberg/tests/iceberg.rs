//! The Iceberg sink against a real table on the local disk, read back with
//! pyiceberg (the SQL catalog on the same SQLite file): what a training
//! job sees.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_sink_api::{
    Batch, Context, EntityKey, FeatureRow, FeatureSchema, FeatureSpec, FeatureType, FeatureValue, Features, KeyType,
    Scalar, Sink, Trigger,
};
use sluice_sink_iceberg::{IcebergSink, IcebergSinkConfig};

fn spec(name: &str, ty: FeatureType, nullable: bool) -> FeatureSpec {
    FeatureSpec { name: name.into(), ty, nullable, description: format!("the {name}") }
}

/// One feature of each type.
fn schema() -> anyhow::Result<Arc<FeatureSchema>> {
    let specs = vec![
        spec("count", FeatureType::Int, false),
        spec("sum", FeatureType::Float, false),
        spec("bot", FeatureType::Bool, false),
        spec("top", FeatureType::Str, true),
        spec("items", FeatureType::Strs, false),
        spec("amounts", FeatureType::Floats, true),
        spec("sizes", FeatureType::Ints, true),
        spec("flags", FeatureType::Bools, true),
    ];
    FeatureSchema::new(specs).map(Arc::new).map_err(anyhow::Error::msg)
}

const DAY: i64 = 86_400_000;

/// Row `i`: windows spread over three days (three partitions), values
/// that differ row by row, nulls in the nullable features of every third.
fn row(i: i64) -> FeatureRow {
    let end = 1_700_000_000_000 + (i % 3) * DAY + i * 60_000;
    let mut f: Vec<(Arc<str>, FeatureValue)> = vec![
        ("count".into(), FeatureValue::Int(i)),
        ("sum".into(), FeatureValue::Float(i as f64 / 4.0)),
        ("bot".into(), FeatureValue::Bool(i % 2 == 0)),
        ("items".into(), FeatureValue::strs((0..i % 4).map(|n| ["a", "b\"c", "ü", ""][n as usize]))),
    ];
    if i % 3 != 0 {
        f.push(("top".into(), FeatureValue::Str(format!("cat-{i}"))));
        f.push(("amounts".into(), FeatureValue::Floats(vec![1.5, i as f64])));
        f.push(("sizes".into(), FeatureValue::Mixed(vec![Scalar::Int(i), Scalar::Null])));
        f.push(("flags".into(), FeatureValue::Bools(vec![true, false])));
    } else {
        f.push(("top".into(), FeatureValue::Null));
    }
    FeatureRow {
        key: format!("user-{}", i % 7).into(),
        window_start: end - 1_800_000,
        window_end: end,
        event_time: end - 1,
        trigger: if i % 5 == 0 { Trigger::Late } else { Trigger::Close },
        features: Features(f),
        computed_at: end + 5,
    }
}

/// Row `i` as pyiceberg gives it back.
fn expected(i: i64) -> Value {
    let r = row(i);
    let items: Vec<&str> = (0..i % 4).map(|n| ["a", "b\"c", "ü", ""][n as usize]).collect();
    let full = i % 3 != 0;
    json!({
        "key": r.key,
        "window_start": r.window_start,
        "window_end": r.window_end,
        "trigger": if i % 5 == 0 { "late" } else { "close" },
        "event_time": r.event_time,
        "computed_at": r.computed_at,
        "count": i,
        "sum": i as f64 / 4.0,
        "bot": i % 2 == 0,
        "top": if full { json!(format!("cat-{i}")) } else { Value::Null },
        "items": items,
        "amounts": if full { json!([1.5, i as f64]) } else { Value::Null },
        "sizes": if full { json!([i, null]) } else { Value::Null },
        "flags": if full { json!([true, false]) } else { Value::Null },
    })
}

struct Table {
    dir: tempfile::TempDir,
    /// The pipeline's keys' type.
    key_type: KeyType,
    /// The sink's `catalog`, as YAML; the SQL catalog when `None`.
    catalog: Option<String>,
}

impl Table {
    fn new() -> anyhow::Result<Table> {
        Ok(Table { dir: tempfile::tempdir()?, key_type: KeyType::String, catalog: None })
    }

    /// A new table holding rows 0..3, committed by run `run-a`'s first
    /// checkpoint.
    async fn with_three_rows() -> anyhow::Result<Table> {
        let t = Table::new()?;
        let mut sink = t.open("run-a", &[]).await?;
        write(&mut sink, 0..3).await?;
        checkpointed(&mut sink, 1).await?;
        Ok(t)
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    fn config(&self) -> IcebergSinkConfig {
        let catalog = self.catalog.as_ref().map(|c| format!(", catalog: {c}")).unwrap_or_default();
        let yaml =
            format!("{{warehouse: '{}', namespace: offline, table: features{catalog}}}", self.warehouse().display());
        serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("config: {e}"))
    }

    async fn open(&self, run: &str, checkpointed: &[(&str, u64)]) -> sluice_sink_api::Result<IcebergSink> {
        self.open_with(
            run,
            checkpointed,
            schema().map_err(|e| sluice_sink_api::Error {
                sink: "t".into(),
                message: e.to_string(),
                retriable: false,
            })?,
        )
        .await
    }

    async fn open_with(
        &self,
        run: &str,
        checkpointed: &[(&str, u64)],
        schema: Arc<FeatureSchema>,
    ) -> sluice_sink_api::Result<IcebergSink> {
        let context = Context {
            pipeline: "clicks".into(),
            run: run.into(),
            schema,
            checkpointed: checkpointed.iter().map(|(r, e)| (r.to_string(), *e)).collect(),
            checkpoints: true,
            key_type: self.key_type,
            backfill: None,
        };
        IcebergSink::open("outputs.features[0]", &self.config(), &context).await
    }

    /// pyiceberg's `scripts/iceberg-read` with `args`: its output lines as
    /// JSON.
    fn read(&self, args: &[&str]) -> anyhow::Result<Vec<Value>> {
        let python = python();
        let out = std::process::Command::new(&python)
            .arg(script("iceberg-read"))
            .arg("--warehouse")
            .arg(self.warehouse())
            .args(["--table", "offline.features"])
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{} scripts/iceberg-read failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)?.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }

    /// The rows, ordered by `count` (unique per row).
    fn rows(&self) -> anyhow::Result<Vec<Value>> {
        let mut rows = self.read(&[])?;
        rows.sort_by_key(|r| r["count"].as_i64());
        Ok(rows)
    }

    fn staged(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.warehouse().join("offline/features/sluice-staging/clicks");
        let mut names: Vec<String> =
            std::fs::read_dir(dir)?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        names.sort();
        Ok(names)
    }
}

/// The project's virtualenv Python (scripts/setup makes it).
fn python() -> PathBuf {
    std::env::var("SLUICE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/sluice/venv/bin/python"))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(name)
}

/// `scripts/iceberg-rest`: a REST catalog over the SQL catalog of the
/// table's warehouse (the same SQLite file `Table::read` reads through),
/// requiring `token`.
struct RestCatalog {
    child: std::process::Child,
    uri: String,
}

impl RestCatalog {
    fn start(t: &Table, token: &str) -> anyhow::Result<RestCatalog> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(python())
            .arg(script("iceberg-rest"))
            .arg("--warehouse")
            .arg(t.warehouse())
            .args(["--token", token])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let Some(uri) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            anyhow::bail!("scripts/iceberg-rest did not start: {line:?}");
        };
        Ok(RestCatalog { uri: uri.to_string(), child })
    }
}

impl Drop for RestCatalog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn write(sink: &mut IcebergSink, rows: std::ops::Range<i64>) -> anyhow::Result<()> {
    let rows: Vec<FeatureRow> = rows.map(row).collect();
    Ok(sink.write(Batch::Features(&rows)).await?)
}

/// Barrier `n` with its checkpoint taken: pre-commit, then commit.
async fn checkpointed(sink: &mut IcebergSink, n: u64) -> anyhow::Result<()> {
    sink.pre_commit(n).await?;
    Ok(sink.commit(n).await?)
}

fn rows(range: std::ops::Range<i64>) -> Vec<Value> {
    range.map(expected).collect()
}

#[tokio::test]
async fn committed_rows_read_back_with_their_types_partitioned_by_day() -> anyhow::Result<()> {
    let t = Table::new()?;
    let mut sink = t.open("run-a", &[]).await?;
    write(&mut sink, 0..10).await?;
    write(&mut sink, 10..25).await?;
    sink.pre_commit(1).await?;
    // Staged, not committed: nothing to read yet.
    assert!(t.read(&["--snapshots"])?.is_empty());
    assert_eq!(t.staged()?, ["run-a-00000001.json"]);
    sink.commit(1).await?;
    assert_eq!(t.rows()?, rows(0..25));
    assert!(t.staged()?.is_empty());
    // A barrier with no rows commits nothing.
    checkpointed(&mut sink, 2).await?;
    write(&mut sink, 25..40).await?;
    checkpointed(&mut sink, 3).await?;
    assert_eq!(t.rows()?, rows(0..40));
    let snapshots = t.read(&["--snapshots"])?;
    let published: Vec<(&str, &str, &str)> = snapshots
        .iter()
        .map(|s| {
            let summary = &s["summary"];
            let field = |k: &str| summary[k].as_str().unwrap_or("?");
            (field("sluice.run"), field("sluice.barrier"), field("sluice.pipeline"))
        })
        .collect();
    assert_eq!(published, [("run-a", "1", "clicks"), ("run-a", "3", "clicks")]);
    let spec = t.read(&["--spec"])?;
    let spec = spec.first().map(|s| s["partition_spec"].to_string()).unwrap_or_default();
    assert!(spec.contains("day(") && spec.contains("window_end_day"), "{spec}");
    // Three days of window ends: three partitions, each its own files.
    let data = t.warehouse().join("offline/features/data");
    let days: Vec<_> = std::fs::read_dir(&data)?.filter_map(|e| e.ok()).collect();
    assert_eq!(days.len(), 3, "partition folders under {}", data.display());
    Ok(())
}

/// A pipeline whose keys are typed `int` makes the key column a `long`,
/// which pyiceberg reads back as integers; a table made for string keys
/// refuses it.
#[tokio::test]
async fn integer_keys_make_a_long_key_column() -> anyhow::Result<()> {
    let t = Table { key_type: KeyType::Int, ..Table::new()? };
    let mut sink = t.open("run-a", &[]).await?;
    let rows: Vec<FeatureRow> = (0..6).map(|i| FeatureRow { key: EntityKey::Int(i % 3 - 1), ..row(i) }).collect();
    sink.write(Batch::Features(&rows)).await?;
    checkpointed(&mut sink, 1).await?;
    let keys: Vec<Value> = t.rows()?.iter().map(|r| r["key"].clone()).collect();
    assert_eq!(keys, [json!(-1), json!(0), json!(1), json!(-1), json!(0), json!(1)]);
    drop(sink);
    let strings = Table { key_type: KeyType::String, ..t };
    let refused = strings.open("run-b", &[]).await.err().map(|e| e.message);
    assert!(refused.as_ref().is_some_and(|m| m.contains("`key` as long")), "{refused:?}");
    Ok(())
}

#[tokio::test]
async fn a_run_that_died_after_its_checkpoint_is_published_once_by_the_next() -> anyhow::Result<()> {
    let t = Table::new()?;
    let mut a = t.open("run-a", &[]).await?;
    write(&mut a, 0..5).await?;
    checkpointed(&mut a, 1).await?;
    write(&mut a, 5..12).await?;
    a.pre_commit(2).await?;
    // The checkpoint of barrier 2 is written; the run dies before its
    // commit. Rows after it are staged at barrier 3, whose checkpoint is
    // never written.
    write(&mut a, 12..20).await?;
    a.pre_commit(3).await?;
    drop(a);
    assert_eq!(t.rows()?, rows(0..5));
    // The next run finds run-a's last checkpoint at barrier 2.
    let b = t.open("run-b", &[("run-a", 2)]).await?;
    assert_eq!(t.rows()?, rows(0..12), "barrier 2 published, barrier 3 not");
    // Barrier 3's staging stays (a day) in case run-a were alive.
    assert_eq!(t.staged()?, ["run-a-00000003.json"]);
    drop(b);
    // Another run finding the same checkpoint publishes nothing again.
    let _c = t.open("run-c", &[("run-a", 2)]).await?;
    assert_eq!(t.rows()?, rows(0..12));
    assert_eq!(t.read(&["--snapshots"])?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_failed_checkpoint_is_published_with_the_next() -> anyhow::Result<()> {
    let t = Table::new()?;
    let mut sink = t.open("run-a", &[]).await?;
    write(&mut sink, 0..6).await?;
    sink.pre_commit(1).await?;
    // Checkpoint 1 failed: no commit. Barrier 2's commits both.
    write(&mut sink, 6..9).await?;
    sink.pre_commit(2).await?;
    assert_eq!(t.staged()?, ["run-a-00000001.json", "run-a-00000002.json"]);
    sink.commit(2).await?;
    assert_eq!(t.rows()?, rows(0..9));
    assert!(t.staged()?.is_empty());
    assert_eq!(t.read(&["--snapshots"])?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_table_whose_columns_do_not_match_the_features_is_refused() -> anyhow::Result<()> {
    let t = Table::with_three_rows().await?;
    let retyped = vec![spec("count", FeatureType::Float, false), spec("sum", FeatureType::Float, false)];
    let schema = Arc::new(FeatureSchema::new(retyped).map_err(anyhow::Error::msg)?);
    let err = t.open_with("run-b", &[], schema).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("table offline.features has column `count` as long, the module's features make it double"),
        "{err}"
    );
    let clash = vec![spec("key", FeatureType::Int, false)];
    let schema = Arc::new(FeatureSchema::new(clash).map_err(anyhow::Error::msg)?);
    let err = t.open_with("run-c", &[], schema).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("feature `key` has the name of one of the row's own columns"), "{err}");
    // The table is as it was.
    assert_eq!(t.rows()?, rows(0..3));
    Ok(())
}

#[tokio::test]
async fn a_table_in_a_rest_catalog_is_written_exactly_once() -> anyhow::Result<()> {
    let mut t = Table::new()?;
    let rest = RestCatalog::start(&t, "s3cret")?;
    // A wrong token: the sink does not open.
    t.catalog = Some(format!("{{type: rest, uri: '{}', properties: {{token: wrong}}}}", rest.uri));
    let err = t.open("run-a", &[]).await.err().map(|e| e.to_string()).unwrap_or_default();
    let said = format!("cannot look up offline.features in the REST catalog {}", rest.uri);
    assert!(err.contains(&said) && err.contains("a bearer token is required"), "{err}");

    t.catalog = Some(format!("{{type: rest, uri: '{}', properties: {{token: s3cret}}}}", rest.uri));
    let mut a = t.open("run-a", &[]).await?;
    write(&mut a, 0..10).await?;
    checkpointed(&mut a, 1).await?;
    // Read through the SQL catalog the REST one keeps its tables in.
    assert_eq!(t.rows()?, rows(0..10));
    // Dies after its checkpoint of barrier 2, before the commit.
    write(&mut a, 10..16).await?;
    a.pre_commit(2).await?;
    drop(a);
    let mut b = t.open("run-b", &[("run-a", 2)]).await?;
    assert_eq!(t.rows()?, rows(0..16));
    write(&mut b, 16..20).await?;
    checkpointed(&mut b, 1).await?;
    drop(b);
    // A third run finds the same checkpoint of run-a: nothing again.
    let _c = t.open("run-c", &[("run-a", 2)]).await?;
    assert_eq!(t.rows()?, rows(0..20));
    let runs: Vec<String> = t.read(&["--snapshots"])?.iter().map(|s| s["summary"]["sluice.run"].to_string()).collect();
    assert_eq!(runs, [r#""run-a""#, r#""run-a""#, r#""run-b""#]);
    // The table is where the sink's warehouse says, not the catalog's
    // default.
    assert!(t.warehouse().join("offline/features/metadata").is_dir());
    Ok(())
}

/// The table's `write.parquet.*` properties, set with pyiceberg.
fn set_properties(t: &Table, properties: &[(&str, &str)]) -> anyhow::Result<()> {
    let pairs: serde_json::Map<String, Value> =
        properties.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let program = "import json, sys\n\
        from pyiceberg.catalog.sql import SqlCatalog\n\
        w = sys.argv[1]\n\
        c = SqlCatalog('sluice', uri=f'sqlite:///{w}/catalog.db', warehouse=f'file://{w}')\n\
        c.load_table('offline.features').transaction().set_properties(json.loads(sys.argv[2])).commit_transaction()\n";
    let out = std::process::Command::new(python())
        .args(["-c", program])
        .arg(std::path::absolute(t.warehouse())?)
        .arg(Value::Object(pairs).to_string())
        .output()?;
    anyhow::ensure!(out.status.success(), "setting the properties: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A data file as pyarrow reads its footer.
#[derive(Debug, PartialEq)]
struct Layout {
    /// Its row groups: rows, compressed bytes.
    groups: Vec<(i64, i64)>,
    /// Its columns' codecs, each once.
    codecs: Vec<String>,
}

/// The table's data files.
fn layouts(t: &Table) -> anyhow::Result<Vec<Layout>> {
    Ok(t.read(&["--files"])?
        .iter()
        .map(|file| {
            let groups = file["row_groups"].as_array().cloned().unwrap_or_default();
            let groups = groups.iter().map(|g| (g["rows"].as_i64().unwrap_or(-1), g["bytes"].as_i64().unwrap_or(-1)));
            let codecs = file["codecs"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(String::from));
            Layout { groups: groups.collect(), codecs: codecs.collect() }
        })
        .collect())
}

/// Data files follow the table's `write.parquet.*` properties, Iceberg's
/// defaults when it has none (zstd; row groups up to 128 MiB), as pyarrow
/// reads the files' footers; a value the sink cannot take stops it at
/// open, naming the property.
#[tokio::test]
async fn data_files_are_written_as_the_tables_properties_say() -> anyhow::Result<()> {
    let t = Table::with_three_rows().await?;
    let first = layouts(&t)?;
    assert!(!first.is_empty());
    for file in &first {
        assert_eq!(file.groups.len(), 1, "{first:?}");
        assert_eq!(file.codecs, ["ZSTD"], "{first:?}");
    }

    set_properties(&t, &[("write.parquet.row-group-size-bytes", "2048"), ("write.parquet.compression-codec", "gzip")])?;
    let mut sink = t.open("run-b", &[]).await?;
    for start in (1_000..3_000).step_by(50) {
        write(&mut sink, start..start + 50).await?;
    }
    checkpointed(&mut sink, 1).await?;
    drop(sink);
    assert_eq!(t.rows()?, [rows(0..3), rows(1_000..3_000)].concat());
    let second: Vec<Layout> = layouts(&t)?.into_iter().filter(|file| file.codecs != ["ZSTD"]).collect();
    assert!(!second.is_empty());
    for Layout { groups, codecs } in &second {
        assert_eq!(codecs, &["GZIP"], "{second:?}");
        // Cut near the bound (the writer checks it between batches).
        assert!(groups.iter().all(|&(_, bytes)| bytes < 2 * 2048), "{second:?}");
    }
    // The 2,000 rows would have made one group a file otherwise.
    let groups: usize = second.iter().map(|file| file.groups.len()).sum();
    assert!(groups > 4 * second.len(), "{second:?}");

    set_properties(&t, &[("write.parquet.compression-codec", "lzo")])?;
    let refused = t.open("run-c", &[]).await.err().map(|e| e.message);
    let named = |m: &String| m.contains("write.parquet.compression-codec is `lzo`") && m.contains("set_properties");
    assert!(refused.as_ref().is_some_and(named), "{refused:?}");
    Ok(())
}
