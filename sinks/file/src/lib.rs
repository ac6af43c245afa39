//! JSON-lines file sink: one JSON object per line, for any output
//! (features, dead letters, late events).

use std::path::PathBuf;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Batch, Error, Result, Sink};
use std::io::Write;

/// Write records as JSON lines to a local file.
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

/// Writes go straight to the file with `std::fs`: a 1 MiB write to the
/// page cache takes well under a millisecond, less than handing it to a
/// blocking thread would (`tokio::fs` copies every buffer once more).
pub struct FileSink {
    name: String,
    file: std::fs::File,
    buffer: Vec<u8>,
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
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(config.append)
            .truncate(!config.append)
            .open(&config.path)
            .map_err(err)?;
        Ok(FileSink { name: name.to_string(), file, buffer: Vec::with_capacity(BUFFER_BYTES) })
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
        self.file.write_all(&self.buffer).map_err(|e| Error {
            sink: self.name.clone(),
            message: format!("write failed: {e}"),
            retriable: true,
        })?;
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
            sluice_sink_api::DeadLetter {
                raw: b"{oops".to_vec(),
                position: Some(Position { source: "in.jsonl".into(), partition: 0, offset: 3 }),
                stage: Stage::Decode,
                error_class: "invalid_json".into(),
                message: "expected value".into(),
                at: 1,
            };
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

    /// Tests return boxed errors so `?` works without unwrap.
    mod anyhow_free {
        pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
    }
}
