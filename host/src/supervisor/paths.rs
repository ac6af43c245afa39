//! Keeping a submitted manifest's paths inside the host's `files/`
//! directory: a pipeline applied over HTTP must not read or write anything
//! else on the host.

use std::path::{Component, Path, PathBuf};

/// Make `path` absolute under `root` (relative paths are relative to it)
/// or say why it may not be used. `root` is canonical. Parts that exist
/// are resolved, so a symbolic link out of `root` is refused too.
pub fn confine(root: &Path, path: &mut PathBuf) -> Result<(), String> {
    let shown = path.display().to_string();
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("`{shown}` has `..` in it; paths may not leave the host's files directory"));
    }
    let joined = if path.is_absolute() { path.clone() } else { root.join(&*path) };
    // The longest part that exists, links resolved, must be inside root;
    // the rest has no `..`, so cannot leave it.
    let inside = joined
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok())
        .is_some_and(|resolved| resolved.starts_with(root));
    if !inside {
        return Err(format!("`{shown}` is outside the host's files directory"));
    }
    *path = joined;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_files_directory() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = std::fs::canonicalize(dir.path())?.join("files");
        std::fs::create_dir_all(root.join("in"))?;
        std::fs::write(root.join("in/events.jsonl"), "")?;
        std::os::unix::fs::symlink("/etc", root.join("etc"))?;

        let mut p = PathBuf::from("in/events.jsonl");
        confine(&root, &mut p).map_err(anyhow::Error::msg)?;
        assert_eq!(p, root.join("in/events.jsonl"));
        // Not there yet: an output the pipeline will create.
        let mut p = PathBuf::from("out/new/features.jsonl");
        confine(&root, &mut p).map_err(anyhow::Error::msg)?;
        assert_eq!(p, root.join("out/new/features.jsonl"));
        let mut p = root.join("in");
        confine(&root, &mut p).map_err(anyhow::Error::msg)?;

        for bad in ["../x", "in/../../x", "/etc/passwd", "/tmp", "etc/passwd", "etc/new"] {
            let mut p = PathBuf::from(bad);
            assert!(confine(&root, &mut p).is_err(), "{bad} was accepted");
            assert_eq!(p, PathBuf::from(bad), "a refused path is left as it was");
        }
        let mut p = dir.path().join("files-elsewhere");
        assert!(confine(&root, &mut p).is_err());
        Ok(())
    }
}
