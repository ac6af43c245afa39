//! The blackhole sink: counts the records it is given and drops them, as
//! Flink's `blackhole` connector and Vector's `blackhole` sink do. What a
//! pipeline costs without its sinks' (a benchmark's output), or a trial
//! run that should write nothing. It takes any output.
//!
//! Every `report_every` it logs how many records it took (in all, and per
//! second since the last report) at INFO; the host's own metrics count
//! them as any sink's.

use std::time::Instant;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_sink_api::{Batch, Component, Context, Duration, Output, Result, Sink, SinkComponent};

/// Counts records and drops them (benchmarks, trials).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSinkConfig {
    /// How often to log the count of records taken; `off` never does.
    #[serde(default = "default_report_every", deserialize_with = "sluice_sink_api::duration::optional")]
    pub report_every: Option<Duration>,
}

fn default_report_every() -> Option<Duration> {
    Some(Duration::from_millis(10_000))
}

impl Default for BlackholeSinkConfig {
    fn default() -> BlackholeSinkConfig {
        BlackholeSinkConfig { report_every: default_report_every() }
    }
}

/// Nothing to check: it names no file and reaches no server.
impl Component for BlackholeSinkConfig {}

#[async_trait]
impl SinkComponent for BlackholeSinkConfig {
    const SERVES: &'static [Output] = &Output::ALL;

    async fn build(&self, name: &str, _context: &Context) -> Result<Box<dyn Sink>> {
        Ok(Box::new(BlackholeSink::new(name, self)))
    }
}

/// The running sink.
#[derive(Debug)]
pub struct BlackholeSink {
    name: String,
    report_every: Option<std::time::Duration>,
    /// Records taken, in all.
    taken: u64,
    /// When the last report was made, and the count then.
    reported: (Instant, u64),
}

impl BlackholeSink {
    pub fn new(name: &str, config: &BlackholeSinkConfig) -> BlackholeSink {
        let report_every = config.report_every.map(|d| std::time::Duration::from_millis(d.millis().max(1) as u64));
        BlackholeSink { name: name.to_string(), report_every, taken: 0, reported: (Instant::now(), 0) }
    }

    /// Records taken since it was built.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    fn report_if_due(&mut self) {
        let Some(every) = self.report_every else { return };
        let (at, then) = self.reported;
        let elapsed = at.elapsed();
        if elapsed < every {
            return;
        }
        let per_second = (self.taken - then) as f64 / elapsed.as_secs_f64();
        tracing::info!(sink = %self.name, records = self.taken, per_second = per_second.round(), "blackhole: records taken");
        self.reported = (Instant::now(), self.taken);
    }
}

#[async_trait]
impl Sink for BlackholeSink {
    async fn write(&mut self, batch: Batch<'_>) -> Result<()> {
        self.taken += batch.len() as u64;
        self.report_if_due();
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sink_api::{DeadLetter, LateEvent, Position, Stage};

    #[tokio::test]
    async fn it_counts_what_every_output_gives_it_and_keeps_nothing() -> anyhow::Result<()> {
        let config: BlackholeSinkConfig = serde_yaml::from_str("report_every: off")?;
        assert_eq!(config.report_every, None);
        let mut sink = config.build("bh", &Context::default()).await?;
        sink.write(Batch::Features(&[])).await?;
        let dead = vec![DeadLetter::new(b"{".to_vec(), None, Stage::Decode, "invalid_json", "cut short".into()); 3];
        let position = Position { source: "clicks".into(), partition: 0, offset: 7 };
        let late = LateEvent { raw: b"{}".to_vec(), position, event_time: 1, watermark: 2, key: "u1".into() };
        sink.write(Batch::DeadLetters(&dead)).await?;
        sink.write(Batch::LateEvents(&[late.clone(), late])).await?;
        sink.flush().await?;
        sink.commit(1).await?;
        let mut counted = BlackholeSink::new("bh", &config);
        counted.write(Batch::DeadLetters(&dead)).await?;
        assert_eq!(counted.taken(), 3);
        assert_eq!(BlackholeSinkConfig::SERVES, &Output::ALL);
        Ok(())
    }

    #[test]
    fn it_reports_every_ten_seconds_unless_told_otherwise() -> anyhow::Result<()> {
        let config: BlackholeSinkConfig = serde_yaml::from_str("{}")?;
        assert_eq!(config.report_every.map(|d| d.millis()), Some(10_000));
        let config: BlackholeSinkConfig = serde_yaml::from_str("report_every: 1s")?;
        assert_eq!(config.report_every.map(|d| d.millis()), Some(1_000));
        assert!(serde_yaml::from_str::<BlackholeSinkConfig>("rate: 5").is_err(), "unknown fields are refused");
        Ok(())
    }
}
