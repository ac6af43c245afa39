//! Calling the transform for a batch, and turning what it returns (or how
//! it failed) into feature rows and dead letters.

use sluice_sink_api::{DeadLetter, FeatureRow, Stage};

use crate::metrics::Metrics;
use crate::time::now_ms;
use crate::wasm::{CallError, Instance};
use crate::window::{Batch, Fired, Fold, Mode};

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

fn dead_window(batch: &Batch, w: &Fired, class: &str, message: String) -> DeadLetter {
    DeadLetter {
        raw: batch.window_json(w),
        position: None,
        stage: Stage::Transform,
        error_class: class.to_string(),
        message: format!("window [{}, {}) of key `{}`: {message}", w.start, w.end, w.key),
        at: now_ms(),
    }
}

fn row(w: &Fired, features: sluice_sink_api::Features, computed_at: i64) -> FeatureRow {
    FeatureRow {
        key: w.key.clone(),
        window_start: w.start,
        window_end: w.end,
        event_time: w.latest,
        trigger: w.trigger,
        features,
        computed_at,
    }
}

fn count_call<T>(metrics: &Metrics, r: &Result<T, CallError>) {
    Metrics::add(&metrics.guest_calls, 1);
    if r.is_err() {
        Metrics::add(&metrics.guest_failures, 1);
    }
}

/// Run `batch` through the transform; the batch comes back for reuse.
pub fn evaluate(instance: &mut Instance, mode: Mode, mut batch: Batch, metrics: &Metrics) -> (Evaluated, Batch) {
    let out = match mode {
        Mode::Window => {
            let results = instance.process(&mut batch);
            count_call(metrics, &results);
            let computed_at = now_ms();
            let mut out = Evaluated::default();
            match results {
                Ok(results) => {
                    for (w, r) in batch.windows.iter().zip(results) {
                        match r {
                            Ok(features) => out.rows.push(row(w, features, computed_at)),
                            Err(message) => out.dead.push(dead_window(&batch, w, "transform_error", message)),
                        }
                    }
                }
                Err(e) => {
                    out.dead = batch.windows.iter().map(|w| dead_window(&batch, w, e.class(), e.to_string())).collect();
                }
            }
            out
        }
        Mode::Aggregate => aggregate(instance, &mut batch, metrics),
    };
    (out, batch)
}

/// Aggregates: merge each window's slice accumulators, add its unfolded
/// events, finish; and fold the batch's slices, in three calls.
fn aggregate(instance: &mut Instance, batch: &mut Batch, metrics: &Metrics) -> Evaluated {
    let mut out = Evaluated::default();
    let mut windows = std::mem::take(&mut batch.windows);
    let folds = std::mem::take(&mut batch.folds);
    // Per window: the accumulator so far, or why it failed.
    let mut accs: Vec<Result<Vec<u8>, (String, String)>> = Vec::with_capacity(windows.len());
    if !windows.is_empty() {
        let groups: Vec<Vec<Vec<u8>>> = windows.iter_mut().map(|w| std::mem::take(&mut w.accs)).collect();
        let merged = instance.merge(&groups);
        count_call(metrics, &merged);
        match merged {
            Ok(m) => accs.extend(m.into_iter().map(|r| r.map_err(|e| ("transform_error".to_string(), e)))),
            Err(e) => accs.extend(windows.iter().map(|_| Err((e.class().to_string(), e.to_string())))),
        }
    }
    let mut groups: Vec<(Option<Vec<u8>>, Vec<u32>)> = Vec::new();
    let mut added_windows = Vec::new();
    for (i, (w, acc)) in windows.iter().zip(&accs).enumerate() {
        if let Ok(acc) = acc
            && !w.rows.is_empty()
        {
            groups.push((Some(acc.clone()), w.rows.clone()));
            added_windows.push(i);
        }
    }
    groups.extend(folds.iter().map(|f| (f.acc.clone(), f.rows.clone())));
    let mut fold_results: Vec<Option<Vec<u8>>> = vec![None; folds.len()];
    if !groups.is_empty() {
        let added = instance.add(batch, groups);
        count_call(metrics, &added);
        match added {
            Ok(results) => {
                let mut results = results.into_iter();
                for &i in &added_windows {
                    if let Some(r) = results.next() {
                        accs[i] = r.map_err(|e| ("transform_error".to_string(), e));
                    }
                }
                for (slot, (fold, r)) in fold_results.iter_mut().zip(folds.iter().zip(results)) {
                    match r {
                        Ok(acc) => *slot = Some(acc),
                        Err(e) => out.dead.push(dead_fold(batch, fold, "transform_error", e)),
                    }
                }
            }
            Err(e) => {
                for &i in &added_windows {
                    accs[i] = Err((e.class().to_string(), e.to_string()));
                }
                out.dead.extend(folds.iter().map(|f| dead_fold(batch, f, e.class(), e.to_string())));
            }
        }
    }
    let mut ready: Vec<(&Fired, Vec<u8>)> = Vec::with_capacity(windows.len());
    for (w, acc) in windows.iter().zip(accs) {
        match acc {
            Ok(acc) => ready.push((w, acc)),
            Err((class, message)) => out.dead.push(dead_window(batch, w, &class, message)),
        }
    }
    if !ready.is_empty() {
        let finished = instance.finish(&mut ready);
        count_call(metrics, &finished);
        let computed_at = now_ms();
        match finished {
            Ok(results) => {
                for ((w, _), r) in ready.iter().zip(results) {
                    match r {
                        Ok(features) => out.rows.push(row(w, features, computed_at)),
                        Err(message) => out.dead.push(dead_window(batch, w, "transform_error", message)),
                    }
                }
            }
            Err(e) => out.dead.extend(ready.iter().map(|(w, _)| dead_window(batch, w, e.class(), e.to_string()))),
        }
    }
    out.folds = Some((folds, fold_results));
    out
}

fn dead_fold(batch: &Batch, fold: &Fold, class: &str, message: String) -> DeadLetter {
    DeadLetter {
        raw: batch.rows_json(&fold.rows),
        position: None,
        stage: Stage::Transform,
        error_class: class.to_string(),
        message: format!("folding events into an accumulator: {message}"),
        at: now_ms(),
    }
}
