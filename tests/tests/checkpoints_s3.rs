//! Checkpoints in an S3-compatible object store: `s3s-fs` (a real S3
//! server over a local folder, which `scripts/setup` installs) on a port
//! of the test's own. Only configuration differs from a directory: the
//! `sluice` binary writes its checkpoints there over the S3 protocol,
//! lists them from there, and a second run resumes from them.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_examples::Config;
use sluice_tests::e2e::{self, file_outputs, run_to_end, wait_until};

const ACCESS_KEY: &str = "sluice-test";
const SECRET_KEY: &str = "sluice-test-secret";

/// An S3 server of the test's own; killed when dropped.
struct S3 {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
}

/// `s3s-fs`, on the PATH or where `cargo install` puts it.
fn s3s_fs() -> PathBuf {
    let installed = std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin/s3s-fs"));
    match installed {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("s3s-fs"),
    }
}

impl S3 {
    fn start() -> anyhow::Result<S3> {
        let root = tempfile::tempdir()?;
        // A port nobody holds now.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {} (scripts/setup installs it): {e}", s3s_fs().display()))?;
        let s3 = S3 { child, port, root };
        wait_until("s3s-fs listening", Duration::from_secs(20), Duration::from_millis(50), || {
            Ok(TcpStream::connect(("127.0.0.1", s3.port)).is_ok())
        })?;
        Ok(s3)
    }

    /// `checkpoint:` for `s3://{bucket}/{prefix}` on this server.
    fn checkpoint(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "{{url: 's3://{bucket}/{prefix}', options: {{aws_endpoint: 'http://127.0.0.1:{}', aws_allow_http: 'true', \
             aws_region: us-east-1, aws_access_key_id: {ACCESS_KEY}, aws_secret_access_key: {SECRET_KEY}}}}}",
            self.port
        )
    }

    /// The names of the objects in a folder of the bucket, as s3s-fs keeps
    /// them on disk.
    fn objects(&self, folder: &str) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.path().join(folder))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// A bounded run checkpoints to the bucket (each checkpoint a data object
/// and its index entry), `sluice checkpoints` lists and reads them over
/// S3, and a second run resumes where the first ended: it reads nothing
/// again, so the features it appends are none.
#[test]
fn a_pipeline_checkpoints_to_s3_and_resumes_from_there() -> anyhow::Result<()> {
    let s3 = S3::start()?;
    // A bucket is a folder of the server's root.
    std::fs::create_dir(s3.root.path().join("sluice-checkpoints"))?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.jsonl");
    let config = Config { events: 5_000, users: 50, ..Config::default() };
    sluice_examples::generate(&config, &mut std::io::BufWriter::new(std::fs::File::create(&input)?))?;
    let appended = file_outputs(dir.path()).replace("type: file,", "type: file, append: true,");
    let (input, checkpoint) = (input.display().to_string(), s3.checkpoint("sluice-checkpoints", "runs/one"));
    let sets = [("source.path", input.as_str()), ("outputs", appended.as_str()), ("checkpoint", checkpoint.as_str())];

    run_to_end("session-features", &sets)?;
    let features = lines(&dir.path().join("features.jsonl"));
    assert!(features > 0, "the first run wrote no features");
    let index = s3.objects("sluice-checkpoints/runs/one/index")?;
    let data = s3.objects("sluice-checkpoints/runs/one/data")?;
    assert!(!index.is_empty(), "no checkpoint was published");
    let published: Vec<String> = index.iter().map(|n| n.trim_end_matches(".json").to_string()).collect();
    assert_eq!(published, data, "each checkpoint is its data and its index entry");

    let mut list = Command::new(e2e::sluice());
    list.current_dir(e2e::root()).args(["checkpoints", "list", "examples/session-features.yaml"]);
    list.args(["--set", &format!("checkpoint={checkpoint}")]);
    let listed = String::from_utf8(list.output()?.stdout)?;
    let want = format!("{} checkpoint(s) in s3://sluice-checkpoints/runs/one", index.len());
    assert!(listed.starts_with(&want), "expected {want}, got:\n{listed}");
    for name in &data {
        assert!(listed.contains(name.as_str()), "{name} not listed:\n{listed}");
    }

    // Resumed at the end of the file: nothing is read again.
    run_to_end("session-features", &sets)?;
    assert_eq!(lines(&dir.path().join("features.jsonl")), features, "the second run computed features again");
    assert!(s3.objects("sluice-checkpoints/runs/one/index")?.len() > index.len(), "the second run took no checkpoint");
    Ok(())
}
