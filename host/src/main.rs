//! `sluice`: run and validate pipeline manifests. Signals and exit codes
//! are handled here, and only here.

use clap::{Parser, Subcommand};
use sluice_host::manifest::{Document, reference};
use sluice_host::pipeline::{self, Pipeline, Plan, StopMode};
use sluice_host::preflight;
use sluice_host::runtime::Runtime;
use sluice_host::wasm::{Engine, Module};
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
        Command::Run { file, overrides } => run(&file, &overrides),
        Command::Validate { file, overrides, offline } => validate(&file, &overrides, offline),
        Command::Reference => {
            print!("{}", reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

/// Load and check a manifest and its module on `engine`; every problem is
/// printed.
fn load(file: &Path, overrides: &[String], online: bool, engine: &Engine) -> Option<(Document, Module)> {
    let document = match Document::load(file, overrides) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let mut findings = preflight::check(&document.manifest, online);
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
    match load(file, overrides, !offline, &engine) {
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
fn run(file: &Path, overrides: &[String]) -> ExitCode {
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
    let Some((document, module)) = load(file, overrides, true, runtime.engine()) else {
        return ExitCode::FAILURE;
    };
    let outcome = tokio.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let handle = Pipeline::start(Plan::with_module(document.manifest, module), &runtime).await?;
        let join = handle.join();
        tokio::pin!(join);
        let mut signals = 0;
        loop {
            tokio::select! {
                summary = &mut join => break anyhow::Ok((summary?, signals)),
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
