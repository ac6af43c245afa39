//! What the status page charts: each pipeline's throughput, consumer lag
//! and watermark lag, sampled at a fixed interval, the last [`KEPT`]
//! samples of each.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::metrics::Metrics;

/// Samples kept per pipeline: ten minutes at the default interval (5 s).
pub const KEPT: usize = 120;

/// One pipeline at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// When it was taken, ms since the epoch.
    pub at: i64,
    /// Records read per second since the previous sample.
    pub events_per_second: f64,
    /// Records behind the ends of its partitions (a Kafka source).
    pub consumer_lag: Option<i64>,
    /// How far its watermark was behind the wall clock, in ms.
    pub watermark_lag_ms: Option<i64>,
}

/// A pipeline's samples, and what the next one's rate is measured from.
#[derive(Debug, Default)]
struct Series {
    samples: VecDeque<Sample>,
    /// The run sampled last (a restart makes a new one), when, and how
    /// much it had read then.
    last: Option<(Arc<Metrics>, Instant, u64)>,
}

/// The samples of every pipeline of a host.
#[derive(Debug, Default)]
pub struct History {
    series: BTreeMap<String, Series>,
}

impl History {
    /// Sample every pipeline: its name and, when it has run, its run's
    /// metrics. Pipelines not listed are forgotten.
    pub fn record(&mut self, now: Instant, now_ms: i64, pipelines: Vec<(String, Option<Arc<Metrics>>)>) {
        self.series.retain(|name, _| pipelines.iter().any(|(n, _)| n == name));
        for (name, metrics) in pipelines {
            let series = self.series.entry(name).or_default();
            let sample = match &metrics {
                None => Sample { at: now_ms, events_per_second: 0.0, consumer_lag: None, watermark_lag_ms: None },
                Some(m) => {
                    let read = Metrics::get(&m.events_read);
                    // A new run counts from 0, since about the last sample.
                    let (since, before) = match &series.last {
                        Some((run, at, read)) if Arc::ptr_eq(run, m) => (*at, *read),
                        Some((_, at, _)) => (*at, 0),
                        None => (now, read),
                    };
                    let seconds = now.duration_since(since).as_secs_f64();
                    let rate = if seconds > 0.0 { read.saturating_sub(before) as f64 / seconds } else { 0.0 };
                    Sample {
                        at: now_ms,
                        events_per_second: rate,
                        consumer_lag: m.consumer_lag(),
                        watermark_lag_ms: m.watermark().map(|w| now_ms - w),
                    }
                }
            };
            series.last = metrics.map(|m| {
                let read = Metrics::get(&m.events_read);
                (m, now, read)
            });
            if series.samples.len() == KEPT {
                series.samples.pop_front();
            }
            series.samples.push_back(sample);
        }
    }

    /// The samples of `name`, oldest first.
    pub fn samples(&self, name: &str) -> Vec<Sample> {
        self.series.get(name).map(|s| s.samples.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_come_from_successive_samples_of_one_run_and_restart_with_a_new_run() {
        let mut history = History::default();
        let t0 = Instant::now();
        let run = Arc::new(Metrics::default());
        let at = |s: u64| t0 + Duration::from_secs(s);
        Metrics::add(&run.events_read, 500);
        history.record(at(0), 0, vec![("a".into(), Some(run.clone())), ("idle".into(), None)]);
        Metrics::add(&run.events_read, 1_000);
        run.set_watermark(4_000);
        history.record(at(5), 5_000, vec![("a".into(), Some(run.clone())), ("idle".into(), None)]);
        // Restarted: the new run read 300 since the last sample.
        let again = Arc::new(Metrics::default());
        Metrics::add(&again.events_read, 300);
        history.record(at(10), 10_000, vec![("a".into(), Some(again.clone()))]);
        let rates: Vec<f64> = history.samples("a").iter().map(|s| s.events_per_second).collect();
        assert_eq!(rates, [0.0, 200.0, 60.0]);
        assert_eq!(history.samples("a")[1].watermark_lag_ms, Some(1_000));
        assert_eq!(history.samples("idle"), Vec::new(), "a pipeline no longer listed is forgotten");
        for s in 0..KEPT as u64 + 5 {
            history.record(at(15 + s), 15_000 + s as i64 * 1000, vec![("a".into(), Some(again.clone()))]);
        }
        let kept = history.samples("a");
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept.last().map(|s| s.at), Some(15_000 + (KEPT as i64 + 4) * 1000));
    }
}
