//! Every metric the host keeps, named in one place.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one pipeline. Names follow Prometheus conventions; see
/// [`Metrics::render`].
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_read: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_late: AtomicU64,
    pub dead_letters_decode: AtomicU64,
    pub dead_letters_validate: AtomicU64,
    pub dead_letters_transform: AtomicU64,
    /// Records a sink refused for good (too large, say).
    pub dead_letters_sink: AtomicU64,
    /// Dead letters a dead-letter sink refused: lost, and logged.
    pub dead_letters_dropped: AtomicU64,
    pub windows_fired_close: AtomicU64,
    pub windows_fired_event: AtomicU64,
    pub windows_fired_late: AtomicU64,
    pub feature_rows: AtomicU64,
    pub guest_calls: AtomicU64,
    pub guest_failures: AtomicU64,
    /// Calls made again, on part of a failed call's windows.
    pub guest_retries: AtomicU64,
    pub sink_retries: AtomicU64,
    pub keys_expired: AtomicU64,
    /// A bounded source's progress: how much it has read of how much
    /// (bytes of a file, records of the partitions).
    pub source_read: AtomicU64,
    pub source_total: AtomicU64,
    /// The operator's watermark; see [`Metrics::watermark`].
    pub watermark: TimeGauge,
    /// The last barrier every sink has committed (0: none yet).
    pub last_barrier: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Checkpoints that could not be written (the pipeline went on).
    pub checkpoint_failures: AtomicU64,
    /// Size of the last checkpoint.
    pub checkpoint_bytes: AtomicU64,
    /// Time spent writing checkpoints (with `checkpoints`, the mean).
    pub checkpoint_ms: AtomicU64,
    /// RocksDB state: keys written out of memory, and read back.
    pub state_spilled: AtomicU64,
    pub state_loaded: AtomicU64,
}

/// A time gauge (ms since the epoch) that starts unset.
#[derive(Debug)]
pub struct TimeGauge(AtomicI64);

impl Default for TimeGauge {
    fn default() -> Self {
        TimeGauge(AtomicI64::new(i64::MIN))
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Dead letters of every stage.
    pub fn dead_letters(&self) -> u64 {
        let g = Self::get;
        g(&self.dead_letters_decode)
            + g(&self.dead_letters_validate)
            + g(&self.dead_letters_transform)
            + g(&self.dead_letters_sink)
    }

    /// Only a real watermark: not before the first event, nor the final
    /// one of a bounded input.
    pub fn set_watermark(&self, watermark: i64) {
        if watermark != i64::MAX {
            self.watermark.0.store(watermark, Ordering::Relaxed);
        }
    }

    pub fn watermark(&self) -> Option<i64> {
        Some(self.watermark.0.load(Ordering::Relaxed)).filter(|&w| w != i64::MIN)
    }

    /// (name, labels, value) of every counter.
    pub fn samples(&self) -> Vec<(&'static str, &'static str, u64)> {
        let g = Self::get;
        vec![
            ("sluice_events_read_total", "", g(&self.events_read)),
            ("sluice_events_accepted_total", "", g(&self.events_accepted)),
            ("sluice_events_late_total", "", g(&self.events_late)),
            ("sluice_dead_letters_total", "stage=\"decode\"", g(&self.dead_letters_decode)),
            ("sluice_dead_letters_total", "stage=\"validate\"", g(&self.dead_letters_validate)),
            ("sluice_dead_letters_total", "stage=\"transform\"", g(&self.dead_letters_transform)),
            ("sluice_dead_letters_total", "stage=\"sink\"", g(&self.dead_letters_sink)),
            ("sluice_dead_letters_dropped_total", "", g(&self.dead_letters_dropped)),
            ("sluice_windows_fired_total", "trigger=\"close\"", g(&self.windows_fired_close)),
            ("sluice_windows_fired_total", "trigger=\"event\"", g(&self.windows_fired_event)),
            ("sluice_windows_fired_total", "trigger=\"late\"", g(&self.windows_fired_late)),
            ("sluice_feature_rows_total", "", g(&self.feature_rows)),
            ("sluice_guest_calls_total", "", g(&self.guest_calls)),
            ("sluice_guest_failures_total", "", g(&self.guest_failures)),
            ("sluice_guest_retries_total", "", g(&self.guest_retries)),
            ("sluice_sink_retries_total", "", g(&self.sink_retries)),
            ("sluice_keys_expired_total", "", g(&self.keys_expired)),
            ("sluice_checkpoints_total", "", g(&self.checkpoints)),
            ("sluice_checkpoint_failures_total", "", g(&self.checkpoint_failures)),
            ("sluice_checkpoint_last_bytes", "", g(&self.checkpoint_bytes)),
            ("sluice_checkpoint_duration_ms_total", "", g(&self.checkpoint_ms)),
            ("sluice_state_keys_spilled_total", "", g(&self.state_spilled)),
            ("sluice_state_keys_loaded_total", "", g(&self.state_loaded)),
        ]
    }

    /// Prometheus text exposition, with the pipeline as a label.
    pub fn render(&self, pipeline: &str) -> String {
        let mut out = String::new();
        for (name, labels, value) in self.samples() {
            let sep = if labels.is_empty() { "" } else { "," };
            out.push_str(&format!("{name}{{pipeline=\"{pipeline}\"{sep}{labels}}} {value}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_labels() {
        let m = Metrics::default();
        Metrics::add(&m.events_read, 3);
        Metrics::add(&m.dead_letters_transform, 2);
        let text = m.render("clicks");
        assert!(text.contains("sluice_events_read_total{pipeline=\"clicks\"} 3\n"), "{text}");
        assert!(text.contains("sluice_dead_letters_total{pipeline=\"clicks\",stage=\"transform\"} 2\n"), "{text}");
        assert_eq!(text.lines().count(), m.samples().len());
    }
}
