//! The peer of the Python module's bench: seed 000's PyFlink job
//! (`session_features_job.py`, the seed's classes over the bench's file),
//! run by a Python that has PyFlink (`scripts/setup-pyflink` makes one).

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the bench looks for PyFlink's Python, for the message when there
/// is none.
pub const PYTHON_LOCATION: &str = "$SLUICE_PYFLINK_VENV/bin/python (default ~/.cache/sluice/pyflink-venv)";

/// The Python with PyFlink, if there is one; none for the quick run
/// (`cargo test --benches`), which a PyFlink job would make slow.
pub fn python(quick: bool) -> Option<PathBuf> {
    if quick {
        return None;
    }
    let venv = std::env::var_os("SLUICE_PYFLINK_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/sluice/pyflink-venv")))?;
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

/// One run of the job, as it reports it.
pub struct Run {
    /// Flink's net runtime of the job: from its start to its end, the
    /// tasks' deployment and the Python workers' start included.
    pub net_seconds: f64,
    /// The whole run, the JVM's start included.
    pub wall_seconds: f64,
    pub rows: u64,
    /// Of the driver, the JVM and the Python workers together.
    pub peak_mib: u64,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {:.2} s ({:.2} s with the JVM's start), {} feature rows, peak memory {} MiB",
            self.net_seconds, self.wall_seconds, self.rows, self.peak_mib
        )
    }
}

/// Run the job over `input` (JSON-lines clicks) with as many workers as
/// Sluice's default (one per core), its rows written under `out`.
pub fn run(python: &Path, input: &Path, out: &Path) -> anyhow::Result<Run> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pyflink/session_features_job.py");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let output = std::process::Command::new(python)
        .arg(&job)
        .arg(input)
        .arg(out)
        .arg(cores.to_string())
        .stdin(std::process::Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "the PyFlink job failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: Vec<&str> = stdout.lines().last().unwrap_or_default().split_whitespace().collect();
    let [net, wall, rows, peak] = figures[..] else {
        anyhow::bail!("the PyFlink job printed no figures: {stdout}");
    };
    Ok(Run { net_seconds: net.parse()?, wall_seconds: wall.parse()?, rows: rows.parse()?, peak_mib: peak.parse()? })
}
