//! Running pipelines over small inputs in a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sluice_host::manifest::Manifest;
use sluice_host::metrics::Metrics;
use sluice_host::pipeline::{self, Plan, Summary};
use sluice_host::runtime::Runtime;

/// A module built by `scripts/build-transforms`.
pub fn module(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/modules").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-transforms first", path.display());
    path
}

pub struct Run {
    pub summary: Summary,
    pub metrics: Arc<Metrics>,
    pub features: Vec<Value>,
    pub dead: Vec<Value>,
    pub late: Vec<Value>,
}

/// A JSON-lines file's values (`null` for a line that is not JSON).
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect()
}

/// Run a manifest whose `{dir}` placeholders name a fresh directory that
/// holds `input` as `in.jsonl`.
pub fn run(manifest: &str, input: &str) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("in.jsonl"), input)?;
    let text = manifest.replace("{dir}", &d);
    execute(Manifest::parse("test.yaml", &text, &[])?, dir.path())
}

/// Run `examples/{name}.yaml` as it is, over `input`, with its outputs
/// and module redirected and `overrides` applied.
pub fn run_example(name: &str, input: &str, overrides: &[&str]) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("in.jsonl"), input)?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(format!("{name}.yaml"));
    let mut all = vec![
        format!("source.path={d}/in.jsonl"),
        format!("transform.module={}", module(name).display()),
        format!("outputs.features.0.path={d}/features.jsonl"),
        format!("outputs.dead_letters.0.path={d}/dead.jsonl"),
        format!("outputs.late_events.0.path={d}/late.jsonl"),
    ];
    all.extend(overrides.iter().map(|s| s.to_string()));
    execute(Manifest::load(&path, &all)?, dir.path())
}

fn execute(manifest: Manifest, dir: &Path) -> anyhow::Result<Run> {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    // Compiled modules cached across tests and runs: a Python module takes
    // seconds to compile.
    let engine = sluice_host::wasm::Engine::cached(&std::env::temp_dir().join("sluice-test-code-cache"))?;
    let runtime = Runtime::with_engine(engine, tokio.handle().clone());
    let plan = Plan::new(manifest.lower(), &runtime)?;
    let (summary, metrics) = tokio.block_on(pipeline::run(plan, &runtime))?;
    Ok(Run {
        summary,
        metrics,
        features: read_lines(&dir.join("features.jsonl")),
        dead: read_lines(&dir.join("dead.jsonl")),
        late: read_lines(&dir.join("late.jsonl")),
    })
}

/// The usual outputs section.
pub const OUTPUTS: &str = "outputs:
  features: [{type: file, path: '{dir}/features.jsonl'}]
  dead_letters: [{type: file, path: '{dir}/dead.jsonl'}]
  late_events: [{type: file, path: '{dir}/late.jsonl'}]
";

/// The limits of a misbehaving module's pipeline.
pub struct GuestLimits {
    pub parallelism: usize,
    pub timeout: &'static str,
    pub memory_mib: u32,
    pub max_batch: usize,
}

/// A pipeline of `module` (built by `scripts/build-transforms`) over
/// `{dir}/in.jsonl` (see [`two_events_per_key`]) in 10 s tumbling
/// windows, a window a key, within `limits`.
pub fn misbehave_manifest(module_name: &str, limits: GuestLimits) -> String {
    let GuestLimits { parallelism, timeout, memory_mib, max_batch } = limits;
    format!(
        "name: {module_name}
parallelism: {parallelism}
source: {{type: file, path: '{{dir}}/in.jsonl'}}
events:
  key: user_id
  timestamp: {{field: timestamp, format: millis}}
  max_future_skew: off
window: {{type: tumbling, size: 10s}}
transform:
  module: '{}'
  timeout: {timeout}
  memory_mib: {memory_mib}
  max_batch: {max_batch}
{OUTPUTS}",
        module(module_name).display(),
    )
}

/// Two events per key, all in the window [0, 10s), in the keys' order.
pub fn two_events_per_key(keys: &[&str]) -> String {
    keys.iter().flat_map(|k| [1_000, 2_000].map(|t| format!("{{\"user_id\":\"{k}\",\"timestamp\":{t}}}\n"))).collect()
}
