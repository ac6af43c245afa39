//! Local files: reading one whole without trusting its size, and telling
//! whether two paths name the same file.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Read a whole regular file of at most `limit` bytes, without reading
/// more than that of anything else. `what` names it in messages.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the {what}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read the {what}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("the {what} is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read the {what}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("the {what} is larger than {} bytes", limit));
    }
    Ok(bytes)
}

/// Replace `path` with `bytes` durably and atomically: a crash leaves the
/// old file or the new one, never a part (write aside, fsync, rename,
/// fsync the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Identifies a file: two paths are the same file when their identities
/// are equal. For an existing file, its device and inode (hard links and
/// symbolic links included); for one still to be created, the absolute
/// path with every existing part's links resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Inode(u64, u64),
    Path(PathBuf),
}

pub fn identity(path: &Path) -> Identity {
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &Path| std::fs::metadata(p).ok().map(|m| Identity::Inode(m.dev(), m.ino()));
    if let Some(id) = inode(path) {
        return id;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // The longest part that exists, with its links resolved, and the rest
    // as written, `.` and `..` folded: how a sink that creates the missing
    // folders first would reach it (`new/../in.jsonl` is `in.jsonl`).
    for base in absolute.ancestors() {
        if let Ok(mut resolved) = std::fs::canonicalize(base) {
            let rest = absolute.strip_prefix(base).unwrap_or(Path::new(""));
            for part in rest.components() {
                match part {
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::Normal(name) => resolved.push(name),
                    _ => {}
                }
            }
            return inode(&resolved).unwrap_or(Identity::Path(resolved));
        }
    }
    Identity::Path(absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_dots_name_the_same_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("in.jsonl"), "x")?;
        std::fs::create_dir(d.join("sub"))?;
        std::os::unix::fs::symlink(d.join("in.jsonl"), d.join("link.jsonl"))?;
        std::fs::hard_link(d.join("in.jsonl"), d.join("hard.jsonl"))?;
        let input = identity(&d.join("in.jsonl"));
        assert_eq!(identity(&d.join("sub/../in.jsonl")), input);
        assert_eq!(identity(&d.join("link.jsonl")), input);
        assert_eq!(identity(&d.join("hard.jsonl")), input);
        assert_eq!(identity(&d.join("new/../in.jsonl")), input);
        // Files still to be created compare by where they would be.
        assert_eq!(identity(&d.join("new/../sub/out.jsonl")), identity(&d.join("sub/./out.jsonl")));
        assert_ne!(identity(&d.join("sub/out.jsonl")), identity(&d.join("out.jsonl")));
        Ok(())
    }

    #[test]
    fn only_regular_files_are_read_and_only_so_much() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, "0123456789")?;
        assert_eq!(read_limited(&path, 10, "manifest").ok(), Some(b"0123456789".to_vec()));
        assert_eq!(read_limited(&path, 9, "manifest").err().as_deref(), Some("the manifest is larger than 9 bytes"));
        let zero = read_limited(Path::new("/dev/zero"), 10, "module").err();
        assert_eq!(zero.as_deref(), Some("the module is not a regular file"));
        Ok(())
    }
}
