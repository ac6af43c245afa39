//! `sluice`: run and validate pipeline manifests. Signals and exit codes
//! are handled here, and only here.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use sluice_host::manifest::{Document, SourceConfig, reference};
use sluice_host::metrics::Metrics;
use sluice_host::pipeline::{self, Pipeline, Plan, StopMode};
use sluice_host::runtime::Runtime;
use sluice_host::wasm::{Engine, Module};
use sluice_host::{checkpoint, preflight};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Show the checkpoints of a manifest's `checkpoint.dir`.
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

fn main() -> ExitCode {
    sluice_host::alloc::tune();
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
    match Cli::parse().command {
        Command::Run { file, overrides, fresh } => run(&file, &overrides, fresh),
        Command::Checkpoints { command } => checkpoints(command),
        Command::Validate { file, overrides, offline } => validate(&file, &overrides, offline),
        Command::Reference => {
            print!("{}", reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

/// Load and check a manifest and its module on `engine`; every problem is
/// printed.
fn load(
    file: &Path,
    overrides: &[String],
    (online, fresh): (bool, bool),
    engine: &Engine,
) -> Option<(Document, Module)> {
    let document = match Document::load(file, overrides) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let mut findings = preflight::check(&document.manifest, online, fresh);
    let module = match pipeline::load_module(&document.manifest, engine) {
        Ok(module) => Some(module),
        Err(e) => {
            let hint = match &e {
                pipeline::Error::Module(m) => m.hint(),
                _ => "see the message above",
            };
            findings.push(("transform.module".into(), e.to_string(), Some(hint.into())));
            None
        }
    };
    match module {
        Some(module) if findings.is_empty() => Some((document, module)),
        _ => {
            eprintln!("{}", document.error(findings));
            None
        }
    }
}

fn validate(file: &Path, overrides: &[String], offline: bool) -> ExitCode {
    let engine = match Engine::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match load(file, overrides, (!offline, false), &engine) {
        Some(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// The first SIGTERM or Ctrl-C stops the pipeline cleanly
/// ([`StopMode::Checkpoint`]: no more records, outputs written and
/// committed, exit 0). A second one stops it at once (exit 130), a third
/// exits without waiting.
fn run(file: &Path, overrides: &[String], fresh: bool) -> ExitCode {
    let tokio = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match Runtime::new(tokio.handle().clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((document, module)) = load(file, overrides, (true, fresh), runtime.engine()) else {
        return ExitCode::FAILURE;
    };
    // A bounded run (a backfill) shows its progress to a person at a
    // terminal; logs and pipes get the final summary only.
    let bounded = match &document.manifest.source {
        SourceConfig::File { .. } => true,
        SourceConfig::Kafka(k) => k.stop_at_end,
    };
    let with_progress = bounded && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = tokio.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut plan = Plan::with_module(document.manifest, module);
        if fresh {
            plan = plan.fresh();
        }
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
            println!("{}: {summary}", file.display());
            if signals > 1 { ExitCode::from(130) } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("{}: error: {e:#}", file.display());
            ExitCode::FAILURE
        }
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
    let listed = match checkpoint::list(&config.dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name =
        |l: &checkpoint::Listed| l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(wanted) = inspect else {
        println!("{} checkpoint(s) in {}", listed.len(), config.dir.display());
        for l in &listed {
            match &l.header {
                Ok(h) => println!(
                    "{}  {}  {} partition(s), {} key(s), {} bytes",
                    name(l),
                    sluice_host::time::format_ms(h.created_ms),
                    h.partitions.len(),
                    h.partitions.iter().map(|p| p.keys).sum::<u64>(),
                    l.size
                ),
                Err(e) => println!("{}  unreadable: {e}", name(l)),
            }
        }
        return ExitCode::SUCCESS;
    };
    let chosen = match &wanted {
        Some(w) => listed.iter().find(|l| name(l) == *w),
        None => listed.last(),
    };
    let Some(chosen) = chosen else {
        eprintln!("no checkpoint {} in {}", wanted.unwrap_or_default(), config.dir.display());
        return ExitCode::FAILURE;
    };
    match checkpoint::read(&chosen.path) {
        Ok(c) => {
            let h = &c.header;
            println!("{}: intact ({} bytes)", chosen.path.display(), chosen.size);
            println!("pipeline {}, host {}, barrier {}", h.pipeline, h.host, h.epoch);
            println!("written {}", sluice_host::time::format_ms(h.created_ms));
            println!("watermark {}", sluice_host::time::format_ms(h.watermark));
            println!("state of: {}", h.fingerprint);
            let expected = checkpoint::fingerprint(&manifest);
            if h.fingerprint != expected {
                println!("the manifest cannot restore it: it has {expected} (run with --fresh to start over)");
            }
            for (p, e) in c.partitions.iter().zip(&h.partitions) {
                let latest = p.max_event_time.map_or_else(|| "none".into(), sluice_host::time::format_ms);
                println!(
                    "  {}[{}] next offset {}, latest event {latest}, {} key(s), {} bytes",
                    p.topic, p.partition, p.offset, e.keys, e.bytes
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
