//! A worker: the window state and module instance of one share of the keys.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use sluice_sink_api::{DeadLetter, KeyType, LateEvent};
use tokio::sync::mpsc::Sender;

use super::control::{Control, Stop};
use super::outputs::{OutputMessage, WorkerSnapshot};
use super::progress::Written;
use super::reader::Routed;
use super::{Error, Output, Result, Spec, evaluate};
use crate::decode;
use crate::metrics::Metrics;
use crate::state::Backend;
use crate::wasm::{Instance, Module};
use crate::window::{Bounds, Mode, Operator};

pub(super) struct Worker<'a> {
    index: usize,
    operator: Operator<Backend>,
    instance: Instance,
    mode: Mode,
    width: usize,
    bounds: Bounds,
    /// How the rows' keys are typed.
    key_type: KeyType,
    max_delay: Duration,
    /// When the oldest window waiting for a call fired.
    pending_since: Option<Instant>,
    tx: &'a Sender<Output>,
    metrics: &'a Metrics,
    /// Cancelled by [`super::StopMode::Now`]: the worker drops what it has
    /// not done (its records are not committed) instead of finishing it.
    stop: &'a Stop,
    dead: Vec<DeadLetter>,
    late: Vec<LateEvent>,
    /// Checkpoints are taken: at each barrier the worker's state goes to
    /// the checkpoint coordinator, ahead of the barrier itself.
    snapshots: Option<std::sync::mpsc::Sender<WorkerSnapshot>>,
}

impl<'a> Worker<'a> {
    pub fn new(
        index: usize,
        spec: &Spec,
        module: &Module,
        state: Backend,
        (tx, metrics, stop): (&'a Sender<Output>, &'a Metrics, &'a Stop),
        snapshots: Option<std::sync::mpsc::Sender<WorkerSnapshot>>,
    ) -> Result<Self> {
        let mode = spec.transform.mode();
        Ok(Worker {
            index,
            operator: Operator::new(spec.window, mode, spec.fields(), state),
            instance: module.instantiate().map_err(|e| Error::Instantiate(format!("{e:#}")))?,
            mode,
            width: spec.schema.fields.len(),
            bounds: spec.transform.bounds,
            key_type: spec.schema.key_type,
            max_delay: spec.transform.max_delay,
            pending_since: None,
            tx,
            metrics,
            stop,
            dead: Vec::new(),
            late: Vec::new(),
            snapshots,
        })
    }

    fn cancelled(&self) -> bool {
        self.stop.cancelled()
    }

    /// Assign a chunk's events to windows, move to its watermark, and pass
    /// its control message on. Once cancelled, returns at the next event
    /// or call without passing anything on.
    pub fn chunk(&mut self, routed: Routed) -> Result<()> {
        if self.cancelled() {
            return Ok(());
        }
        if let Some(snapshot) = &routed.restore {
            let keys = self.operator.restore(snapshot, |_| true).map_err(Error::Restore)?;
            tracing::debug!(worker = self.index, keys, "state restored");
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
            if self.cancelled() {
                return Ok(());
            }
        }
        self.dead.extend(routed.dead);
        // At a barrier, fired windows do not wait for more: their rows
        // belong before it.
        let flush = routed.flush || routed.control.is_some();
        match self.step(routed.watermark, Instant::now(), flush) {
            Err(Error::Stopped) => return Ok(()),
            r => r?,
        }
        self.operator.spill();
        let io = self.operator.take_state_io();
        Metrics::add(&self.metrics.state_spilled, io.spilled);
        Metrics::add(&self.metrics.state_loaded, io.loaded);
        self.check_state()?;
        match routed.control {
            Some(control) if !self.cancelled() => self.barrier(routed.seq, control),
            _ => Ok(()),
        }
    }

    /// Every output of the steps up to `seq` has been sent: pass the
    /// barrier on, with how old the state is (see `progress`).
    fn barrier(&mut self, seq: u64, control: Control) -> Result<()> {
        debug_assert_eq!(self.operator.pending_windows(), 0, "a flushed step leaves no window waiting");
        let written = Written { seq, oldest: self.operator.oldest_state() };
        if self.snapshots.is_some() {
            let snapshot = self.operator.snapshot();
            self.check_state()?;
            // The coordinator may be gone (the outputs failed): the send
            // of the barrier below says so.
            if let Some(snapshots) = &self.snapshots {
                let _ = snapshots.send(WorkerSnapshot { epoch: control.epoch(), snapshot });
            }
        }
        self.send(OutputMessage::Barrier { control, written })
    }

    /// Between chunks: late updates and the new watermark. Fired windows
    /// wait for more (a key's consecutive windows then share one copy of
    /// their events in a call) until the call is full or `max_delay`;
    /// aggregates fold their slices, so they are evaluated at once.
    fn step(&mut self, watermark: i64, now: Instant, flush: bool) -> Result<()> {
        let bounds = self.bounds;
        while !self.operator.flush_late(&bounds) {
            self.evaluate_unless_cancelled()?;
        }
        while !self.operator.advance(watermark, &bounds) {
            self.evaluate_unless_cancelled()?;
        }
        if self.mode == Mode::Aggregate {
            while !self.operator.collect_folds(&bounds) {
                self.evaluate_unless_cancelled()?;
            }
            self.evaluate()?;
        } else if self.operator.pending_windows() > 0 {
            let since = *self.pending_since.get_or_insert(now);
            if flush || now.duration_since(since) >= self.max_delay {
                self.evaluate()?;
            }
        }
        // Dead letters of a call cut short by the cancel are not real: the
        // step's records are read again after a restart.
        if self.cancelled() {
            return Err(Error::Stopped);
        }
        self.send_side_outputs()
    }

    /// A full call goes out, unless the pipeline is cancelled: then its
    /// windows are dropped, and so is the rest of the step (a stop at once
    /// must not wait for a backlog of windows).
    fn evaluate_unless_cancelled(&mut self) -> Result<()> {
        if self.cancelled() {
            return Err(Error::Stopped);
        }
        self.evaluate()
    }

    /// A state backend that failed has lost or could not read some key's
    /// windows: nothing computed since may go out.
    fn check_state(&mut self) -> Result<()> {
        match self.operator.take_state_error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn evaluate(&mut self) -> Result<()> {
        self.check_state()?;
        self.pending_since = None;
        let batch = self.operator.take_batch();
        if batch.is_empty() {
            return Ok(());
        }
        let (out, batch) =
            evaluate(&mut self.instance, self.mode, batch, &self.bounds, self.metrics, self.stop, self.key_type);
        self.operator.recycle(batch);
        if let Some((folds, results)) = out.folds {
            self.operator.apply_folds(folds, results);
        }
        Metrics::add(&self.metrics.dead_letters_transform, out.dead.len() as u64);
        self.dead.extend(out.dead);
        if !out.rows.is_empty() {
            Metrics::add(&self.metrics.feature_rows, out.rows.len() as u64);
            self.send(OutputMessage::Features(out.rows))?;
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
            self.send(OutputMessage::DeadLetters(dead))?;
        }
        if !self.late.is_empty() {
            let late = std::mem::take(&mut self.late);
            self.send(OutputMessage::LateEvents(late))?;
        }
        Ok(())
    }

    fn send(&self, message: OutputMessage) -> Result<()> {
        let output = Output { worker: self.index, message };
        self.tx.blocking_send(output).map_err(|_| match self.cancelled() {
            true => Error::Stopped,
            false => Error::Thread("the sinks stopped".into()),
        })
    }
}
