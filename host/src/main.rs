//! `sluice`: run and validate pipeline manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_host::manifest::{Manifest, reference};
use sluice_host::pipeline;

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
    /// Check a manifest and its module; report every problem found.
    Validate {
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
    },
    /// Print the manifest reference (Markdown).
    Reference,
}

fn main() -> ExitCode {
    sluice_host::alloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run { file, overrides } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(pipeline::run_file(&file, &overrides)) {
                Ok(summary) => {
                    println!("{}: {summary}", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate { file, overrides } => match Manifest::load(&file, &overrides) {
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
            Ok(manifest) => match pipeline::load_module(&manifest) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    let hint = match &e {
                        pipeline::Error::Module(m) => m.hint(),
                        _ => "see the message above",
                    };
                    eprintln!("{}: error: {e} (at `transform.module`)\n  hint: {hint}", file.display());
                    ExitCode::FAILURE
                }
            },
        },
        Command::Reference => {
            print!("{}", reference::markdown());
            ExitCode::SUCCESS
        }
    }
}
