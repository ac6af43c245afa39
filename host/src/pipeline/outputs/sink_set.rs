//! The sinks of a pipeline's three outputs: each batch written to every
//! sink of its output, with retries of what a sink says is retriable;
//! what a sink refuses for good rerouted to the dead-letter output; every
//! sink pre-committed and committed at a barrier.

use std::time::Duration;

use sluice_sink_api::{Batch, Context, DeadLetter, Rejected, Sink, Stage};

use crate::metrics::Metrics;
use crate::pipeline::control::{Control, Stop};
use crate::sinks::{OutputsConfig, SinkConfig};

/// The running sinks of each output, each with its name in the manifest
/// (`outputs.features[0]`).
pub(crate) struct SinkSet {
    pub(super) features: Vec<(String, Box<dyn Sink>)>,
    pub(super) dead_letters: Vec<(String, Box<dyn Sink>)>,
    pub(super) late_events: Vec<(String, Box<dyn Sink>)>,
}

async fn open_all(
    output: &str,
    configs: &[SinkConfig],
    context: &Context,
) -> sluice_sink_api::Result<Vec<(String, Box<dyn Sink>)>> {
    let mut sinks = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let name = format!("outputs.{output}[{i}]");
        sinks.push((name.clone(), c.build(&name, context).await?));
    }
    Ok(sinks)
}

/// Back-off between retries of a failing sink.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What to ask of a sink.
#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    Write(Batch<'a>),
    Flush,
    PreCommit(u64),
    Commit(u64),
}

/// Run a sink operation, retrying what the sink says is retriable, with
/// backoff. The compute thread waits meanwhile (the channel is bounded):
/// backpressure. A stop request ends the retries with the last error;
/// [`super::StopMode::Now`] abandons the operation in flight as well.
async fn retry(
    name: &str,
    sink: &mut dyn Sink,
    op: Op<'_>,
    metrics: &Metrics,
    stop: &Stop,
) -> sluice_sink_api::Result<()> {
    let cancelled = |what: &str| sluice_sink_api::Error {
        sink: name.to_string(),
        message: format!("{what}: the pipeline was stopped at once"),
        retriable: false,
    };
    let (mut delay, started) = (RETRY_FIRST, std::time::Instant::now());
    let written = || {
        if let Op::Write(_) = op {
            metrics.sink_write_seconds.observe(started.elapsed());
        }
    };
    loop {
        let attempt = async {
            match op {
                Op::Write(batch) => sink.write(batch).await,
                Op::Flush => sink.flush().await,
                Op::PreCommit(epoch) => sink.pre_commit(epoch).await,
                Op::Commit(epoch) => sink.commit(epoch).await,
            }
        };
        let outcome = tokio::select! {
            r = attempt => r,
            () = stop.until_cancelled() => return Err(cancelled("abandoned")),
        };
        match outcome {
            Ok(()) => {
                written();
                return Ok(());
            }
            Err(mut e) if e.retriable && stop.stopping() => {
                e.message =
                    format!("{} (given up: the pipeline is stopping; nothing after it is committed)", e.message);
                return Err(e);
            }
            Err(e) if e.retriable => {
                Metrics::add(&metrics.sink_retries, 1);
                tracing::warn!(sink = name, retry_in_ms = delay.as_millis() as u64, "{e}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.until_cancelled() => return Err(cancelled("retries abandoned")),
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

impl SinkSet {
    pub async fn open(config: &OutputsConfig, context: &Context) -> sluice_sink_api::Result<Self> {
        Ok(SinkSet {
            features: open_all("features", &config.features, context).await?,
            dead_letters: open_all("dead_letters", &config.dead_letters, context).await?,
            late_events: open_all("late_events", &config.late_events, context).await?,
        })
    }

    /// Write a batch to every sink of its output; what a sink refuses for
    /// good goes to the dead-letter output.
    pub async fn write(&mut self, batch: Batch<'_>, metrics: &Metrics, stop: &Stop) -> sluice_sink_api::Result<()> {
        let sinks = match batch {
            Batch::Features(_) => &mut self.features,
            Batch::DeadLetters(letters) => {
                metrics.note_dead_letters(letters);
                &mut self.dead_letters
            }
            Batch::LateEvents(_) => &mut self.late_events,
        };
        let mut rejected = Vec::new();
        for (name, sink) in sinks.iter_mut() {
            retry(name, sink.as_mut(), Op::Write(batch), metrics, stop).await?;
            if matches!(batch, Batch::DeadLetters(_)) {
                drop_refused(name, sink.as_mut(), metrics);
            } else {
                rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
            }
        }
        self.dead_letter(rejected, metrics, stop).await
    }

    /// Every output before the barrier is written: pre-commit every sink
    /// (feature and late-event sinks first, as what they refuse becomes
    /// dead letters).
    pub async fn pre_commit(
        &mut self,
        control: Control,
        metrics: &Metrics,
        stop: &Stop,
    ) -> sluice_sink_api::Result<()> {
        let epoch = control.epoch();
        let mut rejected = Vec::new();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events) {
            retry(name, sink.as_mut(), Op::PreCommit(epoch), metrics, stop).await?;
            rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
        }
        self.dead_letter(rejected, metrics, stop).await?;
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, sink.as_mut(), Op::PreCommit(epoch), metrics, stop).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }

    /// The barrier's checkpoint is taken (or there is none): every sink
    /// publishes what it staged.
    pub async fn commit(&mut self, control: Control, metrics: &Metrics, stop: &Stop) -> sluice_sink_api::Result<()> {
        let epoch = control.epoch();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events).chain(&mut self.dead_letters) {
            retry(name, sink.as_mut(), Op::Commit(epoch), metrics, stop).await?;
        }
        tracing::debug!(epoch, last = control.is_last(), "barrier committed by every sink");
        Ok(())
    }

    /// Records a sink refused for good go to the dead-letter output; one a
    /// dead-letter sink refused can only be logged.
    async fn dead_letter(
        &mut self,
        rejected: Vec<(String, Rejected)>,
        metrics: &Metrics,
        stop: &Stop,
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
        metrics.note_dead_letters(&letters);
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, sink.as_mut(), Op::Write(Batch::DeadLetters(&letters)), metrics, stop).await?;
            drop_refused(name, sink.as_mut(), metrics);
        }
        Ok(())
    }

    /// Flush every sink, retrying what is retriable; rows refused on the
    /// way go to the dead-letter output before it is flushed.
    pub async fn flush(&mut self, metrics: &Metrics, stop: &Stop) -> sluice_sink_api::Result<()> {
        let mut rejected = Vec::new();
        for (name, sink) in self.features.iter_mut().chain(&mut self.late_events) {
            retry(name, sink.as_mut(), Op::Flush, metrics, stop).await?;
            rejected.extend(sink.take_rejected().into_iter().map(|r| (name.clone(), r)));
        }
        self.dead_letter(rejected, metrics, stop).await?;
        for (name, sink) in self.dead_letters.iter_mut() {
            retry(name, sink.as_mut(), Op::Flush, metrics, stop).await?;
            drop_refused(name, sink.as_mut(), metrics);
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
