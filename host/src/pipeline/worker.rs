//! A worker: the window state and module instance of one share of the keys.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_sink_api::{DeadLetter, LateEvent};
use tokio::sync::mpsc::Sender;

use super::progress::Done;
use super::reader::Routed;
use super::{Error, Output, Result, evaluate, kinds};
use crate::decode;
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::wasm::{Instance, Module};
use crate::window::{Bounds, Mode, Operator};

pub(super) struct Worker<'a> {
    index: usize,
    operator: Operator,
    instance: Instance,
    mode: Mode,
    width: usize,
    bounds: Bounds,
    max_delay: Duration,
    /// When the oldest window waiting for a call fired.
    pending_since: Option<Instant>,
    tx: &'a Sender<Output>,
    metrics: &'a Metrics,
    /// Set when the pipeline is asked to stop: the worker drops what it has
    /// not done (its records are not committed) instead of finishing it.
    stop: &'a AtomicBool,
    dead: Vec<DeadLetter>,
    late: Vec<LateEvent>,
    /// How often to report progress for offset commits (`None`: the source
    /// does not commit), and when it was last reported.
    report_every: Option<Duration>,
    reported_at: Option<Instant>,
}

impl<'a> Worker<'a> {
    pub fn new(
        index: usize,
        manifest: &Manifest,
        module: &Module,
        tx: &'a Sender<Output>,
        metrics: &'a Metrics,
        stop: &'a AtomicBool,
    ) -> Result<Self> {
        let mode = kinds(manifest).1;
        // Half the commit interval, so each commit finds a recent report.
        let report_every = manifest.source.commit_interval().map(|d| d / 2);
        Ok(Worker {
            index,
            operator: Operator::in_memory(manifest.window_spec(), mode, manifest.fields()),
            instance: module.instantiate().map_err(|e| Error::Instantiate(format!("{e:#}")))?,
            mode,
            width: manifest.events.fields.len(),
            bounds: manifest.bounds(),
            max_delay: manifest.transform.max_delay.std(),
            pending_since: None,
            tx,
            metrics,
            stop,
            dead: Vec::new(),
            late: Vec::new(),
            report_every,
            reported_at: None,
        })
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Assign a chunk's events to windows, then move to its watermark.
    /// After a stop request, returns at the next event or call without
    /// reporting progress.
    pub fn chunk(&mut self, routed: Routed) -> Result<()> {
        if self.stopping() {
            return Ok(());
        }
        for &slot in &routed.revoked {
            let keys = self.operator.drop_partition(slot as u32);
            tracing::debug!(worker = self.index, slot, keys, "dropped the state of a revoked partition");
        }
        let mut event = decode::Event { key: Cow::Borrowed(""), time: 0, values: Vec::with_capacity(self.width) };
        for (n, (record, time, key)) in routed.events.iter().enumerate() {
            event.key = Cow::Borrowed(routed.text(key));
            event.time = *time;
            event.values.clear();
            let fields = routed.fields.get(n * self.width..(n + 1) * self.width).unwrap_or_default();
            event.values.extend(fields.iter().map(|f| routed.value(f)));
            let Some(r) = routed.chunk.record(*record as usize) else {
                continue;
            };
            if let Err(late) = self.operator.process(&event, r.slot as u32) {
                self.late.push(LateEvent {
                    raw: r.bytes.to_vec(),
                    position: routed.chunk.position(&r),
                    event_time: *time,
                    watermark: late.watermark,
                    key: event.key.to_string(),
                });
            }
            if self.operator.batch_full(&self.bounds) {
                self.evaluate()?;
            }
            if self.stopping() {
                return Ok(());
            }
        }
        self.dead.extend(routed.dead);
        match self.step(routed.watermark, Instant::now(), routed.flush) {
            Err(Error::Stopped) => return Ok(()),
            r => r?,
        }
        if self.stopping() {
            return Ok(());
        }
        self.report(routed.seq, routed.last)
    }

    /// Tell the sinks' side that every output of the steps up to `seq` has
    /// been sent, and how old the state is (see `progress`). Only when no
    /// fired window waits for a call: those still owe their rows.
    fn report(&mut self, seq: u64, last: bool) -> Result<()> {
        let Some(every) = self.report_every else {
            return Ok(());
        };
        if self.operator.pending_windows() > 0 || (!last && self.reported_at.is_some_and(|t| t.elapsed() < every)) {
            return Ok(());
        }
        self.reported_at = Some(Instant::now());
        let done = Done { seq, oldest: self.operator.oldest_state() };
        self.send(Output::Progress { worker: self.index, done })
    }

    /// Between chunks: late updates and the new watermark. Fired windows
    /// wait for more (a key's consecutive windows then share one copy of
    /// their events in a call) until the call is full or `max_delay`;
    /// aggregates fold their slices, so they are evaluated at once.
    fn step(&mut self, watermark: i64, now: Instant, flush: bool) -> Result<()> {
        let bounds = self.bounds;
        while !self.operator.flush_late(&bounds) {
            self.evaluate_unless_stopping()?;
        }
        while !self.operator.advance(watermark, &bounds) {
            self.evaluate_unless_stopping()?;
        }
        if self.mode == Mode::Aggregate {
            while !self.operator.collect_folds(&bounds) {
                self.evaluate_unless_stopping()?;
            }
            self.evaluate()?;
        } else if self.operator.pending_windows() > 0 {
            let since = *self.pending_since.get_or_insert(now);
            if flush || now.duration_since(since) >= self.max_delay {
                self.evaluate()?;
            }
        }
        // Dead letters of a call cut short by the stop are not real: the
        // step's records are read again after a restart.
        if self.stopping() {
            return Err(Error::Stopped);
        }
        self.send_side_outputs()
    }

    /// A full call goes out, unless the pipeline is stopping: then its
    /// windows are dropped, and so is the rest of the step (a stop must not
    /// wait for a backlog of windows).
    fn evaluate_unless_stopping(&mut self) -> Result<()> {
        if self.stopping() {
            return Err(Error::Stopped);
        }
        self.evaluate()
    }

    fn evaluate(&mut self) -> Result<()> {
        self.pending_since = None;
        let batch = self.operator.take_batch();
        if batch.is_empty() {
            return Ok(());
        }
        let (out, batch) = evaluate(&mut self.instance, self.mode, batch, &self.bounds, self.metrics, self.stop);
        self.operator.recycle(batch);
        if let Some((folds, results)) = out.folds {
            self.operator.apply_folds(folds, results);
        }
        Metrics::add(&self.metrics.dead_letters_transform, out.dead.len() as u64);
        self.dead.extend(out.dead);
        if !out.rows.is_empty() {
            Metrics::add(&self.metrics.feature_rows, out.rows.len() as u64);
            self.send(Output::Features(out.rows))?;
        }
        Ok(())
    }

    fn send_side_outputs(&mut self) -> Result<()> {
        let stats = std::mem::take(&mut self.operator.stats);
        let m = self.metrics;
        Metrics::add(&m.events_accepted, stats.events_accepted);
        Metrics::add(&m.events_late, stats.events_late);
        Metrics::add(&m.windows_fired_close, stats.fired_close);
        Metrics::add(&m.windows_fired_event, stats.fired_event);
        Metrics::add(&m.windows_fired_late, stats.fired_late);
        Metrics::add(&m.keys_expired, stats.keys_expired);
        if !self.dead.is_empty() {
            let dead = std::mem::take(&mut self.dead);
            self.send(Output::DeadLetters(dead))?;
        }
        if !self.late.is_empty() {
            let late = std::mem::take(&mut self.late);
            self.send(Output::LateEvents(late))?;
        }
        Ok(())
    }

    fn send(&self, output: Output) -> Result<()> {
        self.tx.blocking_send(output).map_err(|_| Error::Thread("the sinks stopped".into()))
    }
}
