//! `sluice`: run and validate pipeline manifests. Signals and exit codes
//! are handled here, and only here.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use sluice_host::client::Client;
use sluice_host::manifest::Manifest;
use sluice_host::manifest::{Document, reference};
use sluice_host::metrics::Metrics;
use sluice_host::pipeline::{Pipeline, Plan, StopMode};
use sluice_host::runtime::Runtime;
use sluice_host::supervisor::{Settings, Supervisor};
use sluice_host::wasm::{Engine, Module};
use sluice_host::{api, backfill, checkpoint, feast, preflight, training};
use sluice_sink_iceberg::IcebergSinkConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `println!` that ends the process quietly (exit 0) when the reader of
/// standard output has gone, as Unix tools do (`sluice … | head -1`),
/// where `println!` would panic.
macro_rules! out {
    ($($arg:tt)*) => {
        print_line(format_args!($($arg)*))
    };
}

fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }
}

// Rows are built on the compute thread and freed on the sinks' thread;
// mimalloc handles that pattern far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Real-time feature pipelines with WebAssembly transforms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline manifest.
    Run {
        /// The manifest (YAML).
        file: PathBuf,
        /// Override a manifest field: --set a.b.c=VALUE (repeatable). List
        /// items by index; one past the end adds an item.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// Start over: move the checkpoints already taken aside instead of
        /// resuming from them (needed after changing the window, the key or
        /// the fields).
        #[arg(long)]
        fresh: bool,
    },
    /// Run a pipeline's module over history into its offline table (its
    /// Iceberg output) as a bounded run: the windows ending from --from to
    /// --to, each whole, none the live pipeline wrote or will write.
    Backfill {
        /// The pipeline's manifest.
        file: PathBuf,
        /// Override a manifest field (the source of the history, say:
        /// --set 'source={type: file, path: history.jsonl}').
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// The first window end to write (RFC 3339).
        #[arg(long, value_parser = rfc3339_ms)]
        from: i64,
        /// Windows ending at or after this time are not written (RFC
        /// 3339); cut to the first window end the live pipeline wrote to
        /// the table.
        #[arg(long, value_parser = rfc3339_ms)]
        to: i64,
        /// How far before --from a Kafka topic is read, for the windows
        /// ending at --from to be whole (default: the window's size; for
        /// sessions, a day).
        #[arg(long, value_parser = humantime::parse_duration)]
        lookback: Option<std::time::Duration>,
    },
    /// Show the checkpoints of a manifest (its `checkpoint.dir` or `checkpoint.url`).
    Checkpoints {
        #[command(subcommand)]
        command: CheckpointsCommand,
    },
    /// Check a manifest, its module, the files it reads and writes, and the
    /// brokers and Redis servers it uses; report every problem found.
    Validate {
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// Skip the checks that need the network (brokers, topics, Redis).
        #[arg(long)]
        offline: bool,
    },
    /// Print the manifest reference (Markdown).
    Reference,
    /// Write, test and build transforms in Python (the SDK and the
    /// contract this binary speaks are carried in it).
    Transform {
        #[command(subcommand)]
        command: TransformCommand,
    },
    /// Feast definitions of what a manifest writes with `layout: feast`.
    Feast {
        #[command(subcommand)]
        command: FeastCommand,
    },
    /// Run a host managed over HTTP (the admin API): any number of
    /// pipelines, modules uploaded to it, resumed after a restart.
    Serve {
        /// The host's data directory: modules, pipeline definitions,
        /// checkpoints, and `files/`, where manifests' paths point.
        #[arg(long, default_value = "sluice-data")]
        data: PathBuf,
        /// Address to listen on. Other than a loopback address, it needs a
        /// token.
        #[arg(long, default_value = "127.0.0.1:8083")]
        bind: std::net::SocketAddr,
        /// A file holding the bearer token every request but `/health`
        /// must carry (or set SLUICE_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// How often each pipeline's throughput and lags are sampled for
        /// the status page (the last 120 samples are kept).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        sample_every: std::time::Duration,
        /// Let manifests use a librdkafka property that loads code into the
        /// host or runs a command on it (`plugin.library.paths`,
        /// `ssl.engine.location`, `ssl.engine.id`, `ssl.providers`,
        /// `sasl.kerberos.kinit.cmd`), refused by default. Repeatable.
        #[arg(long = "allow-kafka-property", value_name = "PROPERTY", value_parser = kafka_code_property)]
        allowed_kafka_properties: Vec<String>,
    },
    /// Join labels (an entity key, a time, any other columns) with
    /// feature views as they were at each label's time: one row per
    /// label, written to Parquet.
    TrainingSet {
        /// The labels: a `.csv` file with a header row, or `.parquet`.
        #[arg(long, required_unless_present = "check_online")]
        labels: Option<PathBuf>,
        /// The labels' entity-key column.
        #[arg(long, required_unless_present = "check_online")]
        key: Option<String>,
        /// The labels' time column: timestamps (naive ones are UTC),
        /// dates, RFC 3339 text, or integers of milliseconds since the
        /// epoch.
        #[arg(long, default_value = "event_timestamp")]
        time: String,
        /// A pipeline manifest whose Iceberg table is a feature view
        /// (repeatable).
        #[arg(long = "view", value_name = "MANIFEST", required = true)]
        views: Vec<PathBuf>,
        /// `as-of`: each view's newest row available at the label's time,
        /// from its offline table. `exact`: the window ending exactly at
        /// the label's time, computed from the view's raw events (its file,
        /// or its topic from the first label's window on) by its module.
        #[arg(long, value_enum, default_value = "as-of")]
        mode: TrainingMode,
        /// The Parquet file to write.
        #[arg(long, required_unless_present_any = ["check_online", "out_table"], conflicts_with = "out_table")]
        out: Option<PathBuf>,
        /// Write a new Iceberg table instead, named as an `iceberg` sink
        /// names its table (YAML):
        /// `'{warehouse: out/warehouse, namespace: training, table: clicks_jan}'`
        /// (a `catalog` too; default the SQL catalog in the warehouse). An
        /// existing table is refused.
        #[arg(long, value_name = "YAML")]
        out_table: Option<String>,
        /// How long after its window's end a row fired on close reached
        /// the online store (default: each pipeline's out-of-orderness,
        /// when its watermark passed the end). `0s` for Feast's as-of.
        #[arg(long, value_parser = humantime::parse_duration)]
        serving_delay: Option<std::time::Duration>,
        /// Name feature columns `VIEW__FEATURE` (needed when two views, or
        /// a view and the labels, have a column of the same name).
        #[arg(long)]
        full_feature_names: bool,
        /// Memory the join may take before it spills to disk, MiB.
        #[arg(long, default_value_t = 2048)]
        memory_mib: usize,
        /// Build nothing: check each view's online store (its Redis
        /// output) against its offline table and against its windows
        /// computed again from its raw events, for a sample of the keys
        /// it serves now; report the differences per feature and exit 1
        /// when there are any.
        #[arg(long, conflicts_with_all = ["labels", "out", "out_table"])]
        check_online: bool,
        /// `--check-online`: keys to sample per view.
        #[arg(long, default_value_t = 100)]
        sample: usize,
    },
    /// Upload and list the modules of a host (`sluice serve`).
    Modules {
        #[command(flatten)]
        host: HostArgs,
        #[command(subcommand)]
        command: ModulesCommand,
    },
    /// Apply, list, watch and control the pipelines of a host
    /// (`sluice serve`).
    Pipelines {
        #[command(flatten)]
        host: HostArgs,
        #[command(subcommand)]
        command: PipelinesCommand,
    },
    /// The feature registry of a host (`sluice serve`): every feature its
    /// pipelines produce, and what the online store holds.
    Features {
        #[command(flatten)]
        host: HostArgs,
        #[command(subcommand)]
        command: FeaturesCommand,
    },
    /// Training sets a host (`sluice serve`) builds as jobs, from its
    /// pipelines' views.
    TrainingSets {
        #[command(flatten)]
        host: HostArgs,
        #[command(subcommand)]
        command: TrainingSetsCommand,
    },
}

/// Which host a client command talks to.
#[derive(clap::Args)]
struct HostArgs {
    /// The host's URL.
    #[arg(long, env = "SLUICE_HOST", default_value = "http://127.0.0.1:8083")]
    host: String,
    /// Its bearer token.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// How `sluice training-set` gives each label its features.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TrainingMode {
    AsOf,
    Exact,
}

#[derive(Subcommand)]
enum ModulesCommand {
    /// Upload a module (a `.wasm` component) as the next version of NAME.
    Push { name: String, file: PathBuf },
    /// The modules and their versions.
    List,
}

#[derive(Subcommand)]
enum PipelinesCommand {
    /// Create or update the pipeline a manifest defines, and start it.
    Apply {
        file: PathBuf,
        /// Override a manifest field before sending it: --set a.b.c=VALUE.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// Start over: its checkpoints are moved aside.
        #[arg(long)]
        fresh: bool,
    },
    /// The pipelines and their states.
    List,
    /// A pipeline's status (JSON).
    Status { name: String },
    /// Take a checkpoint and stop, until resumed.
    Pause { name: String },
    /// Start a paused or stopped pipeline from its last checkpoint.
    Resume { name: String },
    /// Stop a pipeline and forget it (its checkpoints stay).
    Delete { name: String },
}

#[derive(Subcommand)]
enum TrainingSetsCommand {
    /// Upload labels and start building a training set: the job's id
    /// (with --wait, its end).
    Create {
        /// The labels, a local `.csv` or `.parquet` file: uploaded to the
        /// host's `files/` under its own name.
        #[arg(long)]
        labels: PathBuf,
        /// The labels' entity-key column.
        #[arg(long)]
        key: String,
        /// The labels' time column.
        #[arg(long, default_value = "event_timestamp")]
        time: String,
        /// A pipeline of the host whose view to join (repeatable).
        #[arg(long = "view", value_name = "PIPELINE", required = true)]
        views: Vec<String>,
        #[arg(long, value_enum, default_value = "as-of")]
        mode: TrainingMode,
        /// The Parquet file to write, a name in the host's `files/`
        /// (`GET /files/NAME` downloads it).
        #[arg(long)]
        out: String,
        /// As for `sluice training-set` (`0s` for Feast's as-of).
        #[arg(long)]
        serving_delay: Option<String>,
        #[arg(long)]
        full_feature_names: bool,
        #[arg(long, default_value_t = 2048)]
        memory_mib: usize,
        /// Wait for the job to end, showing its stage; exit 1 if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// The jobs, newest first.
    List,
    /// A job (JSON).
    Status { id: u64 },
}

#[derive(Subcommand)]
enum FeaturesCommand {
    /// One line per feature: its view and name, type, entity key, window,
    /// trigger, module, and where its rows are stored.
    List,
    /// One view, with which module produced which features since when
    /// (JSON).
    Show { view: String },
    /// What the view's online store holds for KEYS: the features, when
    /// they held and how long ago (JSON).
    Get {
        view: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CheckpointsCommand {
    /// One line per checkpoint: when, which host, partitions, keys, size.
    List {
        /// The manifest whose checkpoints to show.
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
    },
    /// Read a checkpoint whole and check it: its partitions, positions and
    /// keys, and whether the manifest can restore it.
    Inspect {
        file: PathBuf,
        /// The checkpoint's file name (default: the newest).
        name: Option<String>,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TransformCommand {
    /// Make the folder NAME with a window transform (`transform.py`) and
    /// its test (`test_transform.py`).
    New {
        name: String,
        /// The language: `python` (Rust transforms are crates: see
        /// transforms/tally in the repository).
        #[arg(long, default_value = "python")]
        lang: String,
        /// Where to make it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a Python transform's folder into a module (a WebAssembly
    /// component) with componentize-py.
    Build {
        dir: PathBuf,
        /// The component to write (default: target/modules/DIR'S NAME.wasm,
        /// where the example manifests look).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The Python to run componentize-py with (installed beside it, or
        /// on PATH).
        #[arg(long, env = "SLUICE_PYTHON", default_value = "python3")]
        python: PathBuf,
    },
    /// Run a Python transform's tests natively (pytest), with this
    /// binary's SDK.
    Test {
        dir: PathBuf,
        #[arg(long, env = "SLUICE_PYTHON", default_value = "python3")]
        python: PathBuf,
        /// Passed to pytest.
        #[arg(last = true)]
        pytest: Vec<String>,
    },
}

#[derive(Subcommand)]
enum FeastCommand {
    /// Write the Feast repository of a manifest's `layout: feast` Redis
    /// sinks: `feature_store.yaml` (when absent), the entity and the
    /// feature view as Python. `feast apply` in it takes it as it is.
    Generate {
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// The repository's folder (made when missing).
        #[arg(long, default_value = "feature_repo")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A pipeline's working set is steady and is kept; a training set's is
    // not (sorts, spills, a pass per view), and freed memory goes back.
    if !matches!(cli.command, Command::TrainingSet { .. }) {
        sluice_host::alloc::tune();
    }
    // Colour only for a person at a terminal (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run { file, overrides, fresh } => run(&file, &overrides, fresh, None),
        Command::Backfill { file, overrides, from, to, lookback } => {
            let lookback_ms = lookback.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            run(&file, &overrides, true, Some(backfill::Range { from_ms: from, to_ms: to, lookback_ms }))
        }
        Command::Checkpoints { command } => checkpoints(command),
        Command::Validate { file, overrides, offline } => validate(&file, &overrides, offline),
        Command::Reference => {
            out!("{}", reference::markdown().trim_end());
            ExitCode::SUCCESS
        }
        Command::Transform { command } => transform(command),
        Command::Feast { command: FeastCommand::Generate { file, overrides, out } } => {
            feast_generate(&file, &overrides, &out)
        }
        Command::Serve { data, bind, token_file, sample_every, allowed_kafka_properties } => {
            let settings = Settings { allowed_kafka_properties: allowed_kafka_properties.into_iter().collect() };
            serve(&data, bind, token_file.as_deref(), sample_every, settings)
        }
        Command::TrainingSet {
            labels,
            key,
            time,
            views,
            mode,
            out,
            out_table,
            serving_delay,
            full_feature_names,
            memory_mib,
            check_online,
            sample,
        } => {
            if check_online {
                return check_online_stores(&views, sample, memory_mib);
            }
            let out = match (out, out_table) {
                (Some(path), None) => training::Destination::Parquet(path),
                (None, Some(yaml)) => match serde_yaml::from_str::<IcebergSinkConfig>(&yaml) {
                    Ok(table) => training::Destination::Table(Box::new(table)),
                    Err(e) => {
                        eprintln!(
                            "error: --out-table: {e}\n  hint: give an iceberg sink's settings, \
                             '{{warehouse: DIR, namespace: NS, table: NAME}}'"
                        );
                        return ExitCode::from(2);
                    }
                },
                // clap refuses both, and requires one without --check-online.
                _ => {
                    eprintln!("error: give --out or --out-table (or --check-online)");
                    return ExitCode::from(2);
                }
            };
            // clap requires them without --check-online.
            let (Some(labels), Some(key)) = (labels, key) else {
                eprintln!("error: give --labels and --key (or --check-online)");
                return ExitCode::from(2);
            };
            let labels = training::LabelsSpec { path: labels, key, time };
            let mode = match mode {
                TrainingMode::AsOf => training::Mode::AsOf,
                TrainingMode::Exact => training::Mode::Exact,
            };
            let serving_delay = serving_delay.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            training_set(labels, &views, mode, out, serving_delay, full_feature_names, memory_mib)
        }
        Command::Modules { host, command } => client(host, Request::Modules(command)),
        Command::Pipelines { host, command } => client(host, Request::Pipelines(command)),
        Command::Features { host, command } => client(host, Request::Features(command)),
        Command::TrainingSets { host, command } => client(host, Request::TrainingSets(command)),
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 time.
fn rfc3339_ms(text: &str) -> Result<i64, String> {
    sluice_host::time::TimestampFormat::Rfc3339.from_str(text)
}

/// A property `--allow-kafka-property` can name: one that loads code or
/// runs a command (every other one needs no allowing).
fn kafka_code_property(name: &str) -> Result<String, String> {
    match sluice_host::librdkafka::loads_code(name) {
        Some(_) => Ok(name.trim().to_string()),
        None => {
            let known: Vec<&str> = sluice_host::librdkafka::LOADS_CODE.iter().map(|(k, _)| *k).collect();
            Err(format!("only properties that load code or run a command need allowing: {}", known.join(", ")))
        }
    }
}

fn tokio_runtime(threads: usize) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

/// `sluice transform`.
fn transform(command: TransformCommand) -> ExitCode {
    use sluice_host::python_transform as python;
    let outcome = match command {
        TransformCommand::New { name, lang, dir } => match lang.as_str() {
            "python" => python::scaffold(&dir, &name).map(|written| {
                for path in written {
                    out!("wrote {}", path.display());
                }
                out!(
                    "test it: sluice transform test {0}; build it: sluice transform build {0}",
                    dir.join(&name).display()
                );
            }),
            other => {
                eprintln!(
                    "error: `--lang {other}`: only python is scaffolded; a Rust transform is a crate (see transforms/tally)"
                );
                return ExitCode::FAILURE;
            }
        },
        TransformCommand::Build { dir, out, python: interpreter } => {
            let name = dir.canonicalize().ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
            let out =
                out.unwrap_or_else(|| Path::new("target/modules").join(format!("{}.wasm", name.unwrap_or_default())));
            python::build(&dir, &out, &interpreter)
        }
        TransformCommand::Test { dir, python: interpreter, pytest } => python::test(&dir, &interpreter, &pytest),
    };
    exit_code(outcome.map_err(anyhow::Error::from))
}

/// The engine of a command, keeping compiled modules in
/// `SLUICE_CODE_CACHE` (a folder, or `off`), else in the host's data
/// directory (`serve`), else in `$XDG_CACHE_HOME/sluice/code` (or
/// `~/.cache/sluice/code`): a module's second load, in any process, does
/// not compile it again.
fn engine(serve_data: Option<&Path>) -> Result<Engine, sluice_host::wasm::LoadError> {
    let dir = match std::env::var_os("SLUICE_CODE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => match serve_data {
            Some(data) => Some(data.join("code-cache")),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .map(|cache| cache.join("sluice/code")),
        },
    };
    match dir {
        Some(dir) => Engine::cached(&dir),
        None => Engine::new(),
    }
}

/// `sluice serve`: until SIGTERM or Ctrl-C, then every pipeline stops
/// with a checkpoint (they resume at the next start).
fn serve(
    data: &Path,
    bind: std::net::SocketAddr,
    token_file: Option<&Path>,
    sample_every: std::time::Duration,
    settings: Settings,
) -> ExitCode {
    let token = match token_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Ok(_) => {
                eprintln!("error: the token file {} is empty", f.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot read the token file {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        },
        None => std::env::var("SLUICE_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    if token.is_none() && !bind.ip().is_loopback() {
        eprintln!(
            "error: listening on {bind} lets other machines manage this host: give a token (--token-file or SLUICE_TOKEN), or bind to 127.0.0.1"
        );
        return ExitCode::FAILURE;
    }
    // The pipelines' sinks run on this runtime; the admin API on a thread
    // of its own (api::Server).
    let Some(tokio) = tokio_runtime(2) else { return ExitCode::FAILURE };
    let outcome = tokio.block_on(async {
        let runtime = Runtime::with_engine(engine(Some(data))?, tokio::runtime::Handle::current());
        let listener =
            std::net::TcpListener::bind(bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        let supervisor = Supervisor::open_with(data, runtime, settings).await?;
        supervisor.record_history(sample_every);
        let router = api::router(Arc::new(api::Api { supervisor: supervisor.clone(), token }));
        let server = api::Server::start(listener, router)?;
        let address = server.address();
        // The address on stdout, for scripts (a port of 0 picks one).
        {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "listening on http://{address}");
        }
        tracing::info!(%address, data = %data.display(), "serving the admin API");
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: every pipeline stops with a checkpoint");
        tokio::task::spawn_blocking(move || server.stop()).await??;
        supervisor.shutdown().await;
        anyhow::Ok(())
    });
    exit_code(outcome)
}

enum Request {
    Modules(ModulesCommand),
    Pipelines(PipelinesCommand),
    Features(FeaturesCommand),
    TrainingSets(TrainingSetsCommand),
}

/// A view's features, one line each (`sluice features list`).
fn feature_lines(view: &serde_json::Value) -> Vec<String> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let w = &view["window"];
    let window = [("size", "size_ms"), ("slide", "slide_ms"), ("gap", "gap_ms"), ("lateness", "allowed_lateness_ms")]
        .iter()
        .filter_map(|(name, field)| Some(format!("{name} {}ms", w[field].as_i64()?)))
        .collect::<Vec<_>>()
        .join(" ");
    let module = &view["module"];
    let version = module["version"].as_u64().map_or_else(String::new, |v| format!("@{v}"));
    let stored = view["stored"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let location = s["location"].as_object().into_iter().flatten();
            let settings: Vec<String> = location.map(|(k, v)| format!("{k}={}", text(v))).collect();
            format!("{}({})", text(&s["type"]), settings.join(" "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    view["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{}.{}  {}  key {} ({})  {} {window}  {}  {}{version}  {stored}",
                text(&view["view"]),
                text(&f["name"]),
                text(&f["type"]),
                text(&view["entity"]["key"]),
                text(&view["entity"]["type"]),
                text(&w["type"]),
                text(&view["trigger"]),
                text(&module["name"]),
            )
        })
        .collect()
}

/// The client commands: one request, its answer printed.
fn client(host: HostArgs, request: Request) -> ExitCode {
    let Some(tokio) = tokio_runtime(1) else { return ExitCode::FAILURE };
    let client = Client::new(&host.host, host.token);
    let outcome = tokio.block_on(async {
        use reqwest::Method;
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
        match request {
            Request::Modules(ModulesCommand::Push { name, file }) => {
                let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let v = client.push_module(&name, bytes).await?;
                let field = |k: &str| v.get(k).map(ToString::to_string).unwrap_or_default();
                out!("{name}@{} sha256:{}", field("version"), field("sha256").trim_matches('"'));
            }
            Request::Modules(ModulesCommand::List) => {
                let modules = client.get("/modules").await?;
                for m in modules.as_array().into_iter().flatten() {
                    for v in m["versions"].as_array().into_iter().flatten() {
                        out!(
                            "{}@{}  {}  {} bytes  {}",
                            v["name"].as_str().unwrap_or_default(),
                            v["version"],
                            v["kind"].as_str().unwrap_or_default(),
                            v["size"],
                            v["uploaded"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
            Request::Pipelines(PipelinesCommand::Apply { file, overrides, fresh }) => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let text = if overrides.is_empty() {
                    text
                } else {
                    sluice_host::manifest::with_overrides(&text, &overrides)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
                };
                let name = serde_yaml::from_str::<serde_yaml::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("name").and_then(|n| n.as_str().map(str::to_string)))
                    .ok_or_else(|| anyhow::anyhow!("{}: the manifest has no `name`", file.display()))?;
                let (status, v) = client.apply(&name, &text, fresh).await?;
                let verb = if status == reqwest::StatusCode::CREATED { "created" } else { "updated" };
                out!("{name}: {verb}, {}", v["status"]["state"].as_str().unwrap_or("?"));
            }
            Request::Pipelines(PipelinesCommand::List) => {
                let all = client.get("/pipelines?expand=status").await?;
                for (name, v) in all.as_object().into_iter().flatten() {
                    let s = &v["status"];
                    out!(
                        "{name}  {}  {} events, {} feature rows, watermark {}",
                        s["state"].as_str().unwrap_or("?"),
                        s["events_read"],
                        s["feature_rows"],
                        s["watermark"].as_str().unwrap_or("none yet")
                    );
                }
            }
            Request::Pipelines(PipelinesCommand::Status { name }) => {
                out!("{}", pretty(&client.get(&format!("/pipelines/{name}/status")).await?));
            }
            Request::Pipelines(PipelinesCommand::Pause { name }) => {
                client.call(Method::PUT, &format!("/pipelines/{name}/pause"), None).await?;
                out!("{name}: paused");
            }
            Request::Pipelines(PipelinesCommand::Resume { name }) => {
                client.call(Method::PUT, &format!("/pipelines/{name}/resume"), None).await?;
                out!("{name}: resumed");
            }
            Request::Pipelines(PipelinesCommand::Delete { name }) => {
                client.call(Method::DELETE, &format!("/pipelines/{name}"), None).await?;
                out!("{name}: deleted");
            }
            Request::Features(FeaturesCommand::List) => {
                let listed = client.get("/features").await?;
                for view in listed["views"].as_array().into_iter().flatten() {
                    for line in feature_lines(view) {
                        out!("{line}");
                    }
                }
            }
            Request::Features(FeaturesCommand::Show { view }) => {
                out!("{}", pretty(&client.get(&format!("/features/{view}")).await?));
            }
            Request::Features(FeaturesCommand::Get { view, keys }) => {
                let pairs: Vec<(&str, &str)> = keys.iter().map(|k| ("key", k.as_str())).collect();
                let query = serde_urlencoded::to_string(&pairs)?;
                out!("{}", pretty(&client.get(&format!("/features/{view}/online?{query}")).await?));
            }
            Request::TrainingSets(TrainingSetsCommand::Create {
                labels,
                key,
                time,
                views,
                mode,
                out,
                serving_delay,
                full_feature_names,
                memory_mib,
                wait,
            }) => {
                let name = labels.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let bytes =
                    std::fs::read(&labels).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", labels.display()))?;
                let octets = "application/octet-stream";
                client.call(Method::PUT, &format!("/files/{name}"), Some((bytes, octets))).await?;
                let request = serde_json::json!({
                    "labels": name, "key": key, "time": time, "views": views,
                    "mode": match mode { TrainingMode::AsOf => "as-of", TrainingMode::Exact => "exact" },
                    "out": out, "serving_delay": serving_delay, "full_feature_names": full_feature_names,
                    "memory_mib": memory_mib,
                });
                let body = Some((serde_json::to_vec(&request)?, "application/json"));
                let (_, job) = client.call(Method::POST, "/training-sets", body).await?;
                let id = job["id"].as_u64().ok_or_else(|| anyhow::anyhow!("the host gave no job id: {job}"))?;
                out!("training set {id}: {}", job["state"].as_str().unwrap_or("?"));
                if wait {
                    let ended = follow_job(&client, id).await?;
                    out!("{}", pretty(&ended));
                    anyhow::ensure!(
                        ended["state"] == "succeeded",
                        "training set {id} failed: {}",
                        ended["error"].as_str().unwrap_or("?")
                    );
                }
            }
            Request::TrainingSets(TrainingSetsCommand::List) => {
                let listed = client.get("/training-sets").await?;
                for job in listed["training_sets"].as_array().into_iter().flatten() {
                    out!(
                        "{}  {}  {}  {}",
                        job["id"],
                        job["state"].as_str().unwrap_or("?"),
                        job["request"]["out"].as_str().unwrap_or_default(),
                        job["stage"].as_str().unwrap_or_default()
                    );
                }
            }
            Request::TrainingSets(TrainingSetsCommand::Status { id }) => {
                out!("{}", pretty(&client.get(&format!("/training-sets/{id}")).await?));
            }
        }
        anyhow::Ok(())
    });
    exit_code(outcome)
}

/// Poll training set `id` until it ends, its stages on standard error;
/// the job as it ended.
async fn follow_job(client: &Client, id: u64) -> anyhow::Result<serde_json::Value> {
    let mut shown = String::new();
    loop {
        let job = client.get(&format!("/training-sets/{id}")).await?;
        let stage = job["stage"].as_str().unwrap_or_default().to_string();
        if stage != shown {
            eprintln!("training set {id}: {stage}");
            shown = stage;
        }
        if job["state"] != "running" {
            return Ok(job);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Load and check a manifest and its module on `engine` (`online`: reach
/// brokers and Redis; `registry`: ask the schema registry too); every
/// problem is printed.
fn load(
    file: &Path,
    overrides: &[String],
    (online, registry, fresh): (bool, bool, bool),
    engine: &Engine,
) -> Option<(Document, Module)> {
    // Every stage runs, whatever the manifest's own checks found, so that
    // one answer lists every problem.
    let document = match Document::read_file(file, overrides) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let checks = preflight::Checks { online, fresh, registry, refused: Vec::new() };
    let (module, findings) = preflight::check_with_module(&document.manifest, engine, &checks);
    match module {
        Some(module) if findings.is_empty() && document.is_clean() => Some((document, module)),
        _ => {
            eprintln!("{}", document.error(findings));
            None
        }
    }
}

fn validate(file: &Path, overrides: &[String], offline: bool) -> ExitCode {
    let engine = match engine(None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match load(file, overrides, (!offline, !offline, false), &engine) {
        Some(_) => {
            out!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// `sluice feast generate`: the manifest checked (offline) and its module
/// loaded, for the features it declares.
fn feast_generate(file: &Path, overrides: &[String], out: &Path) -> ExitCode {
    let engine = match engine(None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((document, module)) = load(file, overrides, (false, false, true), &engine) else {
        return ExitCode::FAILURE;
    };
    let outcome = (|| {
        let repository = feast::repository(&document.manifest.lower(), module.schema(), module.name())?;
        for path in feast::write(&repository, out)? {
            out!("wrote {}", path.display());
        }
        out!("Feast project `{}`: run `feast apply` in {}", repository.project, out.display());
        anyhow::Ok(())
    })();
    exit_code(outcome)
}

/// The views of `sluice training-set`: manifests, loaded and lowered.
fn training_views(files: &[PathBuf], serving_delay_ms: Option<i64>) -> anyhow::Result<Vec<training::View>> {
    let mut views = Vec::with_capacity(files.len());
    for file in files {
        views.push(training::View::of(Manifest::load(file, &[])?.lower(), serving_delay_ms));
    }
    Ok(views)
}

/// `sluice training-set`.
fn training_set(
    labels: training::LabelsSpec,
    views: &[PathBuf],
    mode: training::Mode,
    out: training::Destination,
    serving_delay_ms: Option<i64>,
    full_feature_names: bool,
    memory_mib: usize,
) -> ExitCode {
    let views = match training_views(views, serving_delay_ms) {
        Ok(views) => views,
        Err(e) => return exit_code(Err(e)),
    };
    let spec = training::Spec {
        labels,
        views,
        mode,
        out,
        full_feature_names,
        memory_limit: memory_mib.saturating_mul(1 << 20),
    };
    let engine = match engine(None) {
        Ok(e) => e,
        Err(e) => return exit_code(Err(e.into())),
    };
    let Some(tokio) = tokio_runtime(2) else {
        return ExitCode::FAILURE;
    };
    let outcome = tokio.block_on(training::build(&spec, &engine)).map(|report| {
        out!("{} labels, {} rows written to {}", report.labels, report.written, spec.out);
        for c in &report.computed {
            out!(
                "view `{}`: {} windows computed from {} events ({} failed; {} events left out, as the pipeline would)",
                c.view,
                c.windows,
                c.events,
                c.failed,
                c.unreadable_events
            );
        }
        for (view, count) in &report.without_row {
            if *count > 0 {
                out!("view `{view}`: {count} labels got no row (its features are null)");
            }
        }
        if report.unreadable > 0 {
            out!("{} labels left out, their key or time unreadable:", report.unreadable);
            for bad in &report.unreadable_listed {
                out!("  row {}: {}", bad.row, bad.reason);
            }
            if report.unreadable > report.unreadable_listed.len() as u64 {
                out!("  ...");
            }
        }
    });
    exit_code(outcome.map_err(anyhow::Error::from))
}

/// `sluice training-set --check-online`: exit 1 when any view is skewed,
/// 2 when the check could not be made (as `diff`).
fn check_online_stores(views: &[PathBuf], sample: usize, memory_mib: usize) -> ExitCode {
    let cannot = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    };
    let views = match training_views(views, None) {
        Ok(views) => views,
        Err(e) => return cannot(e),
    };
    let check = training::Check { views, sample, memory_limit: memory_mib.saturating_mul(1 << 20) };
    let engine = match engine(None) {
        Ok(e) => e,
        Err(e) => return cannot(e.into()),
    };
    let Some(tokio) = tokio_runtime(2) else {
        return ExitCode::from(2);
    };
    match tokio.block_on(training::check(&check, &engine)) {
        Ok(found) => {
            for view in &found {
                show_skew(view);
            }
            if found.iter().any(training::ViewSkew::skewed) {
                out!("skew found: the online store differs from the offline table or the events (above)");
                ExitCode::FAILURE
            } else {
                out!("no skew: every row checked is the same online, offline and computed again");
                ExitCode::SUCCESS
            }
        }
        Err(e) => cannot(e.into()),
    }
}

/// What `--check-online` found for a view, for a person.
fn show_skew(view: &training::ViewSkew) {
    let checked = view.sampled - view.without_online_row;
    out!(
        "view `{}`: {} keys sampled, {checked} online rows checked ({} keys without one)",
        view.view,
        view.sampled,
        view.without_online_row
    );
    out!(
        "  compared with the offline table: {} ({} not in it yet, {} online rows behind it)",
        view.compared,
        view.not_yet_offline,
        view.online_behind
    );
    match &view.exact {
        training::Recomputed::Windows { windows, failed, events, unreadable_events } => out!(
            "  computed again: {windows} windows from {events} events ({failed} failed; {unreadable_events} events \
             left out, as the pipeline would)"
        ),
        training::Recomputed::Skipped(reason) => out!("  not computed again: {reason}"),
    }
    for f in &view.features {
        out!(
            "  feature `{}`: {} online≠offline, {} online≠exact, {} offline≠exact",
            f.feature,
            f.online_offline,
            f.online_exact,
            f.offline_exact
        );
    }
    let shown = |value: &Option<serde_json::Value>| value.as_ref().map_or_else(|| "-".to_string(), |v| v.to_string());
    for d in &view.listed {
        out!(
            "  key {} at {}, `{}`: online {}, offline {}, exact {}",
            d.key,
            sluice_host::time::format_ms(d.time_ms),
            d.feature,
            d.online,
            shown(&d.offline),
            shown(&d.exact)
        );
    }
    for b in &view.behind_listed {
        out!(
            "  key {}: online row at {}, the offline table's newest at {}",
            b.key,
            sluice_host::time::format_ms(b.online_ms),
            sluice_host::time::format_ms(b.offline_ms)
        );
    }
    let listed = (view.listed.len() + view.behind_listed.len()) as u64;
    if view.differences + view.online_behind > listed {
        out!("  … {} more", view.differences + view.online_behind - listed);
    }
}

/// `sluice run`, or with `backfill` `sluice backfill`. The first SIGTERM
/// or Ctrl-C stops the pipeline cleanly ([`StopMode::Checkpoint`]: no
/// more records, outputs written and committed, exit 0). A second one
/// stops it at once (exit 130), a third exits without waiting.
fn run(file: &Path, overrides: &[String], fresh: bool, backfill: Option<backfill::Range>) -> ExitCode {
    let tokio = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match engine(None) {
        Ok(engine) => Runtime::with_engine(engine, tokio.handle().clone()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A registry that does not answer yet holds the run, not its start.
    let Some((document, module)) = load(file, overrides, (true, false, fresh), runtime.engine()) else {
        return ExitCode::FAILURE;
    };
    let mut backfilled = None;
    let mut plan = match backfill {
        None => Plan::with_module(document.manifest.lower(), module),
        Some(range) => match backfill::plan(document.manifest.lower(), range) {
            Ok((spec, bounds)) => {
                backfilled = Some((spec.clone(), range));
                Plan::with_module(spec, module).backfill(bounds)
            }
            Err(e) => {
                eprintln!("{}: error: {e}", file.display());
                return ExitCode::FAILURE;
            }
        },
    };
    if fresh && backfill.is_none() {
        plan = plan.fresh();
    }
    // A bounded run (a backfill) shows its progress to a person at a
    // terminal; logs and pipes get the final summary only.
    let bounded = plan.spec().source.component().bounded();
    let with_progress = bounded && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = tokio.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let handle = Pipeline::start(plan, &runtime).await?;
        let progress = with_progress.then(|| {
            let bar = progress_bar();
            (bar.clone(), tokio::spawn(show_progress(bar, handle.metrics().clone())))
        });
        let join = handle.join();
        tokio::pin!(join);
        let mut signals = 0;
        loop {
            tokio::select! {
                summary = &mut join => {
                    if let Some((bar, task)) = &progress {
                        task.abort();
                        bar.finish_and_clear();
                    }
                    break anyhow::Ok((summary?, signals));
                }
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            signals += 1;
            match signals {
                1 => {
                    tracing::info!("stop requested; send it again to stop at once");
                    handle.stop(StopMode::Checkpoint);
                }
                2 => {
                    tracing::warn!("second stop request: stopping at once, nothing more is written");
                    handle.stop(StopMode::Now);
                }
                _ => std::process::exit(130),
            }
        }
    });
    match outcome {
        Ok((summary, signals)) => {
            out!("{}: {summary}", file.display());
            if let Some((spec, range)) = backfilled.filter(|_| signals == 0) {
                show_backfilled(&tokio, &spec, range);
            }
            if signals > 1 { ExitCode::from(130) } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("{}: error: {e:#}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// The range of window ends a finished backfill wrote, and where it was
/// cut (the sink logs why).
fn show_backfilled(tokio: &tokio::runtime::Runtime, spec: &sluice_host::pipeline::Spec, range: backfill::Range) {
    let at = sluice_host::time::format_ms;
    match tokio.block_on(backfill::written(spec, range)) {
        Ok(Some(wrote)) if wrote.end < range.to_ms => out!(
            "backfilled windows ending from {} up to (not including) {}: cut where the live pipeline's rows begin \
             (asked up to {})",
            at(wrote.start),
            at(wrote.end),
            at(range.to_ms)
        ),
        Ok(Some(wrote)) => {
            out!("backfilled windows ending from {} up to (not including) {}", at(wrote.start), at(wrote.end))
        }
        Ok(None) => out!("backfilled nothing: no window ends from {} to {}", at(range.from_ms), at(range.to_ms)),
        Err(e) => eprintln!("warning: cannot read what the backfill wrote: {e}"),
    }
}

/// A progress bar for a bounded run: how much of the source is read,
/// events/s, the watermark. The caller clears it when the run ends.
fn progress_bar() -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
    // `wide_msg` is cut to the terminal's width: a wrapped line would not
    // be redrawn in place.
    if let Ok(style) = ProgressStyle::with_template("{bar:24} {percent:>3}% {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

/// Keep `bar` up to date with `metrics` until aborted.
async fn show_progress(bar: indicatif::ProgressBar, metrics: Arc<Metrics>) {
    let started = std::time::Instant::now();
    let (mut last, mut at, mut rate) = (0, started, None);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        every.tick().await;
        let (read, total) = (Metrics::get(&metrics.source_read), Metrics::get(&metrics.source_total));
        bar.set_length(total.max(1));
        bar.set_position(read);
        let events = Metrics::get(&metrics.events_read);
        // Over the last second or so; from the start until then.
        if at.elapsed().as_secs_f64() >= 1.0 {
            rate = Some((events - last) as f64 / at.elapsed().as_secs_f64());
            (last, at) = (events, std::time::Instant::now());
        }
        let rate = rate.unwrap_or(events as f64 / started.elapsed().as_secs_f64().max(1e-3));
        let watermark = metrics.watermark().map_or_else(|| "none yet".into(), sluice_host::time::format_ms);
        bar.set_message(format!("{events} events, {rate:.0}/s, watermark {watermark}"));
    }
}

fn checkpoints(command: CheckpointsCommand) -> ExitCode {
    let (file, overrides, inspect) = match command {
        CheckpointsCommand::List { file, overrides } => (file, overrides, None),
        CheckpointsCommand::Inspect { file, name, overrides } => (file, overrides, Some(name)),
    };
    let manifest = match Document::load(&file, &overrides) {
        Ok(d) => d.manifest,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(config) = &manifest.checkpoint else {
        eprintln!("{}: the manifest takes no checkpoints (no `checkpoint` section)", file.display());
        return ExitCode::FAILURE;
    };
    let at = config.shown();
    let (listed, storage) = match checkpoint::existing(config) {
        Ok(Some((storage, listed))) => (listed, Some(storage)),
        Ok(None) => (Vec::new(), None),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(wanted) = inspect else {
        out!("{} checkpoint(s) in {at}", listed.len());
        for l in &listed {
            match &l.header {
                Ok(h) => out!(
                    "{}  {}  {} partition(s), {} key(s), {} bytes",
                    l.name,
                    sluice_host::time::format_ms(h.created_ms),
                    h.partitions.len(),
                    h.partitions.iter().map(|p| p.keys).sum::<u64>(),
                    l.size
                ),
                Err(e) => out!("{}  unreadable: {e}", l.name),
            }
        }
        return ExitCode::SUCCESS;
    };
    let chosen = match &wanted {
        Some(w) => listed.iter().find(|l| l.name == *w),
        None => listed.last(),
    };
    let (Some(chosen), Some(storage)) = (chosen, storage) else {
        eprintln!("no checkpoint {} in {at}", wanted.unwrap_or_default());
        return ExitCode::FAILURE;
    };
    match checkpoint::read(&storage, chosen) {
        Ok(c) => {
            let h = &c.header;
            out!("{}: intact ({} bytes)", storage.show(&chosen.data), chosen.size);
            out!("pipeline {}, host {}, barrier {}", h.pipeline, h.host, h.epoch);
            out!("written {}", sluice_host::time::format_ms(h.created_ms));
            out!("watermark {}", sluice_host::time::format_ms(h.watermark));
            out!("state of: {}", h.fingerprint);
            if let Err(m) = manifest.lower().layout().admits(h.layout.as_ref(), &h.fingerprint) {
                out!(
                    "the manifest cannot restore it: the checkpoint has {}, the manifest has {} (run with --fresh to \
                     start over)",
                    m.found,
                    m.expected
                );
            }
            for (p, e) in c.partitions.iter().zip(&h.partitions) {
                let latest = p.position.max_event_time.map_or_else(|| "none".into(), sluice_host::time::format_ms);
                out!(
                    "  {} next offset {}, latest event {latest}, {} key(s), {} bytes",
                    p.position.id,
                    p.position.offset,
                    e.keys,
                    e.bytes
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Success, or the error (with its causes) and a failure.
fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
