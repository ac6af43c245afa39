//! Which windows a writer of the table claims, so that a backfill
//! (`sluice backfill`) and the live pipeline share the offline table and
//! each window is written once.
//!
//! The rule, by window end:
//! - a backfill's snapshots say which window ends it covers
//!   (`sluice.backfill.from` ≤ `window_end` < `sluice.backfill.to`,
//!   milliseconds since the Unix epoch, in the snapshot summary);
//! - the live pipeline leaves out a row whose window ends in a range a
//!   backfill covers (read when its sink opens);
//! - a backfill stops at the first window the live pipeline wrote: its
//!   `to` is cut to the least `window_end` of the data files other
//!   snapshots added (their column statistics, no data read), and it is
//!   refused where another backfill covers any part of its range.

use std::collections::HashMap;
use std::ops::Range;

use iceberg::spec::{ManifestList, PrimitiveLiteral};
use iceberg::table::Table;
use sluice_sink_api::time::format_ms as ms;
use sluice_sink_api::{Backfill, FeatureRow};

/// The snapshot summary keys of a backfill's range.
pub(crate) const SUMMARY_FROM: &str = "sluice.backfill.from";
pub(crate) const SUMMARY_TO: &str = "sluice.backfill.to";

/// The windows one writer of the table writes.
#[derive(Debug, Clone)]
pub(crate) enum Claim {
    /// A live pipeline's: every window that does not end in a range a
    /// backfill covers.
    Live { backfilled: Vec<Range<i64>> },
    /// A backfill's, bounded by the table.
    Backfill(Backfill),
}

impl Claim {
    pub(crate) fn takes(&self, row: &FeatureRow) -> bool {
        match self {
            Claim::Live { backfilled } => !backfilled.iter().any(|r| r.contains(&row.window_end)),
            Claim::Backfill(b) => b.covers(row.window_start, row.window_end),
        }
    }

    /// Whether it takes every row there can be (nothing to filter).
    pub(crate) fn takes_all(&self) -> bool {
        matches!(self, Claim::Live { backfilled } if backfilled.is_empty())
    }

    /// What a snapshot of this writer's says of it.
    pub(crate) fn summary(&self) -> Vec<(String, String)> {
        match self {
            Claim::Live { .. } => Vec::new(),
            Claim::Backfill(b) => {
                vec![(SUMMARY_FROM.to_string(), b.from_ms.to_string()), (SUMMARY_TO.to_string(), b.to_ms.to_string())]
            }
        }
    }
}

/// The ranges of window ends the table's backfills cover.
pub(crate) fn backfilled(table: &Table) -> Vec<Range<i64>> {
    table
        .metadata()
        .snapshots()
        .filter_map(|s| {
            let props = &s.summary().additional_properties;
            let from = props.get(SUMMARY_FROM)?.parse::<i64>().ok()?;
            let to = props.get(SUMMARY_TO)?.parse::<i64>().ok()?;
            Some(from..to)
        })
        .collect()
}

/// The least `window_end` among the rows the live pipeline (every writer
/// but backfills) put in the table, from the data files' statistics:
/// `None` when it wrote none.
pub(crate) async fn live_start(table: &Table) -> Result<Option<i64>, String> {
    let metadata = table.metadata();
    let Some(current) = metadata.current_snapshot() else {
        return Ok(None);
    };
    let backfills: HashMap<i64, bool> = metadata
        .snapshots()
        .map(|s| (s.snapshot_id(), s.summary().additional_properties.contains_key(SUMMARY_FROM)))
        .collect();
    let field = metadata
        .current_schema()
        .field_by_name("window_end")
        .ok_or_else(|| "the table has no window_end column".to_string())?
        .id;
    let io = table.file_io();
    let list = io
        .new_input(current.manifest_list())
        .map_err(|e| format!("cannot open the manifest list: {e}"))?
        .read()
        .await
        .map_err(|e| format!("cannot read the manifest list: {e}"))?;
    let list = ManifestList::parse_with_version(&list, metadata.format_version())
        .map_err(|e| format!("cannot read the manifest list: {e}"))?;
    let mut least: Option<i64> = None;
    for manifest_file in list.entries() {
        if backfills.get(&manifest_file.added_snapshot_id) == Some(&true) && !manifest_file.has_existing_files() {
            // Added by a backfill and holding nothing older: skip reading it.
            continue;
        }
        let manifest =
            manifest_file.load_manifest(io).await.map_err(|e| format!("cannot read a manifest of the table: {e}"))?;
        for entry in manifest.entries() {
            let added_by = entry.snapshot_id().unwrap_or(manifest_file.added_snapshot_id);
            if !entry.is_alive() || backfills.get(&added_by) == Some(&true) {
                continue;
            }
            let file = entry.data_file();
            let end = match file.lower_bounds().get(&field).map(|d| d.literal()) {
                Some(PrimitiveLiteral::Long(micros)) => micros.div_euclid(1000),
                _ => {
                    return Err(format!(
                        "the data file {} has no lower bound for window_end: cannot tell where the live rows begin",
                        file.file_path()
                    ));
                }
            };
            least = Some(least.map_or(end, |l| l.min(end)));
        }
    }
    Ok(least)
}

/// A backfill's bounds as the table allows them: refused where another
/// backfill covers part of the range, cut at the live pipeline's first
/// window end.
pub(crate) async fn bound(requested: Backfill, table: &Table) -> Result<Backfill, String> {
    let wanted = requested.from_ms..requested.to_ms;
    if let Some(other) = backfilled(table).into_iter().find(|r| r.start < wanted.end && wanted.start < r.end) {
        return Err(format!(
            "an earlier backfill covers windows ending from {} up to (not including) {}: a window is written \
             once, so a backfill may not overlap another; backfill the rest of the range only",
            ms(other.start),
            ms(other.end)
        ));
    }
    let mut bounded = requested;
    if let Some(live) = live_start(table).await? {
        if live <= requested.from_ms {
            return Err(format!(
                "the live pipeline's rows begin with windows ending at {}, at or before --from {}: there is nothing \
                 left for a backfill to write in this range",
                ms(live),
                ms(requested.from_ms)
            ));
        }
        if live < requested.to_ms {
            tracing::info!(
                live_from = %ms(live),
                requested_to = %ms(requested.to_ms),
                "the backfill stops where the live pipeline's rows begin"
            );
            bounded.to_ms = live;
        }
    }
    Ok(bounded)
}
