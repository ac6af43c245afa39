//! The sinks of a pipeline's three outputs, fed from the compute thread.

use std::time::Duration;

use sluice_sink_api::{Batch, DeadLetter, FeatureRow, LateEvent, Sink};
use tokio::sync::mpsc::Receiver;

use crate::manifest::{OutputsConfig, SinkConfig};
use crate::metrics::Metrics;

/// A batch for one output.
#[derive(Debug)]
pub enum Output {
    Features(Vec<FeatureRow>),
    DeadLetters(Vec<DeadLetter>),
    LateEvents(Vec<LateEvent>),
}

pub(super) struct Outputs {
    features: Vec<(String, Box<dyn Sink>)>,
    dead_letters: Vec<(String, Box<dyn Sink>)>,
    late_events: Vec<(String, Box<dyn Sink>)>,
}

async fn open_all(output: &str, configs: &[SinkConfig]) -> sluice_sink_api::Result<Vec<(String, Box<dyn Sink>)>> {
    let mut sinks = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let name = format!("outputs.{output}[{i}]");
        sinks.push((name.clone(), crate::sinks::build(&name, c).await?));
    }
    Ok(sinks)
}

/// Back-off between retries of a failing sink.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Write a batch to a sink, retrying what the sink says is retriable. The
/// compute thread waits meanwhile (the channel is bounded): backpressure.
async fn write(name: &str, sink: &mut dyn Sink, batch: Batch<'_>, metrics: &Metrics) -> sluice_sink_api::Result<()> {
    let mut delay = RETRY_FIRST;
    loop {
        match sink.write(batch).await {
            Ok(()) => return Ok(()),
            Err(e) if e.retriable => {
                Metrics::add(&metrics.sink_retries, 1);
                tracing::warn!(sink = name, retry_in_ms = delay.as_millis() as u64, "{e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

impl Outputs {
    pub(super) async fn open(config: &OutputsConfig) -> sluice_sink_api::Result<Self> {
        Ok(Outputs {
            features: open_all("features", &config.features).await?,
            dead_letters: open_all("dead_letters", &config.dead_letters).await?,
            late_events: open_all("late_events", &config.late_events).await?,
        })
    }

    /// Write everything received until the sender is gone, then flush.
    pub(super) async fn drain(mut self, mut rx: Receiver<Output>, metrics: &Metrics) -> sluice_sink_api::Result<()> {
        while let Some(output) = rx.recv().await {
            let (sinks, batch) = match &output {
                Output::Features(r) => (&mut self.features, Batch::Features(r)),
                Output::DeadLetters(r) => (&mut self.dead_letters, Batch::DeadLetters(r)),
                Output::LateEvents(r) => (&mut self.late_events, Batch::LateEvents(r)),
            };
            for (name, sink) in sinks.iter_mut() {
                write(name, sink.as_mut(), batch, metrics).await?;
            }
        }
        for (_, sink) in self.features.iter_mut().chain(&mut self.dead_letters).chain(&mut self.late_events) {
            sink.flush().await?;
        }
        Ok(())
    }
}
