//! `sluice backfill`: a pipeline's module run over history into its
//! offline table, as a bounded run, before (or beside) the live pipeline.
//!
//! A backfill is the pipeline's own spec, changed so that it reads history
//! and writes the offline table alone:
//! - a file source is read whole; a Kafka source from a time before
//!   `--from` (by the brokers' offsets for times) to the partitions' ends,
//!   in a consumer group of its own, so the live group's offsets are left
//!   as they are;
//! - no checkpoints (the live pipeline's are not touched), and one barrier,
//!   at the end: the table gets the backfill in one snapshot or not at all;
//! - the features go to the first Iceberg output only; dead letters and
//!   late events where the manifest says.
//!
//! Which windows it writes (those ending in `[from, to)`, whole) and how
//! it shares the table with the live pipeline is the Iceberg sink's rule
//! (`sluice_sink_iceberg`'s `claim`), given the [`Backfill`] bounds.

use sluice_sink_api::Backfill;

use crate::pipeline::Spec;
use crate::sinks::SinkConfig;
use crate::source::{KafkaSourceConfig, SourceConfig, StartConfig};
use crate::time::{MAX_DURATION_MS, format_ms};
use crate::window;

/// How far before `--from` a session window may begin and still be read
/// whole from a topic, unless `--lookback` says.
pub const SESSION_LOOKBACK_MS: i64 = 86_400_000;

/// What `sluice backfill` was asked for, in milliseconds since the Unix
/// epoch.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// The first window end to write.
    pub from_ms: i64,
    /// Windows ending at or after it are not written.
    pub to_ms: i64,
    /// How far before `from` a topic is read (default: the window's size,
    /// or [`SESSION_LOOKBACK_MS`] for sessions).
    pub lookback_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--from {} is not before --to {}: the range of window ends is empty", format_ms(*from), format_ms(*to))]
    EmptyRange { from: i64, to: i64 },
    #[error("--lookback must not be negative")]
    NegativeLookback,
    #[error(
        "the pipeline `{0}` has no iceberg feature output: a backfill writes the offline table (add one, or give it with --set 'outputs.features=[{{type: iceberg, …}}]')"
    )]
    NoTable(String),
}

/// The spec of the backfill of `spec` over `range`, and the bounds its
/// Iceberg sink writes by.
pub fn plan(mut spec: Spec, range: Range) -> Result<(Spec, Backfill), Error> {
    let Range { from_ms, to_ms, lookback_ms } = range;
    if from_ms >= to_ms {
        return Err(Error::EmptyRange { from: from_ms, to: to_ms });
    }
    if lookback_ms.is_some_and(|l| l < 0) {
        return Err(Error::NegativeLookback);
    }
    let table = spec.outputs.features.iter().find(|s| matches!(s, SinkConfig::Iceberg(_))).cloned();
    let Some(table) = table else {
        return Err(Error::NoTable(spec.name.clone()));
    };
    spec.outputs.features = vec![table];
    spec.checkpoint = None;
    let history = History::before(&spec, from_ms, lookback_ms);
    let complete_from_ms = match &mut spec.source {
        // Read whole: every window of the file is whole.
        SourceConfig::File(_) => i64::MIN,
        SourceConfig::Kafka(kafka) => {
            read_history(kafka, history.read_from_ms, "backfill");
            history.complete_from_ms
        }
    };
    Ok((spec, Backfill { from_ms, to_ms, complete_from_ms }))
}

/// What a finished backfill of `range` wrote to the table of `spec` (its
/// plan): the window ends of its snapshot, `None` when it published none
/// (no row in its range).
pub async fn written(spec: &Spec, range: Range) -> Result<Option<std::ops::Range<i64>>, String> {
    let Some(SinkConfig::Iceberg(table)) = spec.outputs.features.first() else {
        return Err(Error::NoTable(spec.name.clone()).to_string());
    };
    // Backfills may not overlap: at most one begins at `from`.
    Ok(table.backfills().await?.into_iter().find(|r| r.start == range.from_ms))
}

/// Where a topic is read from for windows ending at or after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// The Kafka timestamp to read from (the brokers' offsets for times).
    pub read_from_ms: i64,
    /// Windows starting at or after it hold every event they should.
    pub complete_from_ms: i64,
}

impl History {
    /// For the windows of `spec` ending at or after `from_ms`: a window's
    /// size before it (`lookback_ms` when given; for sessions,
    /// [`SESSION_LOOKBACK_MS`] or the gap if longer), less the
    /// out-of-orderness, since records are found by their Kafka
    /// timestamps, which may be that far from their events' times.
    pub fn before(spec: &Spec, from_ms: i64, lookback_ms: Option<i64>) -> History {
        let (lookback, gap) = match spec.window.kind {
            window::Kind::Tumbling { size } | window::Kind::Sliding { size, .. } => (size, 0),
            window::Kind::Session { gap } => (SESSION_LOOKBACK_MS.max(gap), gap),
        };
        let lookback = lookback_ms.unwrap_or(lookback);
        let read_from_ms = from_ms.saturating_sub(lookback).saturating_sub(spec.out_of_orderness_ms);
        // A window starting later holds no event from before the records
        // read; a session, no event within its gap of them.
        let complete_from_ms = read_from_ms.saturating_add(spec.out_of_orderness_ms).saturating_add(gap);
        History { read_from_ms, complete_from_ms }
    }
}

/// Read `kafka`'s topics from `from_ms` to their ends, in a group of its
/// own (`{group}-{purpose}-{run id}`: the live group's offsets are left as
/// they are), committing to that group only at the end, if at all.
pub fn read_history(kafka: &mut KafkaSourceConfig, from_ms: i64, purpose: &str) {
    kafka.start = StartConfig::Timestamp(format_ms(from_ms));
    kafka.stop_at_end = true;
    kafka.group = format!("{}-{purpose}-{}", kafka.group, crate::checkpoint::run_id());
    kafka.commit_interval = sluice_sink_api::Duration::from_millis(MAX_DURATION_MS.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(manifest: &str) -> Spec {
        crate::manifest::Manifest::parse("test.yaml", manifest, &[]).map(|m| m.lower()).expect("a valid manifest")
    }

    const KAFKA: &str = "name: clicks\n\
        source: {type: kafka, brokers: 'b:9092', topics: [clicks], group: live}\n\
        events: {key: user, timestamp: {field: ts, format: millis}}\n\
        time: {out_of_orderness: 5s}\n\
        window: {type: sliding, size: 10m, slide: 1m}\n\
        transform: {module: m.wasm}\n\
        checkpoint: {dir: ckpt}\n\
        outputs:\n  features: [{type: redis, url: 'redis://r', key: 'u:{key}'}, \
        {type: iceberg, warehouse: w, table: t}]\n  \
        dead_letters: [{type: file, path: dead.jsonl}]\n  late_events: [{type: file, path: late.jsonl}]\n";

    #[test]
    fn a_topic_is_read_from_a_window_and_the_disorder_before_from_in_a_group_of_its_own() {
        let range = Range { from_ms: 3_600_000, to_ms: 7_200_000, lookback_ms: None };
        let (backfill, bounds) = plan(spec(KAFKA), range).expect("a plan");
        let SourceConfig::Kafka(kafka) = &backfill.source else { panic!("a Kafka source") };
        // 1 h - 10 min - 5 s.
        assert_eq!(kafka.start, StartConfig::Timestamp("1970-01-01T00:49:55Z".to_string()));
        assert!(kafka.stop_at_end);
        assert!(kafka.group.starts_with("live-backfill-"), "{}", kafka.group);
        assert!(backfill.checkpoint.is_none());
        assert_eq!(backfill.outputs.features.len(), 1);
        assert!(matches!(backfill.outputs.features[0], SinkConfig::Iceberg(_)));
        // The first window ending at `from` starts where the events are
        // known whole.
        assert_eq!(bounds, Backfill { from_ms: 3_600_000, to_ms: 7_200_000, complete_from_ms: 3_000_000 });
        assert!(bounds.covers(3_000_000, 3_600_000));
        assert!(!bounds.covers(2_999_999, 3_599_999));
        assert!(!bounds.covers(6_600_000, 7_200_000));
    }

    #[test]
    fn an_empty_range_or_no_table_is_refused() {
        let empty = Range { from_ms: 10, to_ms: 10, lookback_ms: None };
        assert!(matches!(plan(spec(KAFKA), empty), Err(Error::EmptyRange { .. })));
        let without = KAFKA.replace(", {type: iceberg, warehouse: w, table: t}", "");
        let range = Range { from_ms: 0, to_ms: 10, lookback_ms: None };
        assert!(matches!(plan(spec(&without), range), Err(Error::NoTable(_))));
    }
}
