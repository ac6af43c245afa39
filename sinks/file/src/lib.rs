//! JSON-lines file sink: one JSON object per line, for any output
//! (features, dead letters, late events).
//!
//! A file never keeps a half-written line: lines are written whole, a
//! write that fails part-way (a full disk) is cut back to the last whole
//! line and retried, and a file opened to append that ends in a partial
//! line (a crash in the middle of a write) is cut back to its last whole
//! line first. Failures: a file that cannot be opened is fatal; a write or
//! flush that fails is retriable (the host backs off and writes again).

use std::path::PathBuf;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Access, Batch, Component, Context, Error, NamedPath, Output, Result, Sink, SinkComponent};
use std::io::Write;

/// JSON lines in a local file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// File to write, relative to the working directory. Parent folders are
    /// created.
    pub path: PathBuf,
    /// Append to an existing file instead of replacing it.
    #[serde(default)]
    pub append: bool,
}

impl Component for FileSinkConfig {
    fn paths(&mut self) -> Vec<NamedPath<'_>> {
        vec![NamedPath { field: "path", path: &mut self.path, access: Access::WriteFile }]
    }
}

#[async_trait]
impl SinkComponent for FileSinkConfig {
    const SERVES: &'static [Output] = &Output::ALL;

    fn location(&self) -> Vec<(&'static str, String)> {
        vec![("path", self.path.display().to_string())]
    }

    async fn build(&self, name: &str, _context: &Context) -> Result<Box<dyn Sink>> {
        Ok(Box::new(FileSink::open(name, self).await?))
    }
}

/// Writes go straight to the file with `std::fs`: a 1 MiB write to the
/// page cache takes well under a millisecond, less than handing it to a
/// blocking thread would (`tokio::fs` copies every buffer once more).
pub struct FileSink {
    name: String,
    file: std::fs::File,
    buffer: Vec<u8>,
    /// The file's length after the last whole write.
    written: u64,
}

/// Bytes buffered before a write to the file.
const BUFFER_BYTES: usize = 1 << 20;

impl FileSink {
    pub async fn open(name: &str, config: &FileSinkConfig) -> Result<Self> {
        let err = |e: std::io::Error| Error {
            sink: name.to_string(),
            message: format!("cannot open {}: {e}", config.path.display()),
            retriable: false,
        };
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(!config.append)
            .open(&config.path)
            .map_err(err)?;
        let written = if config.append { whole_lines(&mut file).map_err(err)? } else { 0 };
        if config.append {
            use std::io::{Seek, SeekFrom};
            let len = file.metadata().map_err(err)?.len();
            if len > written {
                tracing::warn!(
                    sink = name,
                    path = %config.path.display(),
                    bytes = len - written,
                    "the file ended in a partial line (an interrupted write); cut back to its last whole line"
                );
            }
            file.set_len(written).map_err(err)?;
            file.seek(SeekFrom::Start(written)).map_err(err)?;
        }
        Ok(FileSink { name: name.to_string(), file, buffer: Vec::with_capacity(BUFFER_BYTES), written })
    }

    fn encode<T: Serialize>(&mut self, records: &[T]) -> Result<()> {
        for record in records {
            serde_json::to_writer(&mut self.buffer, record).map_err(|e| Error {
                sink: self.name.clone(),
                message: format!("cannot encode record: {e}"),
                retriable: false,
            })?;
            self.buffer.push(b'\n');
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        if let Err(e) = self.file.write_all(&self.buffer) {
            // Part of the buffer may be in the file: cut it back, so that
            // the retry writes it whole after the last whole line.
            let _ = self.file.set_len(self.written).and_then(|()| self.file.seek(SeekFrom::Start(self.written)));
            return Err(Error { sink: self.name.clone(), message: format!("write failed: {e}"), retriable: true });
        }
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: Batch<'_>) -> Result<()> {
        match batch {
            Batch::Features(rows) => {
                for row in rows {
                    row.write_json(&mut self.buffer);
                    self.buffer.push(b'\n');
                }
            }
            Batch::DeadLetters(r) => self.encode(r)?,
            Batch::LateEvents(r) => self.encode(r)?,
        }
        if self.buffer.len() >= BUFFER_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.drain()?;
        self.file.flush().map_err(|e| Error {
            sink: self.name.clone(),
            message: format!("flush failed: {e}"),
            retriable: true,
        })
    }
}

/// The length of `file` up to and including its last newline.
fn whole_lines(file: &mut std::fs::File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut end = file.seek(SeekFrom::End(0))?;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block[..n])?;
        if let Some(i) = block[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sink_api::{Position, Stage};

    #[tokio::test]
    async fn writes_one_json_object_per_line() -> anyhow_free::Result {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub/dead.jsonl");
        let config = FileSinkConfig { path: path.clone(), append: false };
        let mut sink = FileSink::open("dlq", &config).await?;
        let letters = vec![
            sluice_sink_api::DeadLetter::new(
                b"{oops".to_vec(),
                Some(Position { source: "in.jsonl".into(), partition: 0, offset: 3 }),
                Stage::Decode,
                "invalid_json",
                "expected value".into(),
            );
            2
        ];
        sink.write(Batch::DeadLetters(&letters)).await?;
        sink.flush().await?;
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0])?;
        assert_eq!(v["raw"], "{oops");
        assert_eq!(v["position"]["offset"], 3);
        assert_eq!(v["stage"], "decode");
        Ok(())
    }

    #[tokio::test]
    async fn appending_cuts_a_partial_last_line_first() -> anyhow_free::Result {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":")?;
        let config = FileSinkConfig { path: path.clone(), append: true };
        let mut sink = FileSink::open("features", &config).await?;
        let letter = sluice_sink_api::DeadLetter::new(b"x".to_vec(), None, Stage::Decode, "c", "m".into());
        sink.write(Batch::DeadLetters(&[letter])).await?;
        sink.flush().await?;
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "{\"a\":1}");
        assert!(lines[1].starts_with("{\"raw\":\"x\""), "{text}");
        assert!(text.ends_with('\n'));
        // Nothing to cut in a file of whole lines, or an empty one.
        let again = FileSink::open("features", &config).await?;
        assert_eq!(again.written, text.len() as u64);
        Ok(())
    }

    /// Tests return boxed errors so `?` works without unwrap.
    mod anyhow_free {
        pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
    }
}
