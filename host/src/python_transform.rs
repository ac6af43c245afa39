//! Python transforms: `sluice transform new`, `build` and `test`. The
//! binary carries the Python SDK (`sdk/python/sluice`) and the contract
//! (`sdk/wit`) it was built with, so a module built by it, and the native
//! test run of its source, speak the contract this host speaks. Building
//! is the SDK's own (`python -m sluice.build`, which runs componentize-py);
//! this module writes the SDK where Python finds it and runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK's files, by path under the folder Python imports `sluice` from.
const SDK: &[(&str, &str)] = &[
    ("sluice/__init__.py", include_str!("../../sdk/python/sluice/__init__.py")),
    ("sluice/_component.py", include_str!("../../sdk/python/sluice/_component.py")),
    ("sluice/_features.py", include_str!("../../sdk/python/sluice/_features.py")),
    ("sluice/_log.py", include_str!("../../sdk/python/sluice/_log.py")),
    ("sluice/_schema.py", include_str!("../../sdk/python/sluice/_schema.py")),
    ("sluice/_transform.py", include_str!("../../sdk/python/sluice/_transform.py")),
    ("sluice/_window.py", include_str!("../../sdk/python/sluice/_window.py")),
    ("sluice/build.py", include_str!("../../sdk/python/sluice/build.py")),
    ("sluice/testing.py", include_str!("../../sdk/python/sluice/testing.py")),
];

/// The contract, as the host's bindings were generated from it.
const WIT: &str = include_str!("../../sdk/wit/sluice.wit");

/// What `sluice transform new` writes, `{{name}}` and `{{function}}`
/// filled in.
const TEMPLATE: &[(&str, &str)] = &[
    ("transform.py", include_str!("../../sdk/python/template/transform.py")),
    ("test_transform.py", include_str!("../../sdk/python/template/test_transform.py")),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is not a transform name: letters, digits, `-` and `_`, starting with a letter")]
    Name(String),
    #[error("{0} exists already: choose another name, or remove it")]
    Exists(PathBuf),
    #[error("{} has no transform.py: is it a Python transform's folder?", .0.display())]
    NotATransform(PathBuf),
    #[error("cannot write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `{command}` (give the Python with --python or SLUICE_PYTHON)")]
    Run {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed")]
    Failed { what: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Make the folder `parent/name` holding a window transform and its test.
/// The paths written.
pub fn scaffold(parent: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Error::Name(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(Error::Exists(dir));
    }
    let write = |path: &Path, text: &str| Error::write(path, std::fs::write(path, text));
    Error::write(&dir, std::fs::create_dir_all(&dir))?;
    let function = format!("{}_features", name.replace('-', "_").to_ascii_lowercase());
    let mut written = Vec::new();
    for (file, text) in TEMPLATE {
        let path = dir.join(file);
        write(&path, &text.replace("{{name}}", name).replace("{{function}}", &function))?;
        written.push(path);
    }
    Ok(written)
}

/// The SDK and the contract, written in a fresh temporary folder: the SDK
/// importable from it, the contract in its `wit/`.
pub fn unpack_sdk() -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-sdk-")
        .tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    for (file, text) in SDK.iter().chain(&[("wit/sluice.wit", WIT)]) {
        let path = dir.path().join(file);
        if let Some(parent) = path.parent() {
            Error::write(parent, std::fs::create_dir_all(parent))?;
        }
        Error::write(&path, std::fs::write(&path, text))?;
    }
    Ok(dir)
}

/// Build the transform in `dir` into the component `out`.
pub fn build(dir: &Path, out: &Path, python: &Path) -> Result<()> {
    if !dir.join("transform.py").is_file() {
        return Err(Error::NotATransform(dir.to_path_buf()));
    }
    let sdk = unpack_sdk()?;
    let mut command = Command::new(python);
    command
        .args(["-m", "sluice.build"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .arg("--wit")
        .arg(sdk.path().join("wit"))
        .env("PYTHONPATH", sdk.path());
    run(command, "the build")
}

/// Run the transform's tests in `dir` natively (`python -m pytest`), with
/// the SDK this binary carries; `args` go to pytest.
pub fn test(dir: &Path, python: &Path, args: &[String]) -> Result<()> {
    if !dir.join("transform.py").is_file() {
        return Err(Error::NotATransform(dir.to_path_buf()));
    }
    let sdk = unpack_sdk()?;
    let mut command = Command::new(python);
    command
        .args(["-m", "pytest", "-p", "no:cacheprovider"])
        .args(args)
        .current_dir(dir)
        .env("PYTHONPATH", sdk.path())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run(command, "the tests")
}

fn run(mut command: Command, what: &str) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().map_err(|source| Error::Run { command: shown, source })?;
    if !status.success() {
        return Err(Error::Failed { what: format!("{what} ({status})") });
    }
    Ok(())
}

impl Error {
    fn write(path: &Path, result: std::io::Result<()>) -> Result<()> {
        result.map_err(|source| Error::Write { path: path.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the SDK's package is carried (a file added to the
    /// package and not here would be missing from built modules).
    #[test]
    fn the_binary_carries_every_file_of_the_sdk() -> std::io::Result<()> {
        let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/sluice");
        let mut on_disk: Vec<String> = std::fs::read_dir(&package)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .map(|n| format!("sluice/{n}"))
            .collect();
        on_disk.sort();
        let carried: Vec<String> = SDK.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(carried, on_disk);
        Ok(())
    }

    #[test]
    fn a_new_transform_is_named_as_python_and_paths_allow() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Write { path: "tmp".into(), source })?;
        let written = scaffold(dir.path(), "click-stats")?;
        assert_eq!(written.len(), 2);
        let text = std::fs::read_to_string(dir.path().join("click-stats/transform.py")).unwrap_or_default();
        assert!(text.contains("def click_stats_features(window: Window) -> dict:"), "{text}");
        assert!(text.contains("The `click-stats` transform"));
        let test = std::fs::read_to_string(dir.path().join("click-stats/test_transform.py")).unwrap_or_default();
        assert!(test.contains("from transform import click_stats_features"), "{test}");
        assert!(matches!(scaffold(dir.path(), "click-stats"), Err(Error::Exists(_))));
        for bad in ["", "1x", "a b", "../x"] {
            assert!(matches!(scaffold(dir.path(), bad), Err(Error::Name(_))), "{bad}");
        }
        Ok(())
    }
}
