//! Calling the transform for a batch, and turning what it returns (or how
//! it failed) into feature rows and dead letters.
//!
//! A batch over its bounds (the operator can overshoot by the one window
//! that filled it) goes out as several calls. A call that fails as a whole
//! (trap, deadline, memory) is split in two and each half retried on a
//! fresh instance, until the failing windows are alone: only they are
//! dead-lettered, each under its own key. After a timeout each half gets
//! half the deadline (it holds about half the work), and a window alone
//! gets the whole of it, so a window that loops costs about three times
//! `transform.timeout` however large its batch.

use std::ops::Range;
use std::time::Duration;

use sluice_sink_api::{DeadLetter, EntityKey, FeatureRow, KeyType, Stage};

use super::control::Stop;
use crate::metrics::Metrics;
use crate::time::now_ms;
use crate::wasm::{AddGroup, CallError, Instance, RowError};
use crate::window::{Batch, Bounds, Fired, Fold, Mode};

/// Aggregate slices and their new accumulators (`None` where the fold
/// failed), for [`crate::window::Operator::apply_folds`].
pub type Folded = (Vec<Fold>, Vec<Option<Vec<u8>>>);

/// What a batch produced.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub rows: Vec<FeatureRow>,
    pub dead: Vec<DeadLetter>,
    pub folds: Option<Folded>,
}

/// The shortest deadline a retried half gets.
const MIN_DEADLINE: Duration = Duration::from_millis(50);

fn dead_window(batch: &Batch, w: &Fired, class: &str, message: String) -> DeadLetter {
    let message = format!("window [{}, {}) of key `{}`: {message}", w.start, w.end, w.key);
    DeadLetter::new(batch.window_json(w), None, Stage::Transform, class, message)
}

fn dead_fold(batch: &Batch, fold: &Fold, class: &str, message: String) -> DeadLetter {
    let message = format!("folding events into an accumulator: {message}");
    DeadLetter::new(batch.rows_json(&fold.rows), None, Stage::Transform, class, message)
}

fn row(w: &Fired, features: sluice_sink_api::Features, computed_at: i64, key_type: KeyType) -> FeatureRow {
    FeatureRow {
        key: EntityKey::typed(&w.key, key_type),
        window_start: w.start,
        window_end: w.end,
        event_time: w.latest,
        trigger: w.trigger,
        features,
        computed_at,
    }
}

/// Why one input of a call failed: its own error, or the whole call's.
#[derive(Debug, Clone)]
enum Failure {
    Row(RowError),
    Call(CallError),
}

impl Failure {
    fn class(&self) -> &'static str {
        match self {
            Failure::Row(e) => e.class,
            Failure::Call(e) => e.class(),
        }
    }

    fn message(self) -> String {
        match self {
            Failure::Row(e) => e.message,
            Failure::Call(e) => e.to_string(),
        }
    }
}

/// A call on a range of a batch's inputs, under a deadline: one result per
/// input, or the whole call's failure.
type Call<'c, R> = dyn FnMut(&mut Instance, Range<usize>, Duration) -> Result<Vec<Result<R, RowError>>, CallError> + 'c;

/// Makes calls into one instance and isolates the inputs that make a call
/// fail (see the module's comment).
struct Caller<'a> {
    instance: &'a mut Instance,
    metrics: &'a Metrics,
    timeout: Duration,
    /// Cancelled: a failed call is not split any more (its windows'
    /// results are not sent; they are read again after a restart).
    stop: &'a Stop,
    /// How the rows' keys are typed.
    key_type: KeyType,
}

impl Caller<'_> {
    /// One result per input of `range`, calling `call` on ranges of inputs;
    /// `weights` (one per input) balance the halves of a split.
    fn isolate<R>(
        &mut self,
        range: Range<usize>,
        deadline: Duration,
        weights: &[usize],
        call: &mut Call<'_, R>,
    ) -> Vec<Result<R, Failure>> {
        Metrics::add(&self.metrics.guest_calls, 1);
        let started = std::time::Instant::now();
        let called = call(self.instance, range.clone(), deadline);
        self.metrics.guest_call_seconds.observe(started.elapsed());
        let error = match called {
            Ok(results) => return results.into_iter().map(|r| r.map_err(Failure::Row)).collect(),
            Err(e) => e,
        };
        Metrics::add(&self.metrics.guest_failures, 1);
        if range.len() <= 1 || self.stop.cancelled() {
            return range.map(|_| Err(Failure::Call(error.clone()))).collect();
        }
        let total: usize = weights[range.clone()].iter().sum();
        let mut mid = range.start + 1;
        let mut left = weights[range.start];
        while mid + 1 < range.end && (left + weights[mid]) * 2 <= total {
            left += weights[mid];
            mid += 1;
        }
        let mut out = Vec::with_capacity(range.len());
        for half in [range.start..mid, mid..range.end] {
            let deadline = match &error {
                _ if half.len() == 1 => self.timeout,
                CallError::Timeout(_) => (deadline / 2).max(MIN_DEADLINE),
                _ => deadline,
            };
            Metrics::add(&self.metrics.guest_retries, 1);
            out.extend(self.isolate(half, deadline, weights, call));
        }
        out
    }
}

/// Run `batch` through the transform in calls within `bounds`; the batch
/// comes back for reuse.
pub fn evaluate(
    instance: &mut Instance,
    mode: Mode,
    mut batch: Batch,
    bounds: &Bounds,
    metrics: &Metrics,
    stop: &Stop,
    key_type: KeyType,
) -> (Evaluated, Batch) {
    let timeout = instance.timeout();
    let mut caller = Caller { instance, metrics, timeout, stop, key_type };
    let out = match mode {
        Mode::Window => windows(&mut caller, &mut batch, bounds),
        Mode::Aggregate => aggregate(&mut caller, &mut batch),
    };
    (out, batch)
}

/// Window transforms: each part within the bounds in its own call.
fn windows(caller: &mut Caller<'_>, batch: &mut Batch, bounds: &Bounds) -> Evaluated {
    let parts = plan(batch, bounds);
    let mut results: Vec<Result<sluice_sink_api::Features, Failure>> = Vec::with_capacity(batch.windows.len());
    let weights: Vec<usize> = batch.windows.iter().map(|w| w.rows.len().max(1)).collect();
    let (n, timeout) = (batch.windows.len(), caller.timeout);
    for part in parts {
        // The whole batch goes as it is; a part, and every retry, as a
        // copy of just its events.
        let mut call = |instance: &mut Instance, range: Range<usize>, deadline: Duration| {
            let (offset, len) = (range.start, range.len());
            if len == n {
                instance.process(batch, deadline)
            } else {
                let mut sub = batch.subset(range);
                debug_assert_eq!(sub.windows.len(), len, "part at {offset}");
                instance.process(&mut sub, deadline)
            }
        };
        results.extend(caller.isolate(part, timeout, &weights, &mut call));
    }
    let computed_at = now_ms();
    let mut out = Evaluated::default();
    for (w, r) in batch.windows.iter().zip(results) {
        match r {
            Ok(features) => out.rows.push(row(w, features, computed_at, caller.key_type)),
            Err(f) => out.dead.push(dead_window(batch, w, f.class(), f.message())),
        }
    }
    out
}

/// Contiguous runs of the batch's windows, each within `bounds` (a window
/// over them alone). The whole batch when it is within them, which is the
/// usual case: the operator stops before a window that does not fit.
fn plan(batch: &Batch, bounds: &Bounds) -> Vec<Range<usize>> {
    let n = batch.windows.len();
    if n <= bounds.windows && batch.refs <= bounds.rows && batch.bytes <= bounds.bytes {
        return std::iter::once(0..n).collect();
    }
    // A row's bytes count once per part: `seen` holds the part that last
    // counted it.
    let mut seen = vec![usize::MAX; batch.times.len()];
    let mut parts = Vec::new();
    let (mut start, mut refs, mut bytes) = (0, 0, 0);
    for (i, w) in batch.windows.iter().enumerate() {
        let new: usize =
            w.rows.iter().filter(|&&r| seen.get(r as usize) != Some(&start)).map(|&r| batch.row_bytes(r)).sum();
        let fits = i - start < bounds.windows && refs + w.rows.len() <= bounds.rows && bytes + new <= bounds.bytes;
        if i > start && !fits {
            parts.push(start..i);
            (start, refs, bytes) = (i, 0, 0);
        }
        for &r in &w.rows {
            if let Some(p) = seen.get_mut(r as usize).filter(|p| **p != start) {
                *p = start;
                bytes += batch.row_bytes(r);
            }
        }
        refs += w.rows.len();
    }
    parts.push(start..n);
    parts
}

/// Aggregates: merge each window's slice accumulators, add its unfolded
/// events, finish; and fold the batch's slices, in three calls.
fn aggregate(caller: &mut Caller<'_>, batch: &mut Batch) -> Evaluated {
    let mut out = Evaluated::default();
    let mut windows = std::mem::take(&mut batch.windows);
    let folds = std::mem::take(&mut batch.folds);
    let timeout = caller.timeout;
    // Per window: the accumulator so far, or why it failed.
    let groups: Vec<Vec<Vec<u8>>> = windows.iter_mut().map(|w| std::mem::take(&mut w.accs)).collect();
    let weights: Vec<usize> = groups.iter().map(|g| g.len().max(1)).collect();
    let mut accs: Vec<Result<Vec<u8>, Failure>> = if groups.is_empty() {
        Vec::new()
    } else {
        let mut merge = |i: &mut Instance, r: Range<usize>, d: Duration| i.merge(&groups[r], d);
        caller.isolate(0..groups.len(), timeout, &weights, &mut merge)
    };
    let mut adds: Vec<AddGroup> = Vec::new();
    let mut added_windows = Vec::new();
    for (i, (w, acc)) in windows.iter().zip(&accs).enumerate() {
        if let Ok(acc) = acc
            && !w.rows.is_empty()
        {
            adds.push(AddGroup { acc: Some(acc.clone()), rows: w.rows.clone() });
            added_windows.push(i);
        }
    }
    adds.extend(folds.iter().map(|f| AddGroup { acc: f.acc.clone(), rows: f.rows.clone() }));
    let mut fold_results: Vec<Option<Vec<u8>>> = vec![None; folds.len()];
    if !adds.is_empty() {
        let weights: Vec<usize> = adds.iter().map(|g| g.rows.len().max(1)).collect();
        let events = &*batch;
        let mut add = |i: &mut Instance, r: Range<usize>, d: Duration| i.add(events, &adds[r], d);
        let mut results = caller.isolate(0..adds.len(), timeout, &weights, &mut add).into_iter();
        for &i in &added_windows {
            if let Some(r) = results.next() {
                accs[i] = r;
            }
        }
        for (slot, (fold, r)) in fold_results.iter_mut().zip(folds.iter().zip(results)) {
            match r {
                Ok(acc) => *slot = Some(acc),
                Err(f) => out.dead.push(dead_fold(batch, fold, f.class(), f.message())),
            }
        }
    }
    let mut ready: Vec<(&Fired, Vec<u8>)> = Vec::with_capacity(windows.len());
    for (w, acc) in windows.iter().zip(accs) {
        match acc {
            Ok(acc) => ready.push((w, acc)),
            Err(f) => out.dead.push(dead_window(batch, w, f.class(), f.message())),
        }
    }
    if !ready.is_empty() {
        let weights = vec![1; ready.len()];
        let mut finish = |i: &mut Instance, r: Range<usize>, d: Duration| i.finish(&ready[r], d);
        let finished = caller.isolate(0..ready.len(), timeout, &weights, &mut finish);
        let computed_at = now_ms();
        for ((w, _), r) in ready.iter().zip(finished) {
            match r {
                Ok(features) => out.rows.push(row(w, features, computed_at, caller.key_type)),
                Err(f) => out.dead.push(dead_window(batch, w, f.class(), f.message())),
            }
        }
    }
    batch.windows = windows;
    out.folds = Some((folds, fold_results));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{Column, ColumnData};
    use sluice_sink_api::Trigger;

    /// Ten events of one integer field (16 bytes a row), and windows over
    /// rows `[0, 3)`, `[1, 4)` and `[4, 10)`.
    fn batch() -> Batch {
        let column = Column { name: "n".into(), data: ColumnData::Ints((0..10).collect()), nulls: Vec::new() };
        let mut b = Batch { times: (0..10).collect(), columns: vec![column], ..Batch::default() };
        for rows in [0..3, 1..4, 4..10] {
            let (key, start, end, latest, trigger) = ("k".to_string(), 0, 10, 9, Trigger::Close);
            b.push_window(Fired { key, start, end, latest, trigger, rows: rows.collect(), accs: Vec::new() });
        }
        b.bytes = 10 * 16;
        b
    }

    #[test]
    fn a_batch_over_its_bounds_goes_in_parts_and_a_large_window_alone() {
        let b = batch();
        let all = Bounds { windows: 3, rows: 12, bytes: 160 };
        assert_eq!(plan(&b, &all), vec![0..3]);
        // Rows: 3, then 3 + 3 > 5, then 6 alone.
        assert_eq!(plan(&b, &Bounds { rows: 5, ..all }), vec![0..1, 1..2, 2..3]);
        // Bytes count shared rows once: the first two windows hold four
        // rows (64 bytes); the third's six (96) go alone.
        assert_eq!(plan(&b, &Bounds { bytes: 64, ..all }), vec![0..2, 2..3]);
        assert_eq!(plan(&b, &Bounds { windows: 2, ..all }), vec![0..2, 2..3]);
    }
}
