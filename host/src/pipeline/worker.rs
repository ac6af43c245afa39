//! A worker: the window state and module instance of one share of the keys.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use sluice_sink_api::{DeadLetter, LateEvent, Position};
use tokio::sync::mpsc::Sender;

use super::reader::Routed;
use super::{Error, Output, Result, evaluate, kinds};
use crate::decode;
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::wasm::{Instance, Module};
use crate::window::{Mode, Operator};

pub(super) struct Worker<'a> {
    operator: Operator,
    instance: Instance,
    mode: Mode,
    width: usize,
    max_batch: usize,
    max_delay: Duration,
    /// When the oldest window waiting for a call fired.
    pending_since: Option<Instant>,
    tx: &'a Sender<Output>,
    metrics: &'a Metrics,
    dead: Vec<DeadLetter>,
    late: Vec<LateEvent>,
}

impl<'a> Worker<'a> {
    pub fn new(manifest: &Manifest, module: &Module, tx: &'a Sender<Output>, metrics: &'a Metrics) -> Result<Self> {
        let mode = kinds(manifest).1;
        Ok(Worker {
            operator: Operator::in_memory(manifest.window_spec(), mode, manifest.fields()),
            instance: module.instantiate().map_err(|e| Error::Instantiate(format!("{e:#}")))?,
            mode,
            width: manifest.events.fields.len(),
            max_batch: manifest.transform.max_batch,
            max_delay: manifest.transform.max_delay.std(),
            pending_since: None,
            tx,
            metrics,
            dead: Vec::new(),
            late: Vec::new(),
        })
    }

    /// Assign a chunk's events to windows, then move to its watermark.
    pub fn chunk(&mut self, routed: &Routed) -> Result<()> {
        let mut event = decode::Event { key: Cow::Borrowed(""), time: 0, values: Vec::with_capacity(self.width) };
        for (n, (record, time, key)) in routed.events.iter().enumerate() {
            event.key = Cow::Borrowed(routed.text(key));
            event.time = *time;
            event.values.clear();
            let fields = routed.fields.get(n * self.width..(n + 1) * self.width).unwrap_or_default();
            event.values.extend(fields.iter().map(|f| routed.value(f)));
            if let Err(late) = self.operator.process(&event)
                && let Some(r) = routed.chunk.record(*record as usize)
            {
                self.late.push(LateEvent {
                    raw: r.bytes.to_vec(),
                    position: Position {
                        source: routed.chunk.source.to_string(),
                        partition: r.partition as i32,
                        offset: r.offset,
                    },
                    event_time: *time,
                    watermark: late.watermark,
                    key: event.key.to_string(),
                });
            }
            if self.operator.pending_windows() >= self.max_batch {
                self.evaluate()?;
            }
        }
        self.step(routed.watermark, Instant::now(), false)
    }

    /// The end of a bounded input: the final watermark, and everything out.
    pub fn finish(&mut self) -> Result<()> {
        self.step(i64::MAX, Instant::now(), true)
    }

    /// Between chunks: late updates and the new watermark. Fired windows
    /// wait for more (a key's consecutive windows then share one copy of
    /// their events in a call) until `max_batch` of them or `max_delay`;
    /// aggregates fold their slices, so they are evaluated at once.
    fn step(&mut self, watermark: i64, now: Instant, last: bool) -> Result<()> {
        self.operator.flush_late();
        while !self.operator.advance(watermark, self.max_batch) {
            self.evaluate()?;
        }
        if self.mode == Mode::Aggregate {
            self.operator.collect_folds();
            self.evaluate()?;
        } else if self.operator.pending_windows() > 0 {
            let since = *self.pending_since.get_or_insert(now);
            if last || now.duration_since(since) >= self.max_delay {
                self.evaluate()?;
            }
        }
        self.send_side_outputs()
    }

    fn evaluate(&mut self) -> Result<()> {
        self.pending_since = None;
        let batch = self.operator.take_batch();
        if batch.is_empty() {
            return Ok(());
        }
        let (out, batch) = evaluate(&mut self.instance, self.mode, batch, self.metrics);
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
