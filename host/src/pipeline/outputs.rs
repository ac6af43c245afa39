//! The sinks of a pipeline's three outputs, fed from the compute thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_sink_api::{Batch, DeadLetter, FeatureRow, LateEvent, Rejected, Sink, Stage};
use tokio::sync::mpsc::Receiver;

use super::progress::Done;
use crate::manifest::{OutputsConfig, SinkConfig};
use crate::metrics::Metrics;

/// A batch for one output.
#[derive(Debug)]
pub enum Output {
    Features(Vec<FeatureRow>),
    DeadLetters(Vec<DeadLetter>),
    LateEvents(Vec<LateEvent>),
    /// A worker has sent every output of the steps up to `done.seq`.
    Progress {
        worker: usize,
        done: Done,
    },
}

/// When and for whom sink progress is acknowledged to the source.
pub(super) struct Commits {
    pub interval: Duration,
    pub workers: usize,
    pub acks: std::sync::mpsc::Sender<Done>,
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

/// Run a sink operation, retrying what the sink says is retriable, with
/// backoff. The compute thread waits meanwhile (the channel is bounded):
/// backpressure. A stop request ends the retries with the last error.
async fn retry(
    name: &str,
    metrics: &Metrics,
    stop: &AtomicBool,
    mut op: impl AsyncFnMut() -> sluice_sink_api::Result<()>,
) -> sluice_sink_api::Result<()> {
    let mut delay = RETRY_FIRST;
    loop {
        match op().await {
            Ok(()) => return Ok(()),
            Err(mut e) if e.retriable && stop.load(Ordering::Relaxed) => {
                e.message =
                    format!("{} (given up: the pipeline is stopping; nothing after it is committed)", e.message);
                return Err(e);
            }
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
    /// With `commits`, every interval: flush every sink, then tell the
    /// source how far every worker's outputs have been written.
    pub(super) async fn drain(
        mut self,
        mut rx: Receiver<Output>,
        metrics: &Metrics,
        commits: Option<Commits>,
        stop: &AtomicBool,
    ) -> sluice_sink_api::Result<()> {
        let mut reported: Vec<Option<Done>> = vec![None; commits.as_ref().map_or(0, |c| c.workers)];
        let mut last_commit = Instant::now();
        while let Some(output) = rx.recv().await {
            let (sinks, batch) = match &output {
                Output::Features(r) => (&mut self.features, Batch::Features(r)),
                Output::DeadLetters(r) => (&mut self.dead_letters, Batch::DeadLetters(r)),
                Output::LateEvents(r) => (&mut self.late_events, Batch::LateEvents(r)),
                Output::Progress { worker, done } => {
                    if let Some(slot) = reported.get_mut(*worker) {
                        *slot = Some(*done);
                    }
                    if let Some(c) = &commits
                        && last_commit.elapsed() >= c.interval
                    {
                        last_commit = Instant::now();
                        self.commit(c, &reported, metrics, stop).await?;
                    }
                    continue;
                }
            };
            let mut rejected = Vec::new();
            for (name, sink) in sinks.iter_mut() {
                retry(name, metrics, stop, async || sink.write(batch).await).await?;
                if matches!(batch, Batch::DeadLetters(_)) {
                    drop_refused(name, sink.as_mut(), metrics);
                } else {
                    rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
                }
            }
            self.dead_letter(rejected, metrics, stop).await?;
        }
        match &commits {
            Some(c) => self.commit(c, &reported, metrics, stop).await,
            None => self.flush(metrics, stop).await,
        }
    }

    /// Records a sink refused for good go to the dead-letter output; one a
    /// dead-letter sink refused can only be logged.
    async fn dead_letter(
        &mut self,
        rejected: Vec<(String, Rejected)>,
        metrics: &Metrics,
        stop: &AtomicBool,
    ) -> sluice_sink_api::Result<()> {
        if rejected.is_empty() {
            return Ok(());
        }
        Metrics::add(&metrics.dead_letters_sink, rejected.len() as u64);
        // One line a batch, not one a record: a hot key can make many.
        if let Some((sink, first)) = rejected.first() {
            let (count, class) = (rejected.len(), &first.error_class);
            tracing::warn!(
                sink,
                count,
                class,
                "records refused, sent to the dead-letter output; the first: {}",
                first.message
            );
        }
        let letters: Vec<DeadLetter> = rejected
            .into_iter()
            .map(|(sink, r)| {
                DeadLetter::new(r.raw, None, Stage::Sink, &r.error_class, format!("{sink}: {}", r.message))
            })
            .collect();
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, metrics, stop, async || sink.write(Batch::DeadLetters(&letters)).await).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }

    /// Flush every sink, retrying what is retriable; rows refused on the
    /// way go to the dead-letter output before it is flushed.
    async fn flush(&mut self, metrics: &Metrics, stop: &AtomicBool) -> sluice_sink_api::Result<()> {
        let mut rejected = Vec::new();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events) {
            retry(name, metrics, stop, async || sink.flush().await).await?;
            rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
        }
        self.dead_letter(rejected, metrics, stop).await?;
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, metrics, stop, async || sink.flush().await).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }

    /// Flush, then acknowledge the progress every worker has reported.
    async fn commit(
        &mut self,
        commits: &Commits,
        reported: &[Option<Done>],
        metrics: &Metrics,
        stop: &AtomicBool,
    ) -> sluice_sink_api::Result<()> {
        self.flush(metrics, stop).await?;
        let all: Option<Vec<Done>> = reported.iter().copied().collect();
        if let Some(all) = all
            && let (Some(seq), Some(oldest)) = (all.iter().map(|d| d.seq).min(), all.iter().map(|d| d.oldest).min())
        {
            // The source may be gone already (a bounded run that ended).
            let _ = commits.acks.send(Done { seq, oldest });
        }
        Ok(())
    }
}

/// Dead letters a dead-letter sink refused: nowhere left to send them.
fn drop_refused(name: &str, sink: &mut dyn Sink, metrics: &Metrics) {
    for r in sink.take_rejected() {
        Metrics::add(&metrics.dead_letters_dropped, 1);
        tracing::error!(sink = name, class = r.error_class, "a dead letter was refused and is lost: {}", r.message);
    }
}
