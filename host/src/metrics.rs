//! Every metric the host keeps, named in one place: the counters a
//! pipeline updates as it runs, and [`exposition`], which renders those of
//! every pipeline of a host for Prometheus (with `prometheus-client`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use sluice_sink_api::DeadLetter;

/// Counters of one pipeline; [`COUNTERS`] and [`exposition`] name them
/// for Prometheus.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_read: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_late: AtomicU64,
    pub dead_letters_decode: AtomicU64,
    /// Times a chunk could not be decoded yet because what decoding needs
    /// did not answer (a schema registry): it is held and tried again.
    pub decode_waits: AtomicU64,
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
    /// How long calls into the module take.
    pub guest_call_seconds: Latency,
    /// How long a sink takes to write a batch (retries included).
    pub sink_write_seconds: Latency,
    /// How long checkpoints take to write.
    pub checkpoint_seconds: Latency,
    /// Each partition the source reads, and how far behind its end.
    pub partitions: Mutex<Vec<PartitionLag>>,
    /// Why the source reads nothing, when something outside it holds it
    /// up (see [`crate::source::Source::waiting`]).
    pub waiting: Mutex<Option<String>>,
    /// The last [`RECENT_DEAD_LETTERS`] dead letters, oldest first.
    pub recent_dead_letters: Mutex<VecDeque<DeadLetterNote>>,
}

/// How many dead letters [`Metrics::recent_dead_letters`] keeps.
pub const RECENT_DEAD_LETTERS: usize = 20;
/// Most characters of a dead letter's input a [`DeadLetterNote`] shows.
const EXCERPT_CHARS: usize = 160;

/// Where a pipeline is in one partition of its input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The next offset the pipeline reads.
    pub position: i64,
    /// The partition's end (its high watermark) as the broker last told
    /// it; unknown until the first fetch answers.
    pub end: Option<i64>,
    /// Records between the position and the end: the consumer lag.
    pub lag: Option<i64>,
}

impl PartitionLag {
    pub fn new(topic: &str, partition: i32, position: i64, end: Option<i64>) -> Self {
        let lag = end.map(|e| (e - position).max(0));
        PartitionLag { topic: topic.to_string(), partition, position, end, lag }
    }
}

/// A dead letter as the status page lists it: why, where, and the start
/// of its input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterNote {
    /// When it was made, ms since the epoch.
    pub at: i64,
    /// `decode`, `validate`, `transform` or `sink`.
    pub stage: String,
    pub error_class: String,
    pub message: String,
    /// `topic[partition]@offset` (a file: `path[0]@line`), when known.
    pub position: Option<String>,
    /// The first characters of its input.
    pub excerpt: String,
}

impl DeadLetterNote {
    fn of(d: &DeadLetter) -> Self {
        let text = String::from_utf8_lossy(&d.raw);
        let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
        if excerpt.len() < text.len() {
            excerpt.push('…');
        }
        let stage = serde_json::to_value(d.stage).ok().and_then(|v| v.as_str().map(str::to_string));
        DeadLetterNote {
            at: d.at,
            stage: stage.unwrap_or_default(),
            error_class: d.error_class.clone(),
            message: d.message.clone(),
            position: d.position.as_ref().map(|p| format!("{}[{}]@{}", p.source, p.partition, p.offset)),
            excerpt,
        }
    }
}

/// A distribution of durations, in seconds.
#[derive(Debug)]
pub struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        // 100 µs to 26 s, four times wider a bucket.
        Latency(Histogram::new(exponential_buckets(0.000_1, 4.0, 10)))
    }
}

impl Latency {
    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed.as_secs_f64());
    }
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

    pub fn set_partitions(&self, partitions: Vec<PartitionLag>) {
        *self.partitions.lock().unwrap_or_else(PoisonError::into_inner) = partitions;
    }

    pub fn set_waiting(&self, waiting: Option<String>) {
        *self.waiting.lock().unwrap_or_else(PoisonError::into_inner) = waiting;
    }

    pub fn waiting(&self) -> Option<String> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn partitions(&self) -> Vec<PartitionLag> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The records behind the ends of all partitions whose end is known.
    pub fn consumer_lag(&self) -> Option<i64> {
        let partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        partitions.iter().filter_map(|p| p.lag).reduce(|a, b| a + b)
    }

    /// Keep the newest of `letters` among the recent ones.
    pub fn note_dead_letters(&self, letters: &[DeadLetter]) {
        let skip = letters.len().saturating_sub(RECENT_DEAD_LETTERS);
        let mut recent = self.recent_dead_letters.lock().unwrap_or_else(PoisonError::into_inner);
        for d in &letters[skip..] {
            if recent.len() == RECENT_DEAD_LETTERS {
                recent.pop_front();
            }
            recent.push_back(DeadLetterNote::of(d));
        }
    }

    pub fn recent_dead_letters(&self) -> Vec<DeadLetterNote> {
        self.recent_dead_letters.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

/// A counter as Prometheus names it.
#[derive(Debug)]
pub struct Counter {
    /// Without `_total`, which the exposition adds.
    pub name: &'static str,
    pub help: &'static str,
    /// Tells apart the series of one name.
    pub label: Option<(&'static str, &'static str)>,
    pub read: fn(&Metrics) -> u64,
}

const fn counter(
    name: &'static str,
    help: &'static str,
    label: Option<(&'static str, &'static str)>,
    read: fn(&Metrics) -> u64,
) -> Counter {
    Counter { name, help, label, read }
}

/// Every counter. Rows of one name are together; the first has the help.
pub const COUNTERS: &[Counter] = &[
    counter("sluice_events_read", "Records read from the source.", None, |m| Metrics::get(&m.events_read)),
    counter("sluice_events_accepted", "Events decoded and put in windows.", None, |m| Metrics::get(&m.events_accepted)),
    counter("sluice_events_late", "Events past their windows' allowed lateness.", None, |m| {
        Metrics::get(&m.events_late)
    }),
    counter(
        "sluice_dead_letters",
        "Records and windows sent to the dead letters, by stage.",
        Some(("stage", "decode")),
        |m| Metrics::get(&m.dead_letters_decode),
    ),
    counter("sluice_dead_letters", "", Some(("stage", "validate")), |m| Metrics::get(&m.dead_letters_validate)),
    counter("sluice_dead_letters", "", Some(("stage", "transform")), |m| Metrics::get(&m.dead_letters_transform)),
    counter("sluice_dead_letters", "", Some(("stage", "sink")), |m| Metrics::get(&m.dead_letters_sink)),
    counter(
        "sluice_decode_waits",
        "Times records were held because what decoding them needs (a schema registry) did not answer.",
        None,
        |m| Metrics::get(&m.decode_waits),
    ),
    counter("sluice_dead_letters_dropped", "Dead letters a dead-letter sink refused (lost, logged).", None, |m| {
        Metrics::get(&m.dead_letters_dropped)
    }),
    counter("sluice_windows_fired", "Windows fired, by trigger.", Some(("trigger", "close")), |m| {
        Metrics::get(&m.windows_fired_close)
    }),
    counter("sluice_windows_fired", "", Some(("trigger", "event")), |m| Metrics::get(&m.windows_fired_event)),
    counter("sluice_windows_fired", "", Some(("trigger", "late")), |m| Metrics::get(&m.windows_fired_late)),
    counter("sluice_feature_rows", "Feature rows computed.", None, |m| Metrics::get(&m.feature_rows)),
    counter("sluice_guest_calls", "Calls into the transform module.", None, |m| Metrics::get(&m.guest_calls)),
    counter("sluice_guest_failures", "Calls that trapped, timed out or broke the contract.", None, |m| {
        Metrics::get(&m.guest_failures)
    }),
    counter("sluice_guest_retries", "Calls made again on part of a failed call's windows.", None, |m| {
        Metrics::get(&m.guest_retries)
    }),
    counter("sluice_sink_retries", "Sink operations retried.", None, |m| Metrics::get(&m.sink_retries)),
    counter("sluice_keys_expired", "Keys whose state expired.", None, |m| Metrics::get(&m.keys_expired)),
    counter("sluice_checkpoints", "Checkpoints written.", None, |m| Metrics::get(&m.checkpoints)),
    counter("sluice_checkpoint_failures", "Checkpoints that could not be written.", None, |m| {
        Metrics::get(&m.checkpoint_failures)
    }),
    counter("sluice_state_keys_spilled", "Keys written out of memory to RocksDB.", None, |m| {
        Metrics::get(&m.state_spilled)
    }),
    counter("sluice_state_keys_loaded", "Keys read back from RocksDB.", None, |m| Metrics::get(&m.state_loaded)),
];

/// The metrics of a host's pipelines, as one scrape sees them.
#[derive(Debug)]
struct Scrape {
    pipelines: Vec<(String, Arc<Metrics>)>,
    now_ms: i64,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut rows = COUNTERS.iter().peekable();
        while let Some(&first) = rows.peek() {
            let mut family = encoder.encode_descriptor(first.name, first.help, None, MetricType::Counter)?;
            while let Some(&&Counter { label, read, .. }) = rows.peek().filter(|r| r.name == first.name) {
                rows.next();
                for (pipeline, m) in &self.pipelines {
                    let mut labels = vec![("pipeline", pipeline.as_str())];
                    labels.extend(label);
                    ConstCounter::new(read(m)).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        type Gauge = fn(&Scrape, &Metrics) -> Option<i64>;
        let gauges: [(&str, &str, Gauge); 4] = [
            ("sluice_watermark_lag_seconds", "How far the watermark is behind the wall clock.", |s, m| {
                m.watermark().map(|w| (s.now_ms - w) / 1000)
            }),
            ("sluice_watermark_seconds", "The watermark, in seconds since the epoch.", |_, m| {
                m.watermark().map(|w| w / 1000)
            }),
            ("sluice_checkpoint_last_bytes", "Size of the last checkpoint.", |_, m| {
                Some(Metrics::get(&m.checkpoint_bytes) as i64)
            }),
            ("sluice_checkpoint_last_committed", "The last checkpoint every sink has committed (0: none).", |_, m| {
                Some(Metrics::get(&m.last_barrier) as i64)
            }),
        ];
        for (name, help, read) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (pipeline, m) in &self.pipelines {
                if let Some(v) = read(self, m) {
                    ConstGauge::new(v).encode(family.encode_family(&[("pipeline", pipeline.as_str())])?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "sluice_consumer_lag",
            "Records between a partition's end and where the pipeline reads it.",
            None,
            MetricType::Gauge,
        )?;
        for (pipeline, m) in &self.pipelines {
            for p in m.partitions() {
                let Some(lag) = p.lag else { continue };
                let partition = p.partition.to_string();
                let labels =
                    [("pipeline", pipeline.as_str()), ("topic", p.topic.as_str()), ("partition", partition.as_str())];
                ConstGauge::new(lag).encode(family.encode_family(&labels)?)?;
            }
        }
        type Distribution = fn(&Metrics) -> &Latency;
        let histograms: [(&str, &str, Distribution); 3] = [
            ("sluice_guest_call_seconds", "How long calls into the transform module take.", |m| &m.guest_call_seconds),
            ("sluice_sink_write_seconds", "How long a sink takes to write a batch, retries included.", |m| {
                &m.sink_write_seconds
            }),
            ("sluice_checkpoint_seconds", "How long checkpoints take to write.", |m| &m.checkpoint_seconds),
        ];
        for (name, help, read) in histograms {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (pipeline, m) in &self.pipelines {
                read(m).0.encode(family.encode_family(&[("pipeline", pipeline.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// The metrics of `pipelines` (name, metrics) in the OpenMetrics text
/// format Prometheus scrapes, each series labelled with its pipeline.
pub fn exposition(pipelines: Vec<(String, Arc<Metrics>)>) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape { pipelines, now_ms: crate::time::now_ms() }));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text_with_a_label_for_each_pipeline() {
        let (a, b) = (Arc::new(Metrics::default()), Arc::new(Metrics::default()));
        Metrics::add(&a.events_read, 3);
        Metrics::add(&a.dead_letters_transform, 2);
        Metrics::add(&b.events_read, 5);
        a.guest_call_seconds.observe(Duration::from_millis(3));
        a.set_watermark(crate::time::now_ms() - 90_000);
        a.set_partitions(vec![PartitionLag::new("clicks", 3, 40, Some(100)), PartitionLag::new("clicks", 4, 7, None)]);
        let text = exposition(vec![("clicks".into(), a), ("tx".into(), b)]);
        for line in [
            "# TYPE sluice_events_read counter",
            "sluice_events_read_total{pipeline=\"clicks\"} 3",
            "sluice_events_read_total{pipeline=\"tx\"} 5",
            "sluice_dead_letters_total{pipeline=\"clicks\",stage=\"transform\"} 2",
            "sluice_dead_letters_total{pipeline=\"tx\",stage=\"decode\"} 0",
            "sluice_guest_call_seconds_count{pipeline=\"clicks\"} 1",
            // 3 ms is past the 1.6 ms bucket, within the 6.4 ms one.
            "sluice_guest_call_seconds_bucket{le=\"0.0016\",pipeline=\"clicks\"} 0",
            "sluice_guest_call_seconds_bucket{le=\"0.0064\",pipeline=\"clicks\"} 1",
            "sluice_watermark_lag_seconds{pipeline=\"clicks\"} 90",
            "sluice_consumer_lag{pipeline=\"clicks\",topic=\"clicks\",partition=\"3\"} 60",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        // No watermark yet: no sample rather than a made-up one.
        assert!(!text.contains("sluice_watermark_lag_seconds{pipeline=\"tx\"}"), "{text}");
        assert!(!text.contains("partition=\"4\""), "an unknown end is no lag of 0: {text}");
        let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let names: std::collections::BTreeSet<&str> = COUNTERS.iter().map(|c| c.name).collect();
        assert_eq!(families, names.len() + 4 + 1 + 3);
    }

    #[test]
    fn keeps_the_newest_dead_letters_with_an_excerpt_of_each() {
        let m = Metrics::default();
        let letter = |i: usize| {
            let position = Some(sluice_sink_api::Position { source: "clicks".into(), partition: 2, offset: i as i64 });
            let raw = format!("{{\"n\": {i}, \"pad\": \"{}\"}}", "x".repeat(300)).into_bytes();
            DeadLetter::new(raw, position, sluice_sink_api::Stage::Decode, "invalid_json", format!("bad {i}"))
        };
        m.note_dead_letters(&(0..5).map(letter).collect::<Vec<_>>());
        m.note_dead_letters(&(5..30).map(letter).collect::<Vec<_>>());
        let recent = m.recent_dead_letters();
        let messages: Vec<&str> = recent.iter().map(|n| n.message.as_str()).collect();
        let want: Vec<String> = (10..30).map(|i| format!("bad {i}")).collect();
        assert_eq!(messages, want);
        let last = &recent[RECENT_DEAD_LETTERS - 1];
        assert_eq!(
            (last.stage.as_str(), last.position.as_deref(), last.excerpt.chars().count()),
            ("decode", Some("clicks[2]@29"), EXCERPT_CHARS + 1)
        );
        assert!(last.excerpt.starts_with("{\"n\": 29, \"pad\": \"xxx") && last.excerpt.ends_with('…'));
    }
}
